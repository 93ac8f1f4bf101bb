"""Quantitative recognisability and faithfulness of attribution maps, batched in torch.

Grouped as Quantus groups its metrics (Hedström et al. 2023), with the per-image loops replaced by batched
tensor code:

- alignment (Etmann et al. 2019, "On the Connection Between Adversarial Robustness and Saliency Map
  Interpretability"): |⟨x, ∇ₓΨ(x)⟩| / (‖x‖ ‖∇ₓΨ(x)‖), Ψ the logit of the predicted class — :func:`alignment`;
- faithfulness (Petsiuk et al. 2018, RISE): deletion and insertion AUC — :func:`deletion_insertion`, with
  :func:`deletion_insertion_reference` as the plain per-image version the tests check it against;
- randomisation (Adebayo et al. 2018, "Sanity Checks for Saliency Maps"): rank correlation of the maps before
  and after re-initialising the top layers — :func:`spearman`, :func:`randomize_top_layers`;
- concentration: the Gini coefficient of |map| (Chalasani et al. 2020) — :func:`gini`.

Intervals over these per-image values come from :mod:`rilib.lenses.stats`. Inputs may live on any device: each
function moves them to the model's.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import eval_mode
from ..models import to_model
from ..rng import seeded


def alignment(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Etmann et al. (2019) alignment per image (N,), in [0, 1]: |⟨x, g⟩| / (‖x‖ ‖g‖) with g = ∇ₓ of the
    predicted class's logit. The model's own input normalisation is part of the model, so x is the image in
    [0, 1]. Sensitive to the input's offset: a constant added to x changes it."""
    out = []
    with eval_mode(model):
        for i in range(0, len(x), batch_size):
            xb = to_model(x[i:i + batch_size], model).detach().clone().requires_grad_(True)
            logits = model(xb)
            psi = logits.gather(1, logits.argmax(1, keepdim=True)).sum()
            g, = torch.autograd.grad(psi, xb)
            out.append(alignment_of(xb.detach(), g))
    return torch.cat(out)


