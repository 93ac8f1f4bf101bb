"""Explanations on the perceptual ball (Elliott, Law & Russell, CVPR 2021).

A standard classifier is explained by the smallest change that flips its decision while its internal
activations barely move. From the image x, with class c the model predicts, the authors' code
(``alan-turing-institute/perceptualBall``, ``common_code/mul_perceptualFunc_Final.py``, ``create_perceptual_loss2``)
minimises over x′

    γ · Σ_l mean((φ_l(x′) − φ_l(x))²)  +  mean((x′ − x)²)  +  (z_c(x′) − max_{j≠c} z_j(x′) − v)²

where φ_l are post-ReLU activations of the chosen layers (a mean over each layer's elements, summed over layers), z
the logits and v a small negative margin (v = −2 in their code): x′ sits just past the decision boundary. With no
layer regularised (or γ = 0) it is a plain minimal adversarial perturbation. They optimise from x′ = x with
``torch.optim.LBFGS`` (its defaults, ``max_iter`` 100–200, one ``step`` call, no box constraint). The saliency map is
the per-pixel root-mean-square of x′ − x over channels, blurred with a Gaussian (σ = 2 pixels at 224×224).
Regularising more layers (a longer prefix of the network's ReLUs) concentrates the map.

Here the objective is per image, so a batch is optimised as the sum of its images' objectives. The sum is
separable, so its gradient is every image's own gradient; ``optimizer="lbfgs"`` still shares one curvature history
and step length across the batch, which makes its path differ from one L-BFGS per image (``batch_size=1`` runs
the authors' way; ``benchmarks/perceptual_ball.py`` measures both and :func:`rilib.attacks.projected_gradient`
with this objective as its loss, ``optimizer="gradient"``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import eval_mode, projected_gradient
from ..errors import UnknownNameError
from ..models import to_model
from .metrics import blur

OPTIMIZERS = ("lbfgs", "gradient")


@dataclass(frozen=True)
class PerceptualBall:
    """Settings of the perceptual-ball explanation.

    ``layers``: how many of the model's ReLU layers are regularised, counted from the input (a prefix, as in the
    authors' figure of more and more layers); 0 for none. ``gamma``: weight of the activation term (10⁴ in the
    paper). ``margin``: v, the target of z_c − max_{j≠c} z_j (−2 in the authors' code). ``pixel_weight``: weight of
    the pixel term (1). ``optimizer``: ``"lbfgs"`` (the paper's, PyTorch's defaults: lr 1, history 100, no line
    search unless ``line_search="strong_wolfe"``) or ``"gradient"`` (:func:`rilib.attacks.projected_gradient`
    descending the same objective with L2-normalised steps of ``step_size``, unconstrained, keeping each image's
    best iterate). ``iterations``: L-BFGS's ``max_iter`` or the number of gradient steps. ``sigma``: the Gaussian
    blur of the map, in pixels. ``batch_size``: images optimised together (1 is the authors' per-image run).
    """

    layers: int = 4
    gamma: float = 1e4
    margin: float = -2.0
    pixel_weight: float = 1.0
    optimizer: str = "lbfgs"
    iterations: int = 100
    line_search: Optional[str] = None
    step_size: float = 0.05
    sigma: float = 2.0 * 64 / 224
    batch_size: int = 500

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
    chosen = layers[:settings.layers]
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
                z = x.clone().requires_grad_(True)
                opt = torch.optim.LBFGS([z], max_iter=settings.iterations, history_size=100,
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
