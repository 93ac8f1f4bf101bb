"""Chapter 3, "Saliency maps of standard and robust models" (``notebooks/03_saliency.md``), and how to measure
recognisability.

Boychev (2023) compares attribution maps of standard and robust models; Tsipras et al. (2019) and Etmann et al.
(2019) showed that robust models' input gradients look like the object. The chapter draws the maps of
:mod:`rilib.lenses.saliency` for the catalogue's MNIST models, the L∞ ones and the L2 ones (:data:`L2_MODELS`), and
measures them with :mod:`rilib.lenses.metrics`:

- Etmann et al.'s alignment in the paper's units, |⟨x, ∇ₓΨ(x)⟩| / ‖∇ₓΨ(x)‖, for Ψ the true class's logit and the
  margin, of every model, of every training seed of the seeded arms, and along chapter 5's gradient-penalty sweep
  (Etmann et al. test alignment on models trained with a gradient-norm penalty); and the book's scale-free variant
  (divided by ‖x‖ too);
- per model and method (IG on the softmax probability as Boychev does, and on the logit): deletion and insertion
  AUC (Petsiuk et al. 2018) against three baseline maps (random, the image itself, Sobel edges), the Gini
  coefficient of |map|, the share of |map| on the strokes, the map's alignment with the image, the completeness
  error of IG, the rank correlation after re-initialising the top two layers, and the cascading randomisation of
  Adebayo et al. (2018) for the gradient.

:func:`measure` computes every per-image value once per profile and zoo and caches it (atomically) under
``RILIB_CACHE/results`` as a :class:`SaliencyResults`; the tables, figures and claims all read it. On a profile
with CIFAR-10 (``paper``), ``measure(profile, family="cifar10")`` measures the catalogue's CIFAR-10 models and
Boychev's L2 ε 0.5 model the same way, less what only a digit has (:func:`cifar10_section`); the claims stay on MNIST.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

from .. import paths, zoo
from ..book import plotting
from ..book.dashboard import over_seeds, panel
from ..book.exercises import exercise, prose_exercise
from ..book.ledger import Measurement, claim, paired_verdict, seed_verdict
from ..data import first_per_class
from ..errors import UnknownNameError
from ..lenses.metrics import (PSI, alignment, alignment_of, cascade_models, deletion_insertion, etmann_alignment,
                              gini, map_ssim, randomize_top_layers, sobel_map, spearman, stroke_share)
from ..lenses.saliency import Gradient, GradientSHAP, IntegratedGradients, Method, SmoothGrad, predicted
from ..lenses.stats import SIGNED_SHARE, Interval, mean_ci, paired_ci, seed_ci
from ..models import to_model
from ..profiles import Profile, get_profile
from ..registry import Registry
from ..zoo import Spec
from .catalog import (EVAL_EPS, EVAL_EPS_L2, L2_MODELS, ROBUST, STANDARD, all_specs, describe, family_dataset,
                      has_family, l2_names, load_models, model_names, no_cifar10, protocol_differs, seed_name,
                      seed_names)



@dataclass(frozen=True)
class SaliencySizes:
    """Sizes of the saliency chapter."""

    n: int = 500                  # test images for the quantitative metrics
    sanity_n: int = 100           # of those, images for the model-randomisation checks
    ig_steps_grid: int = 50       # Integrated Gradients steps in the drawn grids (Boychev 2023: 50)
    ig_steps_metrics: int = 10    # IG steps per uniform baseline in the metrics (10 baselines each)
    seed_n: int = 100             # of the n images, those whose IG and SHAP maps are measured on every seed model


#: The chapter's sizes under each profile.
SIZES: Registry[SaliencySizes] = Registry("profile of the saliency chapter")
SIZES.add("smoke", SaliencySizes(n=20, sanity_n=10, ig_steps_grid=5, ig_steps_metrics=5, seed_n=10))
SIZES.add("cpu", SaliencySizes())
SIZES.add("full", SaliencySizes())  # the cpu sizes, on the full training set
SIZES.add("paper", SaliencySizes(n=1000, sanity_n=500, ig_steps_grid=50, ig_steps_metrics=50, seed_n=1000))


def sizes(profile) -> SaliencySizes:
    """The chapter's sizes under ``profile`` (an unknown profile name lists the ones with sizes)."""
    return SIZES[get_profile(profile).name]


#: The methods of the quantitative part, in display order, with their labels. ``ig-uniform`` is Boychev's
#: (2023) IG: the softmax probability, averaged over uniform baselines; ``ig-zero`` IG of the logit from the black
#: image, the labelled second variant.
METHODS = {
    "gradient": "gradient",
    "smoothgrad": "SmoothGrad",
    "ig-zero": "IG, zero baseline (logit)",
    "ig-uniform": "IG, 10 uniform baselines (probability)",
    "shap": "SHAP (GradientExplainer)",
}
#: Model-free baseline maps of deletion and insertion, by method name in the results, with their labels.
BASELINES = {"random": "random map", "ink": "ink order (the image)", "sobel": "Sobel edges"}
RANDOM_MAP, INK_MAP, SOBEL_MAP = BASELINES
#: Per-image metrics of every (model, method), in display order.
METRICS = ("deletion", "insertion", "gini", "stroke share", "map alignment", "randomisation rank corr.",
           "completeness error")
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
STROKE_INK = 0.5            # a pixel is on the stroke when its ink (image in [0, 1]) exceeds this
#: The arms trained at several seeds (``catalog.SEEDED``) that this chapter's claims compare.
SEED_ARMS = (STANDARD, "mnist-pgd-0.1", "mnist-pgd-0.3", "mnist-trades")
ROBUST_SEEDED = SEED_ARMS[1:]
#: The methods whose concentration Boychev's claim is about (the seed models' Gini is measured for these).
GINI_METHODS = ("ig-zero", "ig-uniform", "shap")
#: Chapter 5's input-gradient-penalty arms (zoo group ``lipschitz``), loaded by zoo name: an L1 penalty
#: λ‖∇ₓ CE‖₁ at three λ (the λ sweep) and an L2 penalty λ‖∇ₓ CE‖₂² (Ross & Doshi-Velez's double backpropagation).
GP_SWEEP = ("mnist-gp-l1-0.03", "mnist-gp-l1-0.1", "mnist-gp-l1-0.3")
GP_L2 = "mnist-gp-l2"
GP_GROUP = "lipschitz"


def gp_spec(profile, name: str):
    """The spec of one of chapter 5's gradient-penalty arms, by its zoo name in the zoo group ``lipschitz``."""
    specs = zoo.zoo_specs(profile, GP_GROUP)
    if name not in specs:
        raise UnknownNameError(f"Unknown model {name!r} in zoo group {GP_GROUP!r}. Valid: {', '.join(specs)}.")
    return specs[name]
_VERSION = 7                # bump when a measurement changes, so cached results are recomputed


def chapter_models(profile, family: str = "mnist") -> list[str]:
    """The models the chapter studies: the catalogue's models of ``family`` (L∞), then its L2 PGD-AT models
    (on CIFAR-10, Boychev's L2 ε 0.5 model)."""
    return [*model_names(profile, family), *l2_names(profile, family)]


