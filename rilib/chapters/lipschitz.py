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
  under a stronger one: the book's headline attack (:func:`~rilib.chapters.catalog.evaluation_attack`), the worst
  case per image of that attack, PGD-40 with the margin loss, APGD-CE and APGD-T, a guard against gradient
  masking; the distilled student also under the strong attack with its logits divided by its temperature T, the
  standard test of whether distillation only masks the gradient;
- Etmann et al.'s alignment (:func:`rilib.lenses.metrics.alignment`, shared with chapter 3);
- the mean confidence (largest softmax probability) on clean test images.

The claims are about training procedures, so the arms that decide them are trained at the profile's ``seeds``:
the catalogue's replicates of the standard, PGD-AT and TRADES models, and the chapter's own replicates of
:data:`SEEDED_ARMS` (zoo group ``lipschitz``); :func:`measure_seeds` measures the replicates, and each claim is
decided on the Student-t interval over seed pairs, with the per-image interval of the seed-0 models beside it.

Measurements are cached atomically under ``RILIB_CACHE/results`` per profile and zoo, as :class:`ArmResults`. On a
profile with CIFAR-10 (``paper``), :func:`measure_cifar10` measures the catalogue's CIFAR-10 models at ε = 8/255 (the
chapter's own arms are MNIST's only); the claims stay on MNIST.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from .. import paths, zoo
from ..attacks import PGD, WorstOf
from ..book import plotting
from ..book.dashboard import over_seeds, panel
from ..book.exercises import exercise, prose_exercise
from ..book.ledger import Measurement, claim, join_notes, seed_verdict
from ..data import first_per_class, load_dataset
from ..evaluate import accuracy
from ..lenses.lipschitz import gradient_l1, local_lipschitz, margin_ratio
from ..lenses.metrics import alignment
from ..lenses.saliency import Gradient
from ..lenses.stats import SHARE, SIGNED_SHARE, Interval, mean_ci, paired_ci, proportion_ci, seed_ci
from ..models import to_model
from ..profiles import Profile, get_profile
from ..registry import Registry
from ..rng import seeded
from ..zoo import ZOO_GROUPS, Spec
from .catalog import (EVAL_EPS, SEEDED, STANDARD, attack_precision_note, catalog_zoo, evaluation_attack,
                      family_dataset, has_family, model_names, no_cifar10, protocol_differs, seed_name, seed_names,
                      strong_attack, train_eps, train_zoo)


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
LABEL_SMOOTHING = "mnist-label-smoothing"
#: Cross-entropy plus the KL to a random point of the ε-ball: average-case smoothness, orientation kept.
RANDOM_KL = "mnist-ce-random-kl"
#: TRADES at the chapter's ε: the orientation term exactly as in standard training (cross-entropy on clean images)
#: plus a worst-case smoothness penalty that never sees the label, so it cannot re-orient the boundary.
TRADES_EPS = f"mnist-trades-{EPS:g}"
#: The chapter's own arms trained at the profile's ``seeds`` (the claims need them); the catalogue's arms of the
#: claims have their seeds in the catalogue (``catalog.SEEDED``).
SEEDED_ARMS = (MAIN_GP, LABEL_SMOOTHING)
#: The other λ of the gradient-penalty sweep, also trained at every seed: chapter 3 tests Etmann et al.'s claim that
#: alignment rises with λ on the whole sweep, over seeds.
SWEEP_SEEDED = tuple(f"mnist-gp-l1-{lam:g}" for lam in LAMBDAS if f"mnist-gp-l1-{lam:g}" != MAIN_GP)
#: Every arm a claim compares, whose replicates :func:`measure_seeds` measures.
CLAIM_ARMS = (STANDARD, *ORIENTED_SMOOTH, LABEL_SMOOTHING)
#: The arms whose replicates are also attacked (the robustness claim).
ATTACKED_ARMS = (STANDARD, MAIN_GP)
#: Per-image measurements of every arm.
PER_IMAGE = ("lipschitz", "kl lipschitz", "margin ratio", "grad l1", "alignment", "confidence")
#: The accuracy of the distilled student under the strong attack with its logits divided by its temperature.
AT_TEMPERATURE = "strong attack acc, logits ÷ T"
_VERSION = 6
_SEEDS_VERSION = 1


@dataclass(frozen=True)
class LipschitzSizes:
    """Sizes of the Lipschitz chapter."""

    n: int = 500                  # test images per measurement


#: The chapter's sizes under each profile.
SIZES: Registry[LipschitzSizes] = Registry("profile of the Lipschitz chapter")
SIZES.add("smoke", LipschitzSizes(n=50))
SIZES.add("cpu", LipschitzSizes())
SIZES.add("full", LipschitzSizes())  # the cpu sizes, on the full training set
SIZES.add("paper", LipschitzSizes())


def sizes(profile) -> LipschitzSizes:
    """The chapter's sizes under ``profile`` (an unknown profile name lists the ones with sizes)."""
    return SIZES[get_profile(profile).name]


