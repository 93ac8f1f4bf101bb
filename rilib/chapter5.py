"""Chapter 5, "Orientation and smoothness: Lipschitz ablations" (Helland & VanHoudnos 2021).

Adversarial training couples a loss that orients the decision boundary with a penalty on the local Lipschitz
constant. The chapter trains one model per arm of that frame (zoo group ``chapter5``) next to chapter 1's
standard, PGD-AT and TRADES models, and measures per model:

- a local Lipschitz estimate, max ‖f(x′) − f(x)‖₁ / ‖x′ − x‖∞ over the ε-ball (logits f), maximised with rilib's
  projected-gradient optimizer as RobustBench's ``eval/lipschitz.py`` does after Yang et al. (2020);
- the distribution of ‖∇ₓ CE‖₁ over test images;
- accuracy under the strong PGD attack (PGD-40, 5 restarts) and, for the standard model and every new arm,
  under a stronger one: the worst case per image of that attack and PGD-100 with the margin loss (3 restarts),
  a guard against gradient masking;
- Etmann et al.'s alignment (:func:`rilib.metrics.alignment`, shared with chapter 3);
- the mean confidence (largest softmax probability) on clean test images.

Measurements are cached atomically under ``RILIB_CACHE/results`` per profile and zoo.
"""

from __future__ import annotations

import json

import torch

from . import zoo
from .attacks import PGD, WorstOf, margin_loss, projected_gradient
from .chapter1 import STANDARD, chapter1_zoo, strong_attack
from .claims import Measurement, claim, margins_above_zero
from .data import load_dataset
from .evaluate import accuracy
from .metrics import alignment, mean_ci
from .paths import atomic_write_text, results_path
from .profiles import Profile, get_profile
from .zoo import ZOO_GROUPS, Spec

HELLAND = ("Helland & VanHoudnos 2021, On the Human-Recognizability Phenomenon of Adversarially Trained Deep "
           "Image Classifiers (arXiv 2101.05219)")
ROSS = "Ross & Doshi-Velez 2018, Improving the Adversarial Robustness and Interpretability of Deep Neural Networks by Regularizing their Input Gradients (AAAI)"

EPS = 0.1                      #: the chapter's L∞ radius: evaluation, Lipschitz ball and the main penalty weight
LAMBDAS = (0.03, 0.1, 0.3)     #: the L1 gradient-penalty sweep; λ = ε is the first-order expansion of PGD-AT
MAIN_GP = f"mnist-gp-l1-{EPS:g}"
TEMPERATURE = 20.0
#: Chapter 1's models this chapter compares (with their own training ε).
FROM_CHAPTER1 = (STANDARD, "mnist-pgd-0.1", "mnist-pgd-0.3", "mnist-trades")
#: The arms with both orientation and smoothness, in the claims.
ORIENTED_SMOOTH = ("mnist-pgd-0.1", "mnist-pgd-0.3", "mnist-trades", MAIN_GP)
_VERSION = 3


@ZOO_GROUPS.register("chapter5")
def chapter5_zoo(profile: Profile) -> dict[str, Spec]:
    """The new arms, trained like chapter 1's standard model (AdamW, lr 1e-3, wd 0.01, same epochs)."""
    ds, ep = profile.mnist, profile.epochs["standard"]
    common = dict(arch="small-cnn", n_train=profile.n_train, n_test=profile.n_test, batch_size=128,
                  optimizer="adam", lr=1e-3, weight_decay=0.01, seed=0, epochs=ep)
    specs = {f"mnist-gp-l1-{lam:g}": Spec.make(ds, objective="input_gradient_penalty",
                                               params={"lam": lam, "norm": "l1"}, **common) for lam in LAMBDAS}
    specs["mnist-gp-l2"] = Spec.make(ds, objective="input_gradient_penalty", params={"lam": 1.0, "norm": "l2"},
                                     **common)
    specs["mnist-jacobian"] = Spec.make(ds, objective="jacobian_penalty", params={"lam": 0.01, "projections": 1},
                                        **common)
    specs["mnist-label-smoothing"] = Spec.make(ds, objective="label_smoothing", params={"alpha": 0.1}, **common)
    teacher = Spec.make(ds, objective="standard", params={"temperature": TEMPERATURE}, **common)
    specs[f"mnist-teacher-t{TEMPERATURE:g}"] = teacher
    specs[f"mnist-distilled-t{TEMPERATURE:g}"] = Spec.make(
        ds, objective="distillation", params={"teacher": teacher.key(), "temperature": TEMPERATURE}, **common)
    specs["mnist-noise-consistency"] = Spec.make(ds, objective="noise_consistency",
                                                 params={"eps": 0.3, "beta": 6.0}, **common)
    return specs


