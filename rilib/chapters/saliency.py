"""Chapter 3, "Saliency maps of standard and robust models" (``notebooks/03_saliency.md``), and how to measure
recognisability.

Boychev (2023) compares attribution maps of standard and robust models; Tsipras et al. (2019) and Etmann et al.
(2019) showed that robust models' input gradients look like the object. The chapter draws the maps of
:mod:`rilib.lenses.saliency` for the catalogue's MNIST models and measures them with :mod:`rilib.lenses.metrics`:

- Etmann et al.'s alignment |⟨x, ∇ₓΨ(x)⟩| / (‖x‖ ‖∇ₓΨ(x)‖) of every model (Ψ: the predicted class's logit);
- per model and method: deletion and insertion AUC (Petsiuk et al. 2018, RISE) against a random map, the Gini
  coefficient of |map|, the map's own alignment with the image, the completeness error of Integrated Gradients,
  and the model-randomisation check of Adebayo et al. (2018).

:func:`measure` computes every per-image value once per profile and zoo and caches it (atomically) under
``RILIB_CACHE/results`` as a :class:`SaliencyResults`; the tables, figures and claims all read it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import paths
from ..book import plotting
from ..book.dashboard import panel
from ..book.exercises import exercise, prose_exercise
from ..book.ledger import Measurement, claim, margins_claim
from ..data import first_per_class, load_dataset
from ..errors import UnknownNameError
from ..lenses.metrics import alignment, alignment_of, deletion_insertion, gini, randomize_top_layers, spearman
from ..lenses.saliency import Gradient, GradientSHAP, IntegratedGradients, Method, SmoothGrad, predicted
from ..lenses.stats import Interval, mean_ci, paired_ci
from ..models import to_model
from ..profiles import Profile, get_profile
from ..registry import Registry
from .catalog import ROBUST, STANDARD, catalog_zoo, describe, load_models, model_names, protocol_differs



@dataclass(frozen=True)
class SaliencySizes:
    """Sizes of the saliency chapter."""

    n: int = 500                  # test images for the quantitative metrics
    sanity_n: int = 100           # of those, images for the model-randomisation check
    ig_steps_grid: int = 50       # Integrated Gradients steps in the drawn grids (Boychev 2023: 50)
    ig_steps_metrics: int = 10    # IG steps per uniform baseline in the metrics (10 baselines each)


#: The chapter's sizes under each profile.
SIZES: Registry[SaliencySizes] = Registry("profile of the saliency chapter")
SIZES.add("smoke", SaliencySizes(n=20, sanity_n=10, ig_steps_grid=5, ig_steps_metrics=5))
SIZES.add("cpu", SaliencySizes())
SIZES.add("full", SaliencySizes())  # the cpu sizes, on the full training set
SIZES.add("paper", SaliencySizes(n=1000, sanity_n=500, ig_steps_grid=50, ig_steps_metrics=50))


def sizes(profile) -> SaliencySizes:
    """The chapter's sizes under ``profile`` (an unknown profile name lists the ones with sizes)."""
    return SIZES[get_profile(profile).name]


#: The methods of the quantitative part, in display order, with their labels.
METHODS = {
    "gradient": "gradient",
    "smoothgrad": "SmoothGrad",
    "ig-zero": "IG, zero baseline",
    "ig-uniform": "IG, 10 uniform baselines",
    "shap": "SHAP (GradientExplainer)",
}
#: Per-image metrics of every (model, method), in display order.
METRICS = ("deletion", "insertion", "gini", "map alignment", "randomisation rank corr.", "completeness error")
#: Gradient and SmoothGrad are ranked (and drawn) by magnitude, as Simonyan et al. and Smilkov et al. show
#: them; IG and SHAP by their signed attribution, the pixel's contribution to the class score.
RANK_BY_MAGNITUDE = ("gradient", "smoothgrad")
SMOOTHGRAD_NOISE = 0.15     # σ in input units (images in [0, 1]); Smilkov et al. suggest 10–20 % of the range
SMOOTHGRAD_SAMPLES = 25
SHAP_SAMPLES = 50
SHAP_BACKGROUND = 200       # training images
N_BASELINES = 10            # uniform baselines of IG (Boychev 2023)
IG_ZERO_STEPS = 50          # steps of IG from the black image
RANDOMIZED_LAYERS = 2       # top layers re-initialised in the sanity check (the two fully connected layers)
DELETION_STEPS = 28         # 28 pixels per step on 28×28 images
RANDOM_MAP = "random"       # the method name of the random-map baseline in the results
_VERSION = 4                # bump when a measurement changes, so cached results are recomputed