def threat_label(profile, name: str) -> str:
    """``L∞ ε 0.3`` or ``L2 ε 1.5``: the norm and ε a model was trained at (``standard`` for the standard model)."""
    spec = all_specs(profile)[name]
    eps = spec.param_dict.get("eps")
    if eps is None:
        return "standard"
    norm = "L2" if spec.param_dict.get("norm") == "l2" else "L∞"
    return f"{norm} ε {eps:g}"


def test_data(profile, family: str = "mnist"):
    """The profile's dataset of ``family`` (the catalogue's split)."""
    return family_dataset(profile, family)


def n_train(profile) -> int:
    """How many digits the chapter's MNIST models were trained on under ``profile``."""
    return len(test_data(profile).y_train)


def grid_images(profile, per_class: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``per_class`` test images of every class, ordered by class: (x, y)."""
    ds = test_data(profile)
    idx = first_per_class(ds.y_test, per_class, ds.num_classes)
    return ds.x_test[idx], ds.y_test[idx]


def background(profile, family: str = "mnist") -> torch.Tensor:
    """SHAP's background set: ``SHAP_BACKGROUND`` training images of ``family`` drawn with a fixed seed."""
    ds = test_data(profile, family)
    g = torch.Generator().manual_seed(0)
    return ds.x_train[torch.randperm(len(ds.x_train), generator=g)[:SHAP_BACKGROUND]]


def make_method(name: str, model, profile, grid: bool = False, family: str = "mnist") -> Method:
    """The chapter's configuration of method ``name`` for ``model`` (a model of ``family``: SHAP's background
    is drawn from its training images). IG with uniform baselines uses the profile's ``ig_steps_grid`` steps in
    the drawn grids and ``ig_steps_metrics`` in the metrics."""
    size = sizes(profile)
    if name == "gradient":
        return Gradient(model)
    if name == "smoothgrad":
        return SmoothGrad(model, noise=SMOOTHGRAD_NOISE, n_samples=SMOOTHGRAD_SAMPLES)
    if name == "ig-zero":
        return IntegratedGradients(model, "zero", steps=IG_ZERO_STEPS)
    if name == "ig-uniform":
        steps = size.ig_steps_grid if grid else size.ig_steps_metrics
        return IntegratedGradients(model, "uniform", n_baselines=N_BASELINES, steps=steps, output="probability")
    if name == "shap":
        return GradientSHAP(model, background(profile, family), n_samples=SHAP_SAMPLES)
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
    is drawn twice, signed and as magnitude, from one computation. IG with uniform baselines is drawn on the
    softmax probability, as Boychev (2023) does."""
    size = sizes(profile)
    drawings = {
        "fig_grad_signed": ("gradient", True, "Gradient ∇ₓf_c (signed)"),
        "fig_grad_abs": ("gradient", False, "Gradient magnitude |∇ₓf_c|"),
        "fig_smoothgrad": ("smoothgrad", True, f"SmoothGrad (σ = {SMOOTHGRAD_NOISE}, {SMOOTHGRAD_SAMPLES} samples)"),
        "fig_ig_zero": ("ig-zero", True, f"Integrated Gradients of the logit, zero baseline, {IG_ZERO_STEPS} steps"),
        "fig_ig_uniform": ("ig-uniform", True, f"Integrated Gradients of the softmax probability, mean over "
                                               f"{N_BASELINES} uniform baselines × {size.ig_steps_grid} steps"),
        "fig_shap": ("shap", True, f"SHAP GradientExplainer ({SHAP_SAMPLES} samples, {SHAP_BACKGROUND} background "
                                   f"images)"),
    }
    maps = {method: grid_maps(profile, models, method, x, progress)
            for method in dict.fromkeys(m for m, _, _ in drawings.values())}
    return {key: plotting.saliency_grid(x, maps[method], signed=signed, title=title, row_labels=y.tolist())
            for key, (method, signed, title) in drawings.items()}


def completeness(profile, models: dict, x: torch.Tensor):
    """Mean |Σ attribution − (f(x) − f(baseline))| of IG from the black image (logit units) and of Boychev's IG
    over uniform baselines (probability units) on ``x``, at the grid's step count; a DataFrame indexed by model."""
    import pandas as pd
    rows = []
    for name, model in models.items():
        row = {"model": name}
        for method, unit in (("ig-zero", "logit"), ("ig-uniform", "probability")):
            ig = make_method(method, model, profile, grid=True)
            row[f"{METHODS[method]}, {ig.steps} steps ({unit} units)"] = float(ig.completeness_error(x).mean())
        rows.append(row)
    return (pd.DataFrame(rows).set_index("model").style.format(precision=4)
            .set_caption("Completeness error of Integrated Gradients, mean over the grid's images: logit units "
                         "for the zero baseline, probability units (0 to 1) for the uniform baselines."))


# ---------------------------------------------------------------------------------------------------
# The quantitative measurements, cached per profile and zoo.

@dataclass
class SaliencyResults:
    """Every per-image measurement of the chapter, on the first ``n`` test images.

    - ``alignment[model]``: the scale-free alignment |⟨x, g⟩| / (‖x‖‖g‖) of the model's gradient of the predicted
      logit, (n,);
    - ``etmann[model][psi]``: Etmann et al.'s alignment |⟨x, ∇Ψ⟩| / ‖∇Ψ‖ in input units, Ψ of :data:`PSI` (the true
      class's logit, the margin), (n,), for the chapter's models, the seed replicates and the gradient-penalty arms;
    - ``maps[model][method][metric]``: one value per image, (n,), for the metrics of :data:`METRICS` that apply to
      the method (the randomisation check on the first ``sanity_n`` images only; the completeness error for IG
      only); the baseline maps of :data:`BASELINES` too;
    - ``cascade[model][similarity]``: (layers, sanity_n), Spearman's ρ and SSIM of the gradient map after
      re-initialising the top 1, 2, … layers, to the original map (Adebayo et al. 2018);
    - ``seeds[replicate][method]``: the Gini of the replicate's map on the first ``seed_n`` images, for the seed
      replicates (1, 2, …) of :data:`SEED_ARMS` and the methods of :data:`GINI_METHODS`.
    """

    alignment: dict
    maps: dict
    etmann: dict = field(default_factory=dict)
    cascade: dict = field(default_factory=dict)
    seeds: dict = field(default_factory=dict)

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


def _seed_replicates(prof: Profile) -> list[str]:
    return [n for arm in SEED_ARMS for n in seed_names(prof, arm)[1:]]


#: How many of the chapter's models (the last of :func:`chapter_models`) the second part of :func:`measure` holds,
#: with the seed replicates and the gradient-penalty arms: the part :func:`precompute` measures in a process of its
#: own while the book's other chapters run.
SECOND_PART_MODELS = 2
#: The two parts of :func:`measure`, each cached on its own.
PARTS = ("first", "second")


def _part_models(prof: Profile, family: str, part: str) -> list[str]:
    """The chapter models of ``family`` that ``part`` of :func:`measure` measures (:data:`SECOND_PART_MODELS`)."""
    names = chapter_models(prof, family)
    cut = max(0, len(names) - SECOND_PART_MODELS)
    return names[:cut] if part == PARTS[0] else names[cut:]


def _cache_path(prof: Profile, family: str = "mnist", part: str = PARTS[0]):
    specs = all_specs(prof)
    models = _part_models(prof, family, part)
    if family != "mnist":  # the CIFAR-10 models alone: no seed replicates, no gradient-penalty arms
        settings = {"version": _VERSION, "profile": prof.name, "family": family, "sizes": vars(sizes(prof)),
                    "part": part, "models": {n: specs[n].key() for n in models},
                    "settings": [SMOOTHGRAD_NOISE, SMOOTHGRAD_SAMPLES, SHAP_SAMPLES, SHAP_BACKGROUND, N_BASELINES,
                                 RANDOMIZED_LAYERS, DELETION_STEPS, IG_ZERO_STEPS]}
        return paths.results_path(f"saliency-{family}", prof.name, settings, ".pt")
    second = part == PARTS[1]
    gp = {n: gp_spec(prof, n).key() for n in (*GP_SWEEP, GP_L2)} if second else {}
    settings = {"version": _VERSION, "profile": prof.name, "sizes": vars(sizes(prof)), "part": part,
                "models": {n: specs[n].key() for n in (*models, *(_seed_replicates(prof) if second else ()))},
                "gp": gp,
                "settings": [SMOOTHGRAD_NOISE, SMOOTHGRAD_SAMPLES, SHAP_SAMPLES, SHAP_BACKGROUND, N_BASELINES,
                             RANDOMIZED_LAYERS, DELETION_STEPS, IG_ZERO_STEPS, STROKE_INK]}
    return paths.results_path("saliency", prof.name, settings, ".pt")


def measure(profile, progress: bool = True, family: str = "mnist") -> SaliencyResults:
    """Every per-image measurement of the chapter (see :class:`SaliencyResults`) of the models of ``family``,
    computed on the first ``sizes(profile).n`` test images, the randomisation checks on the first ``sanity_n`` of
    them; cached. On CIFAR-10 (``family="cifar10"``, profiles with CIFAR-10 only) the MNIST-specific parts are left
    out: the stroke share and the ink-order baseline (they read a digit's ink), the seed replicates and chapter
    5's gradient-penalty arms (trained on MNIST only).

    The measurements come in two parts (:data:`PARTS`), each cached on its own and computed under a file lock: the
    second holds the last :data:`SECOND_PART_MODELS` chapter models, the seed replicates and the gradient-penalty
    arms. :func:`precompute` measures it in a process of its own, so that ``rilib book run`` spreads the chapter
    over two cores; a process that needs a part another one is computing waits for it, then loads it."""
    prof = get_profile(profile)
    family_dataset(prof, family)  # a profile without the family: a clear error, before any cache is looked up
    first, second = (_measure_part(prof, family, part, progress) for part in PARTS)
    return SaliencyResults(**{f.name: {**getattr(first, f.name), **getattr(second, f.name)} for f in fields(first)})


def _measure_part(prof: Profile, family: str, part: str, progress: bool) -> SaliencyResults:
    # The lock is safe: the computation takes no cache lock, only the zoo's training locks, and a process waiting
    # here holds none.
    return paths.cached_record(_cache_path(prof, family, part), lambda: _measure(prof, progress, family, part),
                               SaliencyResults, name=f"saliency.measure ({part} part)", lock=True)


def precompute(profile, progress: bool = True) -> None:
    """The second part of :func:`measure` for MNIST (:data:`PARTS`), cached: what the chapter's front matter asks
    ``rilib book run`` to compute in a process of its own while the other chapters run (``rilib book precompute``)."""
    prof = get_profile(profile)
    _measure_part(prof, "mnist", PARTS[1], progress)


def cascade(model, x: torch.Tensor, target: torch.Tensor | None = None) -> dict:
    """Adebayo et al.'s (2018) cascading randomisation of the gradient map: for the top 1, 2, …, L layers
    re-initialised (:func:`rilib.lenses.metrics.cascade_models`), Spearman's ρ (average ranks) and SSIM of |map|
    to the original model's, explaining the original model's predicted class. ``{"spearman": (L, N), "ssim": (L, N)}``."""
    x = to_model(x, model)
    target = predicted(model, x) if target is None else target
    original = Gradient(model).attribute(x, target)
    rho, ssim = [], []
    for randomised in cascade_models(model):
        a = Gradient(randomised).attribute(x, target)
        rho.append(spearman(original.abs(), a.abs()))
        ssim.append(map_ssim(original, a))
    return {"spearman": torch.stack(rho), "ssim": torch.stack(ssim)}


def _etmann(model, x, y) -> dict:
    return {psi: etmann_alignment(model, x, y if psi == "logit" else None, psi=psi) for psi in PSI}


def _baseline_maps(x: torch.Tensor, family: str = "mnist") -> dict:
    maps = {RANDOM_MAP: torch.rand(x.shape, generator=torch.Generator().manual_seed(1)).to(x),
            INK_MAP: x.clone(), SOBEL_MAP: sobel_map(x)}
    if family != "mnist":
        del maps[INK_MAP]  # brightest first is an order of the ink only on dark-background digits
    return maps


def _measure(prof: Profile, progress: bool, family: str = "mnist", part: str = PARTS[0]) -> SaliencyResults:
    from tqdm import tqdm

    mnist = family == "mnist"
    second = part == PARTS[1]
    names = _part_models(prof, family, part)
    models = load_models(prof, names, progress=progress)
    size = sizes(prof)
    ds = test_data(prof, family)
    x, y = ds.x_test[:size.n], ds.y_test[:size.n]
    k = size.sanity_n
    align, maps, etmann, casc, seeds = {}, {}, {}, {}, {}
    bar = tqdm(total=len(models) * (len(METHODS) + 1), desc="saliency metrics", disable=not progress)
    for name, model in models.items():
        xm = to_model(x, model)
        pred = predicted(model, xm)
        align[name] = alignment(model, xm)
        etmann[name] = _etmann(model, xm, y)
        shuffled = randomize_top_layers(model, RANDOMIZED_LAYERS)
        maps[name] = {}
        for method in METHODS:
            bar.set_postfix_str(f"{name} {method}")
            meth = make_method(method, model, prof, family=family)
            a = meth.attribute(xm)
            rank = a.abs() if method in RANK_BY_MAGNITUDE else a
            row = dict(zip(("deletion", "insertion"), deletion_insertion(model, xm, rank, steps=DELETION_STEPS)))
            row["gini"] = gini(a)
            if mnist:
                row["stroke share"] = stroke_share(xm, a, STROKE_INK)
            row["map alignment"] = alignment_of(xm, a)
            if isinstance(meth, IntegratedGradients):
                row["completeness error"] = meth.last_delta
            # SHAP explains the predicted class only, so the randomised model's own prediction; the others
            # explain the original model's predicted class.
            target = None if method == "shap" else pred[:k]
            a_rand = make_method(method, shuffled, prof, family=family).attribute(xm[:k], target)
            row["randomisation rank corr."] = spearman(a[:k].abs(), a_rand.abs())
            maps[name][method] = row
            bar.update()
        for base, b in _baseline_maps(xm, family).items():
            row = dict(zip(("deletion", "insertion"), deletion_insertion(model, xm, b, steps=DELETION_STEPS)))
            row["gini"] = gini(b)
            if mnist:
                row["stroke share"] = stroke_share(xm, b, STROKE_INK)
            row["map alignment"] = alignment_of(xm, b)
            maps[name][base] = row
        casc[name] = cascade(model, xm[:k], pred[:k])
        bar.update()
    bar.close()
    # The seed replicates of the seeded arms: alignment on every image, Boychev's maps' Gini on the first seed_n.
    replicates = load_models(prof, _seed_replicates(prof), progress=progress) if mnist and second else {}
    for name, model in tqdm(replicates.items(), desc="seed replicates", disable=not progress):
        xm = to_model(x, model)
        align[name] = alignment(model, xm)
        etmann[name] = _etmann(model, xm, y)
        seeds[name] = {m: gini(make_method(m, model, prof).attribute(xm[:size.seed_n])) for m in GINI_METHODS}
    # Chapter 5's gradient-penalty arms (Etmann et al.'s own test of alignment).
    for name in (*GP_SWEEP, GP_L2) if mnist and second else ():
        model = zoo.get(gp_spec(prof, name), prof, progress=progress)
        xm = to_model(x, model)
        align[name] = alignment(model, xm)
        etmann[name] = _etmann(model, xm, y)
    cpu = lambda v: v.detach().cpu().float()  # noqa: E731
    return SaliencyResults({n: cpu(v) for n, v in align.items()},
                           {n: {m: {k_: cpu(v) for k_, v in row.items()} for m, row in methods.items()}
                            for n, methods in maps.items()},
                           {n: {p: cpu(v) for p, v in d.items()} for n, d in etmann.items()},
                           {n: {s: cpu(v) for s, v in d.items()} for n, d in casc.items()},
                           {n: {m: cpu(v) for m, v in d.items()} for n, d in seeds.items()})


# ---------------------------------------------------------------------------------------------------
# Tables and figures

#: Etmann's alignment, by the key of :attr:`SaliencyResults.etmann`, and the book's scale-free variant.
ALIGNMENTS = {"logit": "α, Ψ = true-class logit (input units)", "margin": "α, Ψ = margin (input units)",
              "scale-free": "α / ‖x‖, Ψ = predicted logit"}


def _alignment_values(results: SaliencyResults, name: str, which: str) -> torch.Tensor:
    return results.alignment[name] if which == "scale-free" else results.etmann[name][which]


def alignment_table(profile, results: SaliencyResults, family: str = "mnist"):
    """Etmann's alignment of every chapter model of ``family``: label, objective, norm, training ε, and for each of
    :data:`ALIGNMENTS` the mean and 95 % interval over the images (columns ``<key>``, ``<key> low``, ``<key> high``;
    the Ψ = true-class logit one also as ``alignment``, ``ci95 low``, ``ci95 high``)."""
    prof = get_profile(profile)
    specs = all_specs(prof)
    names = chapter_models(prof, family)
    table = describe({n: specs[n] for n in names})
    table["norm"] = ["L2" if specs[n].param_dict.get("norm") == "l2" else "L∞" for n in names]
    for which in ALIGNMENTS:
        ivs = [mean_ci(_alignment_values(results, n, which)) for n in names]
        table[which] = [iv.mean for iv in ivs]
        table[f"{which} low"] = [iv.low for iv in ivs]
        table[f"{which} high"] = [iv.high for iv in ivs]
    return table.assign(alignment=table["logit"], **{"ci95 low": table["logit low"], "ci95 high": table["logit high"]})


def alignment_figure(profile, table):
    """Etmann's alignment (Ψ = true-class logit, input units) against the training ε of the L∞ models (left) and
    of the L2 models (right, with the standard model at ε = 0), mean and 95 % interval."""
    import matplotlib.pyplot as plt
    import numpy as np
    plotting.use_style()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.5, 3.6), gridspec_kw={"width_ratios": [1.4, 1]},
                                      sharey=True)
    ylabel = "α = |⟨x, ∇Ψ⟩| / ‖∇Ψ‖ (L2 distance, pixel units)"
    plotting.metric_vs_eps(table[table.norm == "L∞"], ylabel=ylabel, ax=left)
    left.set_title("L∞ models")
    l2 = table[(table.norm == "L2") | (table.objective == "standard")].sort_values("train ε")
    err = np.vstack([l2["logit"] - l2["logit low"], l2["logit high"] - l2["logit"]])
    right.errorbar(l2["train ε"], l2["logit"], yerr=err, marker="o", capsize=3, color=plotting.model_color(L2_MODELS[-1]),
                   label="standard (ε = 0) and L2 PGD-AT")
    right.set_xlabel("training ε (L2, pixel scale [0, 1])")
    right.set_ylabel(ylabel)
    right.tick_params(labelleft=True)
    right.set_ylim(bottom=0)
    right.set_title("L2 models")
    right.legend(loc="best")
    fig.suptitle(f"Etmann's alignment of input gradients, Ψ = the true class's logit ({sizes(profile).n} test images)")
    return fig  # laid out by the book's style (constrained layout); tight_layout would override it with a warning


