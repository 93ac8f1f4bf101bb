"""Chapter 3, "Saliency maps of standard and robust models", and how to measure recognisability.

Boychev (2023) compares attribution maps of standard and robust models; Tsipras et al. (2019) and Etmann et al.
(2019) showed that robust models' input gradients look like the object. The chapter draws the maps of
:mod:`rilib.saliency` for the chapter-1 zoo and measures them with :mod:`rilib.metrics`:

- Etmann et al.'s alignment |⟨x, ∇ₓΨ(x)⟩| / (‖x‖ ‖∇ₓΨ(x)‖) of every model (Ψ: the predicted class's logit);
- per model and method: deletion and insertion AUC (Petsiuk et al. 2018, RISE) against a random map, the Gini
  coefficient of |map|, the map's own alignment with the image, the completeness error of Integrated Gradients,
  and the model-randomisation check of Adebayo et al. (2018).

:func:`measure` computes every per-image value once per profile and zoo and caches it (atomically) under
``RILIB_CACHE/results``; the notebook's tables and figures and the chapter's claims all read that cache.
"""

from __future__ import annotations

from typing import Optional

import torch

from . import zoo
from .chapter1 import ROBUST, STANDARD, chapter1_zoo, load_models, model_names
from .claims import Measurement, claim, margins_above_zero
from .data import first_per_class, load_dataset
from .errors import UnknownNameError
from .metrics import (alignment, alignment_of, deletion_insertion, gini, mean_ci, randomize_top_layers,
                      spearman)
from .paths import results_path
from .profiles import Profile, get_profile
from .saliency import Gradient, GradientSHAP, IntegratedGradients, Method, SmoothGrad, predicted
from .train import save_atomic

BOYCHEV = "Boychev 2023, Interpretable Computer Vision Models through Adversarial Training (arXiv 2307.02500)"
ETMANN = ("Etmann et al. 2019, On the Connection Between Adversarial Robustness and Saliency Map "
          "Interpretability (ICML)")
PETSIUK = "Petsiuk, Das & Saenko 2018, RISE: Randomized Input Sampling for Explanation of Black-box Models (BMVC)"

#: The methods of the quantitative part, in display order, with their labels.
METHODS = {
    "gradient": "gradient",
    "smoothgrad": "SmoothGrad",
    "ig-zero": "IG, zero baseline",
    "ig-uniform": "IG, 10 uniform baselines",
    "shap": "SHAP (GradientExplainer)",
}
#: Gradient and SmoothGrad are ranked (and drawn) by magnitude, as Simonyan et al. and Smilkov et al. show
#: them; IG and SHAP by their signed attribution, the pixel's contribution to the class score.
RANK_BY_MAGNITUDE = ("gradient", "smoothgrad")
SMOOTHGRAD_NOISE = 0.15     # σ in input units (images in [0, 1]); Smilkov et al. suggest 10–20 % of the range
SMOOTHGRAD_SAMPLES = 25
SHAP_SAMPLES = 50
SHAP_BACKGROUND = 200       # training images
N_BASELINES = 10            # uniform baselines of IG (Boychev 2023)
RANDOMIZED_LAYERS = 2       # top layers re-initialised in the sanity check (the two fully connected layers)
DELETION_STEPS = 28         # 28 pixels per step on 28×28 images
_VERSION = 1                # bump when a measurement changes, so cached results are recomputed


def test_data(profile):
    """The profile's MNIST dataset (the same split as chapter 1)."""
    prof = get_profile(profile)
    return load_dataset(prof.mnist, prof.n_train, prof.n_test)


