"""Chapter 5, "Orientation and smoothness: Lipschitz ablations" (``notebooks/05_lipschitz.md``), after Helland &
VanHoudnos (2021).

Adversarial training couples a loss that orients the decision boundary with a penalty on the local Lipschitz
constant. The chapter trains one model per arm of that frame (zoo group ``lipschitz``) next to the catalogue's
standard, PGD-AT and TRADES models, and measures per model:

- a local Lipschitz estimate of the logits (:func:`rilib.lenses.lipschitz.local_lipschitz`), which depends on the
  scale of the logits, and two scale-free smoothness measures: the same estimate in KL space (Yang et al.'s KL
  option) and the margin-to-gradient ratio (:func:`rilib.lenses.lipschitz.margin_ratio`);
- the distribution of ‖∇ₓ CE‖₁ over test images (:func:`rilib.lenses.lipschitz.gradient_l1`);
- accuracy under the strong PGD attack (PGD-40, 5 restarts) and, for the standard model and every new arm,
  under a stronger one: the worst case per image of that attack and PGD-100 with the margin loss (3 restarts),
  a guard against gradient masking; the distilled student also under the strong attack with its logits divided by
  its temperature T, the standard test of whether distillation only masks the gradient;
- Etmann et al.'s alignment (:func:`rilib.lenses.metrics.alignment`, shared with chapter 3);
- the mean confidence (largest softmax probability) on clean test images.

Measurements are cached atomically under ``RILIB_CACHE/results`` per profile and zoo, as :class:`ArmResults`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from .. import paths, zoo
from ..attacks import PGD, WorstOf, margin_loss
from ..book import plotting
from ..book.dashboard import panel
from ..book.exercises import exercise, prose_exercise
from ..book.ledger import Measurement, claim, join_notes, margins_claim, nonfinite_note
from ..data import first_per_class, load_dataset
from ..evaluate import accuracy
from ..lenses.lipschitz import gradient_l1, local_lipschitz, margin_ratio
from ..lenses.metrics import alignment
from ..lenses.saliency import Gradient
from ..lenses.stats import Interval, mean_ci, paired_ci
from ..models import to_model
from ..profiles import Profile, get_profile
from ..registry import Registry
from ..rng import seeded
from ..zoo import ZOO_GROUPS, Spec
from .catalog import STANDARD, catalog_zoo, protocol_differs, strong_attack, train_eps, train_zoo


EPS = 0.1                      #: the chapter's L∞ radius: evaluation, Lipschitz ball and the main penalty weight
LAMBDAS = (0.03, 0.1, 0.3)     #: the L1 gradient-penalty sweep; λ = ε is the first-order expansion of PGD-AT
MAIN_GP = f"mnist-gp-l1-{EPS:g}"
TEMPERATURE = 20.0
TEACHER = f"mnist-teacher-t{TEMPERATURE:g}"
DISTILLED = f"mnist-distilled-t{TEMPERATURE:g}"
#: The catalogue's models this chapter compares (with their own training ε).
FROM_CATALOG = (STANDARD, "mnist-pgd-0.1", "mnist-pgd-0.3", "mnist-trades")
#: The arms with both orientation and smoothness, in the claims.
ORIENTED_SMOOTH = ("mnist-pgd-0.1", "mnist-pgd-0.3", "mnist-trades", MAIN_GP)
#: Per-image measurements of every arm.
PER_IMAGE = ("lipschitz", "kl lipschitz", "margin ratio", "grad l1", "alignment", "confidence")
#: The accuracy of the distilled student under the strong attack with its logits divided by its temperature.
AT_TEMPERATURE = "strong attack acc, logits ÷ T"
_VERSION = 5


@dataclass(frozen=True)
class LipschitzSizes:
    """Sizes of the Lipschitz chapter."""

    n: int = 500                  # test images per measurement
    margin_steps: int = 100       # steps of the margin-loss PGD of the stronger attack
    margin_restarts: int = 3      # and its random restarts


#: The chapter's sizes under each profile.
SIZES: Registry[LipschitzSizes] = Registry("profile of the Lipschitz chapter")
SIZES.add("smoke", LipschitzSizes(n=50, margin_steps=20, margin_restarts=2))
SIZES.add("cpu", LipschitzSizes())
SIZES.add("full", LipschitzSizes())  # the cpu sizes, on the full training set
SIZES.add("paper", LipschitzSizes())


def sizes(profile) -> LipschitzSizes:
    """The chapter's sizes under ``profile`` (an unknown profile name lists the ones with sizes)."""
    return SIZES[get_profile(profile).name]


