"""Benchmark: one process with every thread against one single-threaded process per core.

Independent work (two chapters, two zoo trainings) could run as parallel processes with one thread each instead of
one process after the other with all threads. This measures the forward+backward throughput of the book's small
CNN (batch 500 of MNIST, gradient with respect to the input: the inner step of every attack and attribution) both
ways, for the same wall time, and prints the ratio: parallel processes / one process. Above 1 they win.

    python benchmarks/processes.py [--seconds 15]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import torch


def rate(seconds: float) -> float:
    """Images per second of forward+backward on the small CNN, with torch's current threads."""
    from rilib import load_dataset
    from rilib.models import create_model
    ds = load_dataset("mnist-5k", n_train=100, n_test=500)
    torch.manual_seed(0)
    model = create_model("small-cnn", ds.shape, ds.num_classes, ds.mean, ds.std).eval()
    loss = torch.nn.CrossEntropyLoss(reduction="sum")

    def once():
        xb = ds.x_test.clone().requires_grad_(True)
        torch.autograd.grad(loss(model(xb), ds.y_test), xb)

    once()  # warm-up
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        once()
        n += 1
    return n * len(ds.y_test) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0, help="measuring time of each run (default 15)")
    parser.add_argument("--child", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:  # one single-threaded worker
        torch.set_num_threads(1)
        print(rate(args.child))
        return
    cores = os.cpu_count() or 1
    one = rate(args.seconds)
    workers = [subprocess.Popen([sys.executable, __file__, "--child", str(args.seconds)], stdout=subprocess.PIPE,
                                text=True) for _ in range(cores)]
    parallel = sum(float(w.communicate()[0].strip().splitlines()[-1]) for w in workers)
    print(f"forward+backward, small CNN, batch 500: one process with {torch.get_num_threads()} threads "
          f"{one:7.0f} images/s; {cores} processes with 1 thread {parallel:7.0f} images/s in all; "
          f"ratio processes / one process {parallel / one:.2f}")


if __name__ == "__main__":
    main()