@ZOO_GROUPS.register("lipschitz")
def lipschitz_zoo(profile: Profile) -> dict[str, Spec]:
    """The new arms, trained like the catalogue's standard model (AdamW, lr 1e-3, wd 0.01, same epochs), but
    :data:`TRADES_EPS`, the catalogue's TRADES recipe at ε = 0.1. The distilled student's spec holds its teacher's
    spec, so training the student trains the teacher first. Replicates 1 … ``profile.seeds − 1`` of
    :data:`SEEDED_ARMS` and :data:`SWEEP_SEEDED` (named as the catalogue names them) have seed 100·r + 50 + the arm's
    index in the two, a seed no catalogue model uses."""
    ds, ep = profile.mnist, profile.epochs["standard"]
    common = dict(arch=profile.mnist_arch, n_train=profile.n_train, n_test=profile.n_test, batch_size=128,
                  optimizer="adam", lr=1e-3, weight_decay=0.01, seed=0, epochs=ep,
                  precision=profile.training_precision())
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
    specs[RANDOM_KL] = Spec.make(ds, objective="ce_random_kl", params={"eps": 0.3, "beta": 6.0}, **common)
    # TRADES at ε = 0.1: the catalogue's TRADES recipe (β = 6, its inner steps, epochs and ε warm-up), only ε
    # changed (and no training monitor: no page draws this model's learning curves).
    trades = catalog_zoo(profile)["mnist-trades"]
    specs[TRADES_EPS] = replace(trades.with_params(eps=EPS), monitor_eps=None)
    for i, arm in enumerate((*SEEDED_ARMS, *SWEEP_SEEDED)):
        for r in range(1, profile.seeds):
            specs[seed_name(arm, r)] = replace(specs[arm], seed=100 * r + 50 + i)
    return specs


_COLORS = plotting.OBJECTIVE_COLORS
for _lam in LAMBDAS:
    plotting.STYLES.add(f"mnist-gp-l1-{_lam:g}", plotting.Style(f"gp-l1-{_lam:g}", _COLORS["input_gradient_penalty"]))
for _name, _style in {"mnist-gp-l2": ("gp-l2", _COLORS["input_gradient_penalty_l2"]),
                      "mnist-jacobian": ("jacobian", _COLORS["jacobian_penalty"]),
                      "mnist-label-smoothing": ("label-smoothing", _COLORS["label_smoothing"]),
                      TEACHER: (f"teacher-t{TEMPERATURE:g}", "#7f7f7f"),
                      DISTILLED: (f"distilled-t{TEMPERATURE:g}", _COLORS["distillation"]),
                      RANDOM_KL: ("ce-random-kl", _COLORS["ce_random_kl"]),
                      TRADES_EPS: (f"trades-{EPS:g}", "#98df8a")}.items():
    plotting.STYLES.add(_name, plotting.Style(*_style))
for _arm in (*SEEDED_ARMS, *SWEEP_SEEDED):
    for _r in range(1, 10):
        plotting.STYLES.add(seed_name(_arm, _r), plotting.Style(f"{plotting.STYLES[_arm].label} s{_r}",
                                                                plotting.STYLES[_arm].color))


def arms(profile) -> dict[str, Spec]:
    """Every model of the chapter's table, by name: the catalogue's four, then the new arms (the teacher and the
    replicates of :func:`arm_seeds` excluded)."""
    prof = get_profile(profile)
    catalog = catalog_zoo(prof)
    replicates = {seed_name(arm, r) for arm in (*SEEDED_ARMS, *SWEEP_SEEDED) for r in range(1, prof.seeds)}
    new = {n: s for n, s in lipschitz_zoo(prof).items() if n != TEACHER and n not in replicates}
    return {**{n: catalog[n] for n in FROM_CATALOG}, **new}


def arm_seeds(profile, arm: str) -> list[str]:
    """Every trained seed of ``arm`` (one of :data:`CLAIM_ARMS`), the arm's own name first: the catalogue's
    replicates for its arms, the chapter's for :data:`SEEDED_ARMS`."""
    prof = get_profile(profile)
    if arm in SEEDED:
        return seed_names(prof, arm)
    if arm in SEEDED_ARMS:
        return [seed_name(arm, r) for r in range(prof.seeds)]
    from ..errors import UnknownNameError
    raise UnknownNameError(f"No training seeds for {arm!r}. Arms with seeds: {', '.join(CLAIM_ARMS)}.")


def replicate_specs(profile) -> dict[str, Spec]:
    """The specs of every replicate (seed 1 and up) of :data:`CLAIM_ARMS`, by name."""
    from .catalog import all_specs
    prof = get_profile(profile)
    specs = {**all_specs(prof), **lipschitz_zoo(prof)}
    return {n: specs[n] for arm in CLAIM_ARMS for n in arm_seeds(prof, arm)[1:]}


def train(profile, progress: bool = True) -> dict[str, Spec]:
    """Train (or find) every model the chapter needs, the replicates included; return the specs of :func:`arms`."""
    prof = get_profile(profile)
    train_zoo(prof, list(FROM_CATALOG), progress=progress)
    for spec in lipschitz_zoo(prof).values():
        zoo.train(spec, progress=progress)
    for spec in replicate_specs(prof).values():
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


