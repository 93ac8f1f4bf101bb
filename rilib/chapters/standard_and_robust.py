"""Chapter 1, "Standard and robust models" (``notebooks/01_standard_and_robust.md``): the catalogue's models,
their learning curves, their accuracy under a weak and a strong attack, and the chapter's claims.

The models and attacks themselves are the shared catalogue (:mod:`rilib.chapters.catalog`).
"""

from __future__ import annotations

from .. import zoo
from ..book import plotting
from ..book.dashboard import panel
from ..book.ledger import Measurement, claim
from ..profiles import Profile, get_profile
from . import catalog
from .catalog import (EVAL_EPS, STANDARD, fmt_eps, model_names, protocol_differs, robust_acc, strong_attack, train_eps,
                      train_zoo, weak_attack)



def results_table(profile, family: str = "mnist", progress: bool = True):
    """One row per model of ``family``: training ε, clean accuracy, accuracy under the weak and the strong
    attack at the family's evaluation ε, under the strong attack at the model's own training ε, and
    training time. Returns a pandas DataFrame indexed by model name."""
    import pandas as pd

    prof = get_profile(profile)
    specs = train_zoo(prof, model_names(prof, family), progress=progress)
    rows = []
    for name, spec in specs.items():
        info = zoo.metrics(spec)
        eps = train_eps(spec)
        rows.append({
            "model": name,
            "objective": spec.objective,
            "train ε": fmt_eps(eps) if eps is not None else "–",
            "clean acc": info["clean_acc"],
            "weak attack acc": robust_acc(prof, name, strong=False, progress=progress),
            "strong attack acc": robust_acc(prof, name, progress=progress),
            "strong attack acc at train ε": robust_acc(prof, name, eps, progress=progress) if eps else None,
            "train minutes": info["train_seconds"] / 60,
        })
    return pd.DataFrame(rows).set_index("model")


def table_caption(profile, family: str = "mnist") -> str:
    """What the columns of :func:`results_table` measured."""
    prof = get_profile(profile)
    eps = EVAL_EPS[family]
    return (f"Accuracy on the first {prof.eval_n} test images. Weak attack: {weak_attack(eps).describe()}. "
            f"Strong attack: {strong_attack(prof, eps).describe()}; the last accuracy column uses the same "
            f"attack at the model's training ε.")


def styled_table(profile, table, family: str = "mnist"):
    """:func:`results_table` with its caption, for the page."""
    return table.style.format(precision=3, na_rep="–").set_caption(table_caption(profile, family))


def zoo_table(profile, progress: bool = True):
    """Train (or find) the catalogue's models and list them: objective, parameters, epochs, dataset, seed, clean
    accuracy and training minutes."""
    prof = get_profile(profile)
    table = catalog.zoo_table(prof)
    specs = train_zoo(prof, list(table.index), progress=progress)
    info = {n: zoo.metrics(s) for n, s in specs.items()}
    return table.assign(**{"clean acc": [info[n]["clean_acc"] for n in table.index],
                           "train minutes": [info[n]["train_seconds"] / 60 for n in table.index]})


def histories(profile, family: str = "mnist") -> dict[str, list[dict]]:
    """Per-epoch training histories of the chapter's models of ``family``."""
    specs = train_zoo(profile, model_names(profile, family))
    return {n: zoo.metrics(s)["history"] for n, s in specs.items()}


def learning_curves_figure(profile, family: str = "mnist"):
    """Training loss, clean test accuracy and the PGD-10 monitor over epochs, one line per model."""
    prof = get_profile(profile)
    dataset = prof.mnist if family == "mnist" else prof.cifar10
    return plotting.learning_curves(histories(prof, family), title=f"Training on {dataset} (profile {prof.name})")


def weak_vs_strong_figure(table, eps: float = EVAL_EPS["mnist"]):
    """Each model's accuracy at ``eps`` under the weak and the strong attack, from :func:`results_table`."""
    return plotting.weak_vs_strong(table, "weak attack acc", "strong attack acc",
                                   title=f"Accuracy at ε = {fmt_eps(eps)}: weak vs strong attack")


