"""Chapter 4, "Representation inversion and class-specific generation" (``notebooks/04_inversion.md``), after
Engstrom et al. (2019), Santurkar et al. (2019) and Boychev (2023).

Inverts the representations of the catalogue's standard and robust models (PGD-AT at each L∞ ε, TRADES, and L2
PGD-AT, the norm of the papers' models) as Engstrom et al. do (fake ReLU, a near-grey seed, an L2 ball of ε = 1000,
until the loss stops falling or a cap of steps), and draws class-specific images with :mod:`rilib.lenses.inversion`
from seeds that carry no class (one Gaussian of every class) and from Santurkar et al.'s class-conditional seeds.
The images are scored by judges that need no download:

- two **independent judges**, LeNet-5 (another architecture, another seed, the same training split), one trained
  standard and one with PGD-AT at ε = 0.3 (zoo group ``inversion-judges``): the share of generated images each
  labels as their target class (Wilson intervals, McNemar's test between models on the same seeds), and the
  **Fréchet distance** between the standard judge's penultimate features of generated and of real test images,
  the FID's recipe with the judge in place of the Inception network (Boychev 2023 reports FID);
- for inversions: SSIM and PSNR to the target image (scikit-image) and the distance between the inversion and the
  target in the standard judge's representation.

The claims are about training procedures, so they are decided on the Student-t interval over the catalogue's
training seeds of each seeded arm (fewer images per extra seed model, :attr:`InversionSizes.seed_n`); per-image
intervals of the headline models are the second column.

:func:`images` computes every inversion and generation once per profile and zoo and caches them atomically
under ``RILIB_CACHE/results`` as :class:`InversionImages`; the scores, figures and claims read that cache. On a
profile with CIFAR-10 (``paper``), :func:`cifar10_images` inverts the CIFAR-10 models too (generation is not scored
there: the judges read MNIST digits); the claims stay on MNIST.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import torch

from .. import paths, zoo
from ..book import plotting
from ..book.dashboard import over_seeds, panel
from ..book.exercises import exercise, prose_exercise
from ..book.ledger import Measurement, claim, join_notes, seed_verdict
from ..data import first_per_class, load_dataset
from ..evaluate import accuracy
from ..lenses.inversion import (ClassGaussian, FrechetReference, GenerationSettings, InversionSettings, generate,
                                grey_seeds, invert, judge_features, pooled_gaussian_seeds, recognised,
                                representation_distance, ssim_psnr)
from ..lenses.stats import Interval, bootstrap_ci, mcnemar, mean_ci, paired_ci, proportion_ci, seed_ci
from ..models import to_model
from ..profiles import Profile, get_profile
from ..registry import Registry
from ..zoo import ZOO_GROUPS, Spec
from .catalog import (L2_MODELS, ROBUST, STANDARD, all_specs, describe, family_dataset, has_family, l2_names,
                      load_models, model_names, no_cifar10, protocol_differs, seed_names, train_zoo)


@dataclass(frozen=True)
class InversionSizes:
    """Sizes of the inversion chapter."""

    n: int = 100                  # images inverted per headline model (10 per class)
    invert_steps: int = 1000      # the cap of L2 steps of representation inversion (Engstrom et al.: 10,000)
    invert_step: float = 0.1      # their length (an MNIST digit has an L2 norm of about 9)
    invert_tol: float = 0.005     # an image stops once its loss fell by no more than this fraction ...
    invert_window: int = 50       # ... over this many steps
    gen_per_class: int = 10       # generated images per class and model
    seed_n: int = 30              # images inverted per extra training-seed model (the first of each class)


#: The chapter's sizes under each profile.
SIZES: Registry[InversionSizes] = Registry("profile of the inversion chapter")
SIZES.add("smoke", InversionSizes(n=20, invert_steps=40, invert_window=10, gen_per_class=2, seed_n=10))
SIZES.add("cpu", InversionSizes())
SIZES.add("full", InversionSizes())  # the cpu sizes, on the full training set
SIZES.add("paper", InversionSizes(n=1000, invert_steps=10_000, invert_tol=0.0, gen_per_class=100, seed_n=1000))


def sizes(profile) -> InversionSizes:
    """The chapter's sizes under ``profile`` (an unknown profile name lists the ones with sizes)."""
    return SIZES[get_profile(profile).name]


#: The models whose images the chapter compares, standard first, then L∞-robust, then L2-robust.
MODELS = (STANDARD, *ROBUST, *L2_MODELS)
#: The arms with several training seeds whose claims are decided over seeds.
SEEDED_ARMS = (STANDARD, "mnist-pgd-0.1", "mnist-pgd-0.3", "mnist-trades")
JUDGE_STANDARD, JUDGE_ROBUST = "mnist-judge-standard", "mnist-judge-robust"
GENERATION = GenerationSettings()
#: The generation seeds: ``pooled``, one Gaussian of every class (no class in the seed, the claims' test), and
#: ``class``, Santurkar et al.'s class-conditional Gaussian.
SEED_KINDS = ("pooled", "class")
SEEDS_ROW = "seeds"   # the score table's row for the generation seeds alone
_VERSION = 3          # bump when a computation changes, so cached images are recomputed