def grid_images(profile, per_class: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``per_class`` test images of every class, ordered by class: (x, y)."""
    ds = test_data(profile)
    idx = first_per_class(ds.y_test, per_class, ds.num_classes)
    return ds.x_test[idx], ds.y_test[idx]


def background(profile) -> torch.Tensor:
    """SHAP's background set: ``SHAP_BACKGROUND`` training images drawn with a fixed seed."""
    ds = test_data(profile)
    g = torch.Generator().manual_seed(0)
    return ds.x_train[torch.randperm(len(ds.x_train), generator=g)[:SHAP_BACKGROUND]]


def make_method(name: str, model, profile, grid: bool = False) -> Method:
    """The chapter's configuration of method ``name`` for ``model``. IG with uniform baselines uses the
    profile's ``ig_steps_grid`` steps in the drawn grids and ``ig_steps_metrics`` in the metrics."""
    prof = get_profile(profile)
    if name == "gradient":
        return Gradient(model)
    if name == "smoothgrad":
        return SmoothGrad(model, noise=SMOOTHGRAD_NOISE, n_samples=SMOOTHGRAD_SAMPLES)
    if name == "ig-zero":
        return IntegratedGradients(model, "zero", steps=50)
    if name == "ig-uniform":
        steps = prof.saliency.ig_steps_grid if grid else prof.saliency.ig_steps_metrics
        return IntegratedGradients(model, "uniform", n_baselines=N_BASELINES, steps=steps)
    if name == "shap":
        return GradientSHAP(model, background(prof), n_samples=SHAP_SAMPLES)
    raise UnknownNameError(f"Unknown saliency method {name!r}. Valid names: {', '.join(METHODS)}.")


def grid_maps(profile, models: dict, method: str, x: torch.Tensor, progress: bool = True) -> dict:
    """Maps of ``method`` for images ``x`` from every model (for the predicted class), by model name."""
    from tqdm import tqdm
    out = {}
    for name, model in tqdm(models.items(), desc=f"{method} maps", disable=not progress, leave=False):
        out[name] = make_method(method, model, profile, grid=True).attribute(x)
    return out


def completeness(profile, models: dict, x: torch.Tensor) -> "pd.DataFrame":  # noqa: F821
    """Mean |Σ attribution − (f(x) − f(baseline))| (logit units) of both IG variants on ``x``, at the grid's
    step count; a DataFrame indexed by model."""
    import pandas as pd
    rows = []
    for name, model in models.items():
        row = {"model": name}
        for method in ("ig-zero", "ig-uniform"):
            ig = make_method(method, model, profile, grid=True)
            row[f"{METHODS[method]} ({ig.steps} steps)"] = float(ig.completeness_error(x).mean())
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


# ---------------------------------------------------------------------------------------------------
# The quantitative measurements, cached per profile and zoo.

def _cache_path(prof: Profile):
    specs = chapter1_zoo(prof)
    settings = {"version": _VERSION, "profile": prof.name, "sizes": vars(prof.saliency),
                "models": {n: specs[n].key() for n in model_names(prof)},
                "settings": [SMOOTHGRAD_NOISE, SMOOTHGRAD_SAMPLES, SHAP_SAMPLES, SHAP_BACKGROUND, N_BASELINES,
                             RANDOMIZED_LAYERS, DELETION_STEPS]}
    return results_path("chapter3", prof.name, settings, ".pt")


def measure(profile, progress: bool = True) -> dict[str, torch.Tensor]:
    """Every per-image measurement of the chapter, keyed ``"model|method|metric"`` (method ``-`` for the
    model's own alignment, ``random`` for the random-map baseline). Computed on the first
    ``profile.saliency.n`` test images, the randomisation check on the first ``sanity_n`` of them; cached."""
    prof = get_profile(profile)
    path = _cache_path(prof)
    if path.exists():
        return torch.load(path, weights_only=True)
    from tqdm import tqdm

    models = load_models(prof, progress=progress)
    ds = test_data(prof)
    n, k = prof.saliency.n, prof.saliency.sanity_n
    x = ds.x_test[:n].to(zoo.device())
    out: dict[str, torch.Tensor] = {}
    bar = tqdm(total=len(models) * (len(METHODS) + 1), desc="saliency metrics", disable=not progress)
    for name, model in models.items():
        torch.manual_seed(0)
        pred = predicted(model, x)
        out[f"{name}|-|alignment"] = alignment(model, x)
        shuffled = randomize_top_layers(model, RANDOMIZED_LAYERS)
        for method in METHODS:
            bar.set_postfix_str(f"{name} {method}")
            meth = make_method(method, model, prof)
            a = meth.attribute(x)
            rank = a.abs() if method in RANK_BY_MAGNITUDE else a
            out[f"{name}|{method}|deletion"], out[f"{name}|{method}|insertion"] = deletion_insertion(
                model, x, rank, steps=DELETION_STEPS)
            out[f"{name}|{method}|gini"] = gini(a)
            out[f"{name}|{method}|map alignment"] = alignment_of(x, a)
            if isinstance(meth, IntegratedGradients):
                out[f"{name}|{method}|completeness error"] = meth.last_delta
            # SHAP explains the predicted class only, so the randomised model's own prediction; the others
            # explain the original model's predicted class.
            target = None if method == "shap" else pred[:k]
            a_rand = make_method(method, shuffled, prof).attribute(x[:k], target)
            out[f"{name}|{method}|randomisation rank corr."] = spearman(a[:k].abs(), a_rand.abs())
            bar.update()
        g = torch.Generator().manual_seed(1)
        noise = torch.rand(x.shape, generator=g).to(x.device)
        out[f"{name}|random|deletion"], out[f"{name}|random|insertion"] = deletion_insertion(
            model, x, noise, steps=DELETION_STEPS)
        out[f"{name}|random|gini"] = gini(noise)
        out[f"{name}|random|map alignment"] = alignment_of(x, noise)
        bar.update()
    bar.close()
    out = {key: v.detach().cpu().float() for key, v in out.items()}
    save_atomic(out, path)
    return out


def _values(results: dict, model: str, method: str, metric: str) -> Optional[torch.Tensor]:
    return results.get(f"{model}|{method}|{metric}")


def alignment_table(profile, results: dict) -> "pd.DataFrame":  # noqa: F821
    """Etmann alignment per model: mean, 95 % interval, training objective and ε."""
    import pandas as pd
    specs = chapter1_zoo(get_profile(profile))
    rows = []
    for name in model_names(profile):
        mean, low, high = mean_ci(_values(results, name, "-", "alignment"))
        rows.append({"model": name, "objective": specs[name].objective,
                     "train ε": specs[name].param_dict.get("eps", 0.0),
                     "alignment": mean, "ci95 low": low, "ci95 high": high})
    return pd.DataFrame(rows).set_index("model")


METRICS = ("deletion", "insertion", "gini", "map alignment", "randomisation rank corr.", "completeness error")


def summary(profile, results: dict) -> "pd.DataFrame":  # noqa: F821
    """Mean and 95 % interval of every metric, one row per (model, method), the random map included.
    Columns ``<metric>`` (mean) and ``<metric> ±`` (half-width of the interval)."""
    import pandas as pd
    rows = []
    for name in model_names(profile):
        for method in (*METHODS, "random"):
            row = {"model": name, "method": METHODS.get(method, "random map")}
            for metric in METRICS:
                v = _values(results, name, method, metric)
                if v is not None:
                    mean, low, high = mean_ci(v)
                    row[metric], row[f"{metric} ±"] = mean, (high - low) / 2
            rows.append(row)
    return pd.DataFrame(rows).set_index(["model", "method"])


def display_summary(table) -> "pd.DataFrame":  # noqa: F821
    """:func:`summary` with each mean and interval as one ``mean ± half-width`` string, for the book."""
    from .book import mean_pm
    return mean_pm(table, METRICS)


def paired_margin(results: dict, model: str, metric: str = "alignment", method: str = "-",
                  reference: str = STANDARD) -> tuple[float, float, float]:
    """Mean per-image difference ``model − reference`` of one metric on the same images, with its 95 %
    interval."""
    return mean_ci(_values(results, model, method, metric) - _values(results, reference, method, metric))


# ---------------------------------------------------------------------------------------------------
# Claims

@claim("ch3.robust-alignment-exceeds-standard", chapter="3",
       statement="Robust models' input gradients are better aligned with the image than the standard model's "
                 "(Etmann alignment).",
       citation=f"{ETMANN}; {BOYCHEV}")
def _claim_alignment(profile: Profile) -> Measurement:
    res = measure(profile)
    measured, failed = margins_above_zero({n: paired_margin(res, n) for n in ROBUST})
    return Measurement(measured, f"paired margin alignment(robust) − alignment({STANDARD}) with 95 % interval "
                       f"over {profile.saliency.n} test images; lower bound > 0 for each of {', '.join(ROBUST)}",
                       not failed, f"not reproduced for: {', '.join(failed)}" if failed else "")


@claim("ch3.deletion-below-random", chapter="3",
       statement="For every method and model, deleting pixels in the map's order destroys the prediction faster "
                 "than deleting them in random order (lower deletion AUC).",
       citation=PETSIUK)
def _claim_deletion(profile: Profile) -> Measurement:
    res = measure(profile)
    worst, failed = {}, []
    for name in model_names(profile):
        rand = float(_values(res, name, "random", "deletion").mean())
        gaps = {m: float(_values(res, name, m, "deletion").mean()) - rand for m in METHODS}
        worst[name.removeprefix("mnist-")] = max(gaps.values())
        failed += [f"{name.removeprefix('mnist-')}/{m}" for m, gap in gaps.items() if gap >= 0]
    return Measurement(worst, "largest mean deletion AUC(map) − AUC(random map) over the five methods, per model; "
                       "every difference < 0", not failed,
                       f"real map not below random for: {', '.join(failed)}" if failed else "")


@claim("ch3.robust-maps-more-concentrated", chapter="3",
       statement="Exploratory: robust models' IG and SHAP maps are more concentrated (higher Gini coefficient) "
                 "than the standard model's.",
       citation=BOYCHEV)
def _claim_gini(profile: Profile) -> Measurement:
    res = measure(profile)
    measured, failed = {}, []
    for method in ("ig-zero", "ig-uniform", "shap"):
        std = float(_values(res, STANDARD, method, "gini").mean())
        measured[f"standard/{method}"] = std
        for name in ROBUST:
            g = float(_values(res, name, method, "gini").mean())
            measured[f"{name.removeprefix('mnist-')}/{method}"] = g
            if not g > std:
                failed.append(f"{name.removeprefix('mnist-')}/{method}")
    return Measurement(measured, f"mean Gini of |map|, robust > {STANDARD}, for each robust model and each of IG "
                       "(zero), IG (uniform) and SHAP", not failed,
                       f"not higher for: {', '.join(failed)}" if failed else "")


__all__ = ["grid_images", "grid_maps", "completeness", "measure", "alignment_table", "summary",
           "display_summary", "paired_margin", "make_method", "METHODS"]