def stronger_attack(profile) -> WorstOf:
    """The book's headline attack at the chapter's ε (:func:`~rilib.chapters.catalog.evaluation_attack`): the
    strong attack followed, each on the images the earlier ones did not fool, by PGD-40 on the margin loss, APGD-CE
    and APGD-T; an image is robust only if all four fail. The margin loss and APGD-T's targeted DLR loss do not
    saturate where cross-entropy does, which is what makes it a guard against gradient masking.

    The chapter once ran a longer margin PGD (100 steps, 3 restarts) in the second place. On the chapter's 14
    attacked models, 500 images each, the two attacks left the same robust images on 12; on label smoothing and
    the distilled student they left 147 vs 149 and 252 vs 251, each fooling 1–3 images the other did not. The
    headline took 0.74 of the seconds (``benchmarks/margin_stage.py``)."""
    return evaluation_attack(profile, EPS)


def stronger_attacked(profile) -> dict[str, Spec]:
    """Every model :func:`measure` and :func:`measure_seeds` hold to :func:`stronger_attack`, by name, with its spec:
    the standard model and every new arm of :func:`arms`, then the replicates of :data:`ATTACKED_ARMS` (the
    catalogue's robust models are held to the strong attack only)."""
    prof = get_profile(profile)
    seed0 = {n: s for n, s in arms(prof).items() if n not in FROM_CATALOG or n == STANDARD}
    replicates = replicate_specs(prof)
    return {**seed0, **{n: replicates[n] for arm in ATTACKED_ARMS for n in arm_seeds(prof, arm)[1:]}}


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
    return paths.cached_record(_cache_path(prof), lambda: _measure(prof, progress), ArmResults,
                               name="lipschitz.measure")


def _each_model(prof: Profile, specs: dict, desc: str, progress: bool, measure_one,
                family: str = "mnist") -> tuple[dict, dict]:
    """``measure_one(name, model, x, y) -> (row, per-image values)`` for every model of ``specs`` on the first
    :func:`eval_n` test images of ``family``, its random starts seeded (seed 0 per model): ``(rows, per_image)`` by
    model name, the per-image values on the CPU as float32."""
    from tqdm import tqdm

    ds = family_dataset(prof, family)
    n = eval_n(prof)
    rows, per_image = {}, {}
    for name, spec in tqdm(specs.items(), desc=desc, disable=not progress):
        model = zoo.load(spec)
        x, y = to_model(ds.x_test[:n], model), to_model(ds.y_test[:n], model)
        with seeded(0):
            rows[name], values = measure_one(name, model, x, y)
        per_image[name] = {k: v.detach().cpu().float() for k, v in values.items()}
    return rows, per_image


def _confidence(model, x) -> torch.Tensor:
    """The softmax probability of the predicted class, per image."""
    with torch.no_grad():
        return torch.softmax(model.eval()(x), 1).amax(1)


def _measure(prof: Profile, progress: bool) -> ArmResults:
    attacked = stronger_attacked(prof)

    def one(name, model, x, y):
        row = {"clean acc": accuracy(model, x, y)}
        # The stronger attack is the strong one, then the margin PGD, APGD-CE and APGD-T on the survivors: one
        # WorstOf run gives both columns, the strong attack's mask and the final one.
        stronger = name in attacked
        attack = stronger_attack(prof) if stronger else WorstOf((strong_attack(prof, EPS),))
        _, masks = attack.run(model, x, y)
        row["strong attack acc"] = float(masks[0].float().mean())
        row["stronger attack acc"] = float(masks[-1].float().mean()) if stronger else None
        row[AT_TEMPERATURE] = None
        if name == DISTILLED:
            _, (tempered,) = WorstOf((strong_attack(prof, EPS),)).run(_Tempered(model, TEMPERATURE), x, y)
            row[AT_TEMPERATURE] = float(tempered.float().mean())
        confidence = _confidence(model, x)
        return row, {"lipschitz": local_lipschitz(model, x, EPS),
                     "kl lipschitz": local_lipschitz(model, x, EPS, space="kl"),
                     "margin ratio": margin_ratio(model, x), "grad l1": gradient_l1(model, x, y),
                     "alignment": alignment(model, x), "confidence": confidence}

    return ArmResults(*_each_model(prof, train(prof, progress), "Lipschitz chapter measurements", progress, one))


def _cifar10_cache_path(prof: Profile):
    settings = {"version": _VERSION, "profile": prof.name, "family": "cifar10", "n": eval_n(prof),
                "models": {n: catalog_zoo(prof)[n].key() for n in model_names(prof, "cifar10")},
                "attacks": [strong_attack(prof, EVAL_EPS["cifar10"]).cache_key()]}
    return paths.results_path("lipschitz-cifar10", prof.name, settings, ".pt")


def measure_cifar10(profile, progress: bool = True) -> ArmResults:
    """:class:`ArmResults` of the catalogue's CIFAR-10 models (profiles with CIFAR-10, such as ``paper``), measured
    as :func:`measure` measures the MNIST arms but at L∞ ε = 8/255 (the Lipschitz ball and the strong attack, PGD-40
    with the profile's restarts); ``stronger attack acc`` and :data:`AT_TEMPERATURE` are None (the stronger attack
    guards the MNIST arms that might mask gradients; chapter 1 holds every CIFAR-10 model to the headline attack).
    The chapter's own arms (penalties, label smoothing, distillation) are trained on MNIST only. Cached."""
    prof = get_profile(profile)
    family_dataset(prof, "cifar10")  # a profile without CIFAR-10: a clear error
    return paths.cached_record(_cifar10_cache_path(prof), lambda: _measure_cifar10(prof, progress), ArmResults,
                               name="lipschitz.measure_cifar10")