def arms(profile) -> dict[str, Spec]:
    """Every model of the chapter, by name: chapter 1's four, then the new arms (the teacher excluded)."""
    prof = get_profile(profile)
    ch1 = chapter1_zoo(prof)
    new = {n: s for n, s in chapter5_zoo(prof).items() if "-teacher-" not in n}
    return {**{n: ch1[n] for n in FROM_CHAPTER1}, **new}


def train(profile, progress: bool = True) -> dict[str, Spec]:
    """Train (or find) every model the chapter needs, the distillation teacher before its student."""
    from .chapter1 import train_zoo
    prof = get_profile(profile)
    train_zoo(prof, list(FROM_CHAPTER1), progress=progress)
    for spec in chapter5_zoo(prof).values():  # the teacher comes before its student
        zoo.train(spec, progress=progress)
    return arms(prof)


def eval_n(profile) -> int:
    """Test images per measurement: the profile's evaluation size, at most 500."""
    return min(get_profile(profile).eval_n, 500)


def margin_attack(profile) -> PGD:
    """PGD-100 with the margin loss, step 2.5·ε/100 and 3 random restarts (smoke: PGD-20, 2 restarts)."""
    steps, restarts = (20, 2) if get_profile(profile).name == "smoke" else (100, 3)
    return PGD(eps=EPS, steps=steps, step_size=2.5 * EPS / steps, restarts=restarts, loss=margin_loss)


def stronger_attack(profile) -> WorstOf:
    """The strong attack followed, on the images it did not fool, by :func:`margin_attack`: an image is robust
    only if both fail."""
    return WorstOf((strong_attack(get_profile(profile), EPS), margin_attack(profile)))


def _lipschitz_ratio(model, x_adv, x):
    with torch.no_grad():
        fx = model(x)
    return (model(x_adv) - fx).abs().sum(1) / (x_adv - x).flatten(1).abs().amax(1).clamp_min(1e-12)


def local_lipschitz(model, x: torch.Tensor, eps: float = EPS, steps: int = 10) -> torch.Tensor:
    """Per-image local Lipschitz estimate max_{‖x′−x‖∞≤ε} ‖f(x′) − f(x)‖₁ / ‖x′ − x‖∞ of the logits, by
    projected gradient ascent from a random start (step ε/4), as RobustBench's ``eval/lipschitz.py`` after Yang
    et al. (2020, "A Closer Look at Accuracy vs. Robustness"). Being a maximum found by ascent, it is a lower
    bound on the true local constant (within 10 % on the linear case of the tests)."""
    x_adv = projected_gradient(model, x, x, eps=eps, step_size=eps / 4, steps=steps, random_start=True,
                               loss=_lipschitz_ratio)
    with torch.no_grad():
        return _lipschitz_ratio(model, x_adv, x)


