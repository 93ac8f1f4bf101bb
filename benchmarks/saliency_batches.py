"""Benchmark: SmoothGrad's noisy copies one per pass against all of them in one pass.

Captum's ``NoiseTunnel`` stacks ``nt_samples_batch_size`` noisy copies of the batch into one pass. For the
chapter's 500 MNIST images and 25 samples, all copies at once is one pass of 12,500 images; one copy per pass is 25
passes of 500. Both compute the same estimator, the mean gradient over 25 noisy copies (Smilkov et al. 2017).
Prints the seconds of each on the small CNN and the ratio, measured in the same run;
:class:`rilib.lenses.saliency.SmoothGrad` uses one copy per pass because of it.

    python benchmarks/saliency_batches.py [--images 500] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import torch


def seconds(model, x, target, per_pass: int, repeats: int) -> float:
    from captum.attr import NoiseTunnel, Saliency
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        NoiseTunnel(Saliency(model)).attribute(x, nt_type="smoothgrad", nt_samples=25, stdevs=0.15, target=target,
                                               abs=False, nt_samples_batch_size=per_pass)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500, help="images per batch (the chapter's n: 500)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting (the fastest is shown)")
    args = parser.parse_args()
    from rilib.models import create_model
    torch.manual_seed(0)
    model = create_model("small-cnn", (1, 28, 28), 10, [0.13], [0.31]).to(memory_format=torch.channels_last).eval()
    x = torch.rand(args.images, 1, 28, 28)
    target = model(x).argmax(1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; SmoothGrad, 25 samples, small CNN, "
          f"{args.images} images")
    together = seconds(model, x, target, 25, args.repeats)
    apart = seconds(model, x, target, 1, args.repeats)
    print(f"25 copies per pass {together:6.2f} s   1 copy per pass {apart:6.2f} s   ratio {together / apart:.2f}x "
          f"(above 1: one copy per pass is faster)")


if __name__ == "__main__":
    main()