def alignment_display(table):
    """:func:`alignment_table` as ``mean [low, high]`` strings for the page, with each model's threat."""
    import pandas as pd
    shown = pd.DataFrame(index=table.index)
    shown["label"] = table["label"]
    shown["trained at"] = [f"{r.norm} ε {r['train ε']:g}" if r.objective != "standard" else "standard"
                           for _, r in table.iterrows()]
    for which, label in ALIGNMENTS.items():
        shown[label] = [f"{m:.3f} [{lo:.3f}, {hi:.3f}]"
                        for m, lo, hi in zip(table[which], table[f"{which} low"], table[f"{which} high"])]
    return shown.style.set_caption("Etmann's alignment, mean [95 % interval over the images]. α is a distance in "
                                   "pixel units; the last column divides by ‖x‖ too.")


def summary(profile, results: SaliencyResults, family: str = "mnist"):
    """Mean and 95 % interval of every metric, one row per (model, method), the baseline maps included (those
    measured for ``family``). Columns ``<metric>`` (mean) and ``<metric> ±`` (half-width of the interval)."""
    import pandas as pd
    rows = []
    for name in chapter_models(profile, family):
        for method in (m for m in (*METHODS, *BASELINES) if m in results.maps[name]):
            row = {"model": name, "method": METHODS.get(method) or BASELINES[method]}
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
        f"alignment: the scale-free alignment of each map with the image. Stroke share: the share of |map| on "
        f"pixels with ink > {STROKE_INK}. Completeness error in logit units, in probability units for IG of the "
        f"probability. Deletion, insertion, Gini, stroke share and randomisation are the book's measurements, not "
        f"Boychev's.")


