"""Statistics of 3×3 convolution filters, after Gavrikov & Keuper (2022), "Adversarial Robustness through
the Lens of Convolutional Filters" (CVPR-W; arXiv:2204.02481) and the authors' notebooks.

Per 3×3 ``Conv2d`` layer with weight W shaped (c_out, c_in, 3, 3):

- :func:`sparsity`: a kernel k (one 3×3 slice) is *sparse* if max|k| ≤ max|W| / 100; the layer's value is
  the share of sparse kernels.
- :func:`variance_entropy`: flatten the kernels to 9-vectors, scale each by its own L∞ norm, drop the sparse
  ones, take the singular values s of the centred matrix, v = s² / (n − 1), and return the base-10 entropy of
  v / Σv. It is 0 when all kernels are one shape and log₁₀ 9 ≈ 0.954 when their variance is spread evenly
  over all nine directions.
- :func:`orthogonality`: flatten every output filter over its inputs (c_in · 9 values), L2-normalise it, and
  return 1 − mean |cosine| over the off-diagonal pairs: 0 for identical filters, 1 for orthogonal ones.

:func:`layer_stats` computes them for every layer of any ``nn.Module`` (torchvision ResNets included) and
:func:`by_depth` aggregates them by normalised depth: the first layer on its own, the others in deciles,
weighted as the authors' notebooks weight them: sparsity by kernel count, variance entropy by the count of
*non-sparse* kernels (the ones it is computed on), orthogonality by output channels. :func:`bootstrap_overall`
gives the whole-network values intervals by resampling kernels, and :func:`movement` measures how far training
moved each layer from its initial weights.
"""

from __future__ import annotations

import math
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import RilibError, UnknownNameError
from ..models import ARCHITECTURES, create_model, to_model
from .stats import percentile_interval

SPARSITY_EPS = 0.01
MAX_ENTROPY = math.log10(9)


def conv3x3_layers(model: nn.Module) -> Iterator[tuple[str, nn.Conv2d]]:
    """(name, layer) for every ``Conv2d`` with a 3×3 kernel, in module order (i.e. by depth)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and tuple(module.kernel_size) == (3, 3):
            yield name, module


def kernels(weight: torch.Tensor) -> torch.Tensor:
    """The layer's 3×3 kernels as rows: (c_out · c_in, 9)."""
    return weight.detach().float().reshape(-1, 9)


def sparse_mask(weight: torch.Tensor, eps: float = SPARSITY_EPS) -> torch.Tensor:
    """Boolean (c_out · c_in,): kernels whose largest |value| is at most ``eps`` × the layer's largest."""
    k = kernels(weight)
    return k.abs().amax(dim=1) <= eps * k.abs().max()


def sparsity(weight: torch.Tensor, eps: float = SPARSITY_EPS) -> float:
    """Share of sparse kernels in one layer (see :func:`sparse_mask`)."""
    return float(sparse_mask(weight, eps).float().mean())


def variance_entropy(weight: torch.Tensor, eps: float = SPARSITY_EPS) -> float:
    """Base-10 entropy of the normalised singular-value spectrum of the layer's non-sparse kernels, each
    scaled by its own L∞ norm. In [0, log₁₀ 9]; NaN when fewer than two kernels are non-sparse."""
    k = kernels(weight)[~sparse_mask(weight, eps)]
    if len(k) < 2:
        return float("nan")
    k = k / k.abs().amax(dim=1, keepdim=True)
    s = torch.linalg.svdvals(k - k.mean(dim=0)).double()
    v = s ** 2 / (len(k) - 1)
    if v.sum() <= 1e-12 * float((k.double() ** 2).sum()) / (len(k) - 1):  # one shape: rounding noise only
        return 0.0
    p = v / v.sum()
    p = p[p > 0]
    return float(-(p * torch.log10(p)).sum())


def orthogonality(weight: torch.Tensor) -> float:
    """1 − mean |cos| between the layer's output filters (each flattened over its inputs), off the diagonal.
    NaN for a layer with a single output channel."""
    f = weight.detach().float().reshape(weight.shape[0], -1).double()
    if len(f) < 2:
        return float("nan")
    f = f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)
    cos = (f @ f.T).abs()
    n = len(f)
    off = (cos.sum() - cos.diagonal().sum()) / (n * (n - 1))
    return float(1 - off)


