"""Measurement: which details of Wong et al.'s MNIST recipe decide whether FGSM-RS becomes robust.

Chapter 1 trains FGSM-RS on Wong et al.'s (2020) MNIST recipe as their code (``fast_adversarial/MNIST/
train_mnist.py``) runs it: their network (``wong-mnist``), α = 0.375, a cyclic learning rate up to 5e-3, 10 epochs,
float32, and an FGSM step that takes the gradient at the random start *before* it is clipped to the image box
(``box_start=False``). This script retrains that arm with one detail changed at a time, on the same seeds, and
prints each variant's clean accuracy and its accuracy under the book's headline attack at ε = 0.3 (the worst case of
four attacks, ``rilib.chapters.catalog.evaluation_attack``), beside the recipe as their code runs it, measured in the
same run:

- ``clipped-start``: the start clipped to the box before the gradient (``box_start=True``), as their CIFAR-10 code
  and the book's common FGSM-RS recipe do;
- ``bf16``: bfloat16 mixed precision, which the book's other MNIST models use where the CPU has it natively;
- ``small-cnn``: the book's own network (``small-cnn``) in place of theirs.

Wong et al. trained on all 60,000 digits, so the default profile is ``full`` (a torchvision data root in
``RILIB_DATA_DIR``; ``RILIB_DOWNLOAD=1`` lets torchvision download MNIST). Every variant is a spec of its own, cached
in the zoo like any model; on 2 cores one variant trains in 1–4 minutes at one thread.

``--released DIR`` also evaluates Wong et al.'s own released MNIST models, ``fgsm.pth`` and ``pgd_madry.pth`` from
``fast_adversarial/MNIST/models`` in their repository (put them in DIR; the book ships no third-party weights),
loaded into ``wong-mnist``: under the headline attack and under their own evaluation (PGD-50, step 0.01, 10
restarts).

    python benchmarks/fgsm_wong.py [--profile full] [--seeds 0 1] [--variants [clipped-start bf16 small-cnn]]
                                   [--released DIR]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import rilib.chapters  # noqa: F401  (registers the book's zoo)
from rilib import zoo
from rilib.attacks import PGD
from rilib.chapters.catalog import FGSM_WONG, evaluation_attack, family_dataset, seed_name, seeds_zoo
from rilib.evaluate import accuracy, robust_accuracy
from rilib.models import create_model
from rilib.paths import torch_load
from rilib.profiles import get_profile
from rilib.rng import seeded

#: Each variant: what it changes in the spec of :data:`~rilib.chapters.catalog.FGSM_WONG`.
VARIANTS = {
    "clipped-start": lambda s: s.with_params(box_start=True),
    "bf16": lambda s: replace(s, precision="bf16"),
    "small-cnn": lambda s: replace(s, arch="small-cnn"),
}


#: Wong et al.'s released MNIST models (``fast_adversarial/MNIST/models``).
RELEASED = ("fgsm.pth", "pgd_madry.pth")
#: Their ``mnist_net`` is an ``nn.Sequential``; its layers 0, 2, 5 and 7 are ``wong-mnist``'s.
RELEASED_LAYERS = {"0": "features.0", "2": "features.2", "5": "features.5", "7": "head"}


def load_released(path: Path):
    """One of Wong et al.'s released MNIST state dicts (saved from a GPU), loaded with ``weights_only=True`` onto the
    CPU into ``wong-mnist``."""
    model = create_model("wong-mnist", (1, 28, 28), 10, [0.0], [1.0])
    state = {}
    for key, value in torch_load(path, map_location="cpu").items():
        layer, name = key.split(".", 1)
        state[f"{RELEASED_LAYERS[layer]}.{name}"] = value
    model.load_state_dict({**{k: v for k, v in model.state_dict().items() if k.startswith("normalize")}, **state})
    return model.eval()


def evaluate_released(folder: Path, prof, n: int, attack) -> None:
    """Clean accuracy (every test image), and accuracy under the headline attack and under Wong et al.'s own
    evaluation on the first ``n``, of each released model in ``folder``; the attacks' random starts seeded, so that
    a rerun prints the same numbers."""
    ds = family_dataset(prof, "mnist")
    x, y = ds.x_test[:n], ds.y_test[:n]
    theirs = PGD(eps=0.3, steps=50, step_size=0.01, restarts=10)
    print(f"\nWong et al.'s released models ({folder}); their evaluation: {theirs.describe()}.")
    print(f"{'model':<22} {'clean':>7} {'headline':>9} {'theirs':>7}")
    for name in RELEASED:
        model = load_released(folder / name)
        with seeded(0):
            ours = robust_accuracy(model, x, y, attack, progress=False)
        with seeded(0):
            wong = robust_accuracy(model, x, y, theirs, progress=False)
        print(f"{name:<22} {accuracy(model, ds.x_test, ds.y_test):>7.3f} {ours:>9.3f} {wong:>7.3f}", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="full", help="rilib profile (default: full, all 60,000 digits)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1],
                        help="replicates of the arm to train each variant at (default: 0 1; 0 is the arm itself). "
                             "Replicates beyond the profile's are seeded as the catalogue seeds its replicates")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS),
                        help="details to change, one at a time (default: all; none given: the recipe alone)")
    parser.add_argument("--n", type=int, default=1000, help="test images the headline attack runs on (default 1000)")
    parser.add_argument("--released", type=Path, metavar="DIR",
                        help=f"also evaluate Wong et al.'s released models: a folder holding {' and '.join(RELEASED)}")
    args = parser.parse_args(argv)
    if args.released and not all((args.released / f).is_file() for f in RELEASED):
        parser.error(f"--released {args.released}: the folder must hold {' and '.join(RELEASED)}, from "
                     f"fast_adversarial/MNIST/models in Wong et al.'s repository")
    prof = get_profile(args.profile)
    if min(args.seeds) < 0:
        parser.error(f"--seeds: replicates are numbered from 0, not {min(args.seeds)}")
    # the catalogue's replicates, as many as asked for: replicate r of the profile's own range is its zoo model
    specs = seeds_zoo(replace(prof, seeds=max(prof.seeds, max(args.seeds) + 1)))
    attack = evaluation_attack(prof, 0.3)
    print(f"FGSM-RS on Wong et al.'s MNIST recipe (profile {prof.name}), one detail changed at a time. Headline "
          f"attack at ε = 0.3 on the first {args.n} test images: {attack.describe()}.")
    print(f"{'variant':<22} {'seed':>5} {'clean':>7} {'headline':>9} {'train s':>8}")
    for variant in ("as their code runs it", *args.variants):
        for r in args.seeds:
            spec = specs[seed_name(FGSM_WONG, r)]
            spec = spec if variant not in VARIANTS else VARIANTS[variant](spec)
            zoo.train(spec, progress=False)
            info = zoo.metrics(spec)
            robust = zoo.evaluation(spec, attack, prof, n=args.n, progress=False)["robust_acc"]
            print(f"{variant:<22} {spec.seed:>5} {info['clean_acc']:>7.3f} {robust:>9.3f} "
                  f"{info['train_seconds']:>8.0f}", flush=True)
    if args.released:
        evaluate_released(args.released, prof, args.n, attack)


if __name__ == "__main__":
    main()
