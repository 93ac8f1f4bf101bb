"""Explanations on the perceptual ball (Elliott, Law & Russell, CVPR 2021).

A standard classifier is explained by the smallest change that flips its decision while its internal
activations barely move. From the image x, with class c the model predicts, the authors' code
(``alan-turing-institute/perceptualBall``, ``common_code/mul_perceptualFunc_Final.py``, ``create_perceptual_loss2``)
minimises over x′

    γ · Σ_l mean((φ_l(x′) − φ_l(x))²)  +  mean((x′ − x)²)  +  (z_c(x′) − max_{j≠c} z_j(x′) − v)²

where φ_l are post-ReLU activations of the chosen layers (a mean over each layer's elements, summed over layers), z
the logits and v a small negative margin (v = −2 in their code): x′ sits just past the decision boundary. (Their
pixel term is taken on ImageNet-normalised images; here x lies in [0, 1], the scale every lens of the book uses.) With no
layer regularised (or γ = 0) it is a plain minimal adversarial perturbation. They optimise from x′ = x with
``torch.optim.LBFGS`` (its defaults, ``max_iter`` 100–200, one ``step`` call, no box constraint). The saliency map is
the per-pixel root-mean-square of x′ − x over channels, blurred with a Gaussian (σ = 2 pixels at 224×224).
Regularising more layers (a longer prefix of the network's ReLUs) concentrates the map.

Here the objective is per image, and ``optimizer="lbfgs"`` (:func:`lbfgs`) runs PyTorch's L-BFGS algorithm
(no line search, its defaults) for every image of a batch at once, each image with its own curvature history, step
and stopping tests: the result of one image does not depend on the others in its batch, as in the authors' one
image at a time, while the network sees whole batches. ``"lbfgs-torch"`` runs ``torch.optim.LBFGS`` itself on the
sum of the batch's objectives: exactly the authors' protocol with ``batch_size=1``, but with a larger batch one
history and one step length are shared by every image, so an image's result depends on its batch mates.
``"gradient"`` descends the same objective with :func:`rilib.attacks.projected_gradient`.
``benchmarks/perceptual_ball.py`` measures all of them against the authors' protocol.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Optional

import torch
from torch import nn

from ..attacks import eval_mode, projected_gradient
from ..errors import UnknownNameError
from ..models import PASS_BATCH, to_model
from .metrics import blur

OPTIMIZERS = ("lbfgs", "lbfgs-torch", "gradient")


@dataclass(frozen=True)
class PerceptualBall:
    """Settings of the perceptual-ball explanation.

    ``layers``: how many of the model's ReLU layers are regularised, counted from the input (a prefix, as in the
    authors' figure of more and more layers); 0 for none. ``gamma``: weight of the activation term (10⁴ in the
    paper). ``margin``: v, the target of z_c − max_{j≠c} z_j (−2 in the authors' code). ``pixel_weight``: weight of
    the pixel term (1). ``optimizer``: ``"lbfgs"`` (the paper's algorithm with PyTorch's defaults, lr 1,
    ``history`` 100, no line search, run per image within a batch by :func:`lbfgs`), ``"lbfgs-torch"``
    (``torch.optim.LBFGS`` on the batch's summed objective, with a line search if ``line_search="strong_wolfe"``)
    or ``"gradient"`` (:func:`rilib.attacks.projected_gradient` descending the same objective with L2-normalised
    steps of ``step_size``, unconstrained, keeping each image's best iterate). ``iterations``: L-BFGS's
    ``max_iter`` or the number of gradient steps. ``keep_best``: ``"lbfgs"`` returns each image's best point
    evaluated, not its last (:func:`lbfgs`). ``sigma``: the Gaussian blur of the map, in pixels.
    ``batch_size``: images optimised together.
    """

    layers: int = 4
    gamma: float = 1e4
    margin: float = -2.0
    pixel_weight: float = 1.0
    optimizer: str = "lbfgs"
    iterations: int = 100
    line_search: Optional[str] = None
    history: int = 100
    keep_best: bool = True
    step_size: float = 0.05
    sigma: float = 2.0 * 64 / 224
    batch_size: int = PASS_BATCH

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise UnknownNameError(f"Unknown optimizer {self.optimizer!r} for the perceptual ball. "
                                   f"Valid: {', '.join(OPTIMIZERS)}.")


def relu_layers(model: nn.Module) -> list[nn.Module]:
    """The model's ReLU modules in the order of the forward pass (registration order): the φ_l of the paper."""
    return [m for m in model.modules() if isinstance(m, nn.ReLU)]


@contextlib.contextmanager
def activations(model: nn.Module, layers: list[nn.Module]) -> Iterator[list[torch.Tensor]]:
    """While open, every forward pass of ``model`` leaves the outputs of ``layers`` in the yielded list (cleared
    at the start of each pass, in the order of ``layers``). The hooks are removed on exit."""
    found: list[torch.Tensor] = []
    position = {id(m): i for i, m in enumerate(layers)}
    slots: dict[int, torch.Tensor] = {}

    def pre(_module, _inputs):
        slots.clear()
        found.clear()

    def hook(module, _inputs, output):
        slots[position[id(module)]] = output.clone()  # a ReLU may work in place; keep what it returned
        if len(slots) == len(layers):
            found.extend(slots[i] for i in range(len(layers)))

    handles = [model.register_forward_pre_hook(pre)] + [m.register_forward_hook(hook) for m in layers]
    try:
        yield found
    finally:
        for h in handles:
            h.remove()


def margin(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """z_target − max_{j≠target} z_j per row (N,)."""
    z_t = logits.gather(1, target.view(-1, 1)).squeeze(1)
    others = logits.scatter(1, target.view(-1, 1), float("-inf")).amax(1)
    return z_t - others


def objective(model: nn.Module, x: torch.Tensor, x0: torch.Tensor, reference: list[torch.Tensor],
              target: torch.Tensor, settings: PerceptualBall, found: list[torch.Tensor]) -> torch.Tensor:
    """The paper's objective per image (N,) at ``x``: ``reference`` holds φ_l(x0) and ``found`` is the list
    :func:`activations` fills during the forward pass."""
    logits = model(x)
    value = settings.pixel_weight * (x - x0).pow(2).flatten(1).mean(1)
    value = value + (margin(logits, target) - settings.margin) ** 2
    if settings.layers and settings.gamma:
        value = value + settings.gamma * sum((f - r).pow(2).flatten(1).mean(1) for f, r in zip(found, reference))
    return value


@dataclass
class Explanation:
    """The result of :func:`explain` for N images: the perturbed images x′, the blurred maps (N, 1, H, W), the
    objective reached (N,), and the margin z_c − max_{j≠c} z_j at x′ (N,; negative: the decision flipped)."""

    x_prime: torch.Tensor
    maps: torch.Tensor
    objective: torch.Tensor
    margin: torch.Tensor


def saliency(x_prime: torch.Tensor, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """The authors' map: the root-mean-square of x′ − x over channels, blurred with a Gaussian of ``sigma`` pixels
    (no blur for ``sigma`` 0). (N, 1, H, W)."""
    rms = (x_prime - x).pow(2).mean(1, keepdim=True).sqrt()
    return blur(rms, sigma) if sigma > 0 else rms


def explain(model: nn.Module, x: torch.Tensor, settings: PerceptualBall = PerceptualBall(),
            target: Optional[torch.Tensor] = None) -> Explanation:
    """The perceptual-ball explanation of ``model``'s decision on images ``x`` (N, C, H, W) in [0, 1], for class
    ``target`` (default: the predicted class), batched by ``settings.batch_size``. See the module docstring."""
    parts = [_explain_batch(model, to_model(x[i:i + settings.batch_size], model),
                            None if target is None else to_model(target[i:i + settings.batch_size], model), settings)
             for i in range(0, len(x), settings.batch_size)]
    return Explanation(*(torch.cat([getattr(p, f) for p in parts]) for f in ("x_prime", "maps", "objective", "margin")))


def _explain_batch(model, x, target, settings: PerceptualBall) -> Explanation:
    layers = relu_layers(model)
    if settings.layers > len(layers):
        raise ValueError(f"The model has {len(layers)} ReLU layers; cannot regularise {settings.layers}.")
    chosen = layers[:settings.layers] if settings.gamma else []  # γ = 0: no activation is read, none recorded
    with eval_mode(model), activations(model, chosen) as found:
        params = [p for p in model.parameters() if p.requires_grad]
        for p in params:
            p.requires_grad_(False)
        try:
            with torch.no_grad():
                logits = model(x)
                reference = [f.detach() for f in found]
            target = logits.argmax(1) if target is None else target

            def value(z):
                return objective(model, z, x, reference, target, settings, found)

            if settings.optimizer == "lbfgs":
                if settings.line_search is not None:
                    raise ValueError("optimizer='lbfgs' has no line search; use optimizer='lbfgs-torch'.")

                def values_and_grads(zb, idx):
                    zb = zb.detach().requires_grad_(True)
                    with torch.enable_grad():
                        v = objective(model, zb, x[idx], [r[idx] for r in reference], target[idx], settings, found)
                        g, = torch.autograd.grad(v.sum(), zb)
                    return v.detach(), g

                z = lbfgs(values_and_grads, x, max_iter=settings.iterations, history_size=settings.history,
                          keep_best=settings.keep_best)
            elif settings.optimizer == "lbfgs-torch":
                z = x.clone().requires_grad_(True)
                opt = torch.optim.LBFGS([z], max_iter=settings.iterations, history_size=settings.history,
                                        line_search_fn=settings.line_search)

                def closure():
                    opt.zero_grad()
                    loss = value(z).sum()
                    loss.backward()
                    return loss

                opt.step(closure)
                z = z.detach()
            else:
                z = projected_gradient(model, x, target, constraint="unconstrained", eps=0.0,
                                       step_size=settings.step_size, steps=settings.iterations,
                                       loss=lambda m, xb, t: value(xb), minimize=True, clamp=None)
            with torch.no_grad():
                reached = value(z)
                m = margin(model(z), target)
        finally:
            for p in params:
                p.requires_grad_(True)
    return Explanation(z, saliency(z, x, settings.sigma), reached.detach(), m.detach())


@torch.no_grad()
def lbfgs(values_and_grads, x0: torch.Tensor, *, max_iter: int = 100, history_size: int = 100, lr: float = 1.0,
          tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9, keep_best: bool = True) -> torch.Tensor:
    """PyTorch's L-BFGS (``torch.optim.LBFGS.step`` without a line search, one call) run for every example of a
    batch at once, each with its own history, step length and stopping tests, as if each were optimised alone.

    ``values_and_grads(z, idx)`` returns the objectives (k,) and their gradients (k, ...) of the examples ``idx``
    at points ``z`` (k, ...). Examples that meet a stopping test leave the batch. Returns, per example, the point
    with the lowest objective among those evaluated (with ``keep_best``, the default) or the final point, shaped
    like ``x0``. Without a line search, a step of length 1 along a poor curvature estimate can throw an example far
    away (on a ReLU network this happens to a few in a hundred); the best point evaluated is what a user of the
    explanation wants, and where the run does not blow up it is the final point's predecessor or better.
    """
    n, shape = len(x0), x0.shape[1:]
    x = x0.detach().clone().flatten(1)
    dev, dt = x.device, x.dtype
    idx = torch.arange(n, device=dev)
    loss, g = values_and_grads(x.view(n, *shape), idx)
    g = g.flatten(1)
    best_x, best_loss = x.clone(), loss.clone()
    keep = g.abs().amax(1) > tolerance_grad                    # an optimum already: nothing to do
    idx, loss, g = idx[keep], loss[keep], g[keep]
    # The history: (s, y, 1/ys, used) over all n examples; ``used`` marks the pairs an example keeps.
    history: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
    h_diag = torch.ones(n, device=dev, dtype=dt)
    d = t = prev_g = prev_loss = None
    for n_iter in range(1, max_iter + 1):
        if len(idx) == 0:
            break
        if n_iter == 1:
            d = -g
        else:
            y = g - prev_g
            s = d * t.view(-1, 1)
            ys = (y * s).sum(1)
            ok = ys > 1e-10
            full_s = torch.zeros(n, x.shape[1], device=dev, dtype=dt)
            full_y = torch.zeros_like(full_s)
            full_s[idx], full_y[idx] = s, y
            ro = torch.zeros(n, device=dev, dtype=dt)
            ro[idx] = torch.where(ok, 1.0 / torch.where(ok, ys, torch.ones_like(ys)), torch.zeros_like(ys))
            valid = torch.zeros(n, dtype=torch.bool, device=dev)
            valid[idx] = ok
            history.append((full_s, full_y, ro, valid))
            h_diag[idx[ok]] = (ys / (y * y).sum(1))[ok]
            # Each example keeps its last ``history_size`` pairs; pairs no example keeps are dropped.
            counts = torch.zeros(n, dtype=torch.int64, device=dev)
            used = []
            for entry in reversed(history):
                counts += entry[3].long()
                used.append(entry[3] & (counts <= history_size))
            history = [e[:3] + (u,) for e, u in zip(history, reversed(used)) if u.any()]
            # The two-loop recursion, per example.
            q, al = -g, []
            for s_i, y_i, ro_i, u_i in reversed(history):
                a = (s_i[idx] * q).sum(1) * ro_i[idx] * u_i[idx]
                q = q - a.view(-1, 1) * y_i[idx]
                al.append(a)
            r = q * h_diag[idx].view(-1, 1)
            for (s_i, y_i, ro_i, u_i), a in zip(history, reversed(al)):
                be = (y_i[idx] * r).sum(1) * ro_i[idx] * u_i[idx]
                r = r + (a - be).view(-1, 1) * s_i[idx]
            d = r
        prev_g, prev_loss = g, loss
        t = (torch.clamp(1.0 / g.abs().sum(1), max=1.0) if n_iter == 1 else torch.ones_like(loss)) * lr
        going = (g * d).sum(1) <= -tolerance_change          # the direction still descends
        idx, d, t, prev_g, prev_loss = idx[going], d[going], t[going], prev_g[going], prev_loss[going]
        x[idx] += t.view(-1, 1) * d
        if n_iter == max_iter or len(idx) == 0:
            if keep_best and len(idx):                        # the last step is scored too
                loss, _ = values_and_grads(x[idx].view(len(idx), *shape), idx)
                better = loss < best_loss[idx]
                best_loss[idx[better]], best_x[idx[better]] = loss[better], x[idx[better]]
            break
        loss, g = values_and_grads(x[idx].view(len(idx), *shape), idx)
        g = g.flatten(1)
        better = loss < best_loss[idx]
        best_loss[idx[better]], best_x[idx[better]] = loss[better], x[idx[better]]
        go_on = ((g.abs().amax(1) > tolerance_grad) & ((d * t.view(-1, 1)).abs().amax(1) > tolerance_change)
                 & ((loss - prev_loss).abs() >= tolerance_change))
        idx, loss, g, d, t, prev_g = idx[go_on], loss[go_on], g[go_on], d[go_on], t[go_on], prev_g[go_on]
    return (best_x if keep_best else x).view(n, *shape)
