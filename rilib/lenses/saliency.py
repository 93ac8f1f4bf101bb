"""Attribution maps behind one interface in Captum's style: ``Method(model).attribute(x, target=...)``.

Every method returns a tensor shaped like ``x`` (N, C, H, W), on the model's device. Inputs are images in [0, 1]
on any device (they are moved to the model's); ``target`` is a class index per image (N,) or ``None`` for the
model's predicted class. Methods that sample noise own a seed, so a map does not depend on what ran before. The heavy lifting is Captum's and
SHAP's; the classes only fix the settings the chapter uses and give them one verb.

- :class:`Gradient`: the input gradient of the target logit (Simonyan et al. 2014), signed or absolute.
- :class:`SmoothGrad`: the gradient averaged over Gaussian-noised copies (Smilkov et al. 2017; Captum
  ``NoiseTunnel``).
- :class:`IntegratedGradients`: Sundararajan et al. (2017) through Captum, from a zero baseline or averaged
  over uniform-random baselines, of the logit or (as Boychev 2023 does) of the softmax probability;
  :meth:`IntegratedGradients.completeness_error` reports |Σ attribution − (f(x) − f(baseline))|.
- :class:`GradientSHAP`: ``shap.GradientExplainer`` (Lundberg & Lee 2017) with a background set of
  training images; it explains the predicted class.
"""

from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
import torch
from torch import nn

from ..attacks import eval_mode
from ..models import PASS_BATCH, to_model
from ..registry import Registry
from ..rng import seeded

METHODS: Registry[type] = Registry("saliency method")