def test_data(profile):
    """The profile's MNIST dataset (the catalogue's split)."""
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
    size = sizes(profile)
    if name == "gradient":
        return Gradient(model)
    if name == "smoothgrad":
        return SmoothGrad(model, noise=SMOOTHGRAD_NOISE, n_samples=SMOOTHGRAD_SAMPLES)
    if name == "ig-zero":
        return IntegratedGradients(model, "zero", steps=IG_ZERO_STEPS)
    if name == "ig-uniform":
        steps = size.ig_steps_grid if grid else size.ig_steps_metrics
        return IntegratedGradients(model, "uniform", n_baselines=N_BASELINES, steps=steps)
    if name == "shap":
        return GradientSHAP(model, background(profile), n_samples=SHAP_SAMPLES)
    raise UnknownNameError(f"Unknown saliency method {name!r}. Valid names: {', '.join(METHODS)}.")


def grid_maps(profile, models: dict, method: str, x: torch.Tensor, progress: bool = True) -> dict:
    """Maps of ``method`` for images ``x`` from every model (for the predicted class), by model name, on the CPU."""
    from tqdm import tqdm
    out = {}
    for name, model in tqdm(models.items(), desc=f"{method} maps", disable=not progress, leave=False):
        out[name] = make_method(method, model, profile, grid=True).attribute(x).cpu()
    return out


def grid_figures(profile, models: dict, x: torch.Tensor, y: torch.Tensor, progress: bool = True) -> dict:
    """One grid per drawing of the maps (rows: images, columns: models), keyed by its figure name. The gradient
    is drawn twice, signed and as magnitude, from one computation."""
    size = sizes(profile)
    drawings = {
        "fig_grad_signed": ("gradient", True, "Gradient ∇ₓf_c (signed)"),
        "fig_grad_abs": ("gradient", False, "Gradient magnitude |∇ₓf_c|"),
        "fig_smoothgrad": ("smoothgrad", True, f"SmoothGrad (σ = {SMOOTHGRAD_NOISE}, {SMOOTHGRAD_SAMPLES} samples)"),
        "fig_ig_zero": ("ig-zero", True, f"Integrated Gradients, zero baseline, {IG_ZERO_STEPS} steps"),
        "fig_ig_uniform": ("ig-uniform", True, f"Integrated Gradients, mean over {N_BASELINES} uniform baselines × "
                                               f"{size.ig_steps_grid} steps"),
        "fig_shap": ("shap", True, f"SHAP GradientExplainer ({SHAP_SAMPLES} samples, {SHAP_BACKGROUND} background "
                                   f"images)"),
    }
    maps = {method: grid_maps(profile, models, method, x, progress)
            for method in dict.fromkeys(m for m, _, _ in drawings.values())}
    return {key: plotting.saliency_grid(x, maps[method], signed=signed, title=title, row_labels=y.tolist())
            for key, (method, signed, title) in drawings.items()}


def completeness(profile, models: dict, x: torch.Tensor):
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
    return (pd.DataFrame(rows).set_index("model").style.format(precision=4)
            .set_caption("Completeness error of Integrated Gradients (logit units), mean over the grid's images."))


# ---------------------------------------------------------------------------------------------------
# The quantitative measurements, cached per profile and zoo.

@dataclass
class SaliencyResults:
    """Every per-image measurement of the chapter, on the first ``n`` test images.

    ``alignment[model]``: Etmann's alignment of the model's own gradient, (n,). ``maps[model][method][metric]``:
    one value per image, (n,), for the metrics of :data:`METRICS` that apply to the method (the randomisation
    check on the first ``sanity_n`` images only; the completeness error for IG only). Method
    :data:`RANDOM_MAP` is the random-map baseline.
    """

    alignment: dict
    maps: dict

    def values(self, model: str, method: str, metric: str) -> torch.Tensor | None:
        """The per-image values of one metric (None where the metric does not apply to the method)."""
        return self.maps[model][method].get(metric)

    def frame(self):
        """The results as one tidy table: a row per (model, method, image), a column per metric."""
        import pandas as pd
        parts = []
        for model, methods in self.maps.items():
            for method, metrics in methods.items():
                n = max(len(v) for v in metrics.values())
                part = pd.DataFrame({"model": model, "method": method, "image": range(n)})
                for metric, v in metrics.items():
                    part[metric] = pd.Series(v.double().numpy())
                parts.append(part)
        return pd.concat(parts, ignore_index=True)


