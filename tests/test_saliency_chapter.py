"""The saliency chapter's pieces that need no trained zoo: image selection, method names, margins and figures."""

from __future__ import annotations

import matplotlib
import pandas as pd
import pytest
import torch

from rilib.book import plotting
from rilib.chapters import saliency as ch3
from rilib.errors import UnknownNameError

matplotlib.use("Agg")


def test_grid_images_are_two_of_every_class_in_order():
    x, y = ch3.grid_images("smoke")
    assert x.shape == (20, 1, 28, 28)
    assert y.tolist() == [c for c in range(10) for _ in range(2)]


def test_unknown_method_names_the_valid_ones(tiny_standard):
    with pytest.raises(UnknownNameError, match="smoothgrad"):
        ch3.make_method("smoothgrd", tiny_standard, "smoke")


def test_every_method_of_the_chapter_makes_a_map(tiny_standard, mnist_small):
    x = mnist_small.x_test[:3]
    for name in ch3.METHODS:
        m = ch3.make_method(name, tiny_standard, "smoke").attribute(x)
        assert m.shape == x.shape and torch.isfinite(m).all(), name


def test_paired_margin_is_the_mean_difference_on_the_same_images():
    a = torch.tensor([0.5, 0.6, 0.7, 0.8])
    results = ch3.SaliencyResults(alignment={"mnist-pgd-0.3": a, "mnist-standard": a - 0.1}, maps={})
    iv = ch3.paired_margin(results, "mnist-pgd-0.3")
    assert iv.mean == pytest.approx(0.1) and iv.low == pytest.approx(0.1) and iv.high == pytest.approx(0.1)


def test_chapter_figures_have_labelled_axes():
    x = torch.rand(4, 1, 28, 28)
    fig = plotting.saliency_grid(x, {"mnist-standard": torch.randn_like(x), "mnist-pgd-0.3": torch.randn_like(x)},
                                 signed=True, title="t", row_labels=[0, 0, 1, 1])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["input", "standard", "pgd-0.3"]
    table = pd.DataFrame({"objective": ["standard", "pgd", "pgd", "trades"], "train ε": [0.0, 0.1, 0.3, 0.3],
                          "alignment": [0.2, 0.3, 0.5, 0.4], "ci95 low": [0.1, 0.2, 0.4, 0.3],
                          "ci95 high": [0.3, 0.4, 0.6, 0.5]},
                         index=["mnist-standard", "mnist-pgd-0.1", "mnist-pgd-0.3", "mnist-trades"])
    ax = plotting.metric_vs_eps(table).axes[0]
    assert "ε" in ax.get_xlabel() and "alignment" in ax.get_ylabel()
    idx = pd.MultiIndex.from_product([["mnist-standard", "mnist-pgd-0.3"], ["gradient", "random map"]],
                                     names=["model", "method"])
    summary = pd.DataFrame({"deletion": [0.1, 0.2, 0.3, 0.4], "insertion": [0.5, 0.6, 0.7, 0.8]}, index=idx)
    fig = plotting.metric_heatmaps(summary)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["gradient", "random map"]


def test_new_chapter_figures_have_labelled_axes():
    names = ch3.chapter_models("smoke")
    assert names[-2:] == list(ch3.L2_MODELS), "the L2 models are studied beside the L∞ ones"
    cascade = {n: {"spearman": torch.rand(6, 3), "ssim": torch.rand(6, 3)} for n in names}
    fig = ch3.cascade_figure("smoke", ch3.SaliencyResults(alignment={}, maps={}, cascade=cascade))
    assert "layers re-initialised" in fig.axes[0].get_xlabel() and "Spearman" in fig.axes[0].get_ylabel()
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()][-1] == "pgd-l2-2"
    etmann = {n: {p: torch.rand(5) + 1 for p in ("logit", "margin")} for n in (ch3.STANDARD, *ch3.GP_SWEEP)}
    fig = ch3.sweep_figure("smoke", ch3.SaliencyResults(alignment={n: torch.rand(5) for n in etmann}, maps={},
                                                        etmann=etmann))
    assert "λ" in fig.axes[0].get_xlabel() and "pixel units" in fig.axes[0].get_ylabel()
    table = pd.DataFrame({"objective": ["standard", "pgd", "pgd"], "train ε": [0.0, 0.3, 2.0], "norm": ["L∞", "L∞", "L2"],
                          "logit": [3.0, 1.0, 2.0], "logit low": [2.5, 0.5, 1.5], "logit high": [3.5, 1.5, 2.5]},
                         index=["mnist-standard", "mnist-pgd-0.3", "mnist-pgd-l2-2"])
    table = table.assign(alignment=table["logit"], **{"ci95 low": table["logit low"], "ci95 high": table["logit high"]})
    left, right = ch3.alignment_figure("smoke", table).axes[:2]
    assert "L∞" in left.get_xlabel() and "L2" in right.get_xlabel() and "pixel units" in left.get_ylabel()


def test_measure_is_two_cached_parts_and_precompute_fills_the_second(tmp_path, monkeypatch):
    """:func:`measure` joins two parts, each computed once and cached: the precomputation fills the second (the last
    chapter models, the seed replicates, the gradient-penalty arms), so the chapter then computes only the first;
    every chapter model is in exactly one part."""
    from rilib.profiles import get_profile
    monkeypatch.setenv("RILIB_CACHE", str(tmp_path))
    prof = get_profile("smoke")
    names = ch3.chapter_models(prof)
    first, second = (ch3._part_models(prof, "mnist", p) for p in ch3.PARTS)
    assert first + second == names and second == names[-ch3.SECOND_PART_MODELS:]
    calls = []

    def fake(prof_, progress, family="mnist", part=ch3.PARTS[0]):
        calls.append(part)
        models = ch3._part_models(prof_, family, part) + (["replicate"] if part == ch3.PARTS[1] else [])
        return ch3.SaliencyResults({n: torch.full((3,), float(len(calls))) for n in models}, {n: {} for n in models})

    monkeypatch.setattr(ch3, "_measure", fake)
    ch3.precompute(prof, progress=False)
    assert calls == ["second"]
    results = ch3.measure(prof, progress=False)
    assert calls == ["second", "first"]
    assert list(results.alignment) == [*first, *second, "replicate"]
    assert all(float(results.alignment[n][0]) == 1.0 for n in (*second, "replicate"))  # the precomputed values
    ch3.measure(prof, progress=False)
    assert calls == ["second", "first"]  # both parts cached