def layer_stats(model: nn.Module):
    """One row per 3×3 conv layer: name, depth index, normalised depth in [0, 1], shape, number of kernels,
    sparsity, variance entropy, orthogonality (a pandas DataFrame)."""
    import pandas as pd

    layers = list(conv3x3_layers(model))
    if not layers:
        raise ValueError(f"{type(model).__name__} has no 3×3 Conv2d layer")
    rows = []
    for i, (name, conv) in enumerate(layers):
        w = conv.weight
        rows.append({
            "layer": name, "depth": i, "norm_depth": i / max(1, len(layers) - 1),
            "shape": "×".join(map(str, w.shape)), "kernels": w.shape[0] * w.shape[1], "out_channels": w.shape[0],
            "nonsparse_kernels": int((~sparse_mask(w)).sum()),
            "sparsity": sparsity(w), "variance_entropy": variance_entropy(w), "orthogonality": orthogonality(w),
        })
    return pd.DataFrame(rows)


#: How :func:`by_depth` and :func:`overall_stats` weight each statistic's layers (the authors' weighting).
WEIGHTS = {"sparsity": "kernels", "variance_entropy": "nonsparse_kernels", "orthogonality": "out_channels"}


def overall_stats(stats) -> dict:
    """Whole-network values from :func:`layer_stats`: each statistic's weighted mean over layers (:data:`WEIGHTS`),
    and the variance entropy of the deepest layer."""
    out = {col: weighted_mean(stats, col, weight) for col, weight in WEIGHTS.items()}
    out["variance_entropy_deepest"] = float(stats.variance_entropy.iloc[-1])
    return out


def bootstrap_overall(model: nn.Module, resamples: int = 1000, seed: int = 0) -> dict:
    """The 95 % percentile intervals of :func:`bootstrap_draws`: ``{statistic: Interval}`` around each value of
    :func:`overall_stats`. See :func:`bootstrap_draws` for what is resampled and how."""
    base = overall_stats(layer_stats(model))
    return {key: percentile_interval(base[key], v, resamples)
            for key, v in bootstrap_draws(model, resamples, seed).items()}


