"""Smoothness of a trained model near the data, the second term of Helland & VanHoudnos's (2021) frame.

- :func:`local_lipschitz`: max_{‖x′−x‖∞≤ε} ‖f(x′) − f(x)‖₁ / ‖x′ − x‖∞ of the logits f, maximised by projected
  gradient ascent as RobustBench's ``eval/lipschitz.py`` does after Yang et al. (2020, "A Closer Look at
  Accuracy vs. Robustness");
- :func:`gradient_l1`: ‖∇ₓ CE(f(x), y)‖₁, the dual norm that enters first-order L∞ adversarial training.
"""

from __future__ import annotations

import torch
from torch import nn

from ..attacks import eval_mode, projected_gradient
from ..models import to_model
from ..train import input_gradient


def _lipschitz_ratio(model, x_adv, x):
    with torch.no_grad():
        fx = model(x)
    return (model(x_adv) - fx).abs().sum(1) / (x_adv - x).flatten(1).abs().amax(1).clamp_min(1e-12)


def local_lipschitz(model: nn.Module, x: torch.Tensor, eps: float, steps: int = 10) -> torch.Tensor:
    """Per-image local Lipschitz estimate max_{‖x′−x‖∞≤ε} ‖f(x′) − f(x)‖₁ / ‖x′ − x‖∞ of the logits (N,), by
    projected gradient ascent from a random start (step ε/4), as RobustBench's ``eval/lipschitz.py`` after Yang
    et al. (2020). Being a maximum found by ascent, it is a lower bound on the true local constant (within 10 %
    on the linear case of the tests). In logit units: a model whose logits are scaled by c has c times the
    estimate. Uses the global generator for the random start; x (N, C, H, W) in [0, 1], on any device."""
    x = to_model(x, model)
    x_adv = projected_gradient(model, x, x, eps=eps, step_size=eps / 4, steps=steps, random_start=True,
                               loss=_lipschitz_ratio)
    with torch.no_grad(), eval_mode(model):
        return _lipschitz_ratio(model, x_adv, x)


def gradient_l1(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """‖∇ₓ CE(f(x), y)‖₁ per image (N,) in eval mode (the model's mode is restored), the smoothness term of the
    first-order expansion of L∞ adversarial training (Simon-Gabriel et al. 2019)."""
    with eval_mode(model):
        _, _, g = input_gradient(model, to_model(x, model), to_model(y, model), create_graph=False)
    return g.flatten(1).abs().sum(1).detach()
