"""Known answers for the measurements that make chapter 3 follow its papers: Etmann et al.'s alignment in input
units, IG of the softmax probability (Boychev 2023), the cascading randomisation of Adebayo et al. (2018), the
stroke share, the Sobel baseline map, SSIM of maps, and the chapter's seed-level comparisons."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rilib.chapters import saliency as ch3
from rilib.lenses import metrics
from rilib.lenses.saliency import Gradient, IntegratedGradients
from rilib.rng import seeded

from conftest import Affine




def test_etmann_alignment_of_a_linear_logit_is_the_distance_in_input_units():
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(3, 16, generator=g), torch.randn(3, generator=g)
    model = Affine(w, b).eval()
    x = torch.rand(5, 1, 4, 4, generator=g)
    y = torch.tensor([0, 1, 2, 1, 0])
    xf = x.flatten(1)
    expected = (xf * w[y]).sum(1).abs() / w[y].norm(dim=1)        # |⟨x, w_y⟩| / ‖w_y‖
    assert torch.allclose(metrics.etmann_alignment(model, x, y, psi="logit"), expected, atol=1e-5)
    # Ψ = top logit − runner-up: linear too, with weights w_top − w_second.
    logits = model(x).detach()
    top2 = logits.topk(2, dim=1).indices
    dw = w[top2[:, 0]] - w[top2[:, 1]]
    expected = (xf * dw).sum(1).abs() / dw.norm(dim=1)
    assert torch.allclose(metrics.etmann_alignment(model, x, psi="margin"), expected, atol=1e-5)
    # Not divided by ‖x‖: doubling x doubles it (the scale-free alignment would not change).
    assert torch.allclose(metrics.etmann_alignment(model, 2 * x, y), 2 * metrics.etmann_alignment(model, x, y),
                          atol=1e-5)
    with pytest.raises(ValueError, match="logit, margin"):
        metrics.etmann_alignment(model, x, psi="top")


def test_ig_of_the_probability_shares_out_the_rise_in_probability():
    g = torch.Generator().manual_seed(1)
    model = Affine(torch.randn(3, 16, generator=g) * 0.5, torch.zeros(3)).eval()
    x = torch.rand(4, 1, 4, 4, generator=g)
    target = torch.tensor([0, 1, 2, 0])
    a = IntegratedGradients(model, "zero", steps=400, output="probability").attribute(x, target)
    with torch.no_grad():
        p = torch.softmax(model(x), 1).gather(1, target[:, None])[:, 0]
        p0 = torch.softmax(model(torch.zeros_like(x)), 1).gather(1, target[:, None])[:, 0]
    assert torch.allclose(a.flatten(1).sum(1), p - p0, atol=1e-4)   # completeness in probability units
    with pytest.raises(ValueError, match="logit, probability"):
        IntegratedGradients(model, output="softmax")


def test_cascading_randomisation_reinitialises_from_the_top_down():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Linear(8, 3)).eval()
    w1, w2 = model[1].weight.detach().clone(), model[2].weight.detach().clone()
    # The random weights each layer gets: the j-th layer from the top is re-initialised with seed j.
    fresh2, fresh1 = nn.Linear(8, 3), nn.Linear(16, 8)
    with seeded(0):
        fresh2.reset_parameters()
    with seeded(1):
        fresh1.reset_parameters()
    x = torch.rand(2, 1, 4, 4)
    target = torch.tensor([0, 2])
    steps = metrics.cascade_models(model)
    assert len(steps) == 2
    # The gradient of a linear network's logit c is W1ᵀ W2[c], whatever x is.
    expected = [fresh1.weight.detach().T @ fresh2.weight.detach()[target].T if k == 2 else
                w1.T @ fresh2.weight.detach()[target].T for k in (1, 2)]
    for m, e in zip(steps, expected):
        got = Gradient(m).attribute(x, target).flatten(1)
        assert torch.allclose(got, e.T, atol=1e-6)
    assert torch.equal(model[2].weight, w2), "the original model is untouched"


def test_stroke_share_sobel_and_ssim_known_values():
    x = torch.zeros(2, 1, 8, 8)
    x[:, :, :, 4:] = 1.0                                    # the right half is ink
    assert torch.allclose(metrics.stroke_share(x, torch.ones_like(x)), torch.full((2,), 0.5))
    assert torch.allclose(metrics.stroke_share(x, x * 3), torch.ones(2))
    assert torch.allclose(metrics.stroke_share(x, -(1 - x)), torch.zeros(2))
    assert torch.allclose(metrics.stroke_share(x, 2 * x - 1), torch.full((2,), 0.5))   # signed: |map| counts
    edges = metrics.sobel_map(x)
    assert edges.shape == x.shape
    assert torch.all(edges[..., 3:5] > 0.1) and torch.all(edges[..., :2] == 0) and torch.all(edges[..., 6:] == 0)
    assert torch.all(metrics.sobel_map(torch.full((1, 1, 8, 8), 0.7)) == 0)
    m = torch.rand(3, 1, 12, 12)
    assert torch.allclose(metrics.map_ssim(m, 5 * m), torch.ones(3), atol=1e-6)    # each map scaled by its max
    assert torch.allclose(metrics.map_ssim(m, -m), torch.ones(3), atol=1e-6)       # compared as |map|
    assert torch.all(metrics.map_ssim(m, torch.rand(3, 1, 12, 12)) < 0.5)


def _results_with(values: dict, n: int = 4) -> ch3.SaliencyResults:
    """Results in which every image of model ``m`` has alignment ``values[m]`` (both Ψ) and Gini ``values[m]`` for
    every method (the seed replicates' Gini in ``seeds``)."""
    etmann = {m: {p: torch.full((n,), v) for p in metrics.PSI} for m, v in values.items()}
    maps = {m: {meth: {"gini": torch.full((n,), v)} for meth in ch3.GINI_METHODS}
            for m, v in values.items() if "-seed" not in m}
    seeds = {m: {meth: torch.full((n,), v) for meth in ch3.GINI_METHODS} for m, v in values.items() if "-seed" in m}
    return ch3.SaliencyResults(alignment={}, maps=maps, etmann=etmann, seeds=seeds)


def test_seed_margins_pair_replicate_r_of_an_arm_with_replicate_r_of_the_standard_model():
    from rilib.chapters.catalog import seed_names
    values = {}
    for arm, base in zip(ch3.SEED_ARMS, (1.0, 2.0, 3.0, 4.0)):
        for r, name in enumerate(seed_names("cpu", arm)):
            values[name] = base + 0.1 * r * (1 if arm == ch3.STANDARD else 2)
    res = _results_with(values)
    for what in ("logit", "gini:shap"):
        margins = ch3.seed_margins("cpu", res, what)
        diffs, iv, per_image = margins["mnist-pgd-0.3"]
        assert diffs == pytest.approx([2.0, 2.1, 2.2])            # (3 + 0.2 r) − (1 + 0.1 r)
        assert iv.mean == pytest.approx(2.1) and iv.low < 2.1 < iv.high
        assert per_image.mean == pytest.approx(2.0)               # seed 0 only, on the same images


def test_the_sweep_claim_asks_alpha_to_rise_with_lambda_at_every_seed(monkeypatch):
    """Etmann et al.'s own test on made-up alignments: α rising with λ at every training seed passes (Spearman +1
    at each seed); one seed whose α falls along the sweep leaves the claim unresolved."""
    from types import SimpleNamespace

    from rilib.book.ledger import CLAIMS
    from rilib.chapters.catalog import seed_name, seed_names
    from rilib.profiles import get_profile
    prof = get_profile("cpu")
    alpha = {0.0: 1.0, 0.03: 1.2, 0.1: 1.5, 0.3: 2.0}

    def images(value):
        return {psi: torch.full((8,), value) for psi in metrics.PSI}

    def fake(falling_seed=None):
        etmann = {n: images(alpha[0.0] + r / 100) for r, n in enumerate(seed_names(prof, ch3.STANDARD))}
        seeds = {}
        for name in ch3.GP_SWEEP:
            lam = ch3.gp_spec(prof, name).param_dict["lam"]
            for r in range(prof.seeds):
                a = alpha[lam] if r != falling_seed else alpha[0.0] - lam
                (etmann if r == 0 else seeds)[name if r == 0 else seed_name(name, r)] = images(a + r / 100)
        return SimpleNamespace(etmann=etmann), seeds

    res, seeds = fake()
    monkeypatch.setattr(ch3, "measure", lambda profile, progress=True: res)
    monkeypatch.setattr(ch3, "sweep_seed_alignment", lambda profile, progress=True: seeds)
    rhos, iv = ch3.sweep_trend(prof, res, "logit", seeds)
    assert rhos == pytest.approx([1.0] * prof.seeds)
    m = CLAIMS["ch3.alignment-rises-with-gradient-penalty"].measure(prof)
    assert m.passed, m.note
    assert "α(λ = 0.3) − α(0), logit" in m.measured
    res, seeds = fake(falling_seed=2)
    monkeypatch.setattr(ch3, "measure", lambda profile, progress=True: res)
    monkeypatch.setattr(ch3, "sweep_seed_alignment", lambda profile, progress=True: seeds)
    m = CLAIMS["ch3.alignment-rises-with-gradient-penalty"].measure(prof)
    assert not m.passed and "seeds disagree" in m.note