def deletion_figure(table):
    """Heatmaps of the mean deletion and insertion AUC of every model and method, from :func:`summary`."""
    return plotting.metric_heatmaps(table, ("deletion", "insertion"),
                                    ("deletion AUC (lower: more faithful)", "insertion AUC (higher: more faithful)"))


def stroke_table(profile, table):
    """The share of |map| on the strokes, one row per model, one column per method and baseline (means)."""
    wide = table["stroke share"].unstack("method")
    order = [*[METHODS[m] for m in METHODS], BASELINES[RANDOM_MAP]]
    wide = wide.loc[chapter_models(profile), order]
    wide.index = [plotting.model_label(n) for n in wide.index]
    return wide.style.format("{:.2f}").set_caption(
        f"Share of Σ|map| on the strokes (pixels with ink > {STROKE_INK}), mean over the images; the random map's "
        f"share is the strokes' share of the pixels.")


def cascade_figure(profile, results: SaliencyResults):
    """Spearman's ρ and SSIM of the gradient map to the original one against the number of layers re-initialised
    from the top, one curve (mean over the images) per model."""
    import matplotlib.pyplot as plt
    prof = get_profile(profile)
    plotting.use_style()
    names = chapter_models(prof)
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.6))
    for ax, (sim, label) in zip(axes, (("spearman", "Spearman's ρ of |map| (average ranks)"),
                                       ("ssim", "SSIM of |map| (each scaled to [0, 1])"))):
        for name in names:
            v = results.cascade[name][sim]
            xs = list(range(0, v.shape[0] + 1))
            ax.plot(xs, [1.0, *v.double().mean(1).tolist()], marker="o", ms=3, label=plotting.model_label(name),
                    color=plotting.model_color(name))
        ax.set_xlabel("layers re-initialised, from the top (0: the trained model)")
        ax.set_ylabel(label)
        ax.set_xticks(xs)
    axes[1].legend(loc="best", fontsize=7)
    fig.suptitle(f"Cascading randomisation of the gradient map ({sizes(prof).sanity_n} test images)")
    return fig