def _cache_path(prof: Profile):
    specs = catalog_zoo(prof)
    settings = {"version": _VERSION, "profile": prof.name, "sizes": vars(sizes(prof)),
                "models": {n: specs[n].key() for n in model_names(prof)},
                "settings": [SMOOTHGRAD_NOISE, SMOOTHGRAD_SAMPLES, SHAP_SAMPLES, SHAP_BACKGROUND, N_BASELINES,
                             RANDOMIZED_LAYERS, DELETION_STEPS, IG_ZERO_STEPS]}
    return paths.results_path("saliency", prof.name, settings, ".pt")


def measure(profile, progress: bool = True) -> SaliencyResults:
    """Every per-image measurement of the chapter (see :class:`SaliencyResults`), computed on the first
    ``sizes(profile).n`` test images, the randomisation check on the first ``sanity_n`` of them; cached."""
    prof = get_profile(profile)
    return paths.cached(_cache_path(prof), lambda: _measure(prof, progress),
                        load=lambda p: SaliencyResults(**paths.torch_load(p)),
                        dump=lambda r: paths.torch_bytes({"alignment": r.alignment, "maps": r.maps}),
                        name="saliency.measure")


def _measure(prof: Profile, progress: bool) -> SaliencyResults:
    from tqdm import tqdm

    models = load_models(prof, progress=progress)
    size = sizes(prof)
    x = test_data(prof).x_test[:size.n]
    k = size.sanity_n
    align, maps = {}, {}
    bar = tqdm(total=len(models) * (len(METHODS) + 1), desc="saliency metrics", disable=not progress)
    for name, model in models.items():
        xm = to_model(x, model)
        pred = predicted(model, xm)
        align[name] = alignment(model, xm)
        shuffled = randomize_top_layers(model, RANDOMIZED_LAYERS)
        maps[name] = {}
        for method in METHODS:
            bar.set_postfix_str(f"{name} {method}")
            meth = make_method(method, model, prof)
            a = meth.attribute(xm)
            rank = a.abs() if method in RANK_BY_MAGNITUDE else a
            row = dict(zip(("deletion", "insertion"), deletion_insertion(model, xm, rank, steps=DELETION_STEPS)))
            row["gini"] = gini(a)
            row["map alignment"] = alignment_of(xm, a)
            if isinstance(meth, IntegratedGradients):
                row["completeness error"] = meth.last_delta
            # SHAP explains the predicted class only, so the randomised model's own prediction; the others
            # explain the original model's predicted class.
            target = None if method == "shap" else pred[:k]
            a_rand = make_method(method, shuffled, prof).attribute(xm[:k], target)
            row["randomisation rank corr."] = spearman(a[:k].abs(), a_rand.abs())
            maps[name][method] = row
            bar.update()
        noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(1)).to(xm)
        row = dict(zip(("deletion", "insertion"), deletion_insertion(model, xm, noise, steps=DELETION_STEPS)))
        row["gini"] = gini(noise)
        row["map alignment"] = alignment_of(xm, noise)
        maps[name][RANDOM_MAP] = row
        bar.update()
    bar.close()
    cpu = lambda v: v.detach().cpu().float()  # noqa: E731
    return SaliencyResults({n: cpu(v) for n, v in align.items()},
                           {n: {m: {k_: cpu(v) for k_, v in row.items()} for m, row in methods.items()}
                            for n, methods in maps.items()})


def alignment_table(profile, results: SaliencyResults):
    """Etmann alignment per model: label, objective, training ε, mean and 95 % interval."""
    table = describe({n: catalog_zoo(get_profile(profile))[n] for n in model_names(profile)})
    ivs = {n: mean_ci(results.alignment[n]) for n in table.index}
    return table.assign(alignment=[ivs[n].mean for n in table.index], **{
        "ci95 low": [ivs[n].low for n in table.index], "ci95 high": [ivs[n].high for n in table.index]})


def alignment_figure(profile, table):
    """:func:`alignment_table` against training ε."""
    return plotting.metric_vs_eps(table, title=f"Alignment of input gradients ({sizes(profile).n} test images)")


