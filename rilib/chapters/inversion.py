"""Chapter 4, "Representation inversion and class-specific generation" (``notebooks/04_inversion.md``), after
Engstrom et al. (2019), Santurkar et al. (2019) and Boychev (2023).

Inverts the representations of the catalogue's standard and robust models (PGD-AT at each ε, TRADES) and draws
class-specific images with :mod:`rilib.lenses.inversion`, then scores them with judges that need no download:

- two **independent judges**, LeNet-5 (another architecture, another seed, the same training split), one trained
  standard and one with PGD-AT at ε = 0.3 (zoo group ``inversion-judges``): the share of generated images each
  labels as their target class, where Boychev (2023) reports an FID computed with an Inception network;
- for inversions: SSIM and PSNR to the target image (scikit-image) and the distance between the inversion and the
  target in the standard judge's representation.

:func:`images` computes every inversion and generation once per profile and zoo and caches them atomically
under ``RILIB_CACHE/results`` as :class:`InversionImages`; the scores, figures and claims read that cache.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from .. import paths, zoo
from ..book import plotting
from ..book.dashboard import panel
from ..book.exercises import exercise, prose_exercise
from ..book.ledger import Measurement, claim, join_notes, nonfinite_note
from ..data import first_per_class, load_dataset
from ..evaluate import accuracy
from ..lenses.inversion import (ClassGaussian, GenerationSettings, InversionSettings, generate, invert, recognised,
                                representation_distance, ssim_psnr)
from ..lenses.stats import mean_ci
from ..models import to_model
from ..profiles import Profile, get_profile
from ..registry import Registry
from ..zoo import ZOO_GROUPS, Spec
from .catalog import ROBUST, STANDARD, catalog_zoo, describe, load_models, protocol_differs, train_zoo



@dataclass(frozen=True)
class InversionSizes:
    """Sizes of the inversion chapter."""

    n: int = 100                  # images inverted per model and seed kind (10 per class)
    invert_steps: int = 300       # L2 steps of representation inversion (Engstrom et al.: 10,000)
    invert_step: float = 0.1      # their length (an MNIST digit has an L2 norm of about 9)
    gen_per_class: int = 10       # generated images per class and model


#: The chapter's sizes under each profile.
SIZES: Registry[InversionSizes] = Registry("profile of the inversion chapter")
SIZES.add("smoke", InversionSizes(n=20, invert_steps=30, gen_per_class=2))
SIZES.add("cpu", InversionSizes())
SIZES.add("full", InversionSizes())  # the cpu sizes, on the full training set
SIZES.add("paper", InversionSizes(n=1000, invert_steps=10_000, invert_step=0.1, gen_per_class=100))


def sizes(profile) -> InversionSizes:
    """The chapter's sizes under ``profile`` (an unknown profile name lists the ones with sizes)."""
    return SIZES[get_profile(profile).name]


#: The models whose images the chapter compares, standard first.
MODELS = (STANDARD, *ROBUST)
JUDGE_STANDARD, JUDGE_ROBUST = "mnist-judge-standard", "mnist-judge-robust"
GENERATION = GenerationSettings()
SEEDS_ROW = "seeds"   # the score table's row for the generation seeds alone
_VERSION = 2          # bump when a computation changes, so cached images are recomputed


