"""Chapter 4, "Representation inversion and class-specific generation" (Engstrom et al. 2019; Santurkar et al.
2019; Boychev 2023).

Inverts the representations of chapter 1's standard and robust models (PGD-AT at each ε, TRADES) and draws
class-specific images with :mod:`rilib.inversion`, then scores them with judges that need no download:

- two **independent judges**, LeNet-5 (another architecture, another seed, the same training split), one trained
  standard and one with PGD-AT at ε = 0.3 (zoo group ``chapter4``): the share of generated images each labels as
  their target class, where Boychev (2023) reports an FID computed with an Inception network;
- for inversions: SSIM and PSNR to the target image (scikit-image) and the distance between the inversion and the
  target in the standard judge's representation.

:func:`images` computes every inversion and generation once per profile and zoo and caches them atomically
under ``RILIB_CACHE/results``; the scores, figures and claims read that cache.
"""

from __future__ import annotations


import torch

from . import zoo
from .chapter1 import ROBUST, STANDARD, chapter1_zoo, train_zoo
from .claims import Measurement, claim
from .data import first_per_class, load_dataset
from .inversion import (ClassGaussian, GenerationSettings, InversionSettings, generate, invert,
                        representation_distance)
from .metrics import mean_ci
from .paths import results_path
from .profiles import Profile, get_profile
from .train import save_atomic
from .zoo import ZOO_GROUPS, Spec

ENGSTROM = ("Engstrom et al. 2019, Adversarial Robustness as a Prior for Learned Representations "
            "(arXiv 1906.00945)")
SANTURKAR = "Santurkar et al. 2019, Image Synthesis with a Single (Robust) Classifier (NeurIPS)"
BOYCHEV = "Boychev 2023, Interpretable Computer Vision Models through Adversarial Training (arXiv 2307.02500)"

#: The models whose images the chapter compares, standard first.
MODELS = (STANDARD, *ROBUST)
JUDGE_STANDARD, JUDGE_ROBUST = "mnist-judge-standard", "mnist-judge-robust"
GENERATION = GenerationSettings()
_VERSION = 1  # bump when a computation changes, so cached images are recomputed


@ZOO_GROUPS.register("chapter4")
def chapter4_zoo(profile: Profile) -> dict[str, Spec]:
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


def load(profile, progress: bool = True) -> tuple[dict, dict]:
    """(models, judges): the compared chapter-1 models and the two judges, trained on first use."""
    prof = get_profile(profile)
    specs = train_zoo(prof, list(MODELS), progress=progress)
    judges = chapter4_zoo(prof)
    for s in judges.values():
        zoo.train(s, progress=progress)
    return {n: zoo.load(s) for n, s in specs.items()}, {n: zoo.load(s) for n, s in judges.items()}


def inversion_settings(profile) -> InversionSettings:
    prof = get_profile(profile)
    return InversionSettings(eps=1000.0, step_size=prof.inversion.invert_step, steps=prof.inversion.invert_steps)