@ZOO_GROUPS.register("lipschitz")
def lipschitz_zoo(profile: Profile) -> dict[str, Spec]:
    """The new arms, trained like the catalogue's standard model (AdamW, lr 1e-3, wd 0.01, same epochs). The
    distilled student's spec holds its teacher's spec, so training the student trains the teacher first."""
    ds, ep = profile.mnist, profile.epochs["standard"]
    common = dict(arch=profile.mnist_arch, n_train=profile.n_train, n_test=profile.n_test, batch_size=128,
                  optimizer="adam", lr=1e-3, weight_decay=0.01, seed=0, epochs=ep)
    specs = {f"mnist-gp-l1-{lam:g}": Spec.make(ds, objective="input_gradient_penalty",
                                               params={"lam": lam, "norm": "l1"}, **common) for lam in LAMBDAS}
    specs["mnist-gp-l2"] = Spec.make(ds, objective="input_gradient_penalty", params={"lam": 1.0, "norm": "l2"},
                                     **common)
    specs["mnist-jacobian"] = Spec.make(ds, objective="jacobian_penalty", params={"lam": 0.01, "projections": 1},
                                        **common)
    specs["mnist-label-smoothing"] = Spec.make(ds, objective="label_smoothing", params={"alpha": 0.1}, **common)
    teacher = Spec.make(ds, objective="standard", params={"temperature": TEMPERATURE}, **common)
    specs[TEACHER] = teacher
    specs[DISTILLED] = Spec.make(ds, objective="distillation", params={"temperature": TEMPERATURE}, teacher=teacher,
                                 **common)
    specs["mnist-noise-consistency"] = Spec.make(ds, objective="noise_consistency",
                                                 params={"eps": 0.3, "beta": 6.0}, **common)
    return specs


_COLORS = plotting.OBJECTIVE_COLORS
for _lam in LAMBDAS:
    plotting.STYLES.add(f"mnist-gp-l1-{_lam:g}", plotting.Style(f"gp-l1-{_lam:g}", _COLORS["input_gradient_penalty"]))
for _name, _style in {"mnist-gp-l2": ("gp-l2", _COLORS["input_gradient_penalty_l2"]),
                      "mnist-jacobian": ("jacobian", _COLORS["jacobian_penalty"]),
                      "mnist-label-smoothing": ("label-smoothing", _COLORS["label_smoothing"]),
                      TEACHER: (f"teacher-t{TEMPERATURE:g}", "#7f7f7f"),
                      DISTILLED: (f"distilled-t{TEMPERATURE:g}", _COLORS["distillation"]),
                      "mnist-noise-consistency": ("noise-consistency", _COLORS["noise_consistency"])}.items():
    plotting.STYLES.add(_name, plotting.Style(*_style))


def arms(profile) -> dict[str, Spec]:
    """Every model of the chapter, by name: the catalogue's four, then the new arms (the teacher excluded)."""
    prof = get_profile(profile)
    catalog = catalog_zoo(prof)
    new = {n: s for n, s in lipschitz_zoo(prof).items() if n != TEACHER}
    return {**{n: catalog[n] for n in FROM_CATALOG}, **new}


def train(profile, progress: bool = True) -> dict[str, Spec]:
    """Train (or find) every model the chapter needs; return the specs of :func:`arms`."""
    prof = get_profile(profile)
    train_zoo(prof, list(FROM_CATALOG), progress=progress)
    for spec in lipschitz_zoo(prof).values():
        zoo.train(spec, progress=progress)
    return arms(prof)


def load(profile, names=None, progress: bool = True) -> dict:
    """The chapter's models by name (default: every arm of :func:`arms`), trained on first use."""
    prof = get_profile(profile)
    specs = arms(prof)
    return {n: zoo.get(specs[n], prof, progress=progress) for n in (names or specs)}


def eval_n(profile) -> int:
    """Test images per measurement (500 on ``cpu`` and ``paper``)."""
    return sizes(profile).n


