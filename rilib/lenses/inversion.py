"""Representation inversion and class-specific image generation, and the scores of their images.

- :func:`invert` (Engstrom et al. 2019, "Adversarial Robustness as a Prior for Learned Representations"): find
  x minimising ‖rep(x) − rep(x₀)‖₂ / ‖rep(x₀)‖₂, rep the penultimate layer, by L2-normalised gradient steps from a
  seed (near-grey, :func:`grey_seeds`, or another image) inside a ball so large (ε = 1000) that only the image box
  constrains it, each image until its loss stops falling (:class:`InversionSettings`) or a cap of steps.
- :func:`generate` (Santurkar et al. 2019, "Image Synthesis with a Single (Robust) Classifier"): maximise the
  target class's logit by L2 steps inside an ε-ball around a seed drawn from a class-conditional Gaussian
  (:class:`ClassGaussian`) or from one Gaussian of every class (:func:`pooled_gaussian_seeds`), by
  :func:`rilib.attacks.projected_gradient` with the logit as its loss.

``fake_relu=True`` passes gradients through the last ReLU of the representation as if it were the identity, as
the MadryLab ``robustness`` library's ``FakeReLU`` does, so that dead units still steer the image.

Scores of the images they make: :func:`recognised` (does an independent judge label an image as its target
class), :func:`ssim_psnr` (scikit-image's SSIM and PSNR against a reference image) and :func:`frechet_features`
(the Fréchet distance of the FID, in a judge's features).
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
    """L2 ball radius, step length, step cap and stopping rule of :func:`invert`.

    Engstrom et al. (2019) use ε = 1000, step 1 and 10,000 steps. The stopping rule: an image stops once the
    lowest loss it has reached fell by no more than the fraction ``tol`` over its last ``window`` steps
    (best(t − window) − best(t) ≤ tol · best(t − window)); ``tol = 0`` runs every image for all ``steps``, as the
    paper does."""

    eps: float = 1000.0
    step_size: float = 1.0
    steps: int = 10_000
    tol: float = 0.0
    window: int = 1

    def __post_init__(self):
        if self.steps < 0 or self.window < 1 or self.tol < 0 or self.step_size <= 0 or self.eps <= 0:
            raise ValueError(f"InversionSettings needs steps ≥ 0, window ≥ 1, tol ≥ 0, step_size > 0 and eps > 0; "
                             f"got {self}")


def grey_seeds(shape, width: float = 0.05, seed: int = 0) -> torch.Tensor:
    """Near-grey seeds 0.5 + U[0, ``width``] per pixel, shaped ``shape`` (the seed of the inversion example of the
    MadryLab ``robustness`` library that accompanies Engstrom et al. 2019): an image with no digit in it."""
    return 0.5 + width * torch.rand(tuple(shape), generator=torch.Generator().manual_seed(seed))


def invert(model: nn.Module, x0: torch.Tensor, seed: torch.Tensor, settings: InversionSettings = InversionSettings(),
           fake_relu: bool = False, history: Optional[list] = None, info: Optional[dict] = None) -> torch.Tensor:
    """Images whose representation matches that of ``x0`` (Engstrom et al. 2019, eq. 5): descend
    :func:`representation_distance` from ``seed`` (both (N, C, H, W) in [0, 1]) by L2-normalised gradient steps of
    length ``settings.step_size``, projected on the L2 ball of radius ``settings.eps`` around the seed and on the
    image box, returning per image the iterate with the lowest distance (the ``robustness`` library's
    ``use_best``). Images stop by :class:`InversionSettings`' rule, at the latest after ``settings.steps`` steps.

    With ``history`` a list, the mean over the images of the lowest distance reached so far is appended at every
    step (the loss curve; a stopped image keeps its value). With ``info`` a dict, it receives ``steps`` (N,): the
    step at which each image stopped, and ``converged`` (N,): whether the rule stopped it before the cap."""
    net = with_fake_relu(model) if fake_relu else model
    with torch.no_grad(), eval_mode(model):
        target = model.representation(to_model(x0.detach(), model)).detach()
    centre = to_model(seed.detach(), model)
    n, s = len(centre), settings

    x = project_rows(centre.clone(), centre, s.eps)
    best_x, best = x.clone(), torch.full((n,), float("inf"), device=x.device, dtype=x.dtype)
    past = []                                   # best losses of the last `window` steps, oldest first
    stopped = torch.full((n,), s.steps, dtype=torch.long)
    converged = torch.zeros(n, dtype=torch.bool)
    active = torch.arange(n, device=x.device)
    with eval_mode(net):
        for t in range(s.steps + 1):
            xa = x[active].detach().requires_grad_(t < s.steps)
            values = representation_distance(net, xa, target[active])
            if t < s.steps:
                grad, = torch.autograd.grad(values.sum(), xa)
            with torch.no_grad():
                values = values.detach()
                better = values < best[active]
                best_x[active[better]] = xa.detach()[better]
                best[active] = torch.minimum(best[active], values)
                if history is not None:
                    history.append(float(best.mean()))
                past.append(best.clone())
                if len(past) > s.window:
                    ref = past.pop(0)
                    if s.tol > 0:
                        done = (ref[active] - best[active]) <= s.tol * ref[active]
                        if done.any():
                            idx = active[done].cpu()
                            stopped[idx], converged[idx] = t, True
                            keep = ~done
                            active, xa = active[keep], xa[keep]
                            if t < s.steps:
                                grad = grad[keep]
                if t == s.steps or not len(active):
                    break
                gnorm = grad.flatten(1).norm(dim=1).view(-1, *([1] * (grad.ndim - 1)))
                step = xa.detach() - s.step_size * grad / (gnorm + 1e-12)
                x[active] = project_rows(step, centre[active], s.eps)
    if info is not None:
        info["steps"], info["converged"] = stopped, converged
    return best_x


def project_rows(x: torch.Tensor, centre: torch.Tensor, eps: float) -> torch.Tensor:
    """``x`` projected on the L2 ball of radius ``eps`` around ``centre`` (row by row), then on the box [0, 1]."""
    delta = x - centre
    norm = delta.flatten(1).norm(dim=1).view(-1, *([1] * (x.ndim - 1)))
    return (centre + delta * torch.clamp(eps / (norm + 1e-12), max=1.0)).clamp(0, 1)


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


def pooled_gaussian_seeds(x: torch.Tensor, n: int, seed: int = 0, grain: int = 4, ridge: float = 1e-4) -> torch.Tensor:
    """``n`` seeds that carry no class: drawn from one Gaussian fitted to the training images ``x`` of every class
    together (the recipe of :class:`ClassGaussian` with a single class), (n, C, H, W) in [0, 1]."""
    g = ClassGaussian(x, torch.zeros(len(x), dtype=torch.long), grain=grain, ridge=ridge)
    return g.sample(torch.zeros(n, dtype=torch.long), seed=seed)


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
    """Per-image SSIM and PSNR (dB) of ``x`` against ``ref`` (N, C, H, W) in [0, 1], by scikit-image's
    ``structural_similarity`` (over every channel, ``channel_axis=0``: the mean of the per-channel SSIMs) and
    ``peak_signal_noise_ratio`` (over all channels; data range 1). Returns two (N,) tensors."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    a, b = x.detach().cpu().double().numpy(), ref.detach().cpu().double().numpy()
    ssim = [structural_similarity(p, q, data_range=1.0, channel_axis=0) for p, q in zip(a, b)]
    psnr = [peak_signal_noise_ratio(q, p, data_range=1.0) for p, q in zip(a, b)]
    return torch.tensor(ssim, dtype=torch.float32), torch.tensor(psnr, dtype=torch.float32)


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """The Fréchet (2-Wasserstein) distance between two Gaussians, the quantity of the FID (Heusel et al. 2017)
    that Boychev (2023) reports: ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½), with scipy.linalg.sqrtm (its imaginary
    part, round-off of a nearly singular product, dropped)."""
    import numpy as np
    from scipy import linalg
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    cov1, cov2 = np.atleast_2d(np.asarray(cov1, dtype=np.float64)), np.atleast_2d(np.asarray(cov2, dtype=np.float64))
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"frechet_distance needs means of one length d and d×d covariances; got means "
                         f"{mu1.shape} and {mu2.shape}, covariances {cov1.shape} and {cov2.shape}")
    root = linalg.sqrtm(cov1 @ cov2)
    root = root.real if np.iscomplexobj(root) else root
    return float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(root))


