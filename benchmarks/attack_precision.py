"""Benchmark: the book's headline attack with its gradient steps in bfloat16 against the same attack in float32.

Profiles ``smoke``, ``cpu`` and ``full`` run the attacks' gradient steps under bfloat16 autocast where the CPU
multiplies bfloat16 natively (``Profile.attack_precision``); whether an image is fooled is always decided in
float32. For each model, on the first ``--n`` test images at its ε (the training ε of an adversarially trained
model, chapter 5's 0.1 for the others), with the random starts seeded as the chapters seed them (seed 0 per model),
it prints:

- the robust images the float32 and the bfloat16 attack leave;
- the images only one of them fools, both ways (``fooled only by fp32``: robust under bfloat16 steps);
- the seconds of each attack and their ratio (bf16 / fp32), both measured in this run.

A bfloat16 attack that was weaker would leave more robust images: the column ``fooled only by fp32`` counts them.

    python benchmarks/attack_precision.py [--profile cpu] [--n 1000] [--models mnist-pgd-0.3 ...]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from margin_stage import check_models, robust_set  # this script's folder is on sys.path when it runs

import rilib.chapters  # noqa: F401  (registers the book's zoo)
from rilib import zoo
from rilib.attacks import WorstOf
from rilib.chapters import lipschitz as ch5
from rilib.chapters.catalog import evaluation_attack, family_dataset
from rilib.models import to_model
from rilib.profiles import get_profile

MODELS = ("mnist-standard", "mnist-pgd-0.1", "mnist-pgd-0.3", "mnist-trades", "mnist-fgsm-rs", "mnist-gp-l1-0.1",
          "mnist-distilled-t20")


def in_precision(attack: WorstOf, precision: str) -> WorstOf:
    """``attack`` with every stage's gradient steps in ``precision``."""
    return WorstOf(tuple(replace(a, precision=precision) for a in attack.attacks))


def model_eps(spec) -> float:
    """The ε a model is attacked at: its training ε if it was adversarially trained, else chapter 5's ε."""
    return float(spec.param_dict["eps"]) if spec.objective in ("pgd", "trades", "fgsm_rs") else ch5.EPS


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu", help="rilib profile (default: cpu)")
    parser.add_argument("--n", type=int, default=1000, help="test images per model (default: 1000)")
    parser.add_argument("--models", nargs="+", default=list(MODELS),
                        help=f"zoo names (default: {' '.join(MODELS)})")
    args = parser.parse_args(argv)
    prof = get_profile(args.profile)
    specs = zoo.zoo_specs(prof)
    check_models(parser, args.models, specs)
    ds = family_dataset(prof, "mnist")
    print(f"Headline attack: {in_precision(evaluation_attack(prof, 0.3), 'fp32').describe()}\nFirst {args.n} test "
          f"images (profile {prof.name}); robust images left by each precision, images only one of them fools, "
          f"seconds of each.")
    print(f"{'model':<22} {'ε':>4} {'fp32':>5} {'bf16':>5} {'fooled only':>12} {'fooled only':>12} {'fp32 s':>7} "
          f"{'bf16 s':>7} {'ratio':>6}")
    print(f"{'':<22} {'':>4} {'':>5} {'':>5} {'by fp32':>12} {'by bf16':>12}")
    total = [0.0, 0.0]
    for name in args.models:
        spec = specs[name]
        model = zoo.get(spec, prof, progress=False)
        x, y = to_model(ds.x_test[:args.n], model), to_model(ds.y_test[:args.n], model)
        eps = model_eps(spec)
        attack = evaluation_attack(prof, eps)
        (a, ta), (b, tb) = (robust_set(in_precision(attack, p), model, x, y) for p in ("fp32", "bf16"))
        total[0] += ta
        total[1] += tb
        print(f"{name:<22} {eps:>4g} {len(a):>5} {len(b):>5} {len(b - a):>12} {len(a - b):>12} {ta:>7.1f} "
              f"{tb:>7.1f} {tb / ta:>6.2f}", flush=True)
    print(f"{'total seconds':<22} {'':>4} {'':>5} {'':>5} {'':>12} {'':>12} {total[0]:>7.1f} {total[1]:>7.1f} "
          f"{total[1] / max(total[0], 1e-9):>6.2f}")


if __name__ == "__main__":
    main()
