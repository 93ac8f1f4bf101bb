"""Quantitative recognisability and faithfulness of attribution maps, batched in torch.

Grouped as Quantus groups its metrics (Hedström et al. 2023), with the per-image loops replaced by batched
tensor code:

- alignment (Etmann et al. 2019, "On the Connection Between Adversarial Robustness and Saliency Map
  Interpretability"): in the paper's own units, |⟨x, ∇ₓΨ(x)⟩| / ‖∇ₓΨ(x)‖ (a distance in input units, for Ψ the
  logit of a class or the margin) — :func:`etmann_alignment`; and the book's scale-free variant
  |⟨x, ∇ₓΨ(x)⟩| / (‖x‖ ‖∇ₓΨ(x)‖), Ψ the logit of the predicted class — :func:`alignment`;
- faithfulness (Petsiuk et al. 2018, RISE): deletion and insertion AUC — :func:`deletion_insertion`, with
  :func:`deletion_insertion_reference` as the plain per-image version the tests check it against;
- randomisation (Adebayo et al. 2018, "Sanity Checks for Saliency Maps"): rank correlation of the maps before
  and after re-initialising the top layers — :func:`spearman`, :func:`randomize_top_layers`;
  and the cascading version, one more layer re-initialised from the top at each step — :func:`cascade_models`,
  with the SSIM of the maps (scikit-image) — :func:`map_ssim`;
- concentration: the Gini coefficient of |map| (Chalasani et al. 2020) — :func:`gini`; the share of |map| on
  the strokes of the digit — :func:`stroke_share`;
- baselines of deletion and insertion stronger than a random map: the image itself ("ink order") and its Sobel
  edge magnitude (scikit-image) — :func:`sobel_map`.

Intervals over these per-image values come from :mod:`rilib.lenses.stats`. Inputs may live on any device: each
function moves them to the model's.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import eval_mode
from ..models import PASS_BATCH, to_model
from ..rng import seeded


def alignment(model: nn.Module, x: torch.Tensor, batch_size: int = PASS_BATCH) -> torch.Tensor:
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


#: What :func:`etmann_alignment` differentiates: the logit of a class, or the margin (top logit − runner-up).
PSI = ("logit", "margin")


def etmann_alignment(model: nn.Module, x: torch.Tensor, target: torch.Tensor | None = None, psi: str = "logit",
                     batch_size: int = PASS_BATCH) -> torch.Tensor:
    """Etmann et al.'s (2019) alignment in the paper's own units, per image (N,): |⟨x, ∇ₓΨ(x)⟩| / ‖∇ₓΨ(x)‖.

    For a linear Ψ(x) = ⟨w, x⟩ + b it is |⟨x, w⟩| / ‖w‖, the distance of x to the hyperplane ⟨w, ·⟩ = 0 in input
    units (the paper's Theorem 1 relates it to the distance to the decision boundary). ``psi="logit"``: Ψ is the
    logit of ``target`` (the true class; the predicted class when ``target`` is None); ``psi="margin"``: Ψ is the
    top logit minus the runner-up at x (the binarised classifier of the paper's Section 3). x is the image in
    [0, 1]; the model's input normalisation is part of the model."""
    if psi not in PSI:
        raise ValueError(f"Unknown Ψ {psi!r}. Valid: {', '.join(PSI)}.")
    out = []
    with eval_mode(model):
        for i in range(0, len(x), batch_size):
            xb = to_model(x[i:i + batch_size], model).detach().clone().requires_grad_(True)
            logits = model(xb)
            if psi == "logit":
                t = logits.argmax(1) if target is None else to_model(target[i:i + batch_size], model).long()
                value = logits.gather(1, t.view(-1, 1)).sum()
            else:
                top2 = logits.topk(2, dim=1)
                first, second = top2.indices[:, :1], top2.indices[:, 1:]
                value = (logits.gather(1, first) - logits.gather(1, second)).sum()
            g, = torch.autograd.grad(value, xb)
            xf, gf = xb.detach().flatten(1), g.flatten(1)
            out.append((xf * gf).sum(1).abs() / gf.norm(dim=1).clamp_min(1e-12))
    return torch.cat(out)


def stroke_share(x: torch.Tensor, saliency: torch.Tensor, ink: float = 0.5) -> torch.Tensor:
    """Share of the map's mass Σ|map| that lies on the strokes, the pixels whose ink (the image in [0, 1], summed
    over channels) exceeds ``ink``, per image (N,): 1 when every attribution sits on the digit."""
    stroke = (x.sum(1, keepdim=True) > ink).to(saliency.dtype).expand_as(saliency)
    a = saliency.abs().flatten(1)
    return (a * stroke.flatten(1)).sum(1) / a.sum(1).clamp_min(1e-12)


def sobel_map(x: torch.Tensor) -> torch.Tensor:
    """The Sobel edge magnitude of every image (scikit-image ``filters.sobel``), shaped like ``x``: an edge
    detector as a model-free baseline map for deletion and insertion."""
    from skimage.filters import sobel
    arr = x.detach().cpu().double().numpy()
    out = np.asarray([[sobel(channel) for channel in image] for image in arr])
    return torch.as_tensor(out, dtype=x.dtype).to(x.device).reshape(x.shape)


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
                       sigma: float = 3.0, batch_size: int = PASS_BATCH) -> tuple[torch.Tensor, torch.Tensor]:
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


def map_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM per image (N,) of two batches of maps (scikit-image ``structural_similarity``), each |map| scaled to
    [0, 1] by its own maximum, as Adebayo et al. (2018) compare maps."""
    from skimage.metrics import structural_similarity

    def scaled(t):
        v = t.detach().abs().sum(1).cpu().double()
        return (v / v.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)).numpy()

    sa, sb = scaled(a), scaled(b)
    return torch.tensor([structural_similarity(p, q, data_range=1.0) for p, q in zip(sa, sb)], dtype=a.dtype)


def parametrised_layers(model: nn.Module) -> list[nn.Module]:
    """The model's layers with weights (linear and convolutional), bottom to top."""
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def cascade_models(model: nn.Module, seed: int = 0) -> list[nn.Module]:
    """The cascading model randomisation of Adebayo et al. (2018), Section 3.1: copies of ``model`` with the top
    1, 2, …, L layers with weights re-initialised (each layer's default initialisation), from the top down. The
    j-th layer from the top is re-initialised with seed ``seed + j`` at every step, so a layer keeps the same random
    weights once it has been randomised; the caller's random state is untouched."""
    out = []
    n = len(parametrised_layers(model))
    for k in range(1, n + 1):
        clone = copy.deepcopy(model)
        top_down = parametrised_layers(clone)[::-1]
        for j, m in enumerate(top_down[:k]):
            with seeded(seed + j):
                m.reset_parameters()
        out.append(clone.eval())
    return out


def randomize_top_layers(model: nn.Module, n_layers: int = 2, seed: int = 0) -> nn.Module:
    """A copy of ``model`` whose last ``n_layers`` layers with parameters are re-initialised with seed ``seed``
    (the cascading model-randomisation test of Adebayo et al. 2018); the caller's random state is untouched."""
    clone = copy.deepcopy(model)
    layers = [m for m in clone.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    with seeded(seed):
        for m in layers[-n_layers:]:
            m.reset_parameters()
    return clone.eval()