def bootstrap_draws(model: nn.Module, resamples: int = 1000, seed: int = 0) -> dict:
    """The bootstrap distribution of each value of :func:`overall_stats` over the model's kernels,
    ``{statistic: tensor (resamples,)}``: each resample draws every layer's kernels (sparsity, entropy) and output
    filters (orthogonality) with replacement. Pairs of a
    filter with a copy of itself are left out of the orthogonality, as the diagonal is. The interval is the
    percentile interval (:func:`bootstrap_overall`). Near its maximum log₁₀ 9 the variance entropy is biased down
    under resampling (a noisier spectrum is a less even one), so its interval can sit just below the estimate: read
    it as the spread, not as a confidence interval for the entropy itself. The generator is seeded with ``seed``.

    Vectorised over resamples: a resample is a vector of draw counts, the entropy comes from the eigenvalues of the
    count-weighted scatter matrix of the normalised kernels (the squared singular values of the centred matrix),
    and the orthogonality from the count-weighted sum of |cos| over pairs of distinct filters.
    """
    gen = torch.Generator().manual_seed(seed)
    per_layer = []
    for _, conv in conv3x3_layers(model):
        w = conv.weight.detach().double().cpu()
        k = w.reshape(-1, 9)
        n, c_out = len(k), w.shape[0]
        counts = torch.zeros(resamples, n, dtype=torch.float64)
        counts.scatter_add_(1, torch.randint(n, (resamples, n), generator=gen), torch.ones(resamples, n,
                                                                                               dtype=torch.float64))
        sparse = (k.abs().amax(dim=1) <= SPARSITY_EPS * k.abs().max()).double()
        wts = counts * (1 - sparse)                                   # draws of non-sparse kernels
        kn = k / k.abs().amax(dim=1, keepdim=True).clamp_min(1e-300)
        total = wts.sum(1, keepdim=True)
        mean = (wts @ kn) / total.clamp_min(1)
        second = (wts @ (kn[:, :, None] * kn[:, None, :]).reshape(n, 81)).reshape(-1, 9, 9)
        scatter = second - total[:, :, None] * mean[:, :, None] * mean[:, None, :]
        ev = torch.linalg.eigvalsh(scatter).clamp_min(0)
        flat = ev.sum(1) <= 1e-12 * second.diagonal(dim1=1, dim2=2).sum(1)  # one shape: rounding noise only
        p = ev / ev.sum(1, keepdim=True).clamp_min(1e-300)
        entropy = -(p * torch.log10(p.where(p > 0, torch.ones_like(p)))).sum(1)
        entropy = entropy.where(~flat, torch.zeros_like(entropy))
        entropy = entropy.where(total.squeeze(1) >= 2, torch.full_like(entropy, float("nan")))
        f = w.reshape(c_out, -1)
        f = f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)
        cos = (f @ f.T).abs()
        fc = torch.zeros(resamples, c_out, dtype=torch.float64)
        fc.scatter_add_(1, torch.randint(c_out, (resamples, c_out), generator=gen),
                        torch.ones(resamples, c_out, dtype=torch.float64))
        pair_sum = ((fc @ cos) * fc).sum(1) - (fc ** 2 * cos.diagonal()).sum(1)
        pairs = fc.sum(1) ** 2 - (fc ** 2).sum(1)
        orth = 1 - pair_sum / pairs.where(pairs > 0, torch.full_like(pairs, float("nan")))
        per_layer.append({"kernels": float(n), "nonsparse_kernels": total.squeeze(1), "out_channels": float(c_out),
                          "sparsity": (counts @ sparse) / n, "variance_entropy": entropy, "orthogonality": orth})

    def weighted(column: str) -> torch.Tensor:
        vals = torch.stack([layer[column] for layer in per_layer], 1)
        wts = torch.stack([torch.as_tensor(layer[WEIGHTS[column]], dtype=torch.float64).expand(resamples)
                           for layer in per_layer], 1)
        ok = torch.isfinite(vals)
        return (vals.nan_to_num() * wts * ok).sum(1) / (wts * ok).sum(1)

    draws = {col: weighted(col) for col in WEIGHTS}
    draws["variance_entropy_deepest"] = per_layer[-1]["variance_entropy"]
    return draws


@torch.no_grad()
def movement(model: nn.Module, initial: nn.Module):
    """How far training moved each 3×3 layer: the cosine similarity between its flattened weights and the same
    layer's initial weights (1 = did not move). A DataFrame with ``layer``, ``depth`` and ``cosine to init``."""
    import pandas as pd
    rows = [{"layer": name, "depth": i,
             "cosine to init": float(F.cosine_similarity(a.weight.flatten().float().cpu(),
                                                         b.weight.flatten().float().cpu(), dim=0))}
            for i, ((name, a), (_, b)) in enumerate(zip(conv3x3_layers(model), conv3x3_layers(initial)))]
    return pd.DataFrame(rows)


def depth_bin(norm_depth: float, depth: int) -> str:
    """The aggregation bin: ``first`` for the first layer, else the decile of normalised depth, ``d0.1``…``d1.0``."""
    if depth == 0:
        return "first"
    return f"d{min(10, max(1, math.ceil(norm_depth * 10 - 1e-9))) / 10:.1f}"


def weighted_mean(stats, column: str, weight: str) -> float:
    """Mean of ``stats[column]`` weighted by ``stats[weight]``, skipping NaN values (NaN if nothing is left)."""
    ok = stats[column].notna()
    w = stats.loc[ok, weight]
    return float((stats.loc[ok, column] * w).sum() / w.sum()) if w.sum() > 0 else float("nan")


def by_depth(stats):
    """Aggregate :func:`layer_stats` rows by depth bin: the kernel-weighted mean of sparsity, the mean of variance
    entropy weighted by non-sparse kernels (NaNs skipped), and the output-channel-weighted mean of orthogonality.
    Returns a DataFrame indexed by bin, in depth order."""
    import pandas as pd

    stats = stats.assign(bin=[depth_bin(d, i) for d, i in zip(stats.norm_depth, stats.depth)])
    out = []
    for b, g in stats.groupby("bin", sort=False):
        row = {"bin": b, "layers": len(g), "norm_depth": float(g.norm_depth.mean())}
        for col, weight in WEIGHTS.items():
            row[col] = weighted_mean(g, col, weight)
        out.append(row)
    return pd.DataFrame(out).set_index("bin")