def _measure_cifar10(prof: Profile, progress: bool) -> ArmResults:
    eps = EVAL_EPS["cifar10"]

    def one(name, model, x, y):
        _, (robust,) = WorstOf((strong_attack(prof, eps),)).run(model, x, y)
        row = {"clean acc": accuracy(model, x, y), "strong attack acc": float(robust.float().mean()),
               "stronger attack acc": None, AT_TEMPERATURE: None}
        return row, {"lipschitz": local_lipschitz(model, x, eps), "kl lipschitz": local_lipschitz(model, x, eps, space="kl"),
                     "margin ratio": margin_ratio(model, x), "grad l1": gradient_l1(model, x, y),
                     "alignment": alignment(model, x), "confidence": _confidence(model, x)}

    specs = train_zoo(prof, model_names(prof, "cifar10"), progress=progress)
    return ArmResults(*_each_model(prof, specs, "Lipschitz chapter, CIFAR-10", progress, one, family="cifar10"))


def cifar10_section(profile, progress: bool = True):
    """:func:`measure_cifar10` as one table, a row per CIFAR-10 model: clean and strong-attack accuracy at
    ε = 8/255, and the mean [95 % interval over the images] of every per-image measurement; or, on a profile
    without CIFAR-10, a sentence saying so."""
    import pandas as pd
    prof = get_profile(profile)
    if not has_family(prof, "cifar10"):
        return no_cifar10(prof)
    res = measure_cifar10(prof, progress)
    rows = {}
    for name, acc in res.accuracy.items():
        row = {k: f"{acc[k]:.3f}" for k in ("clean acc", "strong attack acc")}
        row.update({k: mean_ci(v).format(".3g") for k, v in res.per_image[name].items()})
        rows[plotting.model_label(name)] = row
    return pd.DataFrame(rows).T.rename_axis("model").style.set_caption(
        f"CIFAR-10 models on the first {eval_n(prof)} test images: accuracy clean and under PGD-{prof.eval_steps} "
        f"({prof.eval_restarts} restarts) at L∞ ε = 8/255, and mean [95 % interval over the images] of the local "
        f"Lipschitz estimates (logits, and KL) in the ε = 8/255 ball, the margin ratio, ‖∇ₓ CE‖₁, the scale-free "
        f"alignment and the confidence. One training seed per model.")


#: The per-image measurements of the replicates (the ones the claims use).
SEED_PER_IMAGE = ("margin ratio", "alignment", "confidence")
#: The measurements that are shares (in [0, 1]), whose intervals over seeds are cut at that range.
SHARES = ("confidence", "clean acc", "strong attack acc", "stronger attack acc")


@dataclass
class SeedResults:
    """The claims' measurements on every replicate (seed 1 and up) of :data:`CLAIM_ARMS`, on the same
    :func:`eval_n` test images as :class:`ArmResults`: ``per_image[model][measurement]`` for each of
    :data:`SEED_PER_IMAGE`, (n,); ``accuracy[model]``: ``strong attack acc`` and ``stronger attack acc`` for the
    replicates of :data:`ATTACKED_ARMS` (None for the others)."""

    accuracy: dict
    per_image: dict


def _seeds_cache_path(prof: Profile):
    settings = {"version": _SEEDS_VERSION, "profile": prof.name, "n": eval_n(prof),
                "models": {n: s.key() for n, s in replicate_specs(prof).items()},
                "attacks": [stronger_attack(prof).cache_key()]}
    return paths.results_path("lipschitz-seeds", prof.name, settings, ".pt")


def measure_seeds(profile, progress: bool = True) -> SeedResults:
    """:class:`SeedResults` of every replicate, measured as :func:`measure` measures the seed-0 models (the
    attacks' random starts seeded with seed 0 per model); cached. Empty on a profile with one seed."""
    prof = get_profile(profile)
    return paths.cached_record(_seeds_cache_path(prof), lambda: _measure_seeds(prof, progress), SeedResults,
                               name="lipschitz.measure_seeds")


def _measure_seeds(prof: Profile, progress: bool) -> SeedResults:
    train(prof, progress)
    attacked = stronger_attacked(prof)

    def one(name, model, x, y):
        row = {"strong attack acc": None, "stronger attack acc": None}
        if name in attacked:
            _, masks = stronger_attack(prof).run(model, x, y)
            row = {"strong attack acc": float(masks[0].float().mean()),
                   "stronger attack acc": float(masks[-1].float().mean())}
        confidence = _confidence(model, x)
        return row, {"margin ratio": margin_ratio(model, x), "alignment": alignment(model, x),
                     "confidence": confidence}

    return SeedResults(*_each_model(prof, replicate_specs(prof), "Lipschitz chapter, other seeds", progress, one))