def predicted(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's predicted class for each image (N,), on the model's device."""
    with torch.no_grad(), eval_mode(model):
        return model(to_model(x, model)).argmax(1)


class Method:
    """Base class: ``Method(model, **settings).attribute(x, target=None) -> (N, C, H, W)``."""

    signed = True  #: whether the map has a meaningful sign (drawn with a diverging colormap)

    def __init__(self, model: nn.Module):
        self.model = model

    def attribute(self, x: torch.Tensor, target: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = to_model(x, self.model)
        with eval_mode(self.model), warnings.catch_warnings():
            # Captum warns that it sets requires_grad on the input itself, which is what we want.
            warnings.filterwarnings("ignore", message="Input Tensor .* did not already require gradients")
            target = predicted(self.model, x) if target is None else to_model(target, self.model)
            return self._attribute(x, target).detach()

    def _attribute(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@METHODS.register("gradient")
class Gradient(Method):
    """∂ logit_target / ∂x (Simonyan et al. 2014), through Captum's ``Saliency``; ``absolute=True`` for |∂|."""

    def __init__(self, model: nn.Module, absolute: bool = False):
        super().__init__(model)
        self.absolute = absolute
        self.signed = not absolute

    def _attribute(self, x, target):
        from captum.attr import Saliency
        return Saliency(self.model).attribute(x, target=target, abs=self.absolute)


@METHODS.register("smoothgrad")
class SmoothGrad(Method):
    """SmoothGrad (Smilkov et al. 2017): the signed gradient averaged over ``n_samples`` copies of x with
    Gaussian noise of standard deviation ``noise`` (in input units, images in [0, 1]); Captum ``NoiseTunnel``.
    The noise is drawn with ``seed``, without touching the caller's random state."""

    def __init__(self, model: nn.Module, noise: float = 0.15, n_samples: int = 25, seed: int = 0):
        super().__init__(model)
        self.noise, self.n_samples, self.seed = noise, n_samples, seed

    def _attribute(self, x, target):
        from captum.attr import NoiseTunnel, Saliency
        # One noisy copy of the batch per pass: on 500 MNIST images 1.5–1.8 times faster than all 25 copies in one
        # pass of 12,500 images (benchmarks/saliency_batches.py), for the same estimator.
        with seeded(self.seed):
            return NoiseTunnel(Saliency(self.model)).attribute(
                x, nt_type="smoothgrad", nt_samples=self.n_samples, stdevs=self.noise, target=target, abs=False,
                nt_samples_batch_size=1)


@METHODS.register("integrated_gradients")
class IntegratedGradients(Method):
    """Integrated Gradients (Sundararajan et al. 2017) via Captum, by the trapezoid rule over ``steps`` points.

    ``baseline="zero"`` integrates from the black image; ``baseline="uniform"`` averages the attributions over
    ``n_baselines`` baselines drawn uniformly from [0, 1] (Boychev 2023 uses 10 baselines and 50 steps).
    ``output="logit"`` explains the target's logit; ``output="probability"`` its softmax probability, as Boychev
    (2023) does (the completeness error is then in probability units).

    Captum's ``riemann_trapezoid`` (0.9) evaluates the gradient at n points 1/(n − 1) apart but weights them 1/n
    (the two ends 1/(2n)), so its weights sum to (n − 1)/n: even along a path where the logit is linear its
    attributions sum to (n − 1)/n of f(x) − f(baseline). The attributions here are rescaled by n/(n − 1), which is
    the textbook trapezoid rule (exact for a linear path), and the completeness error is computed on them.
    """

    OUTPUTS = ("logit", "probability")

    def __init__(self, model: nn.Module, baseline: str = "zero", n_baselines: int = 10, steps: int = 50,
                 seed: int = 0, output: str = "logit"):
        super().__init__(model)
        if baseline not in ("zero", "uniform"):
            raise ValueError(f"baseline must be 'zero' or 'uniform', not {baseline!r}")
        if output not in self.OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(self.OUTPUTS)}, not {output!r}")
        self.baseline, self.n_baselines, self.steps, self.seed = baseline, n_baselines, steps, seed
        self.output = output
        self.last_delta: Optional[torch.Tensor] = None

    def baselines(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.baseline == "zero":
            return [torch.zeros_like(x)]
        g = torch.Generator(device="cpu").manual_seed(self.seed)
        return [torch.rand(x.shape, generator=g).to(x) for _ in range(self.n_baselines)]

    def _attribute(self, x, target):
        from captum.attr import IntegratedGradients as CaptumIG
        if self.output == "probability":
            model = self.model
            ig = CaptumIG(lambda inputs: torch.softmax(model(inputs), dim=1))
        else:
            ig = CaptumIG(self.model)
        maps, deltas = [], []
        for b in self.baselines(x):
            a = ig.attribute(x, baselines=b, target=target, n_steps=self.steps, method="riemann_trapezoid",
                             internal_batch_size=max(len(x), PASS_BATCH)) * (self.steps / (self.steps - 1))
            maps.append(a)
            deltas.append(ig.compute_convergence_delta(a, b, x, target=target).abs())
        self.last_delta = torch.stack(deltas).mean(0)
        return torch.stack(maps).mean(0)

    def completeness_error(self, x: torch.Tensor, target: Optional[torch.Tensor] = None) -> torch.Tensor:
        """|Σᵢ attributionᵢ − (f_t(x) − f_t(baseline))| per image (N,), averaged over baselines."""
        self.attribute(x, target)
        return self.last_delta


class _FedAsTheModelWants(nn.Module):
    """A model that first moves what it is fed to the wrapped model's device and dtype: shap builds its samples
    in the default dtype (float32), whatever the model's."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(to_model(x, self.model))


@METHODS.register("shap")
class GradientSHAP(Method):
    """Expected gradients with ``shap.GradientExplainer`` (Lundberg & Lee 2017) and a background set of
    training images. SHAP's PyTorch explainer ranks outputs itself, so it explains the predicted class;
    asking for another target raises ``ValueError``."""

    def __init__(self, model: nn.Module, background: torch.Tensor, n_samples: int = 50, seed: int = 0):
        super().__init__(model)
        self.background, self.n_samples, self.seed = background, n_samples, seed

    def _attribute(self, x, target):
        import shap
        pred = predicted(self.model, x)
        if not torch.equal(pred, target.to(pred.device)):
            raise ValueError("GradientSHAP explains the predicted class only; pass target=None")
        explainer = shap.GradientExplainer(_FedAsTheModelWants(self.model), to_model(self.background, self.model))
        values, _ = explainer.shap_values(x, nsamples=self.n_samples, ranked_outputs=1, rseed=self.seed)
        values = np.asarray(values)
        if values.ndim == x.ndim + 1:  # (N, C, H, W, 1): one ranked output
            values = values[..., 0]
        return torch.as_tensor(values, dtype=x.dtype, device=x.device).reshape(x.shape)


def list_methods() -> list[str]:
    return list(METHODS)