def margin_attack(profile) -> PGD:
    """PGD-k with the margin loss, step 2.5·ε/k and the chapter's restarts: PGD-100 with 3 restarts on ``cpu``
    and ``paper`` (smoke: PGD-20, 2 restarts)."""
    size = sizes(profile)
    steps = size.margin_steps
    return PGD(eps=EPS, steps=steps, step_size=2.5 * EPS / steps, restarts=size.margin_restarts, loss=margin_loss)


def stronger_attack(profile) -> WorstOf:
    """The strong attack followed, on the images it did not fool, by :func:`margin_attack`: an image is robust
    only if both fail."""
    return WorstOf((strong_attack(profile, EPS), margin_attack(profile)))


@dataclass
class ArmResults:
    """The chapter's measurements on the first :func:`eval_n` test images.

    ``accuracy[model]``: ``clean acc``, ``strong attack acc`` and ``stronger attack acc`` (None for the
    catalogue's robust models, which are held to the strong attack only), and :data:`AT_TEMPERATURE` (None but
    for the distilled student). ``per_image[model][measurement]``: one value per image, (n,), for each of
    :data:`PER_IMAGE`.
    """

    accuracy: dict
    per_image: dict


def _cache_path(prof: Profile):
    settings = {"version": _VERSION, "profile": prof.name, "n": eval_n(prof),
                "models": {n: s.key() for n, s in arms(prof).items()},
                "attacks": [strong_attack(prof, EPS).cache_key(), stronger_attack(prof).cache_key()]}
    return paths.results_path("lipschitz", prof.name, settings, ".pt")


def measure(profile, progress: bool = True) -> ArmResults:
    """Every measurement of :class:`ArmResults`, per arm, with the attacks' and the Lipschitz estimate's random
    starts seeded (seed 0 per model); cached."""
    prof = get_profile(profile)
    return paths.cached(_cache_path(prof), lambda: _measure(prof, progress),
                        load=lambda p: ArmResults(**paths.torch_load(p)),
                        dump=lambda r: paths.torch_bytes(asdict(r)), name="lipschitz.measure")


def _measure(prof: Profile, progress: bool) -> ArmResults:
    from tqdm import tqdm

    specs = train(prof, progress)
    ds = load_dataset(prof.mnist, prof.n_train, prof.n_test)
    n = eval_n(prof)
    acc, per_image = {}, {}
    for name, spec in tqdm(specs.items(), desc="Lipschitz chapter measurements", disable=not progress):
        model = zoo.load(spec)
        x, y = to_model(ds.x_test[:n], model), to_model(ds.y_test[:n], model)
        with seeded(0):
            row = {"clean acc": accuracy(model, x, y)}
            # The stronger attack is the strong one and then the margin attack on its survivors: one WorstOf run
            # gives both columns, the strong attack's mask and the final one.
            stronger = name not in FROM_CATALOG or name == STANDARD
            attack = stronger_attack(prof) if stronger else WorstOf((strong_attack(prof, EPS),))
            _, masks = attack.run(model, x, y)
            row["strong attack acc"] = float(masks[0].float().mean())
            row["stronger attack acc"] = float(masks[1].float().mean()) if stronger else None
            row[AT_TEMPERATURE] = None
            if name == DISTILLED:
                _, (tempered,) = WorstOf((strong_attack(prof, EPS),)).run(_Tempered(model, TEMPERATURE), x, y)
                row[AT_TEMPERATURE] = float(tempered.float().mean())
            with torch.no_grad():
                p = torch.softmax(model.eval()(x), 1)
            values = {"lipschitz": local_lipschitz(model, x, EPS),
                      "kl lipschitz": local_lipschitz(model, x, EPS, space="kl"),
                      "margin ratio": margin_ratio(model, x), "grad l1": gradient_l1(model, x, y),
                      "alignment": alignment(model, x), "confidence": p.amax(1)}
        acc[name] = row
        per_image[name] = {k: v.detach().cpu().float() for k, v in values.items()}
    return ArmResults(acc, per_image)


class _Tempered(torch.nn.Module):
    """A model with its logits divided by ``temperature``: the distilled student as it was trained."""

    def __init__(self, model: torch.nn.Module, temperature: float):
        super().__init__()
        self.model, self.temperature = model, temperature

    def forward(self, x):
        return self.model(x) / self.temperature