@ZOO_GROUPS.register("inversion-judges")
def judges_zoo(profile: Profile) -> dict[str, Spec]:
    """The independent judges: LeNet-5 with seed 1, trained standard and with PGD-AT (ε = 0.3)."""
    ep = profile.epochs
    common = dict(arch="lenet", n_train=profile.n_train, n_test=profile.n_test, batch_size=128,
                  optimizer="adam", lr=1e-3, weight_decay=0.01, seed=1)
    steps = 40 if profile.name == "paper" else 7
    return {
        JUDGE_STANDARD: Spec.make(profile.mnist, objective="standard", epochs=ep["standard"], **common),
        JUDGE_ROBUST: Spec.make(profile.mnist, objective="pgd", params={"eps": 0.3, "steps": steps},
                                epochs=ep["pgd"], eps_warmup=max(1, ep["pgd"] // 5), monitor_eps=0.3, **common),
    }


plotting.STYLES.add(JUDGE_STANDARD, plotting.Style("judge-standard", plotting.OBJECTIVE_COLORS["standard"]))
plotting.STYLES.add(JUDGE_ROBUST, plotting.Style("judge-robust", plotting.OBJECTIVE_COLORS["pgd"]))


def load(profile, progress: bool = True) -> tuple[dict, dict]:
    """(models, judges): the compared catalogue models and the two judges, trained on first use."""
    prof = get_profile(profile)
    specs = train_zoo(prof, list(MODELS), progress=progress)
    return {n: zoo.load(s) for n, s in specs.items()}, load_judges(prof, progress)


def load_judges(profile, progress: bool = True) -> dict:
    """The two independent judges by name (:data:`JUDGE_STANDARD`, :data:`JUDGE_ROBUST`), trained on first use."""
    prof = get_profile(profile)
    return {n: zoo.get(s, prof, progress=progress) for n, s in judges_zoo(prof).items()}


def inversion_settings(profile) -> InversionSettings:
    size = sizes(profile)
    return InversionSettings(eps=1000.0, step_size=size.invert_step, steps=size.invert_steps)


def targets(profile) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x0, y0, other): ``n/10`` test images of every class ordered by class, and for each one an image of
    the next class (the "another image" seed of the inversion)."""
    prof = get_profile(profile)
    ds = load_dataset(prof.mnist, prof.n_train, prof.n_test)
    per = max(1, sizes(prof).n // ds.num_classes)
    idx = first_per_class(ds.y_test, per, ds.num_classes)
    x0, y0 = ds.x_test[idx], ds.y_test[idx]
    return x0, y0, x0.roll(-per, dims=0)


def generation_seeds(profile) -> tuple[torch.Tensor, torch.Tensor]:
    """(seeds, classes): ``gen_per_class`` class-conditional Gaussian seeds per class, fitted on the training
    split (Santurkar et al. 2019)."""
    prof = get_profile(profile)
    ds = load_dataset(prof.mnist, prof.n_train, prof.n_test)
    classes = torch.arange(ds.num_classes).repeat_interleave(sizes(prof).gen_per_class)
    return ClassGaussian(ds.x_train, ds.y_train).sample(classes, seed=0), classes


@dataclass
class InversionImages:
    """Every image of the chapter, on the CPU.

    ``targets`` (n, C, H, W) and their ``labels``: n/10 test images per class, ordered by class; ``other``: for
    each, an image of the next class (a seed); ``noise``: uniform-noise seeds; ``seeds`` and ``classes``: the
    generation seeds and their target classes. ``inverted[kind][model]`` for kind ``noise`` or ``image``,
    ``generated[model]``, and ``curves[run][model]``, the mean loss at every step of run ``invert-noise``,
    ``invert-image`` or ``generate``.
    """

    targets: torch.Tensor
    labels: torch.Tensor
    other: torch.Tensor
    noise: torch.Tensor
    seeds: torch.Tensor
    classes: torch.Tensor
    inverted: dict
    generated: dict
    curves: dict


def _cache_path(prof: Profile):
    specs = catalog_zoo(prof)
    settings = {"version": _VERSION, "profile": prof.name, "sizes": vars(sizes(prof)),
                "models": {n: specs[n].key() for n in MODELS}, "generation": vars(GENERATION)}
    return paths.results_path("inversion", prof.name, settings, ".pt")


def images(profile, progress: bool = True) -> InversionImages:
    """Every inversion and generation of the chapter (see :class:`InversionImages`); cached."""
    prof = get_profile(profile)
    return paths.cached(_cache_path(prof), lambda: _images(prof, progress),
                        load=lambda p: InversionImages(**paths.torch_load(p)),
                        dump=lambda r: paths.torch_bytes(asdict(r)), name="inversion.images")


def _images(prof: Profile, progress: bool) -> InversionImages:
    from tqdm import tqdm

    models, _ = load(prof, progress)
    x0, y0, other = targets(prof)
    noise = torch.rand(x0.shape, generator=torch.Generator().manual_seed(0))
    seeds, classes = generation_seeds(prof)
    settings = inversion_settings(prof)
    inverted, generated = {"noise": {}, "image": {}}, {}
    curves = {"invert-noise": {}, "invert-image": {}, "generate": {}}
    for name in tqdm(MODELS, desc="inversion and generation", disable=not progress):
        model = models[name]
        for kind, seed in (("noise", noise), ("image", other)):
            curve: list[float] = []
            inverted[kind][name] = invert(model, x0, seed, settings, history=curve).cpu()
            curves[f"invert-{kind}"][name] = torch.tensor(curve)
        curve = []
        generated[name] = generate(model, classes, seeds, GENERATION, history=curve).cpu()
        curves["generate"][name] = torch.tensor(curve)
    return InversionImages(x0, y0, other, noise, seeds, classes, inverted, generated, curves)


# ---------------------------------------------------------------------------------------------------
# Figures

def inversion_figures(results: InversionImages) -> dict:
    """One row per class (the first target of each): the grids of inversions from noise and from another image,
    and the loss curves of the inversions from noise. Keyed by figure name."""
    per = len(results.targets) // 10
    rows = slice(0, None, per)
    labels = results.labels[rows].tolist()
    figures = {}
    for kind, seed, title in (("noise", results.noise, "Inversion from uniform noise"),
                              ("image", results.other, "Inversion from another test image (the next class)")):
        cols = {"target": results.targets[rows], "seed": seed[rows]}
        cols.update({n: results.inverted[kind][n][rows] for n in MODELS})
        figures[f"fig_invert_{kind}"] = plotting.image_grid(cols, title=title, row_labels=labels,
                                                            ylabel="target image (label)")
    figures["fig_invert_curves"] = plotting.loss_curves(
        {n: results.curves["invert-noise"][n] for n in MODELS}, ylabel="‖r(x) − r(x₀)‖ / ‖r(x₀)‖ (mean)",
        title="Inversion from noise: convergence")
    return figures


def final_distances(results: InversionImages, run: str = "invert-noise") -> dict[str, float]:
    """The mean relative representation distance after the last step of ``run``, per model."""
    return {n: float(results.curves[run][n][-1]) for n in MODELS}


def generation_figures(profile, results: InversionImages, sweep_classes: int = 6) -> dict:
    """The generation grid (one seed per class, every model) and the generation along the training-ε sweep
    (the second seed of the first ``sweep_classes`` classes, standard and PGD-AT models). Keyed by figure name."""
    k = len(results.classes) // 10
    first = slice(0, None, k)
    cols = {"seed": results.seeds[first]}
    cols.update({n: results.generated[n][first] for n in MODELS})
    specs = catalog_zoo(get_profile(profile))
    sweep_models = [n for n in MODELS if n == STANDARD or specs[n].objective == "pgd"]
    second = torch.arange(sweep_classes) * k + min(1, k - 1)
    return {
        "fig_generate": plotting.image_grid(
            cols, title=f"Class generation (L2, ε = {GENERATION.eps:g}, {GENERATION.steps} steps)",
            row_labels=results.classes[first].tolist(), ylabel="target class"),
        "fig_generate_sweep": plotting.image_grid(
            {n: results.generated[n][second] for n in sweep_models},
            title=f"Generation along the training-ε sweep (second seed of classes 0–{sweep_classes - 1})",
            row_labels=results.classes[second].tolist(), ylabel="target class"),
    }


# ---------------------------------------------------------------------------------------------------
# Scores

def per_image_scores(results: InversionImages, judges: dict) -> dict[str, dict[str, torch.Tensor]]:
    """Per-image scores per row (:data:`SEEDS_ROW`, the generation seeds alone as a baseline, then each model):
    judge accuracies of generations and, for inversions from noise and from another image, SSIM, PSNR and
    the distance in the standard judge's representation."""
    js, jr = judges[JUDGE_STANDARD], judges[JUDGE_ROBUST]
    with torch.no_grad():
        ref_rep = js.eval().representation(to_model(results.targets, js))
    rows = {}
    for name in (SEEDS_ROW, *MODELS):
        gen = results.seeds if name == SEEDS_ROW else results.generated[name]
        row = {"generation: standard judge": recognised(js, gen, results.classes),
               "generation: robust judge": recognised(jr, gen, results.classes)}
        if name != SEEDS_ROW:
            for kind in ("noise", "image"):
                inv = results.inverted[kind][name]
                row[f"inversion from {kind}: SSIM"], row[f"inversion from {kind}: PSNR (dB)"] = ssim_psnr(
                    inv, results.targets)
                with torch.no_grad():
                    row[f"inversion from {kind}: judge feature distance"] = representation_distance(
                        js, inv, ref_rep).cpu()
        rows[name] = row
    return rows


def score_table(results: InversionImages, judges: dict):
    """Mean and 95 % interval of every score, one row per model (``seeds``: the Gaussian seeds unchanged).
    Columns ``<score>``, ``<score> ±`` (half-width) and ``<score> non-finite`` (values left out of the mean, for
    example the infinite PSNR of an exact copy)."""
    import pandas as pd
    table = []
    for name, row in per_image_scores(results, judges).items():
        entry = {"model": name}
        for score, values in row.items():
            iv = mean_ci(values)
            entry[score], entry[f"{score} ±"], entry[f"{score} non-finite"] = iv.mean, iv.half_width, iv.nonfinite
        table.append(entry)
    return pd.DataFrame(table).set_index("model")


def display_scores(table, results: InversionImages):
    """:func:`score_table` with ``mean ± half-width`` strings, one column per model, captioned, for the book."""
    from ..book.display import mean_pm
    return mean_pm(table).T.style.set_caption(
        f"Mean ± half-width of the 95 % interval: {len(results.classes)} generated and {len(results.targets)} "
        f"inverted images per model.")


def judge_accuracy(profile, judges: dict) -> dict[str, float]:
    """Each judge's clean accuracy on the profile's test split (how far to trust its verdicts)."""
    prof = get_profile(profile)
    ds = load_dataset(prof.mnist, prof.n_train, prof.n_test)
    return {n: accuracy(j, ds.x_test, ds.y_test) for n, j in judges.items()}


def eps_table(profile, table):
    """Rows of :func:`score_table` for the compared models, with their label, objective and training ε."""
    specs = catalog_zoo(get_profile(profile))
    return describe({n: specs[n] for n in MODELS}).join(table)


def judge_figure(profile, table):
    """The share of generated images each judge recognises, against the generating model's training ε, with the
    seeds' own score as a dotted line."""
    import matplotlib.pyplot as plt
    eps = eps_table(profile, table)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    for ax, col, label in zip(axes, ("generation: standard judge", "generation: robust judge"),
                              ("recognised by the standard judge", "recognised by the robust judge")):
        e = eps.assign(low=eps[col] - eps[f"{col} ±"], high=eps[col] + eps[f"{col} ±"])
        plotting.metric_vs_eps(e, col, "low", "high", ylabel=f"share {label}", ax=ax)
        ax.axhline(table.loc[SEEDS_ROW, col], color="#999999", linestyle=":", label="seeds alone")
        ax.set_ylim(0, 1.05)
        ax.legend(loc="lower right")
    return fig


# ---------------------------------------------------------------------------------------------------
# Claims

def _scores(profile):
    _, judges = load(profile)
    return score_table(images(profile), judges)


@claim("ch4.robust-generations-recognised", chapter="4",
       statement="Images generated from robust models are recognised as their target class by an independent "
                 "standard judge far more often than images generated from the standard model.",
       papers=("boychev2023", "santurkar2019"), differs=protocol_differs)
def _claim_generation(profile: Profile) -> Measurement:
    t = _scores(profile)
    col = "generation: standard judge"
    std_high = t.loc[STANDARD, col] + t.loc[STANDARD, f"{col} ±"]
    measured = {plotting.model_label(n): float(t.loc[n, col]) for n in MODELS}
    failed = [n for n in ROBUST if not t.loc[n, col] - t.loc[n, f"{col} ±"] > std_high]
    robust_judge = ", ".join(f"{plotting.model_label(n)} {t.loc[n, 'generation: robust judge']:.3f}" for n in MODELS)
    n = sizes(profile).gen_per_class * 10
    return Measurement(measured, f"share of {n} generated images per model labelled as their target by the standard "
                       f"LeNet judge; each robust model's 95 % interval entirely above the standard model's",
                       not failed, (f"not reproduced for: {', '.join(failed)}. " if failed else "")
                       + f"Robust judge: {robust_judge}; Gaussian seeds alone: standard judge "
                       f"{t.loc[SEEDS_ROW, col]:.3f}")  # recognition shares are 0/1 values: always finite


@claim("ch4.robust-inversions-closer", chapter="4",
       statement="Robust models' representation inversions are closer to their targets than the standard model's, "
                 "in pixels (SSIM, PSNR) and in an independent judge's features.",
       papers=("boychev2023", "engstrom2019"), differs=protocol_differs)
def _claim_inversion(profile: Profile) -> Measurement:
    t = _scores(profile)
    checks = {"SSIM": "higher", "PSNR (dB)": "higher", "judge feature distance": "lower"}
    measured, failed = {}, []
    for kind in ("noise", "image"):
        for score, better in checks.items():
            col = f"inversion from {kind}: {score}"
            std = t.loc[STANDARD, col]
            measured[f"{kind}/{score}"] = "; ".join(f"{plotting.model_label(n)} {t.loc[n, col]:.3f}" for n in MODELS)
            for n in ROBUST:
                v = t.loc[n, col]
                if not (v > std if better == "higher" else v < std):
                    failed.append(f"{plotting.model_label(n)} ({kind}, {score})")
    columns = [f"inversion from {kind}: {score}" for kind in ("noise", "image") for score in checks]
    return Measurement(measured, "mean over the inverted images, for seeds of uniform noise and of another test image: "
                       f"SSIM and PSNR higher, judge feature distance lower than {STANDARD}, for every robust model",
                       not failed, join_notes(f"not reproduced for: {', '.join(failed)}" if failed else "",
                                              nonfinite_note(t, columns, MODELS)))


__all__ = ["InversionSizes", "SIZES", "sizes", "judges_zoo", "load", "load_judges", "inversion_settings", "targets",
           "generation_seeds", "InversionImages", "images", "inversion_figures", "final_distances",
           "generation_figures", "per_image_scores", "score_table", "display_scores", "judge_accuracy", "eps_table",
           "judge_figure", "MODELS", "JUDGE_STANDARD", "JUDGE_ROBUST", "GENERATION"]


# ---------------------------------------------------------------------------------------------------
# The synthesis page's ε dashboard

def _intervals(profile: Profile, columns: dict) -> dict:
    """``{label: {model: mean_ci of the per-image scores of column}}`` for ``columns`` = {column: label}: the
    intervals :func:`score_table` reports, for each compared model."""
    _, judges = load(profile)
    scores = per_image_scores(images(profile), judges)
    return {label: {m: mean_ci(scores[m][c]) for m in MODELS} for c, label in columns.items()}


@panel("inversion", title="Representation inversion", chapter="4",
       ylabel="judge-feature distance to target")
def _panel_inversion(profile: Profile) -> dict:
    """Distance of the inversions (from noise, from another image) to their targets in the standard LeNet
    judge's representation: lower is closer. Mean and 95 % interval over the targets."""
    return _intervals(profile, {"inversion from noise: judge feature distance": "from noise",
                                "inversion from image: judge feature distance": "from another image"})


@panel("generation", title="Class generation", chapter="4", ylabel="share recognised as target class")
def _panel_generation(profile: Profile) -> dict:
    """Share of the generated images each LeNet judge labels as their target class, with 95 % intervals."""
    return _intervals(profile, {"generation: standard judge": "standard judge",
                                "generation: robust judge": "robust judge"})


# ---------------------------------------------------------------------------------------------------
# Exercises (the classroom edition: rilib.book.exercises)

#: The models of the exercises: the standard model and PGD-AT at ε = 0.3.
EXERCISE_MODELS = (STANDARD, "mnist-pgd-0.3")
#: ``ex-ch4-fake-relu`` inverts the first ``FAKE_RELU_N`` test images of the profile.
FAKE_RELU_N = 10


@exercise("ex-ch4-fake-relu", chapter="4", title="Inverting through dead units", difficulty="medium", minutes=20,
          rtol=0.03, atol=0.001,
          expected=f"a dict {{model: {{'relu': {{'distance': …, 'ssim': …}}, 'fake relu': {{…}}}}}} for "
                   f"{' and '.join(EXERCISE_MODELS)}: the mean over the first {FAKE_RELU_N} test images of the "
                   f"relative representation distance (in the model's own penultimate layer, unitless) and of the "
                   f"SSIM to the target of their inversions from uniform noise (a generator seeded with 0), with "
                   f"the chapter's inversion settings, with and without the fake ReLU")
def _ex_fake_relu(prof: Profile) -> dict:
    ds = load_dataset(prof.mnist, prof.n_train, prof.n_test)
    x0 = ds.x_test[:FAKE_RELU_N]
    noise = torch.rand(x0.shape, generator=torch.Generator().manual_seed(0))
    settings = inversion_settings(prof)
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
