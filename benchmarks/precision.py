"""Benchmark: training throughput in float32 against bf16 mixed precision (``rilib.train.PRECISIONS``).

For each of the book's training workloads, one single-threaded process (as the zoo trains: one process per core)
times optimiser steps of the objective in float32 and under bfloat16 autocast, alternating the two, and prints
images per second and the bf16 / fp32 ratio measured in the same run (> 1: bf16 is faster). The profiles ``cpu``,
``full`` and ``smoke`` train in bf16 only where :func:`rilib.train.native_bf16` (AVX512-BF16 or AMX): without it
oneDNN emulates bfloat16 and the ratio falls well below 1. Run it with ``ONEDNN_MAX_CPU_ISA=AVX2`` to see that on a
machine that has it.

    python benchmarks/precision.py [--seconds 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from rilib.models import create_model
from rilib.train import OBJECTIVES, make_optimizer, native_bf16

#: (label, architecture, objective, parameters, batch size): the zoo's four costliest kinds of training.
WORKLOADS = [
    ("PGD-7 AT, small CNN", "small-cnn", "pgd", {"eps": 0.3, "steps": 7}, 128),
    ("TRADES, small CNN", "small-cnn", "trades", {"eps": 0.3, "steps": 7}, 128),
    ("gradient penalty, small CNN", "small-cnn", "input_gradient_penalty", {"lam": 0.1}, 128),
    ("PGD-7 AT, deep CNN (SGD, batch 32)", "deep-cnn", "pgd", {"eps": 0.1, "steps": 7}, 32),
]


def throughput(arch: str, objective: str, params: dict, batch: int, bf16: bool, seconds: float) -> float:
    torch.manual_seed(0)
    model = create_model(arch, (1, 28, 28), 10, [0.13], [0.31]).to(memory_format=torch.channels_last)
    opt = make_optimizer(model, "adam", 1e-3, 0.01)
    x, y = torch.rand(batch, 1, 28, 28), torch.randint(0, 10, (batch,))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = OBJECTIVES[objective](model, x, y, **params)
        opt.zero_grad(set_to_none=True)
        loss.float().backward()
        opt.step()

    step()  # warm-up
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
    return n * batch / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0, help="timed seconds per setting and round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating fp32/bf16 rounds; the best of each counts")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"native bf16: {native_bf16()}; training steps, images per second")
    for label, arch, objective, params, batch in WORKLOADS:
        best = {False: 0.0, True: 0.0}
        for _ in range(args.rounds):
            for bf16 in (False, True):
                best[bf16] = max(best[bf16], throughput(arch, objective, params, batch, bf16, args.seconds))
        print(f"{label:<36} fp32 {best[False]:7.1f}   bf16 {best[True]:7.1f}   ratio {best[True] / best[False]:.2f}x")


if __name__ == "__main__":
    main()
