"""Benchmark: is the book's headline robust accuracy as strong as an independent AutoAttack-style evaluation?

For each model, on the same first ``eval_n`` test images at ε = 0.3:

- the book's headline number (``rilib.chapters.catalog.evaluation_attack``: the worst case per image of PGD-40×5,
  PGD-40 on the margin loss, APGD-CE and APGD-T with 3 target classes), from the zoo's cache or computed;
- the reference: torchattacks' ``APGD`` (cross-entropy, 100 steps) and then ``APGDT`` with AutoAttack's 9 target
  classes (100 steps) on the images APGD-CE did not fool, called directly, not through rilib's adapter.

It prints both accuracies, the gap (reference − headline, in points: the headline must be no more than 0.5 points
above the reference, i.e. gap ≥ −0.5), and the ratio of their times. Models are trained on first use.

    python benchmarks/attack_strength.py [--profile cpu] [--models mnist-pgd-0.3 mnist-trades ...]
"""

from __future__ import annotations

import argparse
import time

import torch

import rilib.chapters  # noqa: F401  (registers the book's zoo)
from rilib import zoo
from rilib.attacks import eval_mode
from rilib.chapters import catalog
from rilib.data import load_dataset
from rilib.models import to_model
from rilib.profiles import get_profile
from rilib.rng import seeded

DEFAULT_MODELS = ("mnist-pgd-0.2", "mnist-pgd-0.3", "mnist-trades", catalog.FGSM_WONG)


def reference_accuracy(model, x, y, eps: float, batch: int = 500) -> float:
    """APGD-CE, then APGD-T with 9 target classes on its survivors, straight from torchattacks."""
    import torchattacks
    alive_total = 0
    with eval_mode(model):
        for i in range(0, len(y), batch):
            xb, yb = to_model(x[i:i + batch], model), to_model(y[i:i + batch], model)
            with torch.no_grad():
                alive = model(xb).argmax(1) == yb
            for atk in (torchattacks.APGD(model, eps=eps, steps=100, loss="ce", seed=0),
                        torchattacks.APGDT(model, eps=eps, steps=100, n_classes=10, seed=0)):
                idx = alive.nonzero().flatten()
                if len(idx):
                    with torch.no_grad():
                        alive[idx] = model(atk(xb[idx], yb[idx])).argmax(1) == yb[idx]
            alive_total += int(alive.sum())
    return alive_total / len(y)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu", help="rilib profile (default: cpu)")
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="catalogue models to evaluate")
    args = parser.parse_args(argv)
    prof = get_profile(args.profile)
    specs = catalog.all_specs(prof)
    eps = catalog.EVAL_EPS["mnist"]
    print(f"Headline attack vs an AutoAttack-style reference, ε = {eps}, first {prof.eval_n} test images "
          f"(profile {prof.name})")
    print(f"{'model':<22} {'headline':>9} {'reference':>10} {'gap (pts)':>10} {'headline s':>11} {'reference s':>12}"
          f" {'ratio':>6}")
    worst = float("inf")
    for name in args.models:
        t0 = time.perf_counter()
        record = catalog.evaluation(prof, name, progress=False)
        headline_s = record["seconds"] if "stages" in record else time.perf_counter() - t0
        spec = specs[name]
        model = zoo.load(spec)
        ds = load_dataset(spec.dataset, spec.n_train, spec.n_test)
        t0 = time.perf_counter()
        with seeded(0):
            ref = reference_accuracy(model, ds.x_test[:prof.eval_n], ds.y_test[:prof.eval_n], eps)
        ref_s = time.perf_counter() - t0
        gap = 100 * (ref - record["robust_acc"])
        worst = min(worst, gap)
        print(f"{name:<22} {record['robust_acc']:>9.3f} {ref:>10.3f} {gap:>+10.1f} {headline_s:>11.1f} {ref_s:>12.1f}"
              f" {headline_s / ref_s:>6.2f}", flush=True)
    verdict = "within" if worst >= -0.5 else "NOT within"
    print(f"The headline is {verdict} 0.5 points of the reference on every model (smallest gap {worst:+.1f} points).")


if __name__ == "__main__":
    main()
