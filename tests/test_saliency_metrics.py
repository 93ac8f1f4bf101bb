"""Attribution methods (Captum and SHAP behind one interface) and the batched metrics, on known cases."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rilib.lenses import metrics, saliency, stats


class HalfSquaredNorm(nn.Module):
    """Logit 0 is ½‖x‖², so its input gradient is x itself; the other logits are 0."""

    def forward(self, x):
        psi = 0.5 * x.flatten(1).pow(2).sum(1, keepdim=True)
        return torch.cat([psi, torch.zeros(len(x), 9)], dim=1)


class LinearPixels(nn.Module):
    """Two-class linear model: logit 1 − logit 0 = Σ w·x; w is the true importance of every pixel."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        z = (x * self.w).flatten(1).sum(1, keepdim=True)
        return torch.cat([-z / 2, z / 2], dim=1)


def test_alignment_of_x_with_itself_is_one():
    x = torch.rand(5, 1, 28, 28)
    assert torch.allclose(metrics.alignment(HalfSquaredNorm(), x), torch.ones(5), atol=1e-5)
    assert torch.allclose(metrics.alignment_of(x, 3 * x), torch.ones(5), atol=1e-5)
    assert torch.allclose(metrics.alignment_of(x, -x), torch.ones(5), atol=1e-5)  # absolute value


def test_true_importance_deletes_faster_than_a_random_map():
    torch.manual_seed(0)
    w = torch.zeros(1, 1, 12, 12)
    w[..., 3:9, 3:9] = torch.rand(6, 6) + 0.5     # only the centre matters
    model = LinearPixels(w * 0.2).eval()  # logits of a few units: probabilities not saturated
    x = torch.rand(16, 1, 12, 12)
    true_map = model.w.detach() * x                 # exact contribution of every pixel
    d_true, _ = metrics.deletion_insertion(model, x, true_map, steps=12)
    d_rand, _ = metrics.deletion_insertion(model, x, torch.rand_like(x), steps=12)
    assert d_true.mean() < d_rand.mean() - 0.05, (d_true.mean(), d_rand.mean())


def test_batched_deletion_insertion_matches_the_per_image_reference(tiny_standard, mnist_small):
    x = mnist_small.x_test[:6]
    sal = saliency.Gradient(tiny_standard).attribute(x)
    d, i = metrics.deletion_insertion(tiny_standard, x, sal, steps=14, batch_size=37)  # odd chunking on purpose
    d_ref, i_ref = metrics.deletion_insertion_reference(tiny_standard, x, sal, steps=14)
    assert torch.allclose(d, torch.tensor(d_ref), atol=1e-5)
    assert torch.allclose(i, torch.tensor(i_ref), atol=1e-5)


def test_gini_and_spearman_known_values():
    uniform = torch.ones(2, 1, 4, 4)
    spike = torch.zeros(2, 1, 4, 4)
    spike[:, 0, 1, 2] = 5.0
    assert torch.allclose(metrics.gini(uniform), torch.zeros(2), atol=1e-6)
    assert torch.allclose(metrics.gini(spike), torch.full((2,), 15 / 16))
    a = torch.rand(3, 1, 5, 5)
    assert torch.allclose(metrics.spearman(a, 2 * a + 1), torch.ones(3), atol=1e-6)
    assert torch.allclose(metrics.spearman(a, -a), -torch.ones(3), atol=1e-6)


def test_spearman_gives_ties_their_average_rank_like_scipy():
    """Maps with many exact zeros, as a gradient on an MNIST background: scipy.stats.spearmanr (average ranks) is
    the reference; a map and a copy of it must correlate perfectly whatever the order of their ties."""
    from scipy.stats import spearmanr
    torch.manual_seed(0)
    a = torch.rand(4, 1, 6, 6) * (torch.rand(4, 1, 6, 6) > 0.7)   # about 70 % exact zeros
    b = torch.rand(4, 1, 6, 6) * (torch.rand(4, 1, 6, 6) > 0.7)
    got = metrics.spearman(a, b)
    want = torch.tensor([spearmanr(a[i].flatten(), b[i].flatten()).statistic for i in range(4)], dtype=got.dtype)
    assert torch.allclose(got, want, atol=1e-6)
    zeros_first = torch.zeros(1, 1, 1, 8)
    zeros_first[..., 6:] = torch.tensor([1.0, 2.0])
    assert torch.allclose(metrics.spearman(zeros_first, zeros_first.clone()), torch.ones(1))