def cascade_values(results: SaliencyResults, sim: str = "spearman") -> dict:
    """Mean similarity after re-initialising every layer, per model (``sim``: ``spearman`` or ``ssim``)."""
    return {n: float(v[sim][-1].mean()) for n, v in results.cascade.items()}


def sweep_intervals(profile, results: SaliencyResults) -> dict:
    """The gradient-penalty sweep: λ (0 for the standard model) and, per alignment of :data:`ALIGNMENTS`, the
    mean and 95 % interval over the images, ``{"λ": [...], which: [Interval, ...]}``."""
    prof = get_profile(profile)
    names = [STANDARD, *GP_SWEEP]
    lams = [0.0] + [gp_spec(prof, n).param_dict["lam"] for n in GP_SWEEP]
    return {"λ": lams, "models": names,
            **{w: [mean_ci(_alignment_values(results, n, w)) for n in names] for w in ALIGNMENTS}}


def sweep_replicates(profile) -> dict[str, Spec]:
    """The seed replicates (1, 2, …) of every λ of chapter 5's gradient-penalty sweep (:data:`GP_SWEEP`), by zoo
    name."""
    prof = get_profile(profile)
    specs = zoo.zoo_specs(prof, GP_GROUP)
    return {seed_name(n, r): specs[seed_name(n, r)] for n in GP_SWEEP for r in range(1, prof.seeds)}


def sweep_seed_alignment(profile, progress: bool = True) -> dict:
    """Etmann's α for each Ψ of :data:`PSI`, per image on the first ``sizes(profile).n`` test images, for every model
    of :func:`sweep_replicates`: ``{model: {psi: tensor (n,)}}``; cached. (The sweep's seed-0 models are in
    :func:`measure`.)"""
    prof = get_profile(profile)
    specs = sweep_replicates(prof)
    settings = {"version": 1, "what": "sweep seeds", "n": sizes(prof).n,
                "models": {n: s.key() for n, s in specs.items()}}

    def compute():
        ds = test_data(prof)
        x, y = ds.x_test[:sizes(prof).n], ds.y_test[:sizes(prof).n]
        out = {}
        for name, spec in specs.items():
            model = zoo.get(spec, prof, progress=progress)
            out[name] = {psi: v.detach().cpu().float() for psi, v in _etmann(model, to_model(x, model), y).items()}
        return out

    return paths.cached(paths.results_path("saliency", prof.name, settings, ".pt"), compute, load=paths.torch_load,
                        dump=paths.torch_bytes, name="saliency.sweep_seeds")


def sweep_seed_values(profile, results: SaliencyResults, psi: str, seeds: dict | None = None) -> dict:
    """Per λ of the sweep (0: the standard model), the mean α (``psi``) over the images, one value per training
    seed: ``{λ: [seed 0, seed 1, …]}``. ``seeds``: :func:`sweep_seed_alignment`, if already loaded."""
    prof = get_profile(profile)
    seeds = sweep_seed_alignment(prof, progress=False) if seeds is None else seeds
    out = {0.0: seed_level(prof, results, STANDARD, psi)}
    for name in GP_SWEEP:
        per_seed = [results.etmann[name][psi]] + [seeds[seed_name(name, r)][psi] for r in range(1, prof.seeds)]
        out[gp_spec(prof, name).param_dict["lam"]] = [float(v.double().mean()) for v in per_seed]
    return out


def sweep_trend(profile, results: SaliencyResults, psi: str, seeds: dict | None = None) -> tuple[list, Interval]:
    """Etmann et al.'s test over training seeds: per seed, Spearman's rank correlation between λ and the mean α
    (``psi``) along the sweep (λ = 0 and :data:`GP_SWEEP`); returns (one correlation per seed, their Student-t
    interval). +1 at a seed: α rises at every step of λ."""
    from scipy import stats as st
    values = sweep_seed_values(profile, results, psi, seeds)
    lams = list(values)
    rhos = [float(st.spearmanr(lams, [values[lam][r] for lam in lams]).statistic)
            for r in range(len(values[0.0]))]
    return rhos, seed_ci(rhos, SIGNED_SHARE)


def sweep_seed_table(profile, results: SaliencyResults):
    """The sweep over training seeds: per Ψ and λ, the mean α of each seed and their Student-t interval, and per Ψ
    the rank correlation of :func:`sweep_trend`."""
    import pandas as pd
    prof = get_profile(profile)
    seeds = sweep_seed_alignment(prof, progress=False)
    rows = []
    for psi in PSI:
        for lam, per_seed in sweep_seed_values(prof, results, psi, seeds).items():
            rows.append({"Ψ": psi, "λ": f"{lam:g}", "per seed": ", ".join(f"{v:.3f}" for v in per_seed),
                         "mean [95 % over seeds]": seed_ci(per_seed).format(".3f")})
        rhos, iv = sweep_trend(prof, results, psi, seeds)
        rows.append({"Ψ": psi, "λ": "Spearman(λ, α)", "per seed": ", ".join(f"{v:+.2f}" for v in rhos),
                     "mean [95 % over seeds]": iv.format("+.2f")})
    return pd.DataFrame(rows).set_index(["Ψ", "λ"]).style.set_caption(
        f"Etmann's α along the gradient-penalty sweep, {prof.seeds} training seeds per λ, {sizes(prof).n} test images")


def summary_quoted(table) -> dict:
    """The numbers the page quotes from :func:`summary`: the deletion AUC of the standard model and of PGD-AT at
    ε = 0.3 for the gradient, the random map and the ink order (``del_<std|pgd>_<grad|random|ink>``), and the
    randomisation rank correlation of the standard model's gradient and zero-baseline IG (``rand_std_grad``,
    ``rand_std_igzero``)."""
    models = {"std": STANDARD, "pgd": "mnist-pgd-0.3"}
    maps = {"grad": "gradient", "random": "random map", "ink": "ink order (the image)"}
    out = {f"del_{m}_{k}": float(table.loc[(model, method), "deletion"])
           for m, model in models.items() for k, method in maps.items()}
    for k, method in (("grad", "gradient"), ("igzero", "IG, zero baseline (logit)")):
        out[f"rand_std_{k}"] = float(table.loc[(STANDARD, method), "randomisation rank corr."])
    return out


