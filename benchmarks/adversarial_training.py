"""Benchmark: the cost of one PGD-k adversarial-training epoch against (k + 1) standard epochs.

A PGD-k training step runs k attack steps (each one forward and one backward pass to the input) and one ordinary
training step, so its cost is at most that of k + 1 standard steps: the attack steps need no gradient with respect
to the weights and no optimizer update. The ratio (PGD-k epoch) / ((k + 1) standard epochs), measured in the same
run on the same model and data, is the goal's yardstick: at most 1.1.

    python benchmarks/adversarial_training.py [--k 7] [--n-train 4000]
"""

from __future__ import annotations

import argparse

import torch

from rilib import load_dataset
from rilib.models import create_model
from rilib.rng import seeded
from rilib.train import fit


def epoch_seconds(ds, objective: str, params: dict) -> float:
    with seeded(0):
        model = create_model("small-cnn", ds.shape, ds.num_classes, ds.mean, ds.std)
    history = fit(model, ds, objective=objective, params=params, epochs=1, progress=False)
    return history[0]["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=7, help="PGD steps per training step (the cpu profile's 7)")
    parser.add_argument("--n-train", type=int, default=4000, help="training digits (default: the cpu profile's)")
    args = parser.parse_args()
    ds = load_dataset("mnist-5k", n_train=args.n_train, n_test=200)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; small CNN, {args.n_train} digits, "
          f"batch 128; one epoch each (its time includes the epoch's clean test accuracy on 200 images)")
    epoch_seconds(ds.subset(n_train=256, n_test=50), "standard", {})  # warm-up
    standard = epoch_seconds(ds, "standard", {})
    pgd = epoch_seconds(ds, "pgd", {"eps": 0.3, "steps": args.k})
    ratio = pgd / ((args.k + 1) * standard)
    print(f"standard epoch {standard:6.1f} s; PGD-{args.k} epoch {pgd:6.1f} s; "
          f"ratio PGD-{args.k} / ({args.k + 1} × standard) {ratio:.2f} (goal <= 1.10)")


if __name__ == "__main__":
    main()
