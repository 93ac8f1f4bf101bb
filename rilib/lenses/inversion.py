"""Representation inversion and class-specific image generation with rilib's one projected-gradient optimizer.

- :func:`invert` (Engstrom et al. 2019, "Adversarial Robustness as a Prior for Learned Representations"): find
  x minimising ‖rep(x) − rep(x₀)‖₂ / ‖rep(x₀)‖₂, rep the penultimate layer, by L2 steps from a seed (uniform
  noise or another image) inside a ball so large (ε = 1000) that only the image box constrains it.
- :func:`generate` (Santurkar et al. 2019, "Image Synthesis with a Single (Robust) Classifier"): maximise the
  target class's logit by L2 steps inside an ε-ball around a seed drawn from a class-conditional Gaussian
  (:class:`ClassGaussian`).

Both call :func:`rilib.attacks.projected_gradient` with their own loss. ``fake_relu=True`` passes gradients
through the last ReLU of the representation as if it were the identity, as the MadryLab ``robustness``
library's ``FakeReLU`` does, so that dead units still steer the image.

Scores of the images they make: :func:`recognised` (does an independent judge label an image as its target
class) and :func:`ssim_psnr` (scikit-image's SSIM and PSNR against a reference image).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import eval_mode, projected_gradient
from ..models import to_model
from ..rng import seeded


class _FakeReLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        return grad


class FakeReLU(nn.Module):
    """ReLU in the forward pass, identity in the backward pass."""

    def forward(self, x):
        return _FakeReLUFunction.apply(x)


def with_fake_relu(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose last ``nn.ReLU`` inside ``model.features`` is a :class:`FakeReLU`."""
    clone = copy.deepcopy(model)
    relus = [name for name, m in clone.features.named_modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ValueError("fake_relu needs a model whose features contain an nn.ReLU")
    *path, last = relus[-1].split(".")
    parent = clone.features
    for p in path:
        parent = getattr(parent, p)
    setattr(parent, last, FakeReLU())
    return clone.eval()


def representation_distance(model: nn.Module, x: torch.Tensor, target_rep: torch.Tensor) -> torch.Tensor:
    """‖rep(x) − target‖₂ / ‖target‖₂ per image (N,), ``rep`` the model's penultimate layer."""
    x, target_rep = to_model(x, model), to_model(target_rep, model)
    return (model.representation(x) - target_rep).norm(dim=1) / target_rep.norm(dim=1).clamp_min(1e-12)


@dataclass(frozen=True)
class InversionSettings:
    """L2 ball radius, step length and number of steps of :func:`invert` (Engstrom et al.: 1000, 1, 10,000)."""

    eps: float = 1000.0
    step_size: float = 1.0
    steps: int = 10_000


def invert(model: nn.Module, x0: torch.Tensor, seed: torch.Tensor, settings: InversionSettings = InversionSettings(),
           fake_relu: bool = False, history: Optional[list] = None) -> torch.Tensor:
    """Images whose representation matches that of ``x0``, found by descending
    :func:`representation_distance` from ``seed`` (both (N, C, H, W) in [0, 1]). The ball is centred on the
    seed. With ``history`` a list, the mean distance of every step is appended to it (the loss curve)."""
    net = with_fake_relu(model) if fake_relu else model
    with torch.no_grad(), eval_mode(model):
        target = model.representation(to_model(x0.detach(), model)).detach()
    return projected_gradient(net, seed, target, constraint="l2", eps=settings.eps,
                              step_size=settings.step_size, steps=settings.steps,
                              loss=representation_distance, minimize=True, start=seed, history=history)


def target_logit(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The logit of class ``target[i]`` for image i (N,)."""
    return model(x).gather(1, target.view(-1, 1)).squeeze(1)


@dataclass(frozen=True)
class GenerationSettings:
    """L2 radius, step and steps of :func:`generate`. Santurkar et al. use ε = 30, step 0.5 and 60 steps on
    CIFAR-10 (3,072 dimensions). For MNIST (784) the same per-pixel root-mean-square change needs ε scaled by
    √(784/3072) ≈ 0.51: ε = 15 with step 0.25 and 60 steps, so that the steps can just reach the ball's edge."""

    eps: float = 15.0
    step_size: float = 0.25
    steps: int = 60


def generate(model: nn.Module, target: torch.Tensor, seed: torch.Tensor,
             settings: GenerationSettings = GenerationSettings(), history: Optional[list] = None) -> torch.Tensor:
    """Images of class ``target`` (N,) drawn by ascending its logit from ``seed`` (N, C, H, W) in L2 steps."""
    return projected_gradient(model, seed, target, constraint="l2", eps=settings.eps,
                              step_size=settings.step_size, steps=settings.steps, loss=target_logit,
                              start=seed, history=history)


class ClassGaussian:
    """Class-conditional Gaussian seeds (Santurkar et al. 2019): fit a mean and covariance (+ ``ridge``·I) to
    the training images of each class down-sampled by ``grain`` (average pooling), sample, up-sample (nearest)
    and clamp to [0, 1]."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, grain: int = 4, ridge: float = 1e-4):
        self.grain, self.shape = grain, tuple(x.shape[1:])
        small = F.avg_pool2d(x.float(), grain)
        self.small_shape = tuple(small.shape[1:])
        flat = small.flatten(1).double()
        self.dists = {}
        for c in sorted(set(y.tolist())):
            xc = flat[y == c]
            mean = xc.mean(0)
            cov = torch.cov(xc.T) + ridge * torch.eye(xc.shape[1], dtype=xc.dtype)
            self.dists[c] = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov)

    @property
    def classes(self) -> list[int]:
        return list(self.dists)

    def sample(self, classes: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """One seed image per entry of ``classes`` (N,), shaped (N, C, H, W), in [0, 1]."""
        with seeded(seed):
            out = torch.stack([self.dists[int(c)].sample() for c in classes]).float()
        out = out.view(len(classes), *self.small_shape)
        out = F.interpolate(out, scale_factor=self.grain, mode="nearest")
        h, w = self.shape[-2:]
        return out[..., :h, :w].clamp(0, 1)


def recognised(judge: nn.Module, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """1.0 where ``judge`` labels image i of ``x`` (N, C, H, W) as ``classes[i]``, else 0.0: (N,) on the CPU. An
    independent classifier (another architecture and seed) scores generated images without seeing the model
    that made them; Boychev (2023) uses an Inception network's FID where this book has no download."""
    with torch.no_grad(), eval_mode(judge):
        return (judge(to_model(x, judge)).argmax(1).cpu() == classes.cpu()).float()


def ssim_psnr(x: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image SSIM and PSNR (dB) of ``x`` against ``ref`` (N, 1, H, W) in [0, 1], by scikit-image's
    ``structural_similarity`` and ``peak_signal_noise_ratio`` (data range 1). Returns two (N,) tensors."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    a, b = x.detach().cpu().double().numpy(), ref.detach().cpu().double().numpy()
    ssim = [structural_similarity(p[0], q[0], data_range=1.0) for p, q in zip(a, b)]
    psnr = [peak_signal_noise_ratio(q[0], p[0], data_range=1.0) for p, q in zip(a, b)]
    return torch.tensor(ssim, dtype=torch.float32), torch.tensor(psnr, dtype=torch.float32)