def method_rows(table, method: str = "gradient"):
    """The rows of :func:`summary` for one method, one per model (for glue by model)."""
    return table.xs(method, level="method")


def sweep_quoted(profile, results: SaliencyResults) -> tuple[dict, dict, float]:
    """What the page quotes of the sweep: per model of :func:`sweep_intervals` its interval of Etmann's α for the
    logit and for the margin, and the mean α (logit) of the L2 penalty's model, :data:`GP_L2`."""
    sw = sweep_intervals(profile, results)
    return (dict(zip(sw["models"], sw["logit"])), dict(zip(sw["models"], sw["margin"])),
            float(results.etmann[GP_L2]["logit"].mean()))


def deletion_pixels_per_step(x) -> int:
    """How many pixels deletion and insertion (:data:`DELETION_STEPS` steps) change per step on images ``x``."""
    return x.shape[-1] * x.shape[-2] // DELETION_STEPS


def sweep_figure(profile, results: SaliencyResults):
    """Etmann's alignment against the weight λ of chapter 5's L1 input-gradient penalty (λ = 0: the standard
    model), one panel per Ψ of :data:`PSI`, mean and 95 % interval over the images."""
    sw = sweep_intervals(profile, results)
    return plotting.interval_sweeps(
        {ALIGNMENTS[w]: ("λ of the penalty λ‖∇ₓCE‖₁", sw["λ"], {"gp-l1": sw[w]}, True) for w in PSI},
        ylabel="α = |⟨x, ∇Ψ⟩| / ‖∇Ψ‖ (pixel units)",
        title=f"Etmann's alignment along the gradient-penalty sweep ({sizes(profile).n} test images)")


def cifar10_section(profile, progress: bool = True):
    """The chapter's measurements of the CIFAR-10 models of the catalogue (profiles with CIFAR-10, such as
    ``paper``): one row per (model, method) as :func:`display_summary` shows them, and Etmann's alignment of the
    input gradient (Ψ = the true class's logit and the margin, in pixel units) on the gradient's rows; or, on a
    profile without CIFAR-10, a sentence saying so. The stroke share and the ink-order baseline read a digit's ink
    and are left out on CIFAR-10."""
    from ..book.display import mean_pm
    prof = get_profile(profile)
    if not has_family(prof, "cifar10"):
        return no_cifar10(prof)
    results = measure(prof, progress, family="cifar10")
    table = summary(prof, results, "cifar10")
    shown = mean_pm(table, [m for m in METRICS if m in table.columns])
    for psi in reversed(PSI):
        shown.insert(0, ALIGNMENTS[psi], [mean_ci(results.etmann[n][psi]).format(".3f") if m == METHODS["gradient"]
                                          else "–" for n, m in shown.index])
    size = sizes(prof)
    return shown.style.set_caption(
        f"CIFAR-10 models: mean ± half-width of the 95 % interval over {size.n} test images (randomisation: "
        f"{size.sanity_n}); Etmann's alignment of the input gradient, mean [95 % interval], on the gradient's rows. "
        f"No stroke share or ink-order baseline: they read a digit's ink.")


# ---------------------------------------------------------------------------------------------------
# Training seeds

def seed_level(profile, results: SaliencyResults, arm: str, what: str) -> list[float]:
    """One value per training seed of ``arm``: the mean Etmann alignment (``what`` ``logit`` or ``margin``) over the
    ``n`` images, or the mean Gini of a method of :data:`GINI_METHODS` (``gini:<method>``) over the first ``seed_n``."""
    prof = get_profile(profile)
    out = []
    for r, name in enumerate(seed_names(prof, arm)):
        if what.startswith("gini:"):
            method = what.split(":", 1)[1]
            v = results.values(name, method, "gini")[:sizes(prof).seed_n] if r == 0 else results.seeds[name][method]
        else:
            v = results.etmann[name][what]
        out.append(float(v.double().mean()))
    return out


def seed_margins(profile, results: SaliencyResults, what: str) -> dict:
    """Per robust seeded arm: (differences arm − standard per seed pair, their Student-t interval, the per-image
    paired interval of seed 0)."""
    prof = get_profile(profile)
    std = seed_level(prof, results, STANDARD, what)
    out = {}
    for arm in ROBUST_SEEDED:
        diffs = [a - b for a, b in zip(seed_level(prof, results, arm, what), std)]
        if what.startswith("gini:"):
            m, k = what.split(":", 1)[1], sizes(prof).seed_n
            per_image = paired_ci(results.values(arm, m, "gini")[:k], results.values(STANDARD, m, "gini")[:k])
        else:
            per_image = paired_ci(results.etmann[arm][what], results.etmann[STANDARD][what])
        out[arm] = (diffs, seed_ci(diffs), per_image)
    return out


def seeds_table(profile, results: SaliencyResults):
    """Every claim's comparison arm − standard: the value per seed pair, the Student-t interval over the seeds
    and, as a second column, the per-image paired interval of seed 0."""
    import pandas as pd
    rows = []
    for what in (*PSI, *(f"gini:{m}" for m in GINI_METHODS)):
        for arm, (diffs, iv, per_image) in seed_margins(profile, results, what).items():
            rows.append({"measure": ALIGNMENTS.get(what) or f"Gini, {METHODS[what[5:]]}",
                         "arm − standard": plotting.model_label(arm),
                         "per seed pair": ", ".join(f"{d:+.3f}" for d in diffs),
                         "interval over seeds": iv.format("+.3f"),
                         "per image, seed 0": per_image.format("+.3f")})
    prof = get_profile(profile)
    return pd.DataFrame(rows).set_index(["measure", "arm − standard"]).style.set_caption(
        f"Differences robust − standard over {prof.seeds} training seeds (Student-t 95 % interval) and, second, over "
        f"the images of seed 0 (normal 95 % interval; alignment on {sizes(prof).n} images, Gini on "
        f"{sizes(prof).seed_n}).")


def _seeds_each(prof: Profile) -> str:
    return f"{prof.seeds} training seeds each" if prof.seeds > 1 else "one training seed each"


