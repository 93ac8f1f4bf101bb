"""Benchmark: one process with every thread against one single-threaded process per core.

Independent work (zoo trainings, chapters) runs as parallel processes with one thread each (`rilib zoo train` and
`rilib book run` with their default ``--jobs``, one per core) instead of one process after the other with all
threads. This measures three workloads of the book's networks both ways, for the same wall time, and prints the
ratio of throughputs: parallel processes / one process. Above 1 the processes win.

- ``attack step``: forward+backward with respect to the input, small CNN, batch 500 (the inner step of every attack
  and attribution);
- ``training, batch 128``: SGD steps of the small CNN at the catalogue's batch size;
- ``training, batch 32``: SGD steps of the eight-layer CNN at chapter 2's SGD-recipe batch size;
- ``zoo epochs``: what `rilib zoo train` runs, end to end: one epoch of chapter 2's SGD PGD-AT recipe on the 4,000
  training digits (PGD-7 steps, test accuracy and the robust monitor after the epoch), one model per core with
  different seeds, one after the other with every thread against one process each with one thread (timed inside
  each process: the zoo's worker processes start once for all models).

    python benchmarks/processes.py [--seconds 15]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import torch

WORKLOADS = {"attack step": ("small-cnn", 500, "input"), "training, batch 128": ("small-cnn", 128, "weights"),
             "training, batch 32": ("deep-cnn", 32, "weights")}


def rate(workload: str, seconds: float) -> float:
    """Images per second of ``workload`` with torch's current threads."""
    from rilib import load_dataset
    from rilib.models import create_model
    arch, batch, wrt = WORKLOADS[workload]
    ds = load_dataset("mnist-5k", n_train=batch, n_test=100)
    torch.manual_seed(0)
    model = create_model(arch, ds.shape, ds.num_classes, ds.mean, ds.std)
    loss = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x, y = ds.x_train[:batch], ds.y_train[:batch]

    def once():
        if wrt == "input":
            xb = x.clone().requires_grad_(True)
            torch.autograd.grad(loss(model(xb), y), xb)
        else:
            opt.zero_grad()
            loss(model(x), y).backward()
            opt.step()

    once()  # warm-up
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        once()
        n += 1
    return n * batch / (time.perf_counter() - t0)


def zoo_epoch(seed: int, cache: str) -> float:
    """Seconds to train one epoch of chapter 2's SGD PGD-AT recipe with ``seed``, into ``cache``."""
    os.environ["RILIB_CACHE"] = cache
    from dataclasses import replace

    from rilib import zoo
    from rilib.chapters import convolution_filters as ch2
    from rilib.profiles import get_profile
    spec = replace(ch2.sgd_zoo(get_profile("cpu"))[ch2.SGD_PGD], epochs=1, seed=1000 + seed)
    t0 = time.perf_counter()
    zoo.train(spec, progress=False)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0, help="measuring time of each run (default 15)")
    parser.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--zoo-child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:  # one single-threaded worker
        torch.set_num_threads(1)
        print(rate(args.child[0], float(args.child[1])))
        return
    if args.zoo_child is not None:
        torch.set_num_threads(1)
        print(zoo_epoch(int(args.zoo_child[0]), args.zoo_child[1]))
        return
    cores = os.cpu_count() or 1
    for workload in WORKLOADS:
        one = rate(workload, args.seconds)
        workers = [subprocess.Popen([sys.executable, __file__, "--child", workload, str(args.seconds)],
                                    stdout=subprocess.PIPE, text=True) for _ in range(cores)]
        parallel = sum(float(w.communicate()[0].strip().splitlines()[-1]) for w in workers)
        print(f"{workload:<20}: one process with {torch.get_num_threads()} threads {one:7.0f} images/s; {cores} "
              f"processes with 1 thread {parallel:7.0f} images/s in all; ratio processes / one process "
              f"{parallel / one:.2f}")
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        one = sum(zoo_epoch(seed, f"{tmp}/one") for seed in range(cores))
        workers = [subprocess.Popen([sys.executable, __file__, "--zoo-child", str(seed), f"{tmp}/many"],
                                    stdout=subprocess.PIPE, text=True) for seed in range(cores)]
        parallel = max(float(w.communicate()[0].strip().splitlines()[-1]) for w in workers)
    print(f"{'zoo epochs':<20}: {cores} models one after the other with {torch.get_num_threads()} threads {one:5.1f} s; "
          f"{cores} processes with 1 thread {parallel:5.1f} s; ratio one after the other / processes "
          f"{one / parallel:.2f}")


if __name__ == "__main__":
    main()