def seed_values(profile, arm: str, key: str, results: ArmResults | None = None,
                seeds: SeedResults | None = None) -> list:
    """One value per training seed of ``arm`` (:func:`arm_seeds`): the per-image tensor of ``key`` (one of
    :data:`SEED_PER_IMAGE`) or, for ``strong attack acc`` and ``stronger attack acc``, the accuracy. Seed 0 comes
    from :func:`measure`, the others from :func:`measure_seeds`."""
    prof = get_profile(profile)
    results = measure(prof) if results is None else results
    seeds = measure_seeds(prof) if seeds is None else seeds
    names = arm_seeds(prof, arm)
    if key in SEED_PER_IMAGE:
        return [results.per_image[names[0]][key]] + [seeds.per_image[n][key] for n in names[1:]]
    if key in ("strong attack acc", "stronger attack acc"):
        return [results.accuracy[names[0]][key]] + [seeds.accuracy[n][key] for n in names[1:]]
    from ..errors import UnknownNameError
    raise UnknownNameError(f"Unknown seed measurement {key!r}. Valid: {', '.join(SEED_PER_IMAGE)}, "
                           "strong attack acc, stronger attack acc.")


def _scalar(v) -> Interval:
    """A per-image tensor's mean over its finite values with the count left out (:func:`~rilib.lenses.stats.mean_ci`),
    or a float (an accuracy) as an interval of its own."""
    if not torch.is_tensor(v):
        return Interval(float(v), float(v), float(v), 1)
    return mean_ci(v)


def _over_seeds(per_seed: list[Interval], values: list[float], bounds: tuple[float, float] | None = None) -> Interval:
    """:func:`seed_ci` of ``values`` (one per seed, within ``bounds``), counting the non-finite per-image values that
    the seeds' means in ``per_seed`` left out, so that a claim built on it says so."""
    iv = seed_ci(values, bounds)
    return replace(iv, nonfinite=iv.nonfinite + sum(p.nonfinite for p in per_seed))


def tempered_quoted(table) -> dict:
    """The number the page quotes on distillation: the student's accuracy under the strong attack with its logits
    divided by T (``acc_tempered_distilled``), the standard test of gradient masking."""
    value = table.loc[DISTILLED, AT_TEMPERATURE]
    return {"acc_tempered_distilled": None if value is None else float(value)}


def attacked_rows(table):
    """The rows of :func:`table` that the stronger attack measured (it runs only on :data:`ATTACKED_ARMS` and the
    catalogue's models)."""
    return table.dropna(subset=["stronger attack acc"])


def seed_difference(profile, a: str, b: str, key: str, results: ArmResults | None = None,
                    seeds: SeedResults | None = None) -> tuple[list[float], Interval]:
    """(one difference per seed pair, its Student-t interval): the mean of ``key`` over the test images for seed r
    of arm ``a`` minus the same for seed r of arm ``b`` (the accuracy itself for the two attack keys)."""
    va = seed_values(profile, a, key, results, seeds)
    vb = seed_values(profile, b, key, results, seeds)
    pairs = [(_scalar(x), _scalar(y)) for x, y in zip(va, vb)]
    diffs = [x.mean - y.mean for x, y in pairs]
    return diffs, _over_seeds([iv for pair in pairs for iv in pair], diffs, SIGNED_SHARE if key in SHARES else None)


def seed_table(profile, results: ArmResults | None = None, seeds: SeedResults | None = None):
    """One row per arm of :data:`CLAIM_ARMS`: its seeds' mean and Student-t interval over seeds of each measurement
    the claims use (``mean [low, high]``; the attacks only for :data:`ATTACKED_ARMS`)."""
    import pandas as pd
    prof = get_profile(profile)
    results = measure(prof) if results is None else results
    seeds = measure_seeds(prof) if seeds is None else seeds
    rows = {}
    specs = {**catalog_zoo(prof), **lipschitz_zoo(prof), **replicate_specs(prof)}
    for arm in CLAIM_ARMS:
        row = {"seeds": ", ".join(str(specs[n].seed) for n in arm_seeds(prof, arm))}
        keys = (*SEED_PER_IMAGE, *(("strong attack acc", "stronger attack acc") if arm in ATTACKED_ARMS else ()))
        for key in keys:
            per_seed = [_scalar(v) for v in seed_values(prof, arm, key, results, seeds)]
            bounds = SHARE if key in SHARES else None
            row[key] = _over_seeds(per_seed, [iv.mean for iv in per_seed], bounds).format(".3f")
        rows[arm] = row
    return pd.DataFrame(rows).T.rename_axis("model").fillna("–").style.set_caption(
        f"Per arm: mean over its {prof.seeds} training seeds and the 95 % Student-t interval over seeds of each "
        f"measurement the claims use, on {eval_n(prof)} test images (attacks at ε = {EPS:g}, only where a claim "
        "needs them)")


def seed_spread(profile, results: ArmResults | None = None, seeds: SeedResults | None = None) -> dict:
    """The lowest and highest accuracy under the strong attack over the training seeds of each arm of
    :data:`ATTACKED_ARMS`, for the page's prose: ``{"strong_min_<key>": …, "strong_max_<key>": …}`` with ``<key>``
    ``standard`` and ``gp``."""
    out = {}
    for arm, key in zip(ATTACKED_ARMS, ("standard", "gp")):
        values = seed_values(profile, arm, "strong attack acc", results, seeds)
        out[f"strong_min_{key}"], out[f"strong_max_{key}"] = min(values), max(values)
    return out