def frechet_features(a: torch.Tensor, b: torch.Tensor) -> float:
    """:func:`frechet_distance` between Gaussians fitted (mean, unbiased covariance) to two sets of feature
    vectors ``a`` (N, D) and ``b`` (M, D), for example a judge's penultimate features of generated and of real
    images: the FID's recipe with the judge in place of the Inception network."""
    import numpy as np
    a, b = (np.asarray(t.detach().cpu().double() if torch.is_tensor(t) else t, dtype=np.float64) for t in (a, b))
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"frechet_features needs two (N, D) feature sets with N ≥ 2 and the same D; got {a.shape} "
                         f"and {b.shape}")
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


class FrechetReference:
    """The real images' side of :func:`frechet_features`, fitted once, for many distances to it (a bootstrap):
    tr((Σ₁Σ₂)^½) = tr((Σ₂^½ Σ₁ Σ₂^½)^½), a symmetric matrix whose root is the root of its eigenvalues, with Σ₂^½ by
    scipy.linalg.sqrtm. The same number as :func:`frechet_features`, a few times faster."""

    def __init__(self, features):
        import numpy as np
        from scipy import linalg
        f = np.asarray(features.detach().cpu().double() if torch.is_tensor(features) else features, dtype=np.float64)
        self.mean, self.cov = f.mean(0), np.cov(f, rowvar=False)
        root = linalg.sqrtm(self.cov)
        root = root.real if np.iscomplexobj(root) else root
        self.root = (root + root.T) / 2

    def distance(self, features) -> float:
        """:func:`frechet_features` between ``features`` (N, D) and the reference."""
        import numpy as np
        f = np.asarray(features.detach().cpu().double() if torch.is_tensor(features) else features, dtype=np.float64)
        if f.ndim != 2 or f.shape[1] != len(self.mean) or len(f) < 2:
            raise ValueError(f"FrechetReference.distance needs (N ≥ 2, {len(self.mean)}) features; got {f.shape}")
        mu, cov = f.mean(0), np.cov(f, rowvar=False)
        inner = self.root @ cov @ self.root
        eig = np.linalg.eigvalsh((inner + inner.T) / 2).clip(min=0)
        return float(((mu - self.mean) ** 2).sum() + np.trace(cov) + np.trace(self.cov) - 2 * np.sqrt(eig).sum())


def judge_features(judge: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The judge's penultimate-layer features of ``x`` (N, D), on the CPU, without gradients."""
    with torch.no_grad(), eval_mode(judge):
        return judge.representation(to_model(x, judge)).cpu()