def table(profile, results: ArmResults):
    """One row per model: objective, training ε (the catalogue's models; None for the new arms), accuracies, and
    mean with 95 % interval of the per-image measurements (columns ``<name>``, ``<name> ±`` and
    ``<name> non-finite``, the values left out of the mean)."""
    import pandas as pd
    specs = arms(profile)
    rows = []
    for name, row in results.accuracy.items():
        spec = specs[name]
        entry = {"model": name, "objective": spec.objective,
                 "train ε": (train_eps(spec) or 0.0) if name in FROM_CATALOG else None, **row}
        for key in PER_IMAGE:
            iv = mean_ci(results.per_image[name][key])
            entry[key], entry[f"{key} ±"], entry[f"{key} non-finite"] = iv.mean, iv.half_width, iv.nonfinite
        rows.append(entry)
    return pd.DataFrame(rows).set_index("model")


def display_table(profile, t):
    """:func:`table` for the book: accuracies in %, per-image measurements as ``mean ± half-width``, captioned."""
    import pandas as pd

    from ..book.display import mean_pm
    shown = pd.DataFrame(index=t.index)
    for col in ("clean acc", "strong attack acc", "stronger attack acc", AT_TEMPERATURE):
        shown[col] = ["–" if pd.isna(v) else f"{100 * v:.1f} %" for v in t[col]]
    return shown.join(mean_pm(t, PER_IMAGE, fmt=".3g")).style.set_caption(
        f"Per model, at ε = {EPS:g} on {eval_n(profile)} test images: accuracies, and mean ± half-width of the "
        "95 % interval of the per-image measurements.")


def sweep(t):
    """The L1 gradient-penalty sweep: rows λ = 0 (the standard model) and each λ of :data:`LAMBDAS`."""
    rows = t.loc[[STANDARD] + [f"mnist-gp-l1-{lam:g}" for lam in LAMBDAS]].copy()
    rows["λ"] = [0.0, *LAMBDAS]
    return rows


def sweep_figure(t):
    """Accuracy under both attacks, the Lipschitz estimate and the alignment against the penalty weight λ."""
    return plotting.sweep_panels(sweep(t), "λ", [
        (["strong attack acc", "stronger attack acc"], f"accuracy at ε = {EPS:g}", None),
        (["lipschitz"], "local Lipschitz estimate (logits)", "lipschitz ±"),
        (["alignment"], "alignment", "alignment ±")],
        title="L1 input-gradient penalty: λ = 0 is the standard model")


def grad_l1_figure(results: ArmResults):
    """The distribution of ‖∇ₓ CE‖₁ over the test images, one box per model."""
    return plotting.distributions({n: results.per_image[n]["grad l1"] for n in results.per_image},
                                  ylabel="‖∇ₓ CE‖₁ per test image", title="The smoothness term of the frame, per model")


def gradient_figure(profile):
    """One test image per class (rows) and the signed input gradient of every arm's predicted logit (columns)."""
    prof = get_profile(profile)
    ds = load_dataset(prof.mnist, prof.n_train, prof.n_test)
    idx = first_per_class(ds.y_test, 1, ds.num_classes)
    x = ds.x_test[idx]
    maps = {n: Gradient(zoo.get(s, prof)).attribute(x).cpu() for n, s in arms(prof).items()}
    return plotting.saliency_grid(x, maps, signed=True, title="Input gradient of the predicted logit, every arm",
                                  row_labels=ds.y_test[idx].tolist())


# ---------------------------------------------------------------------------------------------------
# Claims

def _paired(results: ArmResults, name: str, key: str, reference: str = STANDARD) -> Interval:
    return paired_ci(results.per_image[name][key], results.per_image[reference][key])


@claim("ch5.orientation-and-smoothness-raise-alignment", chapter="5",
       statement="Arms with both orientation and smoothness (PGD-AT, TRADES, CE + gradient penalty) have input "
                 "gradients better aligned with the image than the standard model.",
       papers="helland2021", differs=protocol_differs)
def _claim_alignment(profile: Profile) -> Measurement:
    res = measure(profile)
    return margins_claim({n: _paired(res, n, "alignment") for n in ORIENTED_SMOOTH},
                         f"paired alignment margin over {STANDARD} on {eval_n(profile)} test images; 95 % interval "
                         "above 0 for each arm")