def recipe_table(profile):
    """The chapter's recipe under ``profile`` against Boychev's (2023) and Etmann et al.'s (2019), with why each
    difference exists."""
    from ..book.display import recipe_table as table
    prof = get_profile(profile)
    specs = all_specs(prof)
    pgd, l2 = specs["mnist-pgd-0.3"], specs[L2_MODELS[0]]
    ds = test_data(prof)
    size = sizes(prof)
    lams = ", ".join(f"{gp_spec(prof, n).param_dict['lam']:g}" for n in GP_SWEEP)
    return table([
        ("dataset", f"{ds.description or prof.mnist}: {len(ds.y_train):,} training digits, the first {size.n} "
                    f"test digits", "Boychev: CIFAR-10 (and ImageNet models); Etmann: MNIST and ImageNet",
         "offline, minutes on 2 cores"),
        ("architecture", f"{pgd.arch}: four 3×3 convolutions, FC-128",
         "Boychev: ResNet-18 on CIFAR-10, ResNet-50 on Small ImageNet; Etmann: a small CNN on MNIST, ResNet-50 on "
         "ImageNet",
         "one network for the whole book"),
        ("optimiser, weight decay, epochs", f"{pgd.optimizer_label()}, {pgd.epochs} epochs (TRADES "
                                            f"{specs['mnist-trades'].epochs})",
         "Boychev: SGD (momentum 0.9), lr 0.01 with cosine annealing, weight decay 5e-4, 100 epochs; Etmann: Adam",
         "the book trains every model on one recipe"),
        ("ε and norm", f"L∞ ε 0.1, 0.2, 0.3 (and TRADES, FGSM-RS at 0.3); L2 ε "
                       f"{', '.join(f'{e:g}' for e in (specs[n].param_dict['eps'] for n in L2_MODELS))}, "
                       f"evaluated at L2 {EVAL_EPS_L2:g} (L∞ ones at {EVAL_EPS['mnist']:g})",
         "Boychev: L2 ε 0.5 and L∞ ε 4/255, 8/255 on CIFAR-10; Etmann: PGD-AT at several ε and a gradient-norm "
         "penalty", "the usual MNIST budgets in both norms"),
        ("training attack", f"PGD-{pgd.param_dict.get('steps')} (L2: PGD-{l2.param_dict.get('steps')}), step "
                            f"2.5·ε/k",
         "Boychev: L2 PGD-20, step 0.1 at ε 0.5; Engstrom et al.'s released models: PGD-7 to PGD-10",
         "the book's budget"),
        ("gradient-norm sweep", f"chapter 5's L1 penalty λ‖∇ₓCE‖₁, λ ∈ {{0, {lams}}} (λ = 0: the standard "
                                f"model), {_seeds_each(prof)}",
         "Etmann: a local Lipschitz (gradient-norm) regulariser at several strengths",
         "chapter 5 trains these arms, at every seed"),
        ("IG", f"{N_BASELINES} uniform baselines × {size.ig_steps_grid} steps in the grids, "
               f"× {size.ig_steps_metrics} in the metrics; trapezoid rule; softmax probability (logit as a second "
               f"variant); zero baseline on the logit",
         f"Boychev: {N_BASELINES} uniform baselines × 50 steps on the softmax probability (Captum)",
         "50 steps for every metric image would cost minutes per model; the completeness error says what the "
         "coarser sum costs"),
        ("SHAP", f"GradientExplainer, {SHAP_SAMPLES} samples, {SHAP_BACKGROUND} training images as background",
         "Boychev: SHAP GradientExplainer", "–"),
        ("alignment", "Etmann's |⟨x, ∇Ψ⟩| / ‖∇Ψ‖, Ψ the true-class logit and the margin; and ÷ ‖x‖",
         "Etmann: |⟨x, ∇Ψ⟩| / ‖∇Ψ‖ on the binarised (margin) and class logits", "–"),
        ("metrics", "deletion/insertion (against random, ink-order and Sobel maps), Gini, stroke share, "
                    "randomisation: the book's own", "Boychev: visual comparison of the maps",
         "pictures persuade; the book adds numbers, labelled as its own"),
        ("seeds", f"{prof.seeds} per seeded arm ({', '.join(SEED_ARMS)}); Gini of the seed models on {size.seed_n} "
                  f"images", "1 model each", "a claim about a training procedure needs an interval over seeds"),
    ], prof)


def paired_margin(results: SaliencyResults, model: str, reference: str = STANDARD, psi: str | None = None) -> Interval:
    """Mean per-image difference of alignment, ``model − reference``, on the same images, with its 95 % interval:
    the scale-free alignment by default, Etmann's in input units for ``psi`` in :data:`PSI`."""
    if psi is None:
        return paired_ci(results.alignment[model], results.alignment[reference])
    return paired_ci(results.etmann[model][psi], results.etmann[reference][psi])


def alignment_margins(results: SaliencyResults, models=ROBUST, psi: str | None = "logit") -> dict[str, Interval]:
    """:func:`paired_margin` of each robust model over the standard model (Etmann's, Ψ = true-class logit)."""
    return {n: paired_margin(results, n, psi=psi) for n in models}


# ---------------------------------------------------------------------------------------------------
# Claims

@claim("ch3.robust-alignment-exceeds-standard", chapter="3",
       statement="Robust models' input gradients are better aligned with the image than the standard model's, in "
                 "Etmann et al.'s alignment |⟨x, ∇Ψ⟩| / ‖∇Ψ‖ (input units), for Ψ the true class's logit and for "
                 "the margin.",
       papers=("etmann2019", "boychev2023"), differs=protocol_differs)
def _claim_alignment(profile: Profile) -> Measurement:
    prof = get_profile(profile)
    res = measure(prof)
    measured, intervals, notes = {}, {}, []
    for psi in PSI:
        for arm, (diffs, iv, per_image) in seed_margins(prof, res, psi).items():
            key = f"{plotting.model_label(arm)}, {psi}"
            measured[key] = f"{iv.format('+.3f')} over seeds; {per_image.format('+.3f')} per image"
            intervals[key] = iv
            notes.append(seed_verdict(key, diffs, iv))
    failed = [n for n in notes if n]
    others = {plotting.model_label(n): paired_margin(res, n, psi="logit").format("+.3f")
              for n in ("mnist-pgd-0.2", *L2_MODELS)}
    info = "one training seed, per-image paired intervals, not held: " + ", ".join(f"{k} {v}" for k, v in others.items())
    return Measurement(measured, f"Student-t interval over {prof.seeds} seed pairs of mean α(robust arm) − mean "
                       f"α({STANDARD}) on {sizes(prof).n} test images, lower bound > 0 for each of "
                       f"{', '.join(ROBUST_SEEDED)} and each Ψ", not failed,
                       "; ".join([*failed, info]), intervals=intervals)


@claim("ch3.alignment-rises-with-gradient-penalty", chapter="3",
       statement="Etmann et al.'s own test: along a sweep of the input-gradient penalty λ‖∇ₓCE‖₁ (λ = 0, 0.03, 0.1, "
                 "0.3), the alignment α = |⟨x, ∇Ψ⟩| / ‖∇Ψ‖ rises with λ, for Ψ the true class's logit and for the "
                 "margin.",
       papers="etmann2019", differs=protocol_differs)
def _claim_sweep(profile: Profile) -> Measurement:
    prof = get_profile(profile)
    res = measure(prof)
    seeds = sweep_seed_alignment(prof, progress=False)
    measured, intervals, notes = {}, {}, []
    for psi in PSI:
        rhos, iv = sweep_trend(prof, res, psi, seeds)
        values = sweep_seed_values(prof, res, psi, seeds)
        top = max(values)
        gain = seed_ci([a - b for a, b in zip(values[top], values[0.0])])
        per_seed = ", ".join(f"{r:+.2f}" for r in rhos)
        measured[f"Spearman(λ, α), {psi}"] = f"{iv.format('+.2f')} over seeds ({per_seed})"
        measured[f"α(λ = {top:g}) − α(0), {psi}"] = gain.format("+.3f")
        intervals[f"Spearman(λ, α), {psi}"] = iv
        notes.append(seed_verdict(f"Spearman(λ, α), {psi}", rhos, iv))
    failed = [n for n in notes if n]
    return Measurement(measured, f"per training seed, Spearman's rank correlation between λ and the mean α over "
                       f"{sizes(prof).n} test images along the sweep; its Student-t interval over {prof.seeds} seeds "
                       f"above 0 for each Ψ", not failed, "; ".join(failed), intervals=intervals)