class _Tempered(torch.nn.Module):
    """A model with its logits divided by ``temperature``: the distilled student as it was trained."""

    def __init__(self, model: torch.nn.Module, temperature: float):
        super().__init__()
        self.model, self.temperature = model, temperature

    def representation(self, x):
        return self.model.representation(x)

    def head(self, h):
        return self.model.head(h) / self.temperature

    def forward(self, x):
        return self.head(self.representation(x))


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
    return shown.join(mean_pm(t, PER_IMAGE, fmt="auto")).style.set_caption(
        f"Per model, at ε = {EPS:g} on {eval_n(profile)} test images: accuracies, and mean ± half-width of the "
        "95 % interval of the per-image measurements.")


def recipe_table(profile):
    """Each arm's recipe under ``profile`` against the paper it follows, with why each difference exists."""
    from ..book.display import recipe_table as table
    prof = get_profile(profile)
    specs = {**catalog_zoo(prof), **lipschitz_zoo(prof)}
    std, trades = specs[STANDARD], specs[TRADES_EPS]
    digits = len(load_dataset(prof.mnist, prof.n_train, prof.n_test).y_train)
    base = f"{std.arch}, {std.optimizer_label()}, {std.epochs} epochs on {digits:,} training digits"
    seeds = f"{prof.seeds} training seeds" if prof.seeds > 1 else "one training seed"
    return table([
        ("all new arms", base, "each arm's source paper, with its own network, data and optimiser (Helland & "
         "VanHoudnos 2021 place the arms in one frame)",
         "one recipe for every arm, so that only the objective differs"),
        ("gradient penalty, L1 (gp-l1-λ)", f"CE + λ‖∇ₓCE‖₁, λ ∈ {{{', '.join(f'{v:g}' for v in LAMBDAS)}}}, double "
         f"backpropagation; {seeds} at every λ (chapter 3 tests the sweep over seeds)",
         "Ross & Doshi-Velez 2018: CE + λ‖∇ₓCE‖₂² (double backpropagation, Drucker & LeCun 1992)",
         f"the L1 norm is the dual of the L∞ threat, so λ = ε is PGD-AT's first-order expansion (Simon-Gabriel "
         f"et al. 2019); the chapter measures at L∞ ε = {EPS:g}"),
        ("gradient penalty, L2 (gp-l2)", "CE + λ‖∇ₓCE‖₂², λ = 1, one seed",
         "Ross & Doshi-Velez 2018: the same penalty, λ swept per dataset",
         "the paper's own form beside the L1 sweep; one λ, no sweep (training time)"),
        ("Jacobian penalty (jacobian)", "CE + λ/2·‖J‖²_F, λ = 0.01, one random projection, one seed",
         "Hoffman, Roberts & Yaida 2019: the same estimator with one projection, on their own networks",
         "the penalty as published; the network and optimiser are the book's"),
        ("TRADES at ε (trades-0.1)", f"the catalogue's TRADES recipe (β = {trades.param_dict['beta']:g}, "
         f"{trades.param_dict.get('steps', 10)} inner steps, {trades.epochs} epochs) at ε = {EPS:g}, one seed",
         "Zhang et al. 2019: β = 6 at ε = 0.3 on MNIST, 40 inner steps",
         f"ε = {EPS:g} matches PGD-AT 0.1 and the gradient penalty λ = 0.1; the inner steps are the catalogue's"),
        ("CE + random-δ KL (ce-random-kl)", f"CE + β·KL(f(x) ‖ f(x + δ)), δ uniform in the L∞ ball of "
         f"{specs[RANDOM_KL].param_dict['eps']:g}, β = {specs[RANDOM_KL].param_dict['beta']:g}, one seed",
         "stability training (Zheng et al. 2016): Gaussian noise, a KL or L2 consistency term",
         "TRADES's penalty with its worst case replaced by a random δ, so only the direction of the smoothness "
         "term changes"),
        ("label smoothing", f"CE against labels smoothed by α = 0.1; {seeds}",
         "Szegedy et al. 2016: α = 0.1 (Inception-v3 on ImageNet)", "the same α; the control needs only its effect "
         "on confidence"),
        ("defensive distillation", f"teacher and student the book's network, T = {TEMPERATURE:g}; the student "
         "attacked at T = 1 and with its logits divided by T; one seed",
         "Papernot et al. 2016: T up to 100 (100 on MNIST), attacked with JSMA at T = 1",
         "at T = 20 the student's softmax at T = 1 already saturates; attacking at T is Carlini & Wagner's "
         "(2017) test of gradient masking"),
        ("PGD-AT, TRADES at 0.3", "the catalogue's (chapter 1): PGD-7 adversarial training, TRADES β = 6",
         "Madry et al. 2018: PGD-40; Zhang et al. 2019: 40 inner steps", "PGD-7 keeps the zoo's training on 2 cores"),
        ("evaluation", f"L∞ ε = {EPS:g}: PGD-{prof.eval_steps} with {prof.eval_restarts} restarts, and the book's "
         f"headline attack (its worst case with PGD-{prof.eval_steps} on the margin loss, APGD-CE and APGD-T); "
         f"{eval_n(prof)} test images{attack_precision_note(prof)}",
         "each paper's own attack (FGSM, JSMA, PGD, C&W) and ε",
         "one attack at one ε for every arm, with a guard against gradient masking"),
        ("intervals", (f"Student-t over {seeds} per arm of the claims" if prof.seeds > 1 else
                       "one training seed, so no interval over seeds") + "; paired per-image intervals for seed 0",
         "Helland & VanHoudnos 2021: qualitative evidence (figures), no interval",
         "a claim about a training procedure needs an interval over seeds"),
    ], prof)


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