@ZOO_GROUPS.register("inversion-judges")
def judges_zoo(profile: Profile) -> dict[str, Spec]:
    """The independent judges: LeNet-5 with seed 1, trained standard and with PGD-AT (ε = 0.3), without the
    training monitor (no page draws their learning curves)."""
    ep = profile.epochs
    common = dict(arch="lenet", n_train=profile.n_train, n_test=profile.n_test, batch_size=128,
                  optimizer="adam", lr=1e-3, weight_decay=0.01, seed=1, precision=profile.training_precision())
    steps = 40 if profile.name == "paper" else 7
    return {
        JUDGE_STANDARD: Spec.make(profile.mnist, objective="standard", epochs=ep["standard"], **common),
        JUDGE_ROBUST: Spec.make(profile.mnist, objective="pgd", params={"eps": 0.3, "steps": steps},
                                epochs=ep["pgd"], eps_warmup=max(1, ep["pgd"] // 5), **common),
    }


plotting.STYLES.add(JUDGE_STANDARD, plotting.Style("judge-standard", plotting.OBJECTIVE_COLORS["standard"]))
plotting.STYLES.add(JUDGE_ROBUST, plotting.Style("judge-robust", plotting.OBJECTIVE_COLORS["pgd"]))


def seed_models(profile) -> list[str]:
    """The extra training seeds (replicates 1, 2, …) of :data:`SEEDED_ARMS` under ``profile``."""
    return [n for arm in SEEDED_ARMS for n in seed_names(profile, arm)[1:]]


def load(profile, progress: bool = True) -> tuple[dict, dict]:
    """(models, judges): the compared catalogue models and the two judges, trained on first use."""
    prof = get_profile(profile)
    specs = train_zoo(prof, list(MODELS), progress=progress)
    return {n: zoo.load(s) for n, s in specs.items()}, load_judges(prof, progress)


def load_judges(profile, progress: bool = True) -> dict:
    """The two independent judges by name (:data:`JUDGE_STANDARD`, :data:`JUDGE_ROBUST`), trained on first use."""
    prof = get_profile(profile)
    return {n: zoo.get(s, prof, progress=progress) for n, s in judges_zoo(prof).items()}


#: The inversion's step on CIFAR-10, as in Boychev's released code (``pytorch_trainers_interpretability``,
#: ``RepVisualization.rep_inversion``: L2-normalised steps of length 1, ε = 1000, 10,000 iterations, loss
#: ‖rep(x) − rep(x₀)‖ / ‖rep(x₀)‖, whose per-image step direction equals ours). MNIST's step is the
#: profile's.
CIFAR10_INVERT_STEP = 1.0


def inversion_settings(profile, family: str = "mnist") -> InversionSettings:
    """Engstrom et al.'s inversion (ε = 1000) with the profile's step (on CIFAR-10 Boychev's step,
    :data:`CIFAR10_INVERT_STEP`), cap and stopping rule."""
    size = sizes(profile)
    step = size.invert_step if family == "mnist" else CIFAR10_INVERT_STEP
    return InversionSettings(eps=1000.0, step_size=step, steps=size.invert_steps, tol=size.invert_tol,
                             window=size.invert_window)


def targets(profile, family: str = "mnist") -> tuple[torch.Tensor, torch.Tensor]:
    """(x0, y0): ``n/10`` test images of every class of ``family``'s test split, ordered by class."""
    prof = get_profile(profile)
    ds = family_dataset(prof, family)
    per = max(1, sizes(prof).n // ds.num_classes)
    idx = first_per_class(ds.y_test, per, ds.num_classes)
    return ds.x_test[idx], ds.y_test[idx]


def seed_subset(profile) -> torch.Tensor:
    """Indices into :func:`targets` of the images the extra training-seed models invert: the first
    ``seed_n/10`` of each class."""
    size = sizes(profile)
    per, k = max(1, size.n // 10), max(1, min(size.n, size.seed_n) // 10)
    return torch.tensor([c * per + j for c in range(10) for j in range(k)])


def generation_seeds(profile, kind: str = "pooled") -> tuple[torch.Tensor, torch.Tensor]:
    """(seeds, classes): ``gen_per_class`` seeds per target class, fitted on the training split: ``pooled``, one
    Gaussian of every class (the seeds carry no class), or ``class``, a Gaussian per class (Santurkar et al. 2019)."""
    if kind not in SEED_KINDS:
        from ..errors import UnknownNameError
        raise UnknownNameError(f"Unknown generation seed {kind!r}. Valid: {', '.join(SEED_KINDS)}.")
    prof = get_profile(profile)
    ds = load_dataset(prof.mnist, prof.n_train, prof.n_test)
    classes = torch.arange(ds.num_classes).repeat_interleave(sizes(prof).gen_per_class)
    if kind == "pooled":
        return pooled_gaussian_seeds(ds.x_train, len(classes), seed=0), classes
    return ClassGaussian(ds.x_train, ds.y_train).sample(classes, seed=0), classes


@dataclass
class InversionImages:
    """Every image of the chapter, on the CPU.

    ``targets`` (n, C, H, W) and their ``labels``: n/10 test images per class, ordered by class; ``noise``: the
    near-grey seeds 0.5 + U[0, 0.05] of the inversion; ``subset``: the targets the extra seed models invert;
    ``seeds[kind]`` and ``classes``: the generation seeds of each kind (:data:`SEED_KINDS`) and their target
    classes. ``inverted[model]`` (the headline models on every target, the extra seed models on ``subset``),
    ``steps[model]`` and ``converged[model]`` (the step each inversion stopped at, whether before the cap),
    ``generated[kind][model]``, and ``curves[run][model]``, the mean loss at every step of run ``invert`` or
    ``generate-<kind>``.
    """

    targets: torch.Tensor
    labels: torch.Tensor
    noise: torch.Tensor
    subset: torch.Tensor
    seeds: dict
    classes: torch.Tensor
    inverted: dict
    steps: dict
    converged: dict
    generated: dict
    curves: dict


def _cache_path(prof: Profile):
    specs = all_specs(prof)
    settings = {"version": _VERSION, "profile": prof.name, "sizes": vars(sizes(prof)),
                "models": {n: specs[n].key() for n in (*MODELS, *seed_models(prof))},
                "generation": vars(GENERATION)}
    return paths.results_path("inversion", prof.name, settings, ".pt")


def images(profile, progress: bool = True) -> InversionImages:
    """Every inversion and generation of the chapter (see :class:`InversionImages`); cached."""
    prof = get_profile(profile)
    return paths.cached_record(_cache_path(prof), lambda: _images(prof, progress), InversionImages,
                               name="inversion.images")


def _images(prof: Profile, progress: bool) -> InversionImages:
    from tqdm import tqdm

    models, _ = load(prof, progress)
    models.update(load_models(prof, seed_models(prof), progress=progress))
    x0, y0 = targets(prof)
    noise = grey_seeds(x0.shape, seed=0)
    subset = seed_subset(prof)
    seeds = {}
    for kind in SEED_KINDS:
        seeds[kind], classes = generation_seeds(prof, kind)
    settings = inversion_settings(prof)
    inverted, steps, converged, generated = {}, {}, {}, {kind: {} for kind in SEED_KINDS}
    curves = {"invert": {}, **{f"generate-{kind}": {} for kind in SEED_KINDS}}
    for name in tqdm(list(models), desc="inversion and generation", disable=not progress):
        model = models[name]
        on = slice(None) if name in MODELS else subset
        curve, info = [], {}
        inverted[name] = invert(model, x0[on], noise[on], settings, fake_relu=True, history=curve, info=info).cpu()
        curves["invert"][name], steps[name], converged[name] = torch.tensor(curve), info["steps"], info["converged"]
        for kind in SEED_KINDS:
            if kind == "class" and name not in MODELS:
                continue  # the claims use the pooled seeds; Santurkar et al.'s are shown for the headline models
            curve = []
            generated[kind][name] = generate(model, classes, seeds[kind], GENERATION, history=curve).cpu()
            curves[f"generate-{kind}"][name] = torch.tensor(curve)
    return InversionImages(x0, y0, noise, subset, seeds, classes, inverted, steps, converged, generated, curves)


# ---------------------------------------------------------------------------------------------------
# CIFAR-10 (profiles with CIFAR-10, such as ``paper``): inversion only

def cifar10_models(profile) -> list[str]:
    """The CIFAR-10 models the chapter inverts, as on MNIST: standard, PGD-AT and TRADES (L∞, ε = 8/255), then
    Boychev's L2 PGD-AT at ε = 0.5 (FGSM-RS left out, as on MNIST)."""
    return [n for n in model_names(profile, "cifar10") if n != "cifar10-fgsm-rs"] + l2_names(profile, "cifar10")


def _cifar10_cache_path(prof: Profile):
    specs = all_specs(prof)
    settings = {"version": _VERSION, "profile": prof.name, "family": "cifar10", "sizes": vars(sizes(prof)),
                "models": {n: specs[n].key() for n in cifar10_models(prof)},
                "inversion": vars(inversion_settings(prof, "cifar10"))}
    return paths.results_path("inversion-cifar10", prof.name, settings, ".pt")


def cifar10_images(profile, progress: bool = True) -> InversionImages:
    """Representation inversion of the CIFAR-10 models (:func:`cifar10_models`) as on MNIST (fake ReLU, a near-grey
    seed, ε = 1000, the profile's cap and stopping rule) with Boychev's step on CIFAR-10
    (:data:`CIFAR10_INVERT_STEP`), of ``n/10`` test images per class. No generation: scoring it needs an
    independent judge, and the chapter's judges are MNIST LeNets (the standard CIFAR-10 model is one of the
    compared models, not an independent judge). An :class:`InversionImages` with empty generation fields; cached."""
    prof = get_profile(profile)
    family_dataset(prof, "cifar10")  # a profile without CIFAR-10: a clear error
    return paths.cached_record(_cifar10_cache_path(prof), lambda: _cifar10_images(prof, progress), InversionImages,
                               name="inversion.cifar10_images")


def _cifar10_images(prof: Profile, progress: bool) -> InversionImages:
    from tqdm import tqdm

    models = load_models(prof, cifar10_models(prof), progress=progress)
    x0, y0 = targets(prof, "cifar10")
    noise = grey_seeds(x0.shape, seed=0)
    settings = inversion_settings(prof, "cifar10")
    inverted, steps, converged, curves = {}, {}, {}, {"invert": {}}
    for name in tqdm(list(models), desc="CIFAR-10 inversion", disable=not progress):
        curve, info = [], {}
        inverted[name] = invert(models[name], x0, noise, settings, fake_relu=True, history=curve, info=info).cpu()
        curves["invert"][name], steps[name], converged[name] = torch.tensor(curve), info["steps"], info["converged"]
    return InversionImages(x0, y0, noise, torch.arange(len(x0)), {}, torch.zeros(0, dtype=torch.long), inverted,
                           steps, converged, {}, curves)


def cifar10_section(profile, progress: bool = True):
    """The inversions of :func:`cifar10_images` as one table, a row per model: SSIM and PSNR to the target (mean
    [95 % interval over the images]), the final relative distance in the model's own representation, and how many
    inversions the stopping rule ended before the cap; or, on a profile without CIFAR-10, a sentence saying so."""
    import pandas as pd
    prof = get_profile(profile)
    if not has_family(prof, "cifar10"):
        return no_cifar10(prof)
    res = cifar10_images(prof, progress)
    rows = {}
    for name in cifar10_models(prof):
        ssim, psnr = ssim_psnr(res.inverted[name], res.targets)
        rows[plotting.model_label(name)] = {
            "SSIM": mean_ci(ssim).format(".3f"), "PSNR (dB)": mean_ci(psnr).format(".2f"),
            "‖r(x) − r(x₀)‖ / ‖r(x₀)‖ at the end": f"{float(res.curves['invert'][name][-1]):.3f}",
            "stopped before the cap": f"{int(res.converged[name].sum())} of {len(res.targets)}"}
    return pd.DataFrame(rows).T.rename_axis("model").style.set_caption(
        f"CIFAR-10 models: inversion from a near-grey seed (fake ReLU, L2 ε = 1000, step "
        f"{CIFAR10_INVERT_STEP:g}, at most {sizes(prof).invert_steps:,} steps) of {len(res.targets)} test images. "
        f"Generation is not scored on CIFAR-10: the chapter's independent judges read MNIST digits.")


# ---------------------------------------------------------------------------------------------------
# Figures

def inversion_figures(results: InversionImages) -> dict:
    """One row per class (the first target of each): the grid of inversions from the near-grey seed, and the loss
    curves. Keyed by figure name."""
    per = len(results.targets) // 10
    rows = slice(0, None, per)
    cols = {"target": results.targets[rows], "seed": results.noise[rows]}
    cols.update({n: results.inverted[n][rows] for n in MODELS})
    return {
        "fig_invert_noise": plotting.image_grid(
            cols, title="Inversion from a near-grey seed (0.5 + U[0, 0.05]), fake ReLU",
            row_labels=results.labels[rows].tolist(), ylabel="target image (label)"),
        "fig_invert_curves": plotting.loss_curves(
            {n: results.curves["invert"][n] for n in MODELS},
            ylabel="‖r(x) − r(x₀)‖ / ‖r(x₀)‖ (mean of best so far)",
            title="Inversion: convergence (each curve ends when its last image stops)"),
    }


def final_distances(results: InversionImages) -> dict[str, float]:
    """The mean relative representation distance at the end of the inversion, per headline model."""
    return {n: float(results.curves["invert"][n][-1]) for n in MODELS}


def convergence(results: InversionImages, profile) -> dict[str, dict]:
    """Per headline model: how many of its inversions the stopping rule stopped before the cap (``converged``, of
    ``n``), the median step at which those stopped (``median step``, NaN if none did), and the last step any
    inversion ran to."""
    cap = sizes(profile).invert_steps
    out = {}
    for n in MODELS:
        st, stopped = results.steps[n].double(), results.converged[n].bool()
        out[n] = {"converged": int(stopped.sum()), "n": len(st),
                  "median step": float(st[stopped].median()) if stopped.any() else float("nan"),
                  "last step": int(st.max()), "cap": cap}
    return out


def convergence_frame(results: InversionImages, profile):
    """:func:`convergence` as a DataFrame indexed by zoo name (for glue; :func:`convergence_table` shows it)."""
    import pandas as pd
    return pd.DataFrame(convergence(results, profile)).T


def convergence_table(results: InversionImages, profile):
    """:func:`convergence` as a table, one row per model."""
    import pandas as pd
    rows = [{"model": plotting.model_label(n), **v} for n, v in convergence(results, profile).items()]
    return pd.DataFrame(rows).set_index("model").style.format(precision=0, na_rep="–").set_caption(
        "Inversions the stopping rule ended before the cap (converged, of n), the median step at which those "
        "stopped (– if none did), and the last step any inversion ran to")


def generation_figures(profile, results: InversionImages) -> dict:
    """One grid per seed kind: one seed per class, and what every model draws from it. Keyed by figure name."""
    k = len(results.classes) // 10
    first = slice(0, None, k)
    figures = {}
    for kind, title in (("pooled", "from seeds of one Gaussian of every class"),
                        ("class", "from class-conditional seeds (Santurkar et al.)")):
        cols = {"seed": results.seeds[kind][first]}
        cols.update({n: results.generated[kind][n][first] for n in MODELS})
        figures[f"fig_generate_{kind}"] = plotting.image_grid(
            cols, title=f"Class generation {title} (L2, ε = {GENERATION.eps:g}, {GENERATION.steps} steps)",
            row_labels=results.classes[first].tolist(), ylabel="target class")
    return figures


# ---------------------------------------------------------------------------------------------------
# Scores

def _real_features(profile, judge) -> torch.Tensor:
    prof = get_profile(profile)
    ds = load_dataset(prof.mnist, prof.n_train, prof.n_test)
    return judge_features(judge, ds.x_test)


def per_image_scores(results: InversionImages, judges: dict, models=MODELS) -> dict[str, dict[str, torch.Tensor]]:
    """Per-image scores per row (:data:`SEEDS_ROW`, the generation seeds alone as a baseline, then each model):
    judge recognition of generations from each seed kind and, for the inversions, SSIM, PSNR and the distance in
    the standard judge's representation."""
    js, jr = judges[JUDGE_STANDARD], judges[JUDGE_ROBUST]
    rows = {}
    for name in (SEEDS_ROW, *models):
        row = {}
        for kind in SEED_KINDS:
            if name != SEEDS_ROW and name not in results.generated[kind]:
                continue
            gen = results.seeds[kind] if name == SEEDS_ROW else results.generated[kind][name]
            tag = "generation" if kind == "pooled" else "generation (class seeds)"
            row[f"{tag}: standard judge"] = recognised(js, gen, results.classes)
            row[f"{tag}: robust judge"] = recognised(jr, gen, results.classes)
        if name != SEEDS_ROW:
            inv = results.inverted[name]
            ref = results.targets if len(inv) == len(results.targets) else results.targets[results.subset]
            row["inversion from noise: SSIM"], row["inversion from noise: PSNR (dB)"] = ssim_psnr(inv, ref)
            with torch.no_grad():
                ref_rep = js.eval().representation(to_model(ref, js))
                row["inversion from noise: judge feature distance"] = representation_distance(js, inv, ref_rep).cpu()
        rows[name] = row
    return rows


#: The recognition columns (shares of 0/1 values): Wilson intervals.
def _is_share(col: str) -> bool:
    return col.startswith("generation")


def score_table(results: InversionImages, judges: dict):
    """Mean and 95 % interval of every score, one row per model (``seeds``: the Gaussian seeds unchanged): the
    Wilson interval for the shares recognised, the normal interval for the rest. Columns ``<score>``,
    ``<score> ±`` (half-width; for a Wilson interval, half its width, which is not centred on the share),
    ``<score> low``/``high`` and ``<score> non-finite`` (values left out of the mean, for example the infinite PSNR
    of an exact copy)."""
    import pandas as pd
    table = []
    for name, row in per_image_scores(results, judges).items():
        entry = {"model": name}
        for score, values in row.items():
            iv = proportion_ci(float(values.mean()), len(values)) if _is_share(score) else mean_ci(values)
            entry[score], entry[f"{score} ±"], entry[f"{score} non-finite"] = iv.mean, iv.half_width, iv.nonfinite
            entry[f"{score} low"], entry[f"{score} high"] = iv.low, iv.high
        table.append(entry)
    return pd.DataFrame(table).set_index("model")


def display_scores(table, results: InversionImages):
    """:func:`score_table` as ``mean [low, high]`` strings, one column per model, captioned, for the book."""
    import pandas as pd
    cols = [c for c in table.columns if f"{c} low" in table.columns]
    shown = pd.DataFrame(index=table.index)
    for c in cols:
        shown[c] = ["–" if pd.isna(m) else f"{m:.3f} [{lo:.3f}, {hi:.3f}]"
                    for m, lo, hi in zip(table[c], table[f"{c} low"], table[f"{c} high"])]
    shown.index = [plotting.model_label(n) if n != SEEDS_ROW else n for n in shown.index]
    return shown.T.style.set_caption(
        f"Mean and 95 % interval (Wilson for the shares recognised): {len(results.classes)} generated and "
        f"{len(results.targets)} inverted images per model.")


def judge_accuracy(profile, judges: dict) -> dict[str, float]:
    """Each judge's clean accuracy on the profile's test split (how far to trust its verdicts)."""
    prof = get_profile(profile)
    ds = load_dataset(prof.mnist, prof.n_train, prof.n_test)
    return {n: accuracy(j, ds.x_test, ds.y_test) for n, j in judges.items()}


def eps_table(profile, table):
    """Rows of :func:`score_table` for the compared models, with their label, objective and training ε."""
    specs = all_specs(get_profile(profile))
    return describe({n: specs[n] for n in MODELS}).join(table)


def judge_figure(profile, table):
    """The share of generated images (pooled seeds) each judge recognises, against the generating model's training
    ε (L∞ models), the L2 models as dashed lines, and the seeds' own score as a dotted line."""
    import matplotlib.pyplot as plt
    eps = eps_table(profile, table)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    for ax, col, label in zip(axes, ("generation: standard judge", "generation: robust judge"),
                              ("recognised by the standard judge", "recognised by the robust judge")):
        linf = eps.drop(index=list(L2_MODELS))
        plotting.metric_vs_eps(linf, col, f"{col} low", f"{col} high", ylabel=f"share {label}", ax=ax)
        for n in L2_MODELS:
            ax.axhline(eps.loc[n, col], color=plotting.model_color(n), linestyle="--",
                       label=f"{plotting.model_label(n)} (L2 ε, not on the axis)")
        ax.axhline(table.loc[SEEDS_ROW, col], color="#999999", linestyle=":", label="seeds alone")
        ax.set_ylim(0, 1.05)
        ax.legend(loc="best", fontsize=7)
    return fig


def recognition_tests(results: InversionImages, judges: dict, judge: str = JUDGE_STANDARD) -> dict:
    """Per robust headline model: McNemar's exact test of its generations against the standard model's on the same
    pooled seeds and targets (recognised by ``judge`` or not): {model: :class:`~rilib.lenses.stats.McNemar`}."""
    j = judges[judge]
    std = recognised(j, results.generated["pooled"][STANDARD], results.classes)
    return {n: mcnemar(recognised(j, results.generated["pooled"][n], results.classes).bool(), std.bool())
            for n in MODELS if n != STANDARD}


def recognition_table(results: InversionImages, judges: dict):
    """The share of generations (pooled seeds) the standard judge recognises per model, with its Wilson interval,
    and McNemar's paired test against the standard model."""
    import pandas as pd
    js = judges[JUDGE_STANDARD]
    tests = recognition_tests(results, judges)
    rows = []
    for n in (SEEDS_ROW, *MODELS):
        x = results.seeds["pooled"] if n == SEEDS_ROW else results.generated["pooled"][n]
        r = recognised(js, x, results.classes)
        iv = proportion_ci(float(r.mean()), len(r))
        t = tests.get(n)
        rows.append({"model": n if n == SEEDS_ROW else plotting.model_label(n),
                     "recognised (Wilson 95 %)": f"{iv.mean:.3f} [{iv.low:.3f}, {iv.high:.3f}]",
                     "− standard (McNemar)": t.format() if t else "–"})
    return pd.DataFrame(rows).set_index("model").style.set_caption(
        "Generations from seeds of one Gaussian of every class, recognised by the standard judge")


def frechet(results: InversionImages, judges: dict, profile, resamples: int = 200) -> dict[str, Interval]:
    """The Fréchet distance between Gaussians fitted to the standard judge's penultimate features of each model's
    generations (pooled seeds) and of the real test images of every class, with a 95 % bootstrap interval over the
    generated images; the row :data:`SEEDS_ROW` is the seeds' own distance (the reference). Boychev (2023) reports
    the same quantity in an Inception network's features (FID)."""
    js = judges[JUDGE_STANDARD]
    real = FrechetReference(_real_features(profile, js))
    out = {}
    for n in (SEEDS_ROW, *(m for m in MODELS if m in results.generated["pooled"])):
        x = results.seeds["pooled"] if n == SEEDS_ROW else results.generated["pooled"][n]
        out[n] = bootstrap_ci(judge_features(js, x), real.distance, resamples=resamples)
    return out


def _derived_path(prof: Profile, what: str):
    """Where a value derived from the chapter's cached images and its judges is kept (JSON): keyed by the images'
    cache, the judges' specs and ``what``."""
    settings = {"version": 1, "what": what, "images": _cache_path(prof).name,
                "judges": {n: s.key() for n, s in judges_zoo(prof).items()}}
    return paths.results_path("inversion", prof.name, settings, ".json")


def frechet_intervals(profile) -> dict[str, Interval]:
    """:func:`frechet` of the chapter's cached images under ``profile``; cached on disk, so the page, its claims and
    the synthesis page compute it once."""
    from dataclasses import asdict
    prof = get_profile(profile)

    def compute():
        _, judges = load(prof, progress=False)
        return frechet(images(prof, progress=False), judges, prof)

    return paths.cached(_derived_path(prof, "frechet"), compute,
                        load=lambda p: {k: Interval(**v) for k, v in paths.read_json(p).items()},
                        dump=lambda d: json.dumps({k: asdict(v) for k, v in d.items()}).encode(),
                        name="inversion.frechet")


def frechet_figure(profile, intervals: dict):
    """Fréchet distance to real test digits (standard judge's features) per model, with 95 % bootstrap intervals
    (percentile intervals of a statistic biased upwards in small samples: they may lie above the estimate), and the
    seeds' distance as a dotted line."""
    import matplotlib.pyplot as plt
    plotting.use_style()
    fig, ax = plt.subplots(figsize=(7.0, 3.4))
    names = [n for n in MODELS if n in intervals]
    for i, n in enumerate(names):
        iv = intervals[n]
        # The bootstrap interval of a biased statistic need not contain the estimate: drawn from its bounds.
        ax.vlines([i], [iv.low], [iv.high], color=plotting.model_color(n), lw=1.5)
        ax.plot([i], [iv.mean], marker="o", color=plotting.model_color(n))
    ax.axhline(intervals[SEEDS_ROW].mean, color="#999999", linestyle=":", label="seeds alone")
    ax.set_xticks(range(len(names)), [plotting.model_label(n) for n in names], rotation=30, ha="right")
    ax.set_ylabel("Fréchet distance (judge features², unitless)")
    ax.set_title("Generations vs real test digits: Fréchet distance in the standard judge's features")
    ax.legend(loc="best")
    return fig


# ---------------------------------------------------------------------------------------------------
# Over training seeds (the claims' test)

def seed_scores(profile, progress: bool = False) -> dict:
    """Per seeded arm, the list over its training seeds of the mean score of each measure: ``recognised`` (share of
    generations from the pooled seeds the standard judge recognises), ``frechet`` (their Fréchet distance to real
    test images) and the inversion scores on the targets every seed model inverts (``ssim``, ``psnr``,
    ``feature distance``), with ``psnr non-finite``, the count of identical images (infinite PSNR) each seed's mean
    left out. Replicate 0 is the headline model restricted to those targets. Cached on disk."""
    prof = get_profile(profile)
    return paths.cached(_derived_path(prof, "seed scores"), lambda: _seed_scores(prof, progress),
                        load=paths.read_json, dump=lambda d: json.dumps(d).encode(), name="inversion.seed_scores")


def _seed_scores(prof: Profile, progress: bool) -> dict:
    results = images(prof, progress)
    _, judges = load(prof, progress)
    js = judges[JUDGE_STANDARD]
    real = FrechetReference(_real_features(prof, js))
    ref = results.targets[results.subset]
    with torch.no_grad():
        ref_rep = js.eval().representation(to_model(ref, js))
    out = {}
    for arm in SEEDED_ARMS:
        rows = {"recognised": [], "frechet": [], "ssim": [], "psnr": [], "psnr non-finite": [], "feature distance": []}
        for name in seed_names(prof, arm):
            gen = results.generated["pooled"][name]
            rows["recognised"].append(float(recognised(js, gen, results.classes).mean()))
            rows["frechet"].append(real.distance(judge_features(js, gen)))
            inv = results.inverted[name]
            inv = inv[results.subset] if len(inv) == len(results.targets) else inv
            ssim, psnr = ssim_psnr(inv, ref)
            rows["ssim"].append(float(ssim.mean()))
            finite = torch.isfinite(psnr)
            rows["psnr"].append(float(psnr[finite].mean()))
            rows["psnr non-finite"].append(int((~finite).sum()))
            with torch.no_grad():
                rows["feature distance"].append(float(representation_distance(js, inv, ref_rep).mean()))
        out[arm] = rows
    return out


def seed_differences(scores: dict, measure: str) -> dict[str, tuple[list, Interval]]:
    """Per robust seeded arm: the differences robust − standard of ``measure``, replicate by replicate, and their
    Student-t interval over seeds, which counts the non-finite per-image values the seeds' means left out."""
    std = scores[STANDARD][measure]
    left_out = f"{measure} non-finite"
    out = {}
    for arm in SEEDED_ARMS[1:]:
        diffs = [a - b for a, b in zip(scores[arm][measure], std)]
        iv = seed_ci(diffs)
        nonfinite = sum(scores[arm].get(left_out, ())) + sum(scores[STANDARD].get(left_out, ()))
        out[arm] = (diffs, replace(iv, nonfinite=iv.nonfinite + nonfinite))
    return out


def seed_table(profile, scores: dict | None = None):
    """Each measure's robust − standard difference over training seeds, per seeded robust arm: the Student-t 95 %
    interval (3 seeds: t = 4.30)."""
    import pandas as pd
    scores = seed_scores(profile) if scores is None else scores
    rows = []
    for measure, label in MEASURES.items():
        for arm, (diffs, iv) in seed_differences(scores, measure).items():
            rows.append({"measure": label, "arm": plotting.model_label(arm),
                         "per seed": ", ".join(f"{d:+.3f}" for d in diffs), "mean [95 % over seeds]": iv.format()})
    return pd.DataFrame(rows).set_index(["measure", "arm"]).style.set_caption(
        "Robust − standard, training seed by training seed (the claims' test)")


#: The measures of :func:`seed_scores`, with their labels.
MEASURES = {"recognised": "share recognised (standard judge)", "frechet": "Fréchet distance to test digits",
            "ssim": "inversion SSIM", "psnr": "inversion PSNR (dB)",
            "feature distance": "inversion judge feature distance"}


# ---------------------------------------------------------------------------------------------------
# Claims

@claim("ch4.robust-generations-recognised", chapter="4",
       statement="Images generated from robust models, from seeds that carry no class, are recognised as their "
                 "target class by an independent standard judge more often than images generated from the "
                 "standard model.",
       papers=("boychev2023", "santurkar2019"), differs=protocol_differs)
def _claim_generation(profile: Profile) -> Measurement:
    prof = get_profile(profile)
    results = images(prof)
    _, judges = load(prof)
    t = score_table(results, judges)
    col = "generation: standard judge"
    scores = seed_scores(prof)
    measured = {plotting.model_label(n): f"{t.loc[n, col]:.3f} [{t.loc[n, f'{col} low']:.3f}, "
                                         f"{t.loc[n, f'{col} high']:.3f}]" for n in MODELS}
    measured["seeds alone"] = f"{t.loc[SEEDS_ROW, col]:.3f}"
    failed = []
    if prof.seeds > 1:
        for arm, (diffs, iv) in seed_differences(scores, "recognised").items():
            measured[f"{plotting.model_label(arm)} − standard over seeds"] = iv.format()
            failed.append(seed_verdict(plotting.model_label(arm), diffs, iv, above=True))
        test = (f"over {prof.seeds} training seeds of each seeded arm, the Student-t 95 % interval of robust − "
                f"standard share recognised wholly above 0")
    tests = recognition_tests(results, judges)
    per_image = "; ".join(f"{plotting.model_label(n)} {m.format()}" for n, m in tests.items())
    if prof.seeds <= 1:
        failed = [f"{plotting.model_label(n)}: McNemar p = {m.p:.2g}, difference {m.difference:+.3f}"
                  for n, m in tests.items() if n in ROBUST and not (m.difference > 0 and m.p < 0.05)]
        test = "one training seed: McNemar's exact test against the standard model, p < 0.05 and a positive difference"
    failed = [f for f in failed if f]
    n = len(results.classes)
    return Measurement(measured, f"share of {n} images generated per model from seeds of one Gaussian of every class "
                       f"labelled as their target by the standard LeNet judge (Wilson 95 %); {test}",
                       not failed, join_notes("; ".join(failed),
                                              f"per image, headline models, McNemar on the same seeds: {per_image}; "
                                              f"L2 models shown, one training seed"))


@claim("ch4.robust-generations-closer-to-data", chapter="4",
       statement="Images generated from robust models lie closer to real images in Fréchet distance (the FID's "
                 "measure) than images generated from the standard model.",
       papers=("boychev2023",), differs=protocol_differs)
def _claim_frechet(profile: Profile) -> Measurement:
    prof = get_profile(profile)
    results = images(prof)
    fd = frechet_intervals(prof)
    measured = {plotting.model_label(n) if n != SEEDS_ROW else "seeds alone": fd[n].format(".1f")
                for n in (SEEDS_ROW, *MODELS)}
    failed = []
    if prof.seeds > 1:
        for arm, (diffs, iv) in seed_differences(seed_scores(prof), "frechet").items():
            measured[f"{plotting.model_label(arm)} − standard over seeds"] = iv.format("+.1f")
            failed.append(seed_verdict(plotting.model_label(arm), diffs, iv, above=False))
        test = (f"over {prof.seeds} training seeds of each seeded arm, the Student-t 95 % interval of robust − "
                f"standard Fréchet distance wholly below 0")
    else:
        failed = [plotting.model_label(n) for n in ROBUST if not fd[n].high < fd[STANDARD].low]
        test = "one training seed: each robust model's bootstrap interval wholly below the standard model's"
    failed = [f for f in failed if f]
    return Measurement(measured, f"Fréchet distance between the standard LeNet judge's penultimate features of "
                       f"{len(results.classes)} generations per model (pooled seeds) and of the test digits of every "
                       f"class, 95 % bootstrap interval over the generations (a percentile interval of a statistic "
                       f"biased upwards in small samples, so it may lie above the estimate); {test}",
                       not failed, join_notes("; ".join(failed), "L2 models shown, one training seed"))


@claim("ch4.robust-inversions-closer", chapter="4",
       statement="Robust models' representation inversions are closer to their targets than the standard model's, "
                 "in pixels (SSIM, PSNR) and in an independent judge's features.",
       papers=("boychev2023", "engstrom2019"), differs=protocol_differs)
def _claim_inversion(profile: Profile) -> Measurement:
    prof = get_profile(profile)
    results = images(prof)
    _, judges = load(prof)
    rows = per_image_scores(results, judges)
    checks = {"SSIM": ("ssim", True), "PSNR (dB)": ("psnr", True), "judge feature distance": ("feature distance",
                                                                                               False)}
    measured, failed, per_image = {}, [], []
    for score, (measure, higher) in checks.items():
        col = f"inversion from noise: {score}"
        means = {n: mean_ci(rows[n][col]) for n in MODELS}
        measured[score] = "; ".join(f"{plotting.model_label(n)} {iv.mean:.3f}"
                                    + (f" ({iv.nonfinite} non-finite left out)" if iv.nonfinite else "")
                                    for n, iv in means.items())
        for n in MODELS[1:]:
            iv = paired_ci(rows[n][col], rows[STANDARD][col])
            per_image.append(f"{plotting.model_label(n)} {score} {iv.format('+.3f')}")
        if prof.seeds > 1:
            for arm, (diffs, iv) in seed_differences(seed_scores(prof), measure).items():
                measured[f"{plotting.model_label(arm)} − standard, {score}, over seeds"] = iv.format()
                failed.append(seed_verdict(f"{plotting.model_label(arm)} ({score})", diffs, iv, above=higher))
        else:
            for n in ROBUST:
                iv = paired_ci(rows[n][col], rows[STANDARD][col])
                if not (iv.low > 0 if higher else iv.high < 0):
                    failed.append(f"{plotting.model_label(n)} ({score})")
    failed = [f for f in failed if f]
    size = sizes(prof)
    test = (f"over {prof.seeds} training seeds of each seeded arm ({size.seed_n} targets per seed model), the "
            f"Student-t 95 % interval of robust − standard wholly on the better side of 0" if prof.seeds > 1 else
            "one training seed: the paired per-image interval wholly on the better side of 0")
    return Measurement(measured, f"inversions from near-grey seeds (fake ReLU, ε = 1000, stopped when the loss "
                       f"falls by ≤ {size.invert_tol:g} over {size.invert_window} steps, cap {size.invert_steps}): "
                       f"SSIM and PSNR higher, judge feature distance lower; {test}", not failed,
                       join_notes("; ".join(failed), "per image, headline models, robust − standard (paired): "
                                  + "; ".join(per_image)))


def recipe_table(profile):
    """The chapter's recipe under ``profile`` against Engstrom et al.'s, Santurkar et al.'s and Boychev's, with why
    each difference exists."""
    from ..book.display import recipe_table as table
    prof = get_profile(profile)
    size = sizes(prof)
    spec = all_specs(prof)["mnist-pgd-0.3"]
    ds = load_dataset(prof.mnist, prof.n_train, prof.n_test)
    return table([
        ("dataset", f"{ds.description}: {len(ds.y_train):,} training, {len(ds.y_test):,} test digits",
         "Engstrom, Santurkar: ImageNet, CIFAR-10 (and restricted ImageNet); Boychev: CIFAR-10",
         "offline on 2 cores; MNIST's digits are what the book's models classify"),
        ("architecture", f"{spec.arch} (four 3×3 convolutions, FC-128); judges: LeNet-5",
         "ResNet-50 (Engstrom, Santurkar); Boychev: ResNet-18 on CIFAR-10, ResNet-50 on Small ImageNet",
         "a network small enough to train many times"),
        ("robust training", "PGD-7 AT, L∞ ε = 0.1, 0.2, 0.3, TRADES; L2 ε = 1.5, 2.0; AdamW",
         "L2 PGD-AT (ImageNet ε = 3, CIFAR-10 ε = 0.5 to 1); SGD",
         "the book's zoo is L∞ first; the L2 models match the papers' norm at MNIST's usual L2 budgets"),
        ("inversion", f"fake ReLU, near-grey seed 0.5 + U[0, 0.05], L2 ε = 1000, step {size.invert_step:g}, until "
                      f"the loss falls by ≤ {size.invert_tol:g} over {size.invert_window} steps, cap "
                      f"{size.invert_steps:,}",
         "fake ReLU, seed of noise or another image, L2 ε = 1000, step 1, 10,000 steps",
         "2 cores: a lower cap, and a stopping rule that ends each image when more steps change little; the step "
         "is scaled to a 28×28 digit (norm ≈ 9)"),
        ("generation", f"L2 ε = {GENERATION.eps:g}, step {GENERATION.step_size:g}, {GENERATION.steps} steps, from "
                       f"seeds of one Gaussian of every class (and class-conditional ones)",
         "Santurkar: ε = 30 on CIFAR-10 (ε = 40 on ImageNet), step 0.5, 60 steps, class-conditional seeds",
         "ε scaled by √(784/3072); class-free seeds so that the seed alone scores chance"),
        ("judge and metric", "independent LeNet judges: share recognised (Wilson, McNemar) and Fréchet distance "
                             "in the standard judge's features; SSIM, PSNR, judge feature distance",
         "FID with Inception-v3 (Boychev: 152.5 standard vs 86.4 robust); Engstrom, Santurkar: images shown",
         "no download here, and Inception features are learned on photographs, not digits"),
        ("intervals", f"Student-t over {prof.seeds} training seeds per arm ({size.seed_n} inverted targets per extra "
                      f"seed model); per image, the scores and McNemar tables and each claim's note",
         "none reported", "a claim about a training procedure needs an interval over seeds"),
    ], prof)


__all__ = ["InversionSizes", "SIZES", "sizes", "judges_zoo", "load", "load_judges", "inversion_settings", "targets",
           "seed_subset", "seed_models", "generation_seeds", "InversionImages", "images", "inversion_figures",
           "final_distances", "convergence", "convergence_table", "generation_figures", "per_image_scores",
           "score_table", "display_scores", "judge_accuracy", "eps_table", "judge_figure", "recognition_tests",
           "recognition_table", "frechet", "frechet_intervals", "convergence_frame", "frechet_figure", "seed_scores", "seed_differences",
           "seed_table", "recipe_table", "exercise_settings", "MODELS", "SEEDED_ARMS", "SEED_KINDS", "JUDGE_STANDARD",
           "JUDGE_ROBUST", "GENERATION", "cifar10_models", "cifar10_images", "cifar10_section",
           "CIFAR10_INVERT_STEP"]


# ---------------------------------------------------------------------------------------------------
# The synthesis page's ε dashboard

def _intervals(profile: Profile, columns: dict) -> dict:
    """``{label: {model: interval}}`` for ``columns`` = {column: (label, measure of :func:`seed_scores` or None)}:
    for the seeded arms (:data:`SEEDED_ARMS`) of a column with a seed measure, the Student-t interval over training
    seeds; otherwise the interval :func:`score_table` reports over the images (Wilson for shares)."""
    prof = get_profile(profile)
    _, judges = load(prof)
    scores = per_image_scores(images(prof), judges)
    seeds = seed_scores(prof) if prof.seeds > 1 else None

    def iv(values, c):
        return proportion_ci(float(values.mean()), len(values)) if _is_share(c) else mean_ci(values)
    return {label: {m: over_seeds(seeds[m][measure] if seeds is not None and measure and m in SEEDED_ARMS else None,
                                  lambda m=m, c=c: iv(scores[m][c], c)) for m in MODELS}
            for c, (label, measure) in columns.items()}


@panel("inversion", title="Representation inversion", chapter="4",
       ylabel="judge-feature distance to target")
def _panel_inversion(profile: Profile) -> dict:
    """Distance of the inversions (from the near-grey seed) to their targets in the standard LeNet judge's
    representation: lower is closer. For the seeded arms, the interval over training seeds (on the targets every
    seed model inverts); otherwise the mean and 95 % interval over the targets."""
    return _intervals(profile, {"inversion from noise: judge feature distance": ("from a near-grey seed",
                                                                                  "feature distance")})


@panel("generation", title="Class generation", chapter="4", ylabel="share recognised as target class")
def _panel_generation(profile: Profile) -> dict:
    """Share of the generated images (seeds of one Gaussian of every class) each LeNet judge labels as their target
    class: for the seeded arms the standard judge's share with its Student-t interval over training seeds, otherwise
    (and for the robust judge, which scores the seed-0 models only) with the Wilson 95 % interval."""
    return _intervals(profile, {"generation: standard judge": ("standard judge", "recognised"),
                                "generation: robust judge": ("robust judge", None)})


@panel("frechet", title="Generation: Fréchet distance", chapter="4",
       ylabel="Fréchet distance to test digits (judge features)")
def _panel_frechet(profile: Profile) -> dict:
    """Fréchet distance between the standard judge's features of the generations (pooled seeds) and of the real
    test digits: for the seeded arms the Student-t interval over training seeds, otherwise the 95 % bootstrap interval
    over the generations. Lower is closer to real digits."""
    prof = get_profile(profile)
    fd = frechet_intervals(prof)
    seeds = seed_scores(prof) if prof.seeds > 1 else None
    return {"generated vs test digits": {m: over_seeds(seeds[m]["frechet"] if seeds and m in SEEDED_ARMS else None,
                                                       lambda m=m: fd[m]) for m in MODELS}}


# ---------------------------------------------------------------------------------------------------
# Exercises (the classroom edition: rilib.book.exercises)

#: The models of the exercises: the standard model and PGD-AT at ε = 0.3.
EXERCISE_MODELS = (STANDARD, "mnist-pgd-0.3")
#: ``ex-ch4-fake-relu`` inverts the first ``FAKE_RELU_N`` test images of the profile, for at most
#: ``FAKE_RELU_STEPS`` steps.
FAKE_RELU_N, FAKE_RELU_STEPS = 10, 300


def exercise_settings(profile) -> InversionSettings:
    """The chapter's inversion settings with the cap lowered to :data:`FAKE_RELU_STEPS` (the exercise's budget)."""
    from dataclasses import replace
    settings = inversion_settings(profile)
    return replace(settings, steps=min(settings.steps, FAKE_RELU_STEPS))


@exercise("ex-ch4-fake-relu", chapter="4", title="Inverting through dead units", difficulty="medium", minutes=20,
          rtol=0.03, atol=0.001,
          expected=f"a dict {{model: {{'relu': {{'distance': …, 'ssim': …}}, 'fake relu': {{…}}}}}} for "
                   f"{' and '.join(EXERCISE_MODELS)}: the mean over the first {FAKE_RELU_N} test images of the "
                   f"relative representation distance (in the model's own penultimate layer, unitless) and of the "
                   f"SSIM to the target of their inversions from uniform noise (a generator seeded with 0), with "
                   f"the exercise's inversion settings (ch4.exercise_settings), with and without the fake ReLU")
def _ex_fake_relu(prof: Profile) -> dict:
    ds = load_dataset(prof.mnist, prof.n_train, prof.n_test)
    x0 = ds.x_test[:FAKE_RELU_N]
    noise = torch.rand(x0.shape, generator=torch.Generator().manual_seed(0))
    settings = exercise_settings(prof)
    models = load_models(prof, EXERCISE_MODELS, progress=False)
    out = {}
    for name in EXERCISE_MODELS:
        model = models[name]
        with torch.no_grad():
            target = model.representation(to_model(x0, model))
        out[name] = {}
        for key, fake in (("relu", False), ("fake relu", True)):
            x = invert(model, x0, noise, settings, fake_relu=fake)
            with torch.no_grad():
                distance = float(representation_distance(model, x, target).mean())
            out[name][key] = {"distance": distance, "ssim": float(ssim_psnr(x, x0)[0].mean())}
    return out


@exercise("ex-ch4-judge", chapter="4", title="Who judges a generated image", difficulty="easy", minutes=10,
          atol=0.015,
          expected=f"a dict {{model: {{'self': …, 'standard judge': …, 'robust judge': …}}}} for "
                   f"{' and '.join(EXERCISE_MODELS)}: the share (a fraction in [0, 1]) of the images the model "
                   f"generates from the chapter's Gaussian seeds, with the chapter's generation settings, that the "
                   f"generating model itself and each LeNet judge label as their target class")
def _ex_judge(prof: Profile) -> dict:
    models = load_models(prof, EXERCISE_MODELS, progress=False)
    judges = load_judges(prof, progress=False)
    seeds, classes = generation_seeds(prof)
    out = {}
    for name in EXERCISE_MODELS:
        x = generate(models[name], classes, seeds, GENERATION)
        out[name] = {"self": float(recognised(models[name], x, classes).mean()),
                     "standard judge": float(recognised(judges[JUDGE_STANDARD], x, classes).mean()),
                     "robust judge": float(recognised(judges[JUDGE_ROBUST], x, classes).mean())}
    return out


prose_exercise("ex-ch4-eps", chapter="4", title="The generation budget", difficulty="medium", minutes=20)
