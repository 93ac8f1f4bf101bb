"""Chapter 2, "The convolution filters of robust and standard models" (``notebooks/02_convolution_filters.md``),
after Gavrikov & Keuper (2022).

Measures the filter statistics of :mod:`rilib.lenses.filters` on the catalogue's MNIST models (all trained with
AdamW and weight decay 0.01, the weight decay of the paper's normal models), draws them, and registers the
paper's four claims.
"""

from __future__ import annotations

import json

from .. import paths
from ..attacks import PGD
from ..book import plotting
from ..book.dashboard import panel, point
from ..book.ledger import Measurement, claim
from ..data import load_dataset
from ..lenses.filters import (by_depth, conv3x3_layers, first_layer, first_layer_damping, layer_stats, pca_basis,
                              weighted_mean)
from ..lenses.stats import mean_ci
from ..profiles import Profile, get_profile
from ..rng import seeded
from .catalog import EVAL_EPS, ROBUST, STANDARD, catalog_zoo, load_models, protocol_differs

#: The models whose kernel bases the chapter draws.
PCA_MODELS = (STANDARD, "mnist-pgd-0.3", "mnist-trades")


def per_depth(models: dict):
    """:func:`rilib.lenses.filters.by_depth` of every model, stacked, with a ``model`` column."""
    import pandas as pd
    return pd.concat([by_depth(layer_stats(m)).reset_index().assign(model=n) for n, m in models.items()],
                     ignore_index=True)


def overall(models: dict):
    """Whole-network values per model: kernel-weighted sparsity and variance entropy, output-channel-
    weighted orthogonality, and the variance entropy of the deepest layer."""
    import pandas as pd
    rows = []
    for name, m in models.items():
        s = layer_stats(m)
        rows.append({
            "model": name,
            "sparsity": weighted_mean(s, "sparsity", "kernels"),
            "variance entropy": weighted_mean(s, "variance_entropy", "kernels"),
            "variance entropy (deepest layer)": float(s.variance_entropy.iloc[-1]),
            "orthogonality": weighted_mean(s, "orthogonality", "out_channels"),
        })
    return pd.DataFrame(rows).set_index("model")


def styled_overall(table):
    """:func:`overall` with its caption, for the page."""
    return table.style.format(precision=3).set_caption(
        "Whole-network filter statistics: kernel-weighted sparsity and variance entropy, the variance entropy of "
        "the deepest 3×3 layer, and output-channel-weighted orthogonality.")


def decoupled_decay_per_step(profile) -> float:
    """lr · wd of the catalogue's recipe: the fraction of every weight AdamW's decoupled decay removes per step."""
    spec = catalog_zoo(get_profile(profile))[STANDARD]
    return spec.lr * spec.weight_decay


def depth_figure(models: dict):
    """Sparsity, variance entropy and orthogonality against depth, one line per model."""
    return plotting.metrics_by_depth(per_depth(models))


def kernel_figure(models: dict):
    """The first-layer 3×3 kernels of every model."""
    return plotting.kernel_grid({n: first_layer(m).weight for n, m in models.items()},
                                title="First-layer 3×3 kernels (each on its own symmetric scale)")


def pca_figures(models: dict, names=PCA_MODELS) -> dict:
    """The principal components of the first and of the deepest 3×3 layer's kernels of ``names``, with the
    variance each explains: ``{"fig_pca_first": fig, "fig_pca_deepest": fig}``."""
    layers = {"first": {n: first_layer(models[n]).weight for n in names},
              "deepest 3×3": {n: list(conv3x3_layers(models[n]))[-1][1].weight for n in names}}
    return {f"fig_pca_{which.split()[0]}": plotting.pca_bases({n: pca_basis(w) for n, w in weights.items()},
                                                              title=f"Principal components of the {which} layer's kernels")
            for which, weights in layers.items()}


def damping_n(profile) -> int:
    """Test images used for the first-layer damping ratio (at most 256)."""
    return min(get_profile(profile).eval_n, 256)


def damping(profile, models: dict, eps: float = EVAL_EPS["mnist"], progress: bool = True):
    """Mean and 95 % interval (normal approximation) of the first-layer damping ratio per model, for PGD-40
    perturbations (step 2.5·ε/40, seed 0) computed against each model itself on the first :func:`damping_n` test
    images. Returns a DataFrame indexed by model with columns ``damping ratio``, ``ci95 low``, ``ci95 high``.
    For catalogue models the rows are cached under ``RILIB_CACHE/results`` (the page and its claim share them)."""
    import pandas as pd

    prof = get_profile(profile)
    specs = catalog_zoo(prof)
    compute = lambda: _damping_rows(prof, models, eps, progress)  # noqa: E731
    if all(name in specs for name in models):
        settings = {"version": 1, "n": damping_n(prof), "eps": eps, "steps": prof.eval_steps,
                    "models": {name: specs[name].key() for name in models}}
        rows = paths.cached(paths.results_path("convolution_filters", prof.name, settings, ".json"), compute,
                            load=paths.read_json, dump=lambda r: json.dumps(r).encode(),
                            name="convolution_filters.damping")
    else:
        rows = compute()
    return pd.DataFrame(rows).set_index("model")