def gradient_l1(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """‖∇ₓ CE(f(x), y)‖₁ per image, the dual norm that enters first-order L∞ adversarial training."""
    from .train import _input_gradient
    model.eval()
    _, _, g = _input_gradient(model, x, y, create_graph=False)
    return g.flatten(1).abs().sum(1).detach()


def _cache_path(prof: Profile):
    settings = {"version": _VERSION, "profile": prof.name, "n": eval_n(prof),
                "models": {n: s.key() for n, s in arms(prof).items()},
                "attacks": [strong_attack(prof, EPS).describe(), stronger_attack(prof).describe()]}
    return results_path("chapter5", prof.name, settings, ".json")


def measure(profile, progress: bool = True) -> dict:
    """Per model, on the first :func:`eval_n` test images: clean accuracy, strong-attack accuracy,
    stronger-attack accuracy (the standard model and the new arms), and per-image lists of the
    Lipschitz estimate, ‖∇ₓ CE‖₁, alignment and confidence. Cached as JSON."""
    prof = get_profile(profile)
    path = _cache_path(prof)
    if path.exists():
        return json.loads(path.read_text())
    from tqdm import tqdm

    specs = train(prof, progress)
    ds = load_dataset(prof.mnist, prof.n_train, prof.n_test)
    n = eval_n(prof)
    x, y = ds.x_test[:n].to(zoo.device()), ds.y_test[:n].to(zoo.device())
    out = {}
    for name, spec in tqdm(specs.items(), desc="Lipschitz chapter measurements", disable=not progress):
        model = zoo.load(spec)
        torch.manual_seed(0)
        row = {"objective": spec.objective, "params": spec.param_dict, "clean acc": accuracy(model, x, y)}
        # The stronger attack is the strong one and then the margin attack on its survivors: one WorstOf run
        # gives both columns, the strong attack's mask and the final one.
        stronger = name not in FROM_CHAPTER1 or name == STANDARD
        attack = stronger_attack(prof) if stronger else WorstOf((strong_attack(prof, EPS),))
        _, masks = attack.run(model, x, y)
        row["strong attack acc"] = float(masks[0].float().mean())
        if stronger:
            row["stronger attack acc"] = float(masks[1].float().mean())
        with torch.no_grad():
            p = torch.softmax(model.eval()(x), 1)
        row["lipschitz"] = local_lipschitz(model, x).tolist()
        row["grad l1"] = gradient_l1(model, x, y).tolist()
        row["alignment"] = alignment(model, x).tolist()
        row["confidence"] = p.amax(1).tolist()
        out[name] = row
    atomic_write_text(path, json.dumps(out))
    return out


def table(profile, results: dict):
    """One row per model: training ε or weight, accuracies, and mean with 95 % interval of the per-image
    measurements (columns ``<name>`` and ``<name> ±``)."""
    import pandas as pd
    rows = []
    for name, r in results.items():
        row = {"model": name, "objective": r["objective"],
               "train ε": r["params"].get("eps", 0.0) if r["objective"] in ("standard", "pgd", "trades") else None,
               "clean acc": r["clean acc"], "strong attack acc": r["strong attack acc"],
               "stronger attack acc": r.get("stronger attack acc")}
        for key in ("lipschitz", "grad l1", "alignment", "confidence"):
            mean, low, high = mean_ci(torch.tensor(r[key]))
            row[key], row[f"{key} ±"] = mean, (high - low) / 2
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def display_table(t):
    """:func:`table` for the book: accuracies in %, per-image measurements as ``mean ± half-width``."""
    import pandas as pd

    from .book import mean_pm
    shown = pd.DataFrame(index=t.index)
    for col in ("clean acc", "strong attack acc", "stronger attack acc"):
        shown[col] = ["–" if pd.isna(v) else f"{100 * v:.1f} %" for v in t[col]]
    return shown.join(mean_pm(t, ("lipschitz", "grad l1", "alignment", "confidence"), fmt=".3g"))


def sweep(profile, t):
    """The L1 gradient-penalty sweep: rows λ = 0 (the standard model) and each λ of :data:`LAMBDAS`."""
    rows = t.loc[[STANDARD] + [f"mnist-gp-l1-{lam:g}" for lam in LAMBDAS]].copy()
    rows["λ"] = [0.0, *LAMBDAS]
    return rows


# ---------------------------------------------------------------------------------------------------
# Claims

def _paired(results: dict, name: str, key: str, reference: str = STANDARD):
    return mean_ci(torch.tensor(results[name][key]) - torch.tensor(results[reference][key]))


@claim("ch5.orientation-and-smoothness-raise-alignment", chapter="5",
       statement="Arms with both orientation and smoothness (PGD-AT, TRADES, CE + gradient penalty) have input "
                 "gradients better aligned with the image than the standard model.",
       citation=HELLAND)
def _claim_alignment(profile: Profile) -> Measurement:
    res = measure(profile)
    measured, failed = margins_above_zero({n: _paired(res, n, "alignment") for n in ORIENTED_SMOOTH})
    return Measurement(measured, f"paired alignment margin over {STANDARD} on {eval_n(profile)} test images; "
                       "95 % interval above 0 for each arm", not failed,
                       f"not reproduced for: {', '.join(failed)}" if failed else "")


@claim("ch5.label-smoothing-is-not-smoothness", chapter="5",
       statement="Label smoothing lowers confidence but keeps a high local Lipschitz estimate and does not raise "
                 "alignment as much as the arms with orientation and smoothness.",
       citation=HELLAND)
def _claim_label_smoothing(profile: Profile) -> Measurement:
    t = table(profile, measure(profile))
    ls = "mnist-label-smoothing"
    conf_ok = t.loc[ls, "confidence"] < t.loc[STANDARD, "confidence"]
    lip_ok = all(t.loc[ls, "lipschitz"] > t.loc[n, "lipschitz"] for n in ORIENTED_SMOOTH)
    align_ok = all(t.loc[ls, "alignment"] < t.loc[n, "alignment"] for n in ORIENTED_SMOOTH)
    measured = {f"{k} {n.removeprefix('mnist-')}": float(t.loc[n, k]) for k in ("confidence", "lipschitz", "alignment")
                for n in (STANDARD, ls, *ORIENTED_SMOOTH) if not (k == "confidence" and n in ORIENTED_SMOOTH)}
    failed = [w for w, ok in (("confidence not lower", conf_ok), ("Lipschitz not above every oriented+smooth arm", lip_ok),
                              ("alignment not below every oriented+smooth arm", align_ok)) if not ok]
    return Measurement(measured, "confidence(LS) < confidence(standard); Lipschitz(LS) > Lipschitz of each of "
                       f"{', '.join(ORIENTED_SMOOTH)}; alignment(LS) < alignment of each of them", not failed,
                       "; ".join(failed))


@claim("ch5.gradient-penalty-is-robust", chapter="5",
       statement="The gradient-penalty model (L1, λ = ε) is more robust under PGD than the standard model, also "
                 "under the worst case of that attack and a margin-loss attack (a guard against gradient masking).",
       citation=f"{ROSS}; {HELLAND}")
def _claim_gp_robust(profile: Profile) -> Measurement:
    t = table(profile, measure(profile))
    strong = strong_attack(profile, EPS).describe()
    stronger = stronger_attack(profile).describe()
    measured = {f"{n.removeprefix('mnist-')} {col}": float(t.loc[n, col]) for n in (MAIN_GP, STANDARD)
                for col in ("strong attack acc", "stronger attack acc")}
    ok = all(t.loc[MAIN_GP, c] > t.loc[STANDARD, c] for c in ("strong attack acc", "stronger attack acc"))
    drop = t.loc[MAIN_GP, "strong attack acc"] - t.loc[MAIN_GP, "stronger attack acc"]
    return Measurement(measured, f"accuracy(gp) > accuracy(standard) at ε = {EPS:g} on {eval_n(profile)} test images "
                       f"under {strong}, and under the {stronger}", ok,
                       f"the stronger attack costs the gradient-penalty model {100 * drop:.1f} points")


__all__ = ["chapter5_zoo", "arms", "train", "measure", "table", "display_table", "sweep", "local_lipschitz",
           "gradient_l1", "stronger_attack", "eval_n", "EPS", "LAMBDAS", "MAIN_GP"]