def cifar10_section(profile):
    """The CIFAR-10 table (profile ``paper``), or a sentence saying that the profile trains no CIFAR-10 model."""
    prof = get_profile(profile)
    if not prof.cifar10:
        return f"Profile {prof.name} trains no CIFAR-10 models."
    return styled_table(prof, results_table(prof, "cifar10"), "cifar10")


# ---------------------------------------------------------------------------------------------------
# Claims

@claim("ch1.robust-costs-clean-accuracy", chapter="1",
       statement="Every robust model's clean accuracy is at most the standard model's.",
       papers=("tsipras2019", "madry2018"), differs=protocol_differs)
def _claim_clean_cost(profile: Profile) -> Measurement:
    specs = train_zoo(profile, model_names(profile))
    clean = {n: zoo.metrics(s)["clean_acc"] for n, s in specs.items()}
    std = clean[STANDARD]
    robust = {n: a for n, a in clean.items() if n != STANDARD}
    above = [n for n, a in robust.items() if a > std]
    return Measurement(clean, f"clean acc(robust) <= clean acc({STANDARD}) for every robust model",
                       not above, f"above the standard model: {', '.join(above)}" if above else "")


@claim("ch1.pgd-0.3-survives-strong-attack", chapter="1",
       statement="PGD-AT at ε = 0.3 keeps at least 70 % accuracy under the strong attack at ε = 0.3; "
                 "the standard model keeps under 5 %.",
       papers="madry2018", differs=protocol_differs)
def _claim_pgd_strong(profile: Profile) -> Measurement:
    pgd = robust_acc(profile, "mnist-pgd-0.3")
    std = robust_acc(profile, STANDARD)
    atk = strong_attack(profile, EVAL_EPS["mnist"]).describe()
    return Measurement({"mnist-pgd-0.3": pgd, STANDARD: std},
                       f"pgd-0.3 >= 0.70 and standard < 0.05 under {atk} on {profile.eval_n} test images",
                       pgd >= 0.70 and std < 0.05)


@claim("ch1.pgd-beats-fgsm-rs", chapter="1",
       statement="Under the strong attack, PGD-AT (ε = 0.3) is more robust than FGSM-RS (ε = 0.3).",
       papers="wong2020", differs=protocol_differs)
def _claim_pgd_vs_fgsm(profile: Profile) -> Measurement:
    pgd = robust_acc(profile, "mnist-pgd-0.3")
    fgsm = robust_acc(profile, "mnist-fgsm-rs")
    weak = robust_acc(profile, "mnist-fgsm-rs", strong=False)
    weak_desc = weak_attack(0.3).describe()
    return Measurement({"mnist-pgd-0.3": pgd, "mnist-fgsm-rs": fgsm},
                       "strong-attack acc(pgd-0.3) > strong-attack acc(fgsm-rs), both at ε = 0.3", pgd > fgsm,
                       f"FGSM-RS under the weak {weak_desc}: {weak:.3f}")


__all__ = ["zoo_table", "results_table", "table_caption", "styled_table", "histories", "learning_curves_figure",
           "weak_vs_strong_figure", "cifar10_section"]


# ---------------------------------------------------------------------------------------------------
# The synthesis page's ε dashboard

@panel("accuracy", title="Accuracy", chapter="1", ylabel="accuracy (share of test images)")
def _panel_accuracy(profile: Profile) -> dict:
    """Clean accuracy (every test image) and accuracy under the strong attack at ε = 0.3 (the first ``eval_n``),
    with Wilson intervals over the images."""
    from ..data import load_dataset
    from ..lenses.stats import proportion_ci
    table = results_table(profile, progress=False)
    n_clean = len(load_dataset(profile.mnist, profile.n_train, profile.n_test).y_test)
    return {"clean": {m: proportion_ci(a, n_clean) for m, a in table["clean acc"].items()},
            "strong attack, ε = 0.3": {m: proportion_ci(a, profile.eval_n)
                                       for m, a in table["strong attack acc"].items()}}