def _differs(profile) -> str:
    """How the chapter's claims differ from the papers' protocols under ``profile`` (the ledger's ``differs``)."""
    prof = get_profile(profile)
    rest = protocol_differs(prof).split("; ")[1:]
    seeds = (f"{prof.seeds} training seeds for each arm a claim compares ({', '.join(CLAIM_ARMS)}), one for the "
             "chapter's other arms" if prof.seeds > 1 else "one training seed per model")
    return "; ".join([seeds, *rest])


def _seed_comparisons(profile, pairs, key: str, above: bool):
    """For each ``(label, a, b)`` of ``pairs``: the seed-pair differences of ``key`` (a − b), their interval and
    :func:`seed_verdict`'s clause ("" when the interval lies wholly on the claimed side of 0)."""
    res, seeds = measure(profile), measure_seeds(profile)
    out = {}
    for label, a, b in pairs:
        diffs, iv = seed_difference(profile, a, b, key, res, seeds)
        out[label] = (diffs, iv, seed_verdict(label, diffs, iv, above=above))
    return out


def _per_seed(diffs) -> str:
    return ", ".join(f"{d:+.3f}" for d in diffs)


@claim("ch5.orientation-and-smoothness-raise-alignment", chapter="5",
       statement="Arms with both orientation and smoothness (PGD-AT, TRADES, CE + gradient penalty) have input "
                 "gradients better aligned with the image than the standard model.",
       papers="helland2021", differs=_differs)
def _claim_alignment(profile: Profile) -> Measurement:
    res = measure(profile)
    label = plotting.model_label
    cmp = _seed_comparisons(profile, [(f"{label(n)} − standard", n, STANDARD) for n in ORIENTED_SMOOTH],
                            "alignment", above=True)
    measured = {}
    for n, (name, (diffs, iv, _)) in zip(ORIENTED_SMOOTH, cmp.items()):
        measured[f"{name}, seeds"] = iv.format("+.3f")
        measured[f"{name}, per seed"] = _per_seed(diffs)
        measured[f"{name}, images (seed 0)"] = _paired(res, n, "alignment").format("+.3f")
    failed = [v for _, _, v in cmp.values() if v]
    return Measurement(measured, f"alignment(arm) − alignment({STANDARD}), mean over {eval_n(profile)} test images, "
                       f"seed r against seed r: the Student-t interval over {get_profile(profile).seeds} seed pairs "
                       "above 0 for each arm (beside it, the paired per-image interval of the seed-0 models)",
                       not failed, "; ".join(failed), intervals={k: iv for k, (_, iv, _) in cmp.items()})


@claim("ch5.label-smoothing-is-not-smoothness", chapter="5",
       statement="Label smoothing lowers confidence but is not smoothness: on a scale-free measure (the margin-to-"
                 "gradient ratio, the L∞ distance to the linearised boundary) it stays below every arm with "
                 "orientation and smoothness, and it does not raise alignment as much as they do.",
       papers="helland2021", differs=_differs)
def _claim_label_smoothing(profile: Profile) -> Measurement:
    res = measure(profile)
    t = table(profile, res)
    ls, label = LABEL_SMOOTHING, plotting.model_label
    tests = {"confidence": [("label-smoothing − standard", ls, STANDARD)],
             "margin ratio": [(f"label-smoothing − {label(n)}", ls, n) for n in ORIENTED_SMOOTH],
             "alignment": [(f"label-smoothing − {label(n)}", ls, n) for n in ORIENTED_SMOOTH]}
    measured, intervals, failed = {}, {}, []
    for key, pairs in tests.items():
        cmp = _seed_comparisons(profile, pairs, key, above=False)
        for (name, a, b), (diffs, iv, verdict) in zip(pairs, cmp.values()):
            measured[f"{key}: {name}, seeds"] = iv.format("+.3f")
            measured[f"{key}: {name}, images (seed 0)"] = _paired(res, a, key, b).format("+.3f")
            intervals[f"{key}: {name}"] = iv
            if verdict:
                failed.append(f"{key}: {verdict}")
    for key in ("lipschitz", "kl lipschitz"):
        for n in (STANDARD, ls):
            measured[f"{key} {label(n)} (seed 0, not tested)"] = float(t.loc[n, key])
    return Measurement(measured, f"Student-t interval over {get_profile(profile).seeds} seed pairs (seed r against "
                       f"seed r) below 0 of: confidence(LS) − confidence(standard); margin ratio(LS) − margin ratio "
                       f"of each of {', '.join(ORIENTED_SMOOTH)}; alignment(LS) − alignment of each of them; means over "
                       f"{eval_n(profile)} test images (beside each, the paired per-image interval of the seed-0 "
                       "models). The logit and KL Lipschitz estimates are reported, not tested: the logit one is in "
                       "logit units, which label smoothing compresses and distillation at T = 20 inflates",
                       not failed, "; ".join(failed), intervals=intervals)