@claim("ch3.deletion-below-ink-order", chapter="3",
       statement="For every method and model, deleting pixels in the map's order destroys the prediction faster "
                 "than deleting them in ink order, brightest first (the image itself as the map), the baseline a "
                 "map must beat on MNIST, where deleting ink to 0 already beats a random order. Restated from "
                 "ch3.deletion-below-random (a bar every map clears).",
       papers="petsiuk2018", differs=protocol_differs)
def _claim_deletion(profile: Profile) -> Measurement:
    res = measure(profile)
    worst, failed, intervals = {}, [], {}
    for name in chapter_models(profile):
        label = plotting.model_label(name)
        ink = res.values(name, INK_MAP, "deletion")
        gaps = {m: paired_ci(res.values(name, m, "deletion"), ink) for m in METHODS}
        best, last = min(gaps, key=lambda m: gaps[m].mean), max(gaps, key=lambda m: gaps[m].mean)
        worst[label] = f"{best} {gaps[best].format('+.3f')} … {last} {gaps[last].format('+.3f')}"
        intervals[f"{label}, best: {best}"] = gaps[best]
        intervals[f"{label}, worst: {last}"] = gaps[last]
        failed += filter(None, (paired_verdict(f"{label}/{m}", iv, "images", above=False) for m, iv in gaps.items()))
    return Measurement(worst, "mean per-image deletion AUC(map) − AUC(ink order) per model, of the best and the "
                       f"worst of the {len(METHODS)} methods; the 95 % paired interval over the images below 0 for "
                       "every method and model (one trained model each, so a failure is a finding about that model: its map "
                       "deletes no faster than the ink order, or more slowly)",
                       not failed, "; ".join(failed), intervals=intervals)


@claim("ch3.robust-maps-more-concentrated", chapter="3",
       statement="Exploratory: robust models' IG (softmax probability, uniform baselines; and logit, zero "
                 "baseline) and SHAP maps are more concentrated (higher Gini coefficient) than the standard "
                 "model's.",
       papers="boychev2023", differs=protocol_differs)
def _claim_gini(profile: Profile) -> Measurement:
    prof = get_profile(profile)
    res = measure(prof)
    measured, intervals, notes = {}, {}, []
    for method in GINI_METHODS:
        for arm, (diffs, iv, per_image) in seed_margins(prof, res, f"gini:{method}").items():
            key = f"{plotting.model_label(arm)}/{method}"
            measured[key] = f"{iv.format('+.3f')} over seeds; {per_image.format('+.3f')} per image"
            intervals[key] = iv
            notes.append(seed_verdict(key, diffs, iv))
    failed = [n for n in notes if n]
    return Measurement(measured, f"Student-t interval over {prof.seeds} seed pairs of mean Gini(robust arm) − mean "
                       f"Gini({STANDARD}) of |map| on the first {sizes(prof).seed_n} test images, lower bound > 0 "
                       f"for each of {', '.join(ROBUST_SEEDED)} and each of IG (zero, logit), IG (uniform, "
                       f"probability) and SHAP", not failed, "; ".join(failed), intervals=intervals)


__all__ = ["summary_quoted", "method_rows", "n_train",
           "SaliencySizes", "SIZES", "sizes", "METHODS", "METRICS", "BASELINES", "grid_images", "grid_maps",
           "grid_figures", "completeness", "make_method", "SaliencyResults", "measure", "alignment_table",
           "alignment_figure", "alignment_display", "summary", "display_summary", "deletion_figure", "stroke_table",
           "cascade", "cascade_figure", "cascade_values", "sweep_intervals", "sweep_replicates", "sweep_seed_alignment", "sweep_seed_values",
           "sweep_trend", "sweep_seed_table", "sweep_quoted", "deletion_pixels_per_step", "sweep_figure", "seed_level",
           "seed_margins", "seeds_table", "recipe_table", "paired_margin", "alignment_margins", "chapter_models",
           "cifar10_section"]


# ---------------------------------------------------------------------------------------------------
# The synthesis page's ε dashboard

def _per_method(profile: Profile, metric: str, methods) -> dict:
    res = measure(profile, progress=False)
    return {METHODS.get(method) or BASELINES[method]: {m: mean_ci(res.values(m, method, metric))
                                                       for m in model_names(profile)}
            for method in methods}


@panel("saliency-alignment", title="Map alignment", chapter="3", ylabel="|⟨x, map⟩| / (‖x‖‖map‖)")
def _panel_alignment(profile: Profile) -> dict:
    """Alignment of the attribution maps with the image, mean and 95 % interval over the test images."""
    return _per_method(profile, "map alignment", ("gradient", "ig-zero", "shap"))


@panel("gini", title="Concentration of the maps", chapter="3", ylabel="Gini coefficient of |map|")
def _panel_gini(profile: Profile) -> dict:
    """Gini coefficient of the absolute maps: for the seeded arms (:data:`SEED_ARMS`) the Student-t interval over
    training seeds of the mean over the first ``seed_n`` test images, otherwise the mean and 95 % interval over the
    test images."""
    prof = get_profile(profile)
    res = measure(prof, progress=False)
    seeded = set(SEED_ARMS) if prof.seeds > 1 else set()
    return {METHODS[method]: {m: over_seeds(seed_level(prof, res, m, f"gini:{method}") if m in seeded else None,
                                            lambda m=m, method=method: mean_ci(res.values(m, method, "gini")))
                              for m in model_names(prof)}
            for method in GINI_METHODS}


@panel("etmann", title="Gradient alignment (Etmann)", chapter="3", ylabel="α = |⟨x, ∇Ψ⟩| / ‖∇Ψ‖ (pixel units)")
def _panel_etmann(profile: Profile) -> dict:
    """Etmann et al.'s alignment α for Ψ the true-class logit and the margin: for the seeded arms the Student-t
    interval over training seeds of the mean over the test images, otherwise the mean and 95 % interval over the
    test images."""
    prof = get_profile(profile)
    res = measure(prof, progress=False)
    seeded = set(SEED_ARMS) if prof.seeds > 1 else set()
    return {ALIGNMENTS[psi]: {m: over_seeds(seed_level(prof, res, m, psi) if m in seeded else None,
                                            lambda m=m, psi=psi: mean_ci(res.etmann[m][psi]))
                              for m in model_names(prof)}
            for psi in PSI}


@panel("deletion", title="Deletion", chapter="3", ylabel="deletion AUC (lower is better)")
def _panel_deletion(profile: Profile) -> dict:
    """Deletion AUC (Petsiuk et al. 2018) of three methods and of the random and ink-order maps, mean and 95 %
    interval."""
    return _per_method(profile, "deletion", ("gradient", "ig-zero", "shap", RANDOM_MAP, INK_MAP))


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