def summary(profile, results: SaliencyResults):
    """Mean and 95 % interval of every metric, one row per (model, method), the random map included.
    Columns ``<metric>`` (mean) and ``<metric> ±`` (half-width of the interval)."""
    import pandas as pd
    rows = []
    for name in model_names(profile):
        for method in (*METHODS, RANDOM_MAP):
            row = {"model": name, "method": METHODS.get(method, "random map")}
            for metric in METRICS:
                v = results.values(name, method, metric)
                if v is not None:
                    iv = mean_ci(v)
                    row[metric], row[f"{metric} ±"] = iv.mean, iv.half_width
            rows.append(row)
    return pd.DataFrame(rows).set_index(["model", "method"])


def display_summary(profile, table):
    """:func:`summary` with each mean and interval as one ``mean ± half-width`` string, captioned, for the book."""
    from ..book.display import mean_pm
    size = sizes(profile)
    return mean_pm(table, METRICS).style.set_caption(
        f"Mean ± half-width of the 95 % interval over {size.n} test images (randomisation: {size.sanity_n}). Map "
        f"alignment: the alignment of each map with the image (for the gradient, Etmann's alignment). Completeness "
        f"error in logit units.")


def deletion_figure(table):
    """Heatmaps of the mean deletion and insertion AUC of every model and method, from :func:`summary`."""
    return plotting.metric_heatmaps(table, ("deletion", "insertion"),
                                    ("deletion AUC (lower: more faithful)", "insertion AUC (higher: more faithful)"))


def paired_margin(results: SaliencyResults, model: str, reference: str = STANDARD) -> Interval:
    """Mean per-image difference of Etmann's alignment, ``model − reference``, on the same images, with its 95 %
    interval."""
    return paired_ci(results.alignment[model], results.alignment[reference])


def alignment_margins(results: SaliencyResults, models=ROBUST) -> dict[str, Interval]:
    """:func:`paired_margin` of each robust model over the standard model."""
    return {n: paired_margin(results, n) for n in models}


# ---------------------------------------------------------------------------------------------------
# Claims

@claim("ch3.robust-alignment-exceeds-standard", chapter="3",
       statement="Robust models' input gradients are better aligned with the image than the standard model's "
                 "(Etmann alignment).",
       papers=("etmann2019", "boychev2023"), differs=protocol_differs)
def _claim_alignment(profile: Profile) -> Measurement:
    return margins_claim(alignment_margins(measure(profile)),
                         f"paired margin alignment(robust) − alignment({STANDARD}) with 95 % interval over "
                         f"{sizes(profile).n} test images; lower bound > 0 for each of {', '.join(ROBUST)}")


@claim("ch3.deletion-below-random", chapter="3",
       statement="For every method and model, deleting pixels in the map's order destroys the prediction faster "
                 "than deleting them in random order (lower deletion AUC).",
       papers="petsiuk2018", differs=protocol_differs)
def _claim_deletion(profile: Profile) -> Measurement:
    res = measure(profile)
    worst, failed = {}, []
    for name in model_names(profile):
        label = plotting.model_label(name)
        rand = float(res.values(name, RANDOM_MAP, "deletion").mean())
        gaps = {m: float(res.values(name, m, "deletion").mean()) - rand for m in METHODS}
        worst[label] = max(gaps.values())
        failed += [f"{label}/{m}" for m, gap in gaps.items() if gap >= 0]
    return Measurement(worst, "largest mean deletion AUC(map) − AUC(random map) over the five methods, per model; "
                       "every difference < 0", not failed,
                       f"real map not below random for: {', '.join(failed)}" if failed else "")


@claim("ch3.robust-maps-more-concentrated", chapter="3",
       statement="Exploratory: robust models' IG and SHAP maps are more concentrated (higher Gini coefficient) "
                 "than the standard model's.",
       papers="boychev2023", differs=protocol_differs)
def _claim_gini(profile: Profile) -> Measurement:
    res = measure(profile)
    measured, failed = {}, []
    for method in ("ig-zero", "ig-uniform", "shap"):
        std = float(res.values(STANDARD, method, "gini").mean())
        measured[f"{plotting.model_label(STANDARD)}/{method}"] = std
        for name in ROBUST:
            g = float(res.values(name, method, "gini").mean())
            measured[f"{plotting.model_label(name)}/{method}"] = g
            if not g > std:
                failed.append(f"{plotting.model_label(name)}/{method}")
    return Measurement(measured, f"mean Gini of |map|, robust > {STANDARD}, for each robust model and each of IG "
                       "(zero), IG (uniform) and SHAP", not failed,
                       f"not higher for: {', '.join(failed)}" if failed else "")


__all__ = ["SaliencySizes", "SIZES", "sizes", "METHODS", "METRICS", "grid_images", "grid_maps", "grid_figures",
           "completeness", "make_method", "SaliencyResults", "measure", "alignment_table", "alignment_figure",
           "summary", "display_summary", "deletion_figure", "paired_margin", "alignment_margins"]


