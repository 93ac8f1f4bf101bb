"""Benchmark: does chapter 5 lose strength with the book's headline attack in place of its former, longer one?

Chapter 5 (Lipschitz ablations) once held its arms to the strong attack (PGD-40, 5 restarts), then PGD-100 on the
margin loss with 3 restarts, then APGD-CE and APGD-T. It now uses the book's headline attack at its ε 0.1
(``rilib.chapters.catalog.evaluation_attack``), whose margin stage is PGD-40 with one start. For every model the
chapter attacks that way (the standard model, every new arm and the replicates of the attacked arms), on the
chapter's test images and with the random starts seeded as the chapter seeds them (seed 0 per model), it prints:

- the robust images left by the former attack and by the headline;
- the images only one of them fools, both ways (``fooled only by former``: robust under the headline);
- the seconds of each attack and their ratio (headline / former), both measured in this run.

    python benchmarks/margin_stage.py [--profile cpu] [--models mnist-standard mnist-distilled-t20 ...]
"""

from __future__ import annotations

import argparse
import time

import rilib.chapters  # noqa: F401  (registers the book's zoo)
from rilib import zoo
from rilib.attacks import PGD, WorstOf, margin_loss
from rilib.chapters import lipschitz as ch5
from rilib.chapters.catalog import STEP_FACTOR, family_dataset, strong_attack
from rilib.models import to_model
from rilib.profiles import get_profile
from rilib.rng import seeded

FORMER_STEPS, FORMER_RESTARTS = 100, 3


def former_attack(profile) -> WorstOf:
    """Chapter 5's attack before it took the headline's: PGD-100 with 3 restarts in the margin stage."""
    margin = PGD(eps=ch5.EPS, steps=FORMER_STEPS, step_size=STEP_FACTOR * ch5.EPS / FORMER_STEPS,
                 restarts=FORMER_RESTARTS, loss=margin_loss)
    headline = ch5.stronger_attack(profile).attacks
    return WorstOf((strong_attack(profile, ch5.EPS), margin, *headline[2:]))


def robust_set(attack: WorstOf, model, x, y) -> tuple[set, float]:
    """The indices of the images every stage failed on, and the seconds the attack took, its random starts seeded
    as the chapters seed them (seed 0 per model). ``attack_precision.py`` uses it too."""
    t0 = time.perf_counter()
    with seeded(0):
        _, masks = attack.run(model, x, y)
    return set(masks[-1].nonzero().flatten().tolist()), time.perf_counter() - t0


def check_models(parser: argparse.ArgumentParser, asked, valid) -> None:
    """Stop with the valid names if ``asked`` (``None`` for the default) names a model ``valid`` does not hold. The
    other benchmarks that take ``--models`` use it too."""
    unknown = sorted(set(asked or ()) - set(valid))
    if unknown:
        parser.error(f"unknown models {', '.join(unknown)}. Valid: {', '.join(valid)}.")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu", help="rilib profile (default: cpu)")
    parser.add_argument("--models", nargs="+", help="models to attack (default: every model chapter 5 attacks so)")
    args = parser.parse_args(argv)
    prof = get_profile(args.profile)
    models = ch5.stronger_attacked(prof)
    check_models(parser, args.models, models)
    ds, n = family_dataset(prof, "mnist"), ch5.eval_n(prof)
    former, headline = former_attack(prof), ch5.stronger_attack(prof)
    print(f"Former: {former.describe()}\nHeadline: {headline.describe()}\nFirst {n} test images (profile "
          f"{prof.name}); robust images left by each, images only one of them fools, seconds of each.")
    print(f"{'model':<26} {'former':>7} {'headline':>9} {'fooled only by':>15} {'fooled only by':>15} "
          f"{'former s':>9} {'headline s':>11} {'ratio':>6}")
    print(f"{'':<26} {'':>7} {'':>9} {'former':>15} {'headline':>15}")
    total = [0.0, 0.0]
    for name in args.models or models:
        model = zoo.load(models[name])
        x, y = to_model(ds.x_test[:n], model), to_model(ds.y_test[:n], model)
        (a, ta), (b, tb) = robust_set(former, model, x, y), robust_set(headline, model, x, y)
        total[0] += ta
        total[1] += tb
        print(f"{name:<26} {len(a):>7} {len(b):>9} {len(b - a):>15} {len(a - b):>15} {ta:>9.1f} {tb:>11.1f} "
              f"{tb / ta:>6.2f}", flush=True)
    print(f"{'total seconds':<26} {'':>7} {'':>9} {'':>15} {'':>15} {total[0]:>9.1f} {total[1]:>11.1f} "
          f"{total[1] / max(total[0], 1e-9):>6.2f}")


if __name__ == "__main__":
    main()