def targets(profile) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x0, y0, other): ``n/10`` test images of every class ordered by class, and for each one an image of
    the next class (the "another image" seed of the inversion)."""
    prof = get_profile(profile)
    ds = load_dataset(prof.mnist, prof.n_train, prof.n_test)
    per = max(1, prof.inversion.n // ds.num_classes)
    idx = first_per_class(ds.y_test, per, ds.num_classes)
    x0, y0 = ds.x_test[idx], ds.y_test[idx]
    return x0, y0, x0.roll(-per, dims=0)


def generation_seeds(profile) -> tuple[torch.Tensor, torch.Tensor]:
    """(seeds, classes): ``gen_per_class`` class-conditional Gaussian seeds per class, fitted on the training
    split (Santurkar et al. 2019)."""
    prof = get_profile(profile)
    ds = load_dataset(prof.mnist, prof.n_train, prof.n_test)
    classes = torch.arange(ds.num_classes).repeat_interleave(prof.inversion.gen_per_class)
    return ClassGaussian(ds.x_train, ds.y_train).sample(classes, seed=0), classes


def _cache_path(prof: Profile):
    specs = chapter1_zoo(prof)
    settings = {"version": _VERSION, "profile": prof.name, "sizes": vars(prof.inversion),
                "models": {n: specs[n].key() for n in MODELS}, "generation": vars(GENERATION)}
    return results_path("chapter4", prof.name, settings, ".pt")


def images(profile, progress: bool = True) -> dict[str, torch.Tensor]:
    """Every image of the chapter, keyed ``"<model>|invert-noise"``, ``"<model>|invert-image"``,
    ``"<model>|generate"`` and their loss curves ``"...|curve"``; plus the targets, seeds and classes. Cached."""
    prof = get_profile(profile)
    path = _cache_path(prof)
    if path.exists():
        return torch.load(path, weights_only=True)
    from tqdm import tqdm

    models, _ = load(prof, progress)
    x0, y0, other = targets(prof)
    noise = torch.rand(x0.shape, generator=torch.Generator().manual_seed(0))
    seeds, classes = generation_seeds(prof)
    out = {"x0": x0, "y0": y0, "other": other, "noise": noise, "gen_seeds": seeds, "gen_classes": classes}
    dev = zoo.device()
    settings = inversion_settings(prof)
    for name in tqdm(MODELS, desc="inversion and generation", disable=not progress):
        model = models[name]
        for kind, seed in (("noise", noise), ("image", other)):
            curve: list[float] = []
            out[f"{name}|invert-{kind}"] = invert(model, x0.to(dev), seed.to(dev), settings, history=curve).cpu()
            out[f"{name}|invert-{kind}|curve"] = torch.tensor(curve)
        curve = []
        out[f"{name}|generate"] = generate(model, classes.to(dev), seeds.to(dev), GENERATION, history=curve).cpu()
        out[f"{name}|generate|curve"] = torch.tensor(curve)
    save_atomic(out, path)
    return out


# ---------------------------------------------------------------------------------------------------
# Scores

def judged(judge, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """1.0 where ``judge`` labels image i as ``classes[i]``, else 0.0 (N,)."""
    with torch.no_grad():
        return (judge.eval()(x).argmax(1) == classes).float()


def ssim_psnr(x: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image SSIM and PSNR (dB) of ``x`` against ``ref`` (single-channel images in [0, 1]), by
    scikit-image's ``structural_similarity`` and ``peak_signal_noise_ratio``."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    a, b = x.detach().cpu().double().numpy(), ref.detach().cpu().double().numpy()
    ssim = [structural_similarity(p[0], q[0], data_range=1.0) for p, q in zip(a, b)]
    psnr = [peak_signal_noise_ratio(q[0], p[0], data_range=1.0) for p, q in zip(a, b)]
    return torch.tensor(ssim, dtype=torch.float32), torch.tensor(psnr, dtype=torch.float32)


def per_image_scores(results: dict, judges: dict) -> dict[str, dict[str, torch.Tensor]]:
    """Per-image scores per row (each model, and the generation seeds alone as a baseline):
    judge accuracies of generations and, for inversions from noise and from another image, SSIM, PSNR and
    the distance in the standard judge's representation."""
    js, jr = judges[JUDGE_STANDARD], judges[JUDGE_ROBUST]
    classes, x0 = results["gen_classes"], results["x0"]
    with torch.no_grad():
        ref_rep = js.eval().representation(x0)
    rows = {}
    for name in ("seeds", *MODELS):
        gen = results["gen_seeds"] if name == "seeds" else results[f"{name}|generate"]
        row = {"generation: standard judge": judged(js, gen, classes),
               "generation: robust judge": judged(jr, gen, classes)}
        if name != "seeds":
            for kind in ("noise", "image"):
                inv = results[f"{name}|invert-{kind}"]
                row[f"inversion from {kind}: SSIM"], row[f"inversion from {kind}: PSNR (dB)"] = ssim_psnr(inv, x0)
                with torch.no_grad():
                    row[f"inversion from {kind}: judge feature distance"] = representation_distance(js, inv, ref_rep)
        rows[name] = row
    return rows


