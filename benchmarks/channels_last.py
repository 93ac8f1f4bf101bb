"""Benchmark: PGD-7 adversarial-training throughput, contiguous vs channels_last memory format.

Prints images per second for each architecture and input size, and the channels_last / contiguous ratio
measured in the same run. rilib's training loop uses channels_last because of this measurement.

    python benchmarks/channels_last.py [--batches 5]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from rilib.attacks import projected_gradient
from rilib.models import create_model


def throughput(arch: str, shape: tuple[int, int, int], channels_last: bool, batches: int, batch: int = 128) -> float:
    torch.manual_seed(0)
    model = create_model(arch, shape, 10, [0.5] * shape[0], [0.25] * shape[0])
    x = torch.rand(batch, *shape)
    y = torch.randint(0, 10, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters())

    def step():
        adv = projected_gradient(model, x, y, eps=0.3, step_size=0.1, steps=7, random_start=True, use_best=False)
        loss = F.cross_entropy(model(adv), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(batches):
        step()
    return batches * batch / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=5, help="timed batches of 128 per setting")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; PGD-7 training steps, batch 128")
    for arch, shape in [("small-cnn", (1, 28, 28)), ("small-cnn", (3, 32, 32))]:
        base = throughput(arch, shape, False, args.batches)
        fast = throughput(arch, shape, True, args.batches)
        print(f"{arch:<10} {str(shape):<12} contiguous {base:7.1f} img/s   channels_last {fast:7.1f} img/s"
              f"   ratio {fast / base:.2f}x")


if __name__ == "__main__":
    main()