# ---------------------------------------------------------------------------------------------------
# The synthesis page's ε dashboard

def _per_method(profile: Profile, metric: str, methods) -> dict:
    res = measure(profile, progress=False)
    return {METHODS.get(method, method): {m: mean_ci(res.values(m, method, metric)) for m in res.maps}
            for method in methods}


@panel("saliency-alignment", title="Map alignment", chapter="3", ylabel="|⟨x, map⟩| / (‖x‖‖map‖)")
def _panel_alignment(profile: Profile) -> dict:
    """Alignment of the attribution maps with the image, mean and 95 % interval over the test images."""
    return _per_method(profile, "map alignment", ("gradient", "ig-zero", "shap"))


@panel("gini", title="Concentration of the maps", chapter="3", ylabel="Gini coefficient of |map|")
def _panel_gini(profile: Profile) -> dict:
    """Gini coefficient of the absolute maps, mean and 95 % interval over the test images."""
    return _per_method(profile, "gini", ("ig-zero", "ig-uniform", "shap"))


@panel("deletion", title="Deletion", chapter="3", ylabel="deletion AUC (lower is better)")
def _panel_deletion(profile: Profile) -> dict:
    """Deletion AUC (Petsiuk et al. 2018) of three methods and of the random map, mean and 95 % interval."""
    return _per_method(profile, "deletion", ("gradient", "ig-zero", "shap", RANDOM_MAP))


# ---------------------------------------------------------------------------------------------------
# Exercises (the classroom edition: rilib.book.exercises)

#: The models, step counts and number of images (the first test images of the profile) of ``ex-ch3-steps``.
STEPS_MODELS, STEPS, STEPS_N = (STANDARD, "mnist-pgd-0.3"), (5, 10, 20, 50), 50
#: The models and number of images of ``ex-ch3-offset``, and its three versions of the images.
OFFSET_MODELS, OFFSET_N = (STANDARD, "mnist-pgd-0.3", "mnist-trades"), 100
OFFSET_VERSIONS = {"original": lambda x: x, "offset": lambda x: (x + 0.5).clamp(0, 1), "inverted": lambda x: 1 - x}


def _first_test_images(profile, n: int) -> torch.Tensor:
    """The first ``n`` test images of ``profile``, the images of the chapter's exercises."""
    return test_data(profile).x_test[:n]


@exercise("ex-ch3-steps", chapter="3", title="How many steps Integrated Gradients needs", difficulty="medium",
          minutes=15, rtol=0.02, atol=1e-4,
          expected=f"a dict {{model: {{steps: error}}}} for {' and '.join(STEPS_MODELS)} and "
                   f"{', '.join(map(str, STEPS))} steps: the mean over the first {STEPS_N} test images of the "
                   f"completeness error of rilib.lenses.IntegratedGradients from the black image (predicted class), "
                   f"in logit units")
def _ex_steps(prof: Profile) -> dict:
    x = _first_test_images(prof, STEPS_N)
    models = load_models(prof, STEPS_MODELS, progress=False)
    return {n: {k: float(IntegratedGradients(models[n], "zero", steps=k).completeness_error(x).mean()) for k in STEPS}
            for n in STEPS_MODELS}


@exercise("ex-ch3-offset", chapter="3", title="Alignment and where zero is", difficulty="easy", minutes=10,
          rtol=0.03, atol=0.002,
          expected=f"a dict {{model: {{'original': …, 'offset': …, 'inverted': …}}}} for "
                   f"{', '.join(OFFSET_MODELS)}: the mean Etmann alignment (in [0, 1], predicted class of each "
                   f"version) over the first {OFFSET_N} test images, of x, of x + 0.5 clipped to [0, 1], and of "
                   f"1 − x")
def _ex_offset(prof: Profile) -> dict:
    x = _first_test_images(prof, OFFSET_N)
    models = load_models(prof, OFFSET_MODELS, progress=False)
    return {n: {v: float(alignment(models[n], f(x)).mean()) for v, f in OFFSET_VERSIONS.items()} for n in OFFSET_MODELS}


prose_exercise("ex-ch3-noise", chapter="3", title="SmoothGrad's noise level", difficulty="medium", minutes=20)
prose_exercise("ex-ch3-fgsm", chapter="3", title="Alignment of a catastrophically overfitted model",
               difficulty="easy", minutes=10)