@claim("ch5.gradient-penalty-is-robust", chapter="5",
       statement="Training with the L1 input-gradient penalty (λ = ε) gives models more robust under PGD than "
                 "standard training, also under the worst case of that attack, a margin-loss PGD, APGD-CE and APGD-T "
                 "(a guard against gradient masking).",
       papers=("helland2021", "ross2018"), differs=_differs)
def _claim_gp_robust(profile: Profile) -> Measurement:
    prof = get_profile(profile)
    res, seeds = measure(prof), measure_seeds(prof)
    strong = strong_attack(prof, EPS).describe()
    stronger = stronger_attack(prof).describe()
    n = eval_n(prof)
    measured, intervals, failed = {}, {}, []
    for col in ("strong attack acc", "stronger attack acc"):
        diffs, iv = seed_difference(prof, MAIN_GP, STANDARD, col, res, seeds)
        name = f"{col}: {plotting.model_label(MAIN_GP)} − standard"
        measured[f"{name}, seeds"] = iv.format("+.3f")
        measured[f"{name}, per seed"] = _per_seed(diffs)
        for m in (MAIN_GP, STANDARD):
            measured[f"{col}: {plotting.model_label(m)} (seed 0, Wilson over images)"] = \
                proportion_ci(res.accuracy[m][col], n).format(".3f")
        intervals[name] = iv
        verdict = seed_verdict(name, diffs, iv, above=True)
        if verdict:
            failed.append(verdict)
    gp_strong = seed_values(prof, MAIN_GP, "strong attack acc", res, seeds)
    gp_stronger = seed_values(prof, MAIN_GP, "stronger attack acc", res, seeds)
    drop = max(a - b for a, b in zip(gp_strong, gp_stronger))
    return Measurement(measured, f"accuracy(gp) − accuracy(standard) at ε = {EPS:g} on {n} test images, seed r "
                       f"against seed r: the Student-t interval over {prof.seeds} seed pairs above 0, under {strong}, "
                       f"and under the {stronger}", not failed,
                       join_notes(*failed, f"the stronger attack costs the gradient-penalty models at most "
                                           f"{100 * drop:.1f} points"), intervals=intervals)


__all__ = ["LipschitzSizes", "SIZES", "sizes", "lipschitz_zoo", "arms", "train", "load", "eval_n",
           "measure_cifar10", "cifar10_section", "stronger_attack", "stronger_attacked", "ArmResults", "measure",
           "table", "display_table", "sweep", "sweep_figure", "grad_l1_figure", "gradient_figure", "EPS", "LAMBDAS",
           "MAIN_GP", "SWEEP_SEEDED", "tempered_quoted", "TEACHER", "DISTILLED", "FROM_CATALOG",
           "ORIENTED_SMOOTH", "AT_TEMPERATURE", "LABEL_SMOOTHING", "RANDOM_KL", "TRADES_EPS", "SEEDED_ARMS",
           "CLAIM_ARMS", "ATTACKED_ARMS", "arm_seeds", "replicate_specs", "SeedResults", "measure_seeds",
           "seed_values", "seed_difference", "seed_table", "seed_spread", "recipe_table", "attacked_rows"]


# ---------------------------------------------------------------------------------------------------
# The synthesis page's ε dashboard

@panel("smoothness", title="Smoothness", chapter="5", ylabel="per test image (log scale)", log=True)
def _panel_smoothness(profile: Profile) -> dict:
    """The local Lipschitz estimate of the logits at ε = 0.1, ‖∇ₓ CE‖₁ and the scale-free margin ratio, for the
    catalogue's models this chapter measures: the margin ratio of the arms trained at several seeds
    (:data:`CLAIM_ARMS`) with the Student-t interval over seeds of its mean over the test images, everything else
    with the mean and 95 % interval over the test images (the Lipschitz estimate and the gradient norm are measured
    on the seed-0 models only)."""
    prof = get_profile(profile)
    res = measure(prof, progress=False)
    seeds = measure_seeds(prof, progress=False) if prof.seeds > 1 else None
    out = {}
    for key, label in (("lipschitz", "local Lipschitz estimate"), ("grad l1", "‖∇ₓ CE‖₁"),
                       ("margin ratio", "margin / ‖∇ margin‖₁")):
        seeded = set(CLAIM_ARMS) if seeds is not None and key in SEED_PER_IMAGE else set()
        out[label] = {m: over_seeds([_scalar(v).mean for v in seed_values(prof, m, key, res, seeds)]
                                    if m in seeded else None, lambda m=m, key=key: mean_ci(res.per_image[m][key]))
                      for m in FROM_CATALOG}
    return out


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