def alignment_of(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """|⟨x, g⟩| / (‖x‖ ‖g‖) per image for given maps ``g`` shaped like ``x``."""
    x, g = x.flatten(1), g.flatten(1)
    return (x * g).sum(1).abs() / (x.norm(dim=1) * g.norm(dim=1)).clamp_min(1e-12)


def blur(x: torch.Tensor, sigma: float = 3.0) -> torch.Tensor:
    """Gaussian blur (kernel 4σ+1, reflect padding), the insertion substrate of RISE."""
    radius = int(2 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def _pixel_ranks(saliency: torch.Tensor) -> torch.Tensor:
    """Rank of every pixel (N, H·W), 0 for the most salient; channels are summed first."""
    s = saliency.sum(1).flatten(1)
    order = torch.argsort(s, dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(s.shape[1], device=s.device).expand_as(order))
    return ranks


def _auc(curve: torch.Tensor) -> torch.Tensor:
    """Trapezoid area under curves (N, S+1) sampled at evenly spaced fractions of [0, 1]."""
    return torch.trapezoid(curve, dx=1.0 / (curve.shape[1] - 1), dim=1)


@torch.no_grad()
def deletion_insertion(model: nn.Module, x: torch.Tensor, saliency: torch.Tensor, steps: int = 28,
                       sigma: float = 3.0, batch_size: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Deletion and insertion AUC per image (Petsiuk et al. 2018, RISE), batched over images and steps.

    Pixels are ranked by ``saliency`` (summed over channels, largest first). At step k of ``steps`` the
    top k/steps of the pixels are removed (deletion: set to 0) or revealed (insertion: copied from x into
    a Gaussian-blurred x). The curve is the softmax probability of the class the model predicts on x; the
    AUC is its trapezoid area over the fraction of pixels. Lower deletion and higher insertion AUC mean a
    more faithful map. Returns ``(deletion (N,), insertion (N,))``.
    """
    x, saliency = to_model(x, model), to_model(saliency, model)
    n, c, h, w = x.shape
    ranks = _pixel_ranks(saliency)
    with eval_mode(model):
        cls = model(x).argmax(1)
        substrate = blur(x, sigma)
        fractions = torch.linspace(0, 1, steps + 1, device=x.device)
        counts = torch.round(fractions * h * w)
        curves = {"deletion": [], "insertion": []}
        per_chunk = max(1, batch_size // n) if n < batch_size else 1
        for s0 in range(0, steps + 1, per_chunk):
            ks = counts[s0:s0 + per_chunk]
            mask = (ranks.unsqueeze(0) < ks.view(-1, 1, 1)).view(len(ks), n, 1, h, w).to(x.dtype)  # (S, N, 1, H, W)
            deleted = x.unsqueeze(0) * (1 - mask)
            inserted = substrate.unsqueeze(0) * (1 - mask) + x.unsqueeze(0) * mask
            for name, imgs in (("deletion", deleted), ("insertion", inserted)):
                probs = []
                flat = imgs.reshape(-1, c, h, w)
                for i in range(0, len(flat), batch_size):
                    probs.append(F.softmax(model(flat[i:i + batch_size]), dim=1))
                p = torch.cat(probs).view(len(ks), n, -1)
                curves[name].append(p.gather(2, cls.view(1, n, 1).expand(len(ks), n, 1)).squeeze(2))
    return tuple(_auc(torch.cat(curves[k]).T) for k in ("deletion", "insertion"))  # type: ignore[return-value]


@torch.no_grad()
def deletion_insertion_reference(model: nn.Module, x: torch.Tensor, saliency: torch.Tensor, steps: int = 28,
                                 sigma: float = 3.0) -> tuple[list[float], list[float]]:
    """Plain per-image, per-step version of :func:`deletion_insertion`, for cross-checking it."""
    dels, ins = [], []
    x, saliency = to_model(x, model), to_model(saliency, model)
    with eval_mode(model):
        for xi, si in zip(x, saliency):
            xi = xi.unsqueeze(0)
            cls = int(model(xi).argmax(1))
            order = torch.argsort(si.sum(0).flatten(), descending=True, stable=True)
            h, w = xi.shape[-2:]
            base = blur(xi, sigma)
            d_curve, i_curve = [], []
            for k in range(steps + 1):
                m = torch.zeros(h * w, dtype=xi.dtype, device=xi.device)
                m[order[: int(round(k / steps * h * w))]] = 1
                m = m.view(1, 1, h, w)
                d_curve.append(float(F.softmax(model(xi * (1 - m)), 1)[0, cls]))
                i_curve.append(float(F.softmax(model(base * (1 - m) + xi * m), 1)[0, cls]))
            trap = lambda c: sum((a + b) / 2 for a, b in zip(c[:-1], c[1:])) / steps  # noqa: E731
            dels.append(trap(d_curve))
            ins.append(trap(i_curve))
    return dels, ins


def gini(saliency: torch.Tensor) -> torch.Tensor:
    """Gini coefficient of |map| per image (N,): 0 for a uniform map, → 1 when all mass is on one pixel."""
    a = saliency.abs().flatten(1).sort(dim=1).values
    n = a.shape[1]
    idx = torch.arange(1, n + 1, dtype=a.dtype, device=a.device)
    total = a.sum(1).clamp_min(1e-12)
    return ((2 * idx - n - 1) * a).sum(1) / (n * total)


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation per image (N,) between two batches of maps, with tied values given their average
    rank (scipy's ``rankdata``), as the coefficient is defined: maps with many exact zeros (a ReLU network's
    gradient on an MNIST background) would otherwise be ranked by an arbitrary order of the ties."""
    from scipy.stats import rankdata

    def ranks(t):
        flat = t.detach().flatten(1).cpu().double().numpy()
        return torch.from_numpy(rankdata(flat, method="average", axis=1)).to(device=t.device, dtype=torch.float64)

    ra, rb = ranks(a), ranks(b)
    ra = ra - ra.mean(1, keepdim=True)
    rb = rb - rb.mean(1, keepdim=True)
    return ((ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1)).clamp_min(1e-12)).to(a.dtype)


def randomize_top_layers(model: nn.Module, n_layers: int = 2, seed: int = 0) -> nn.Module:
    """A copy of ``model`` whose last ``n_layers`` layers with parameters are re-initialised with seed ``seed``
    (the cascading model-randomisation test of Adebayo et al. 2018); the caller's random state is untouched."""
    clone = copy.deepcopy(model)
    layers = [m for m in clone.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    with seeded(seed):
        for m in layers[-n_layers:]:
            m.reset_parameters()
    return clone.eval()
