"""Benchmark: the cost per image of one pass over many images at once vs passes of ``rilib.models.PASS_BATCH``.

On a small CPU the activations of a pass over thousands of MNIST images no longer fit the cache, and each image
costs more than in passes of 500. Integrated Gradients' internal batches (2,500 images before) and deletion/insertion
(forward passes of 4,096 before) use ``PASS_BATCH`` because of this measurement. Prints, for each pass, the
microseconds per image at the earlier batch and at ``PASS_BATCH``, measured in the same run in alternating rounds,
and their ratio (> 1: ``PASS_BATCH`` is faster). The spread between runs on a shared machine is large, so it takes
the median of several rounds.

The attack step at 1,000 images is the reference that did not carry over: chapter 5 attacks its 1,000 images at
once, and attacking them in batches of 500 (as chapter 1 does) took its measurements 1,863 → 1,833 s and its seed
replicates' 545 → 539 s, measured side by side with the code before: 1.5 %, less than the spread between runs, for
random starts drawn differently. Chapter 5 was left as it is.

The book runs two single-threaded processes at once (``--jobs``), and they share the last-level cache, so by
default two copies of the benchmark run side by side, in step, and the medians pool both; ``--processes 1`` measures
one process alone.

    python benchmarks/batch_size.py [--processes 2] [--rounds 5] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from rilib.models import PASS_BATCH, create_model


def per_image_us(step, x: torch.Tensor, y: torch.Tensor, batch: int, seconds: float) -> float:
    """Microseconds per image of ``step(xb, yb)`` over ``x`` in batches of ``batch``, run for about ``seconds``."""
    step(x[:batch], y[:batch])  # warm-up
    t0, images = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        for i in range(0, len(x), batch):
            step(x[i:i + batch], y[i:i + batch])
        images += len(x)
    return (time.perf_counter() - t0) / images * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per setting and round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, each timing both batch sizes")
    parser.add_argument("--processes", type=int, default=2,
                        help="copies run side by side, one thread each (the book's default --jobs on 2 cores)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.worker:
        return report(args)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = create_model("small-cnn", (1, 28, 28), 10, [0.13], [0.31]).to(memory_format=torch.channels_last).eval()
    x, y = torch.rand(4096, 1, 28, 28), torch.randint(0, 10, (4096,))

    def forward_backward(xb, yb):  # one attack step: the input gradient of the loss
        xb = xb.clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(model(xb), yb, reduction="none").sum(), xb)

    @torch.no_grad()
    def forward(xb, yb):  # one deletion/insertion step
        model(xb).softmax(1)

    for name, step, large in PASSES:
        step = {"forward_backward": forward_backward, "forward": forward}[step]
        xs, ys = x[:large], y[:large]
        for _ in range(args.rounds):
            print(json.dumps({"pass": name, "batch": large, "us": per_image_us(step, xs, ys, large, args.seconds)}))
            print(json.dumps({"pass": name, "batch": PASS_BATCH,
                              "us": per_image_us(step, xs, ys, PASS_BATCH, args.seconds)}), flush=True)


#: The passes measured: name, step, the batch used before PASS_BATCH.
PASSES = (("attack step (forward + input gradient)", "forward_backward", 1000),
          ("Integrated Gradients pass", "forward_backward", 2500),
          ("deletion/insertion (forward)", "forward", 4096))


def report(args) -> None:
    """Run ``args.processes`` workers side by side and print the medians over every worker and round."""
    cmd = [sys.executable, __file__, "--worker", "--rounds", str(args.rounds), "--seconds", str(args.seconds)]
    workers = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(args.processes)]
    rows = [json.loads(line) for w in workers for line in w.communicate()[0].splitlines()]
    if any(w.returncode for w in workers):
        sys.exit("batch_size.py: a worker failed (its error is printed above)")
    print(f"torch {torch.__version__}; {args.processes} process(es) side by side, one thread each; small-cnn, "
          f"28×28×1; µs per image, median of {args.rounds} rounds × {args.processes} process(es)")

    def median(name, batch):
        values = sorted(r["us"] for r in rows if r["pass"] == name and r["batch"] == batch)
        return values[len(values) // 2]

    for name, _, large in PASSES:
        b, a = median(name, large), median(name, PASS_BATCH)
        print(f"{name:<40} batch {large:>4}: {b:5.0f} µs   batch {PASS_BATCH}: {a:5.0f} µs   ratio {b / a:.2f}x")


if __name__ == "__main__":
    main()
