"""Chapter 2, "The convolution filters of robust and standard models" (Gavrikov & Keuper 2022).

Measures the filter statistics of :mod:`rilib.filters` on the chapter-1 zoo (all trained with AdamW and
weight decay 0.01, the weight decay of the paper's normal models) and registers the paper's four claims.
"""

from __future__ import annotations

import torch

from . import zoo
from .attacks import PGD
from .chapter1 import EVAL_EPS, ROBUST, STANDARD, load_models
from .claims import Measurement, claim
from .data import load_dataset
from .filters import by_depth, first_layer_damping, layer_stats, weighted_mean
from .metrics import mean_ci
from .profiles import Profile, get_profile

GAVRIKOV = "Gavrikov & Keuper 2022, Adversarial Robustness through the Lens of Convolutional Filters (CVPR-W)"

def per_depth(models: dict):
    """:func:`rilib.filters.by_depth` of every model, stacked, with a ``model`` column."""
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


def damping_n(profile) -> int:
    """Test images used for the first-layer damping ratio (at most 256)."""
    return min(get_profile(profile).eval_n, 256)


def damping(profile, models: dict, eps: float = EVAL_EPS["mnist"], progress: bool = True):
    """Mean and 95 % interval (normal approximation) of the first-layer damping ratio per model, for PGD-40
    perturbations (step 2.5·ε/40) computed against each model itself on the first :func:`damping_n` test
    images. Returns a DataFrame indexed by model."""
    import pandas as pd
    from tqdm import tqdm

    prof = get_profile(profile)
    ds = load_dataset(prof.mnist, prof.n_train, prof.n_test)
    n = damping_n(prof)
    x, y = ds.x_test[:n].to(zoo.device()), ds.y_test[:n].to(zoo.device())
    rows = []
    for name, model in tqdm(models.items(), desc="first-layer damping", disable=not progress):
        torch.manual_seed(0)
        x_adv = PGD(eps=eps, steps=prof.eval_steps)(model, x, y)
        mean, low, high = mean_ci(first_layer_damping(model, x, x_adv))
        rows.append({"model": name, "damping ratio": mean, "ci95 low": low, "ci95 high": high})
    return pd.DataFrame(rows).set_index("model")


def _compare(values: dict, better: str) -> tuple[dict, bool, str]:
    std = values[STANDARD]
    ok = {n: (values[n] < std if better == "lower" else values[n] > std) for n in ROBUST}
    failed = [n for n, v in ok.items() if not v]
    return values, not failed, (f"not reproduced for: {', '.join(failed)}" if failed else "")


def _register_overall_claim(id: str, statement: str, column: str, better: str, comparison: str) -> None:
    """Register a claim comparing one column of :func:`overall` between each robust model and the standard."""

    @claim(id, chapter="2", statement=statement, citation=GAVRIKOV)
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
       statement="Robust models' first layer damps adversarial perturbations more.", citation=GAVRIKOV)
def _claim_damping(profile: Profile) -> Measurement:
    models = load_models(profile)
    d = damping(profile, models)
    vals, ok, note = _compare(d["damping ratio"].to_dict(), "lower")
    return Measurement(vals, f"mean ‖ReLU(conv1(x+δ)) − ReLU(conv1(x))‖ / ‖δ‖ over {damping_n(profile)} "
                       f"test images, robust < {STANDARD} (δ: PGD-40 at ε = 0.3 against each model)", ok, note)


__all__ = ["load_models", "per_depth", "overall", "damping"]
