"""Benchmark: does a gradient-free attack fool images the book's headline attack leaves robust (gradient masking)?

Every stage of the headline attack (``rilib.chapters.catalog.evaluation_attack``) follows the model's gradient, so
a model whose gradients are masked (saturated, shattered, or zero near the data) can look robust to all four.
Square Attack (Andriushchenko et al., 2020; the gradient-free member of AutoAttack) queries only the predicted
scores. Carlini et al. (2019, "On evaluating adversarial robustness") ask for exactly this check. For every model
chapter 5 holds to the headline attack (its ε 0.1 arms, the gradient penalties, label smoothing and the distilled
student among them), on the chapter's test images, it prints (``--eps 0.3 --n 1000 --models mnist-pgd-0.3`` checks
chapter 1's headline the same way):

- the robust images the headline attack leaves (its random starts seeded as the chapter seeds them);
- how many of those torchattacks' ``Square`` (L∞, 5,000 queries, p_init 0.8, as in AutoAttack) then fools, run in
  float32 on the headline's survivors only;
- the seconds of each and their ratio (Square / headline), both measured in this run.

A model whose count in "fooled only by Square" is more than a few images has robustness the gradient attacks
overstate.

    python benchmarks/gradient_free.py [--profile cpu] [--models mnist-standard mnist-distilled-t20 ...] [--eps E]
"""

from __future__ import annotations

import argparse
import time

import torch

import rilib.chapters  # noqa: F401  (registers the book's zoo)
from rilib import zoo
from rilib.attacks import eval_mode
from rilib.chapters import lipschitz as ch5
from rilib.chapters.catalog import all_specs, evaluation_attack, family_dataset
from rilib.models import to_model
from rilib.profiles import get_profile

from margin_stage import check_models, robust_set

QUERIES = 5000


def square_fools(model, x, y, eps: float) -> tuple[int, float]:
    """How many of the images ``x`` torchattacks' Square Attack (L∞, :data:`QUERIES` queries) fools, and its
    seconds."""
    import torchattacks
    t0 = time.perf_counter()
    if not len(y):
        return 0, 0.0
    with eval_mode(model):
        atk = torchattacks.Square(model, norm="Linf", eps=eps, n_queries=QUERIES, n_restarts=1, p_init=0.8, seed=0)
        adv = atk(x, y)
        with torch.no_grad():
            fooled = int((model(adv).argmax(1) != y).sum())
    return fooled, time.perf_counter() - t0


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu", help="rilib profile (default: cpu)")
    parser.add_argument("--models", nargs="+",
                        help="MNIST models to attack (default: every model chapter 5 attacks so; any catalogue model)")
    parser.add_argument("--n", type=int, help="test images (default: chapter 5's own count for the profile)")
    parser.add_argument("--eps", type=float, default=ch5.EPS, help=f"L∞ radius (default: chapter 5's {ch5.EPS})")
    args = parser.parse_args(argv)
    prof = get_profile(args.profile)
    models = {**{n: s for n, s in all_specs(prof).items() if s.dataset.startswith("mnist")},
              **ch5.stronger_attacked(prof)}
    check_models(parser, args.models, models)
    ds, n = family_dataset(prof, "mnist"), args.n or ch5.eval_n(prof)
    headline = evaluation_attack(prof, args.eps)
    print(f"Headline: {headline.describe()}\nThen Square Attack (L∞, ε = {args.eps:g}, {QUERIES:,} queries, float32) on "
          f"its survivors. First {n} test images (profile {prof.name}).")
    print(f"{'model':<26} {'headline':>9} {'fooled only':>12} {'headline s':>11} {'Square s':>9} {'ratio':>6}")
    print(f"{'':<26} {'robust':>9} {'by Square':>12}")
    worst = 0
    for name in args.models or ch5.stronger_attacked(prof):
        model = zoo.load(models[name])
        x, y = to_model(ds.x_test[:n], model), to_model(ds.y_test[:n], model)
        robust, th = robust_set(headline, model, x, y)
        idx = torch.tensor(sorted(robust), dtype=torch.long, device=x.device)
        fooled, ts = square_fools(model, x[idx], y[idx], args.eps)
        worst = max(worst, fooled)
        print(f"{name:<26} {len(robust):>9} {fooled:>12} {th:>11.1f} {ts:>9.1f} {ts / th:>6.2f}", flush=True)
    print(f"At most {worst} of the headline's robust images fell to Square Attack on any one model.")


if __name__ == "__main__":
    main()