def score_table(results: dict, judges: dict):
    """Mean and 95 % interval of every score, one row per model (``seeds``: the Gaussian seeds unchanged).
    Columns ``<score>`` and ``<score> ±`` (half-width)."""
    import pandas as pd
    table = []
    for name, row in per_image_scores(results, judges).items():
        entry = {"model": name}
        for score, values in row.items():
            mean, low, high = mean_ci(values)
            entry[score], entry[f"{score} ±"] = mean, (high - low) / 2
        table.append(entry)
    return pd.DataFrame(table).set_index("model")


def display_scores(table):
    """:func:`score_table` with ``mean ± half-width`` strings, for the book."""
    from .book import mean_pm
    return mean_pm(table)


def judge_accuracy(profile, judges: dict) -> dict[str, float]:
    """Each judge's clean accuracy on the profile's test split (how far to trust its verdicts)."""
    from .evaluate import accuracy
    prof = get_profile(profile)
    ds = load_dataset(prof.mnist, prof.n_train, prof.n_test)
    return {n: accuracy(j, ds.x_test, ds.y_test) for n, j in judges.items()}


def eps_table(profile, table):
    """Rows of :func:`score_table` for the models with their objective and training ε, for figures."""
    specs = chapter1_zoo(get_profile(profile))
    t = table.loc[list(MODELS)].copy()
    t["objective"] = [specs[n].objective for n in t.index]
    t["train ε"] = [specs[n].param_dict.get("eps", 0.0) for n in t.index]
    return t


# ---------------------------------------------------------------------------------------------------
# Claims

def _scores(profile):
    _, judges = load(profile)
    return score_table(images(profile), judges)


@claim("ch4.robust-generations-recognised", chapter="4",
       statement="Images generated from robust models are recognised as their target class by an independent "
                 "standard judge far more often than images generated from the standard model.",
       citation=f"{SANTURKAR}; {BOYCHEV}")
def _claim_generation(profile: Profile) -> Measurement:
    t = _scores(profile)
    col = "generation: standard judge"
    std_high = t.loc[STANDARD, col] + t.loc[STANDARD, f"{col} ±"]
    measured = {n.removeprefix("mnist-"): float(t.loc[n, col]) for n in MODELS}
    failed = [n for n in ROBUST if not t.loc[n, col] - t.loc[n, f"{col} ±"] > std_high]
    robust_judge = ", ".join(f"{n.removeprefix('mnist-')} {t.loc[n, 'generation: robust judge']:.3f}" for n in MODELS)
    n = profile.inversion.gen_per_class * 10
    return Measurement(measured, f"share of {n} generated images per model labelled as their target by the standard "
                       f"LeNet judge; each robust model's 95 % interval entirely above the standard model's",
                       not failed, (f"not reproduced for: {', '.join(failed)}. " if failed else "")
                       + f"Robust judge: {robust_judge}; Gaussian seeds alone: standard judge "
                       f"{t.loc['seeds', col]:.3f}")


@claim("ch4.robust-inversions-closer", chapter="4",
       statement="Robust models' representation inversions are closer to their targets than the standard model's, "
                 "in pixels (SSIM, PSNR) and in an independent judge's features.",
       citation=f"{ENGSTROM}; {BOYCHEV}")
def _claim_inversion(profile: Profile) -> Measurement:
    t = _scores(profile)
    checks = {"SSIM": "higher", "PSNR (dB)": "higher", "judge feature distance": "lower"}
    measured, failed = {}, []
    for kind in ("noise", "image"):
        for score, better in checks.items():
            col = f"inversion from {kind}: {score}"
            std = t.loc[STANDARD, col]
            measured[f"{kind}/{score}"] = "; ".join(f"{n.removeprefix('mnist-')} {t.loc[n, col]:.3f}" for n in MODELS)
            for n in ROBUST:
                v = t.loc[n, col]
                if not (v > std if better == "higher" else v < std):
                    failed.append(f"{n.removeprefix('mnist-')} ({kind}, {score})")
    return Measurement(measured, "mean over the inverted images, for seeds of uniform noise and of another test image: "
                       f"SSIM and PSNR higher, judge feature distance lower than {STANDARD}, for every robust model",
                       not failed, f"not reproduced for: {', '.join(failed)}" if failed else "")


__all__ = ["chapter4_zoo", "load", "targets", "generation_seeds", "images", "score_table", "display_scores",
           "judge_accuracy", "eps_table", "ssim_psnr", "judged", "MODELS"]
