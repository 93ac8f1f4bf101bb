"""Measurement: which details of Wong et al.'s MNIST recipe decide whether FGSM-RS becomes robust.

Chapter 1 trains FGSM-RS on Wong et al.'s (2020) MNIST recipe as their code (``fast_adversarial/MNIST/
train_mnist.py``) runs it: their network (``wong-mnist``), α = 0.375, a cyclic learning rate up to 5e-3, 10 epochs,
float32, and an FGSM step that takes the gradient at the random start *before* it is clipped to the image box
(``box_start=False``). This script retrains that arm with one detail changed at a time, on the same seeds, and
prints each variant's clean accuracy and its accuracy under the book's headline attack at ε = 0.3 (the worst case of
four attacks, ``rilib.chapters.catalog.evaluation_attack``), beside the recipe as their code runs it, measured in the
same run:

- ``clipped start``: the start clipped to the box before the gradient (``box_start=True``), as their CIFAR-10 code
  and the book's common FGSM-RS recipe do;
- ``bf16``: bfloat16 mixed precision, which the book's other MNIST models use where the CPU has it natively;
- ``small CNN``: the book's own network (``small-cnn``) in place of theirs.

Wong et al. trained on all 60,000 digits, so the default profile is ``full`` (a torchvision data root in
``RILIB_DATA_DIR``; ``RILIB_DOWNLOAD=1`` lets torchvision download MNIST). Every variant is a spec of its own, cached
in the zoo like any model; on 2 cores one variant trains in 2–4 minutes at one thread.

    python benchmarks/fgsm_wong.py [--profile full] [--seeds 0 1] [--variants clipped-start bf16 small-cnn]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import rilib.chapters  # noqa: F401  (registers the book's zoo)
from rilib import zoo
from rilib.chapters.catalog import FGSM_WONG, all_specs, evaluation_attack, seed_name
from rilib.profiles import get_profile

#: Each variant: what it changes in the spec of :data:`~rilib.chapters.catalog.FGSM_WONG`.
VARIANTS = {
    "clipped-start": lambda s: replace(s, params=tuple(sorted({**s.param_dict, "box_start": True}.items()))),
    "bf16": lambda s: replace(s, precision="bf16"),
    "small-cnn": lambda s: replace(s, arch="small-cnn"),
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="full", help="rilib profile (default: full, all 60,000 digits)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1],
                        help="replicates of the arm to train each variant at (default: 0 1; 0 is the arm itself)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="details to change, one at a time (default: all)")
    parser.add_argument("--n", type=int, default=1000, help="test images the headline attack runs on (default 1000)")
    args = parser.parse_args(argv)
    prof = get_profile(args.profile)
    specs = all_specs(prof)
    seeds = max(args.seeds) + 1
    if seeds > prof.seeds:
        parser.error(f"profile {prof.name} trains replicates 0–{prof.seeds - 1} of {FGSM_WONG}; "
                     f"choose --seeds among them")
    attack = evaluation_attack(prof, 0.3)
    print(f"FGSM-RS on Wong et al.'s MNIST recipe (profile {prof.name}), one detail changed at a time. Headline "
          f"attack at ε = 0.3 on the first {args.n} test images: {attack.describe()}.")
    print(f"{'variant':<22} {'seed':>5} {'clean':>7} {'headline':>9} {'train s':>8}")
    for variant in ("as their code runs it", *args.variants):
        for r in args.seeds:
            spec = specs[seed_name(FGSM_WONG, r)]
            spec = spec if variant not in VARIANTS else VARIANTS[variant](spec)
            t0 = time.perf_counter()
            zoo.train(spec, progress=False)
            seconds = zoo.metrics(spec).get("train_seconds", time.perf_counter() - t0)
            robust = zoo.evaluation(spec, attack, prof, n=args.n, progress=False)["robust_acc"]
            print(f"{variant:<22} {spec.seed:>5} {zoo.metrics(spec)['clean_acc']:>7.3f} {robust:>9.3f} "
                  f"{seconds:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