def _damping_rows(prof: Profile, models: dict, eps: float, progress: bool) -> list[dict]:
    from tqdm import tqdm

    ds = load_dataset(prof.mnist, prof.n_train, prof.n_test)
    n = damping_n(prof)
    x, y = ds.x_test[:n], ds.y_test[:n]
    rows = []
    for name, model in tqdm(models.items(), desc="first-layer damping", disable=not progress):
        with seeded(0):
            # The full attack (no early stop): the perturbation is measured, not only whether it fools.
            x_adv = PGD(eps=eps, steps=prof.eval_steps, early_stop=False)(model, x, y)
        iv = mean_ci(first_layer_damping(model, x, x_adv))
        rows.append({"model": name, "damping ratio": iv.mean, "ci95 low": iv.low, "ci95 high": iv.high})
    return rows


def damping_figure(profile, table):
    """:func:`damping` as bars with 95 % intervals."""
    return plotting.interval_bars(table, "damping ratio", "ci95 low", "ci95 high",
                                  "‖Δ ReLU(conv1)‖ / ‖δ‖ (mean, 95 % CI)",
                                  title=f"First-layer response to a PGD perturbation ({damping_n(profile)} test images)")


# ---------------------------------------------------------------------------------------------------
# Claims

def _differs(profile: Profile) -> str:
    return ("the book's MNIST CNNs trained with AdamW (decoupled weight decay), not the RobustBench models the "
            f"paper studied; {protocol_differs(profile)}")


def _compare(values: dict, better: str) -> tuple[dict, bool, str]:
    std = values[STANDARD]
    ok = {n: (values[n] < std if better == "lower" else values[n] > std) for n in ROBUST}
    failed = [n for n, v in ok.items() if not v]
    return values, not failed, (f"not reproduced for: {', '.join(failed)}" if failed else "")


def _register_overall_claim(id: str, statement: str, column: str, better: str, comparison: str) -> None:
    """Register a claim comparing one column of :func:`overall` between each robust model and the standard."""

    @claim(id, chapter="2", statement=statement, papers="gavrikov2022", differs=_differs)
    def measure(profile: Profile) -> Measurement:
        vals, ok, note = _compare(overall(load_models(profile))[column].to_dict(), better)
        return Measurement(vals, comparison, ok, note)


_register_overall_claim(
    "ch2.robust-filters-less-sparse",
    "Robust models have fewer sparse 3×3 kernels than the standard model (paper: share 0.094 robust vs 0.395 normal).",
    "sparsity", "lower", f"kernel-weighted sparsity, robust < {STANDARD}, for each of {', '.join(ROBUST)}")
_register_overall_claim(
    "ch2.robust-filters-more-diverse-deep", "Robust models' variance entropy is higher in the deepest layer.",
    "variance entropy (deepest layer)", "higher", f"entropy of the deepest 3×3 layer, robust > {STANDARD}")
_register_overall_claim(
    "ch2.robust-filters-more-orthogonal", "Robust models' filters are more orthogonal.",
    "orthogonality", "higher", f"output-channel-weighted orthogonality, robust > {STANDARD}")


@claim("ch2.robust-first-layer-damps", chapter="2",
       statement="Robust models' first layer damps adversarial perturbations more.", papers="gavrikov2022",
       differs=_differs)
def _claim_damping(profile: Profile) -> Measurement:
    d = damping(profile, load_models(profile))
    vals, ok, note = _compare(d["damping ratio"].to_dict(), "lower")
    return Measurement(vals, f"mean ‖ReLU(conv1(x+δ)) − ReLU(conv1(x))‖ / ‖δ‖ over {damping_n(profile)} "
                       f"test images, robust < {STANDARD} (δ: PGD-40 at ε = 0.3 against each model)", ok, note)


__all__ = ["per_depth", "overall", "styled_overall", "decoupled_decay_per_step", "depth_figure", "kernel_figure",
           "pca_figures", "damping_n", "damping", "damping_figure", "PCA_MODELS"]


# ---------------------------------------------------------------------------------------------------
# The synthesis page's ε dashboard

@panel("filters", title="3×3 filters", chapter="2", ylabel="statistic (0–1)",
       note="one trained model per ε: no interval")
def _panel_filters(profile: Profile) -> dict:
    """Kernel-weighted sparsity, the deepest layer's variance entropy and the orthogonality, per model (one
    deterministic number per trained model)."""
    table = overall(load_models(profile, progress=False))
    return {label: {m: point(v) for m, v in table[col].items()}
            for col, label in (("sparsity", "sparsity"), ("variance entropy (deepest layer)", "variance entropy, "
                               "deepest layer"), ("orthogonality", "orthogonality"))}