@claim("ch5.label-smoothing-is-not-smoothness", chapter="5",
       statement="Label smoothing lowers confidence but is not smoothness: on a scale-free measure (the margin-to-"
                 "gradient ratio, the L∞ distance to the linearised boundary) it stays below every arm with "
                 "orientation and smoothness, and it does not raise alignment as much as they do.",
       papers="helland2021", differs=protocol_differs)
def _claim_label_smoothing(profile: Profile) -> Measurement:
    t = table(profile, measure(profile))
    ls = "mnist-label-smoothing"
    keys = ("confidence", "margin ratio", "alignment", "lipschitz", "kl lipschitz")
    conf_ok = t.loc[ls, "confidence"] < t.loc[STANDARD, "confidence"]
    ratio_ok = all(t.loc[ls, "margin ratio"] < t.loc[n, "margin ratio"] for n in ORIENTED_SMOOTH)
    align_ok = all(t.loc[ls, "alignment"] < t.loc[n, "alignment"] for n in ORIENTED_SMOOTH)
    measured = {f"{k} {plotting.model_label(n)}": float(t.loc[n, k]) for k in keys
                for n in (STANDARD, ls, *ORIENTED_SMOOTH) if not (k == "confidence" and n in ORIENTED_SMOOTH)}
    failed = [w for w, ok in (("confidence not lower", conf_ok),
                              ("margin ratio not below every oriented+smooth arm", ratio_ok),
                              ("alignment not below every oriented+smooth arm", align_ok)) if not ok]
    return Measurement(measured, "confidence(LS) < confidence(standard); margin ratio(LS) < margin ratio of each "
                       f"of {', '.join(ORIENTED_SMOOTH)}; alignment(LS) < alignment of each of them (the logit and "
                       "KL Lipschitz estimates are reported, not tested: the logit one moves with the logits' scale)",
                       not failed, join_notes(*failed, nonfinite_note(t, keys, (STANDARD, ls, *ORIENTED_SMOOTH))))


@claim("ch5.gradient-penalty-is-robust", chapter="5",
       statement="The gradient-penalty model (L1, λ = ε) is more robust under PGD than the standard model, also "
                 "under the worst case of that attack and a margin-loss attack (a guard against gradient masking).",
       papers=("helland2021", "ross2018"), differs=protocol_differs)
def _claim_gp_robust(profile: Profile) -> Measurement:
    t = table(profile, measure(profile))
    strong = strong_attack(profile, EPS).describe()
    stronger = stronger_attack(profile).describe()
    measured = {f"{plotting.model_label(n)} {col}": float(t.loc[n, col]) for n in (MAIN_GP, STANDARD)
                for col in ("strong attack acc", "stronger attack acc")}
    ok = all(t.loc[MAIN_GP, c] > t.loc[STANDARD, c] for c in ("strong attack acc", "stronger attack acc"))
    drop = t.loc[MAIN_GP, "strong attack acc"] - t.loc[MAIN_GP, "stronger attack acc"]
    return Measurement(measured, f"accuracy(gp) > accuracy(standard) at ε = {EPS:g} on {eval_n(profile)} test images "
                       f"under {strong}, and under the {stronger}", ok,
                       f"the stronger attack costs the gradient-penalty model {100 * drop:.1f} points")


__all__ = ["LipschitzSizes", "SIZES", "sizes", "lipschitz_zoo", "arms", "train", "load", "eval_n", "margin_attack",
           "stronger_attack", "ArmResults", "measure", "table", "display_table", "sweep", "sweep_figure",
           "grad_l1_figure", "gradient_figure", "EPS", "LAMBDAS", "MAIN_GP", "TEACHER", "DISTILLED", "FROM_CATALOG",
           "ORIENTED_SMOOTH", "AT_TEMPERATURE"]


# ---------------------------------------------------------------------------------------------------
# The synthesis page's ε dashboard