def test_randomize_top_layers_changes_only_the_top(tiny_standard):
    rnd = metrics.randomize_top_layers(tiny_standard, n_layers=1)
    assert not torch.equal(rnd.head.weight, tiny_standard.head.weight)
    assert torch.equal(rnd.features[0].weight, tiny_standard.features[0].weight)


@pytest.mark.parametrize("name,kwargs", [
    ("gradient", {}), ("gradient", {"absolute": True}), ("smoothgrad", {"n_samples": 4}),
    ("integrated_gradients", {"steps": 16}), ("integrated_gradients", {"baseline": "uniform", "n_baselines": 2, "steps": 8}),
])
def test_methods_return_maps_shaped_like_the_input(tiny_standard, mnist_small, name, kwargs):
    x = mnist_small.x_test[:4]
    m = saliency.METHODS[name](tiny_standard, **kwargs).attribute(x)
    assert m.shape == x.shape and torch.isfinite(m).all() and m.abs().sum() > 0
    if kwargs.get("absolute"):
        assert (m >= 0).all()


def test_gradient_method_is_the_input_gradient(tiny_standard, mnist_small):
    x = mnist_small.x_test[:3].clone().requires_grad_(True)
    target = torch.tensor([1, 2, 3])
    logits = tiny_standard(x)
    g, = torch.autograd.grad(logits.gather(1, target.view(-1, 1)).sum(), x)
    assert torch.allclose(saliency.Gradient(tiny_standard).attribute(x.detach(), target), g, atol=1e-6)


def test_integrated_gradients_is_nearly_complete(tiny_standard, mnist_small):
    x = mnist_small.x_test[:8]
    ig = saliency.IntegratedGradients(tiny_standard, steps=64)
    err = ig.completeness_error(x)
    with torch.no_grad():
        logits = tiny_standard(x)
        gap = (logits.max(1).values - tiny_standard(torch.zeros_like(x)).gather(
            1, logits.argmax(1, keepdim=True)).squeeze(1)).abs()
    assert (err <= 0.05 * gap + 1e-3).all(), (err, gap)


def test_integrated_gradients_is_exact_on_a_linear_model():
    """The trapezoid rule is exact where the logit is linear along the path, at any number of steps; Captum's
    riemann_trapezoid alone leaves 1/n of f(x) − f(0) unattributed (its weights sum to (n − 1)/n)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval()
    x = torch.rand(4, 1, 4, 4)
    for steps in (2, 5, 50):
        ig = saliency.IntegratedGradients(model, steps=steps)
        a = ig.attribute(x, torch.tensor([0, 1, 2, 0]))
        expected = x.flatten(1) * model[1].weight[[0, 1, 2, 0]]
        assert torch.allclose(a.flatten(1), expected, atol=1e-5), steps
        assert ig.last_delta.max() < 1e-4, (steps, ig.last_delta)


def test_shap_explains_the_predicted_class(tiny_standard, mnist_small):
    x = mnist_small.x_test[:3]
    m = saliency.GradientSHAP(tiny_standard, mnist_small.x_train[:32], n_samples=16).attribute(x)
    assert m.shape == x.shape and torch.isfinite(m).all()
    with pytest.raises(ValueError, match="predicted class"):
        wrong = (saliency.predicted(tiny_standard, x) + 1) % 10
        saliency.GradientSHAP(tiny_standard, mnist_small.x_train[:32], n_samples=4).attribute(x, wrong)


def test_mean_ci_brackets_the_mean_and_counts_what_it_left_out():
    iv = stats.mean_ci(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert iv.low < iv.mean == 2.5 < iv.high and iv.n == 4 and iv.nonfinite == 0
    # s = 1.2910 for 1..4, so the half-width is 1.96 · s / 2
    assert iv.half_width == pytest.approx(1.96 * 1.2909944 / 2, rel=1e-6)
    with_nan = stats.mean_ci(torch.tensor([1.0, float("nan"), 2.0, 3.0, 4.0, float("inf")]))
    assert with_nan.mean == 2.5 and with_nan.n == 4 and with_nan.nonfinite == 2
    assert "2 non-finite left out" in with_nan.format()


def test_paired_interval_is_the_interval_of_the_differences():
    a = torch.tensor([0.5, 0.6, 0.7, 0.8])
    iv = stats.paired_ci(a, a - 0.1)
    assert iv.mean == pytest.approx(0.1) and iv.half_width == pytest.approx(0.0, abs=1e-6)
    assert stats.paired_ci([1.0, 2.0], [0.0, 0.0]).mean == 1.5