def first_layer(model: nn.Module) -> nn.Conv2d:
    """The first convolution of ``model`` (any kernel size)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m
    raise ValueError(f"{type(model).__name__} has no Conv2d layer")


def pca_basis(weight: torch.Tensor, eps: float = SPARSITY_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Principal components of a layer's non-sparse 3×3 kernels (each scaled by its L∞ norm, as for
    :func:`variance_entropy`): ``(basis (9, 3, 3), explained variance ratio (9,))``, largest first."""
    k = kernels(weight)[~sparse_mask(weight, eps)]
    k = k / k.abs().amax(dim=1, keepdim=True)
    _, s, vh = torch.linalg.svd(k - k.mean(dim=0), full_matrices=False)
    var = s ** 2
    return vh.reshape(-1, 3, 3), var / var.sum()


@torch.no_grad()
def first_layer_damping(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    """Per image, ‖ReLU(conv1(x')) − ReLU(conv1(x))‖₂ / ‖x' − x‖₂ for a perturbed image x' (N, C, H, W).

    The model's own input normalisation (``model.normalize``, if it has one) is applied first, so models
    trained on the same data are compared on the same footing. Gavrikov & Keuper (2022) find that robust
    models' first layers pass less of an adversarial perturbation on (a smaller ratio). Returns (N,).
    """
    x, x_adv = to_model(x, model), to_model(x_adv, model)
    conv = first_layer(model)
    norm = getattr(model, "normalize", nn.Identity())
    a = torch.relu(conv(norm(x)))
    b = torch.relu(conv(norm(x_adv)))
    return (b - a).flatten(1).norm(dim=1) / (x_adv - x).flatten(1).norm(dim=1).clamp_min(1e-12)


def load_state_dict_as(path, arch: str, in_shape: tuple[int, int, int] | None = None,
                       num_classes: int | None = None) -> nn.Module:
    """Build architecture ``arch`` (a rilib name or a torchvision model name) and load the state_dict saved
    at ``path`` into it, with ``torch.load(weights_only=True)`` and strict key matching.

    A checkpoint that nests its state_dict under ``state_dict`` or ``model`` is accepted, and a
    ``module.`` prefix (from ``DataParallel``) is removed. Raises :class:`~rilib.errors.RilibError` with a
    clear message for an unreadable file, a file that is not a state_dict, or one of another architecture.
    """
    from pathlib import Path

    import torchvision

    path = Path(path)
    tv_names = torchvision.models.list_models(module=torchvision.models)
    if arch not in ARCHITECTURES and arch not in tv_names:
        raise UnknownNameError(f"Unknown architecture {arch!r}. Valid: rilib's {', '.join(ARCHITECTURES)}, or a "
                         f"torchvision model name such as resnet18, resnet50, wide_resnet50_2, vgg16.")
    if not path.is_file():
        raise RilibError(f"No checkpoint file at {path}.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise RilibError(f"Could not read {path} as a weights-only PyTorch file ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200]}). Save the model with "
                         f"torch.save(model.state_dict(), path).") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise RilibError(f"{path} does not hold a state_dict (a dict of tensors). Save the model with "
                         f"torch.save(model.state_dict(), path).")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    last_2d = [v for v in state.values() if v.ndim == 2]
    num_classes = num_classes or (last_2d[-1].shape[0] if last_2d else 1000)

    if arch in ARCHITECTURES:
        first = next((v for v in state.values() if v.ndim == 4), None)
        channels = first.shape[1] if first is not None else 3
        shapes = [in_shape] if in_shape else [(channels, 28, 28), (channels, 32, 32)]
        candidates = [create_model(arch, s, num_classes, [0.0] * s[0], [1.0] * s[0]) for s in shapes]
    else:
        candidates = [torchvision.models.get_model(arch, weights=None, num_classes=num_classes)]
    error = None
    for model in candidates:
        try:
            model.load_state_dict(state, strict=True)
            return model.eval()
        except RuntimeError as exc:
            error = exc
    detail = str(error).splitlines()
    raise RilibError(f"{path} is not a state_dict of {arch}: {' '.join(detail[:3])[:600]}. "
                     f"Check --arch (and --in-shape / --num-classes for rilib architectures).")