@panel("smoothness", title="Smoothness", chapter="5", ylabel="per test image (log scale)", log=True)
def _panel_smoothness(profile: Profile) -> dict:
    """The local Lipschitz estimate of the logits at ε = 0.1, ‖∇ₓ CE‖₁ and the scale-free margin ratio, mean and 95 %
    interval over the test images, for the catalogue's models this chapter measures."""
    res = measure(profile, progress=False)
    return {label: {m: mean_ci(res.per_image[m][key]) for m in FROM_CATALOG}
            for key, label in (("lipschitz", "local Lipschitz estimate"), ("grad l1", "‖∇ₓ CE‖₁"),
                               ("margin ratio", "margin / ‖∇ margin‖₁"))}


# ---------------------------------------------------------------------------------------------------
# Exercises (the classroom edition: rilib.book.exercises)

#: The exercises' images: the first ``EXERCISE_N`` test images of the profile.
EXERCISE_N = 200
#: The models of ``ex-ch5-first-order``: the standard model, PGD-AT and the gradient penalty at λ = ε = 0.1.
FIRST_ORDER_MODELS = (STANDARD, "mnist-pgd-0.1", MAIN_GP)
#: The attack of ``ex-ch5-first-order``: PGD-20 (step 2.5ε/20) from x itself, its highest-loss iterate.
FIRST_ORDER_ATTACK = PGD(eps=EPS, steps=20, random_start=False, early_stop=False)


def _exercise_data(profile) -> tuple[torch.Tensor, torch.Tensor]:
    """The images and labels of the chapter's exercises: the first :data:`EXERCISE_N` test images of ``profile``."""
    prof = get_profile(profile)
    ds = load_dataset(prof.mnist, prof.n_train, prof.n_test)
    return ds.x_test[:EXERCISE_N], ds.y_test[:EXERCISE_N]


@exercise("ex-ch5-first-order", chapter="5", title="Where the first-order expansion holds", difficulty="medium",
          minutes=20, rtol=0.02, atol=0.001,
          expected=f"a dict {{model: {{'grad l1': …, 'first order': …, 'pgd': …}}}} for "
                   f"{', '.join(FIRST_ORDER_MODELS)}: the means over the first {EXERCISE_N} test images of ‖∇ₓL‖₁, "
                   f"of the first-order estimate L(x) + ε‖∇ₓL‖₁ and of the loss L at the attack's image "
                   f"(L the cross-entropy in nats, ε = {EPS:g})")
def _ex_first_order(prof: Profile) -> dict:
    x, y = _exercise_data(prof)
    models = load(prof, FIRST_ORDER_MODELS, progress=False)
    out = {}
    for name in FIRST_ORDER_MODELS:
        model = models[name]
        xm, ym = to_model(x, model), to_model(y, model)
        grad = gradient_l1(model, xm, ym)
        x_adv = FIRST_ORDER_ATTACK(model, xm, ym)
        with torch.no_grad():
            loss = F.cross_entropy(model(xm), ym, reduction="none")
            loss_adv = F.cross_entropy(model(x_adv), ym, reduction="none")
        out[name] = {"grad l1": float(grad.mean()), "first order": float((loss + EPS * grad).mean()),
                     "pgd": float(loss_adv.mean())}
    return out


@exercise("ex-ch5-distillation", chapter="5", title="Distillation at its own temperature", difficulty="easy",
          minutes=10, rtol=0.02,
          expected=f"a dict {{1: {{'lipschitz': …, 'margin ratio': …}}, {TEMPERATURE:g}: {{…}}}}: the means over "
                   f"the first {EXERCISE_N} test images of {DISTILLED}'s local Lipschitz estimate of the logits at "
                   f"ε = {EPS:g} (logit units per unit of input) and of its margin ratio (input units), with its "
                   f"logits divided by 1 and by T = {TEMPERATURE:g}")
def _ex_distillation(prof: Profile) -> dict:
    x, _ = _exercise_data(prof)
    model = load(prof, [DISTILLED], progress=False)[DISTILLED]
    out = {}
    for t in (1, int(TEMPERATURE)):
        tempered = _Tempered(model, float(t))
        with seeded(0):
            lipschitz = float(local_lipschitz(tempered, x, EPS).mean())
        out[t] = {"lipschitz": lipschitz, "margin ratio": float(margin_ratio(tempered, x).mean())}
    return out


prose_exercise("ex-ch5-orientation", chapter="5", title="A second arm of undirected smoothness", difficulty="hard",
               minutes=40)
