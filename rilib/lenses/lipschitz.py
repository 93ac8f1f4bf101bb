"""Smoothness of a trained model near the data, the second term of Helland & VanHoudnos's (2021) frame.

- :func:`local_lipschitz`: max_{‖x′−x‖∞≤ε} ‖f(x′) − f(x)‖₁ / ‖x′ − x‖∞ of the logits f, maximised by projected
  gradient ascent as RobustBench's ``eval/lipschitz.py`` does after Yang et al. (2020, "A Closer Look at
  Accuracy vs. Robustness"); with ``space="kl"``, Yang et al.'s KL option: KL(softmax f(x) ‖ softmax f(x′)) in
  the numerator, in nats; not moved by adding a constant to every logit, but not scale-free (larger logits make
  sharper probabilities, and a larger KL when the prediction moves);
- :func:`margin_ratio`: margin / ‖∇ₓ margin‖₁ with margin = top logit − runner-up, the L∞ distance to the
  decision boundary of the model linearised at x; unchanged when the logits are scaled, so label smoothing
  (which shrinks logits) and distillation at a temperature (which inflates them) are compared on one footing;
- :func:`gradient_l1`: ‖∇ₓ CE(f(x), y)‖₁, the dual norm that enters first-order L∞ adversarial training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import eval_mode, projected_gradient
from ..models import to_model
from ..train import input_gradient


def _lipschitz_ratio(model, x_adv, x):
    with torch.no_grad():
        fx = model(x)
    return (model(x_adv) - fx).abs().sum(1) / (x_adv - x).flatten(1).abs().amax(1).clamp_min(1e-12)


def _kl_ratio(model, x_adv, x):
    with torch.no_grad():
        p = F.softmax(model(x), 1)
    kl = F.kl_div(F.log_softmax(model(x_adv), 1), p, reduction="none").sum(1)  # KL(p(x) ‖ p(x′))
    return kl / (x_adv - x).flatten(1).abs().amax(1).clamp_min(1e-12)


_RATIOS = {"logit": _lipschitz_ratio, "kl": _kl_ratio}


def local_lipschitz(model: nn.Module, x: torch.Tensor, eps: float, steps: int = 10,
                    space: str = "logit", restarts: int = 1) -> torch.Tensor:
    """Per-image local Lipschitz estimate (N,) by projected gradient ascent from a random start (step ε/4), as
    RobustBench's ``eval/lipschitz.py`` after Yang et al. (2020):

    - ``space="logit"``: max_{‖x′−x‖∞≤ε} ‖f(x′) − f(x)‖₁ / ‖x′ − x‖∞, in logit units: a model whose logits are
      scaled by c has c times the estimate;
    - ``space="kl"``: max KL(softmax f(x) ‖ softmax f(x′)) / ‖x′ − x‖∞ (Yang et al.'s code's KL option), in nats
      per unit of input.

    Being a maximum found by ascent, it is a lower bound on the true local constant. The ratio can have several
    local maxima (corners of the ε-ball), and one random start finds one of them: ``restarts`` keeps the
    largest per image over that many starts (RobustBench and Yang et al. use one). Within 10 % of a grid search
    on the linear cases of the tests. Uses the global generator for the random starts; x (N, C, H, W) in
    [0, 1], on any device."""
    if space not in _RATIOS:
        from ..errors import UnknownNameError
        raise UnknownNameError(f"Unknown Lipschitz space {space!r}. Valid: {', '.join(_RATIOS)}.")
    ratio = _RATIOS[space]
    x = to_model(x, model)
    best = None
    for _ in range(restarts):
        x_adv = projected_gradient(model, x, x, eps=eps, step_size=eps / 4, steps=steps, random_start=True,
                                   loss=ratio)
        with torch.no_grad(), eval_mode(model):
            value = ratio(model, x_adv, x)
        best = value if best is None else torch.maximum(best, value)
    return best


def margin_ratio(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Per-image margin / ‖∇ₓ margin‖₁ (N,), margin = top logit − runner-up logit at x: the L∞ distance from x to
    the boundary between those two classes for a model that is linear near x (exact for a linear model, in input
    units). Scaling the logits scales the margin and its gradient alike, so the ratio is scale-free. In eval
    mode (the model's mode is restored); x (N, C, H, W) in [0, 1], on any device."""
    x = to_model(x, model).detach().requires_grad_(True)
    with eval_mode(model), torch.enable_grad():
        z = model(x)
        top2 = z.topk(2, dim=1).indices
        margin = z.gather(1, top2[:, :1]).squeeze(1) - z.gather(1, top2[:, 1:]).squeeze(1)
        (g,) = torch.autograd.grad(margin.sum(), x)
    return (margin.detach() / g.flatten(1).abs().sum(1).clamp_min(1e-12)).detach()


def gradient_l1(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """‖∇ₓ CE(f(x), y)‖₁ per image (N,) in eval mode (the model's mode is restored), the smoothness term of the
    first-order expansion of L∞ adversarial training (Simon-Gabriel et al. 2019)."""
    with eval_mode(model):
        _, _, g = input_gradient(model, to_model(x, model), to_model(y, model), create_graph=False)
    return g.flatten(1).abs().sum(1).detach()
