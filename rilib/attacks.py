"""One projected-gradient optimizer, after the design of the MadryLab ``robustness`` library.

The geometry is a small step class chosen by name (``linf``, ``l2``, ``unconstrained``) with three verbs:
``project``, ``step`` and ``random_perturb``. The objective is a hook ``loss(model, x, target)`` that
returns one value per example. :func:`projected_gradient` ascends it (or descends, ``minimize=True``)
inside the ε-ball around the start image and inside the image box [0, 1].

Attacks are configurations of it: :class:`PGD` (Madry et al. 2018, "Towards Deep Learning Models
Resistant to Adversarial Attacks"), :func:`FGSM` (Goodfellow et al. 2015) and the FGSM with random start of
Wong et al. (2020, "Fast is better than free"). :class:`APGD` adapts torchattacks' Auto-PGD (Croce & Hein 2020,
the attacks of AutoAttack) to the same protocol, and :class:`WorstOf` chains attacks per image. Representation
inversion, class generation and perceptual-ball explanations (later chapters) reuse :func:`projected_gradient` with their own loss.

Every attack takes a ``precision``: ``fp32``, or ``bf16``, where its gradient steps run the model under bfloat16
autocast (:class:`_Autocast`) while every decision that an image is fooled, and so every reported accuracy, is
made in the model's own float32 (``benchmarks/attack_precision.py`` measures both the speed-up and the robust
sets against float32 on the book's models). The chapters use their profile's precision (``auto``: bf16 only
where the CPU multiplies bfloat16 natively).

An *attack* is a callable ``attack(model, x, y) -> x_adv`` with two more verbs, as torchattacks' attacks have:
``describe()`` (a sentence for tables and captions) and ``cache_key()`` (a JSON-able dict that names every
setting, a custom loss included by :func:`loss_id`), so that the zoo can cache evaluations without knowing the
attack's class. Inputs may live anywhere: they are moved to the model's device and dtype.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import time
from dataclasses import dataclass, fields, replace
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .models import to_model
from .registry import Registry
from .rng import seeded

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def _flat_norm(t: torch.Tensor, p: float) -> torch.Tensor:
    """Per-example p-norm of a batch, shaped (N, 1, 1, ...) for broadcasting."""
    n = t.flatten(1).norm(p=p, dim=1)
    return n.view(-1, *([1] * (t.ndim - 1)))


class Step:
    """A geometry for :func:`projected_gradient`. ``eps`` is the radius, ``step_size`` the step length."""

    def __init__(self, eps: float, step_size: float):
        self.eps = float(eps)
        self.step_size = float(step_size)

    def project(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """Return the point of the ball around ``x0`` closest to ``x``."""
        raise NotImplementedError

    def step(self, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """Move ``x`` uphill along ``grad`` by one step (steepest ascent for this norm)."""
        raise NotImplementedError

    def random_perturb(self, x0: torch.Tensor) -> torch.Tensor:
        """A random point of the ball around ``x0``."""
        raise NotImplementedError


class LinfStep(Step):
    """L∞ ball: sign-gradient steps and coordinate-wise clipping (Madry et al. 2018)."""

    def project(self, x, x0):
        return x0 + (x - x0).clamp(-self.eps, self.eps)

    def step(self, x, grad):
        return x + self.step_size * grad.sign()

    def random_perturb(self, x0):
        return x0 + torch.empty_like(x0).uniform_(-self.eps, self.eps)


class L2Step(Step):
    """L2 ball: normalised-gradient steps and radial projection."""

    def project(self, x, x0):
        delta = x - x0
        norm = _flat_norm(delta, 2)
        return x0 + delta * torch.clamp(self.eps / (norm + 1e-12), max=1.0)

    def step(self, x, grad):
        return x + self.step_size * grad / (_flat_norm(grad, 2) + 1e-12)

    def random_perturb(self, x0):
        # Uniform in the ball: a Gaussian direction scaled by eps * U^(1/d).
        delta = torch.randn_like(x0)
        d = delta[0].numel()
        radius = self.eps * torch.rand(len(x0), device=x0.device) ** (1.0 / d)
        delta = delta / _flat_norm(delta, 2) * radius.view(-1, *([1] * (x0.ndim - 1)))
        return x0 + delta


class UnconstrainedStep(Step):
    """No ball (``eps`` ignored): L2-normalised gradient steps, only the image box applies."""

    def project(self, x, x0):
        return x

    def step(self, x, grad):
        return x + self.step_size * grad / (_flat_norm(grad, 2) + 1e-12)

    def random_perturb(self, x0):
        return x0 + self.step_size * torch.randn_like(x0)


CONSTRAINTS: Registry[type[Step]] = Registry("constraint")
CONSTRAINTS.add("linf", LinfStep)
CONSTRAINTS.add("l2", L2Step)
CONSTRAINTS.add("unconstrained", UnconstrainedStep)


def loss_id(fn: Callable) -> str:
    """A name for a loss function that changes when its code does: the qualified name and the first 12 hex
    digits of the sha256 of its source (of its byte code when the source cannot be read). Two losses that share a
    ``__name__`` get different ids, so cached results of one are never served for the other."""
    name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"
    try:
        body = inspect.getsource(fn).encode()
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        body = code.co_code + repr(code.co_consts).encode() if code is not None else repr(fn).encode()
    return f"{name}#{hashlib.sha256(body).hexdigest()[:12]}"


def cross_entropy(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy of ``model(x)`` against labels ``target`` (N,)."""
    return F.cross_entropy(model(x), target, reduction="none")


def margin_loss(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-example margin max_{j≠y} z_j − z_y of the logits z (Carlini & Wagner 2017): positive once x is
    misclassified, and free of the softmax saturation that can stall cross-entropy attacks."""
    z = model(x)
    true = z.gather(1, target.view(-1, 1)).squeeze(1)
    other = z.masked_fill(F.one_hot(target, z.shape[1]).bool(), -float("inf")).amax(1)
    return other - true


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """Run ``model`` in eval mode (BatchNorm statistics frozen) and restore its mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def projected_gradient(model: nn.Module, x0: torch.Tensor, target: torch.Tensor, *,
                       constraint: str = "linf", eps: float, step_size: float, steps: int,
                       loss: Optional[LossFn] = None, minimize: bool = False,
                       random_start: bool = False, use_best: bool = True,
                       clamp: tuple[float, float] | None = (0.0, 1.0),
                       start: Optional[torch.Tensor] = None,
                       history: Optional[list] = None,
                       fool: Optional[torch.Tensor] = None, early_stop: bool = False) -> torch.Tensor:
    """Projected gradient ascent (or descent) of a per-example loss inside an ε-ball around ``x0``.

    Args:
        model: maps images (N, C, H, W) in [0, 1] to outputs; run in eval mode, parameters untouched.
        x0: centre of the ball, (N, C, H, W) in [0, 1].
        target: passed to ``loss`` (labels for attacks, target representations for inversion, ...).
        constraint: ``"linf"``, ``"l2"`` or ``"unconstrained"`` (see ``CONSTRAINTS``).
        eps, step_size, steps: ball radius, step length and number of steps.
        loss: ``loss(model, x, target) -> (N,)``; default :func:`cross_entropy`.
        minimize: descend instead of ascend.
        random_start: start from a uniformly random point of the ball instead of ``x0``.
        use_best: return, per example, the iterate with the best loss seen, not the last one.
        clamp: the image box; ``None`` for no box.
        start: explicit starting point (overrides ``random_start``), e.g. a noise seed for inversion.
        history: if a list is given, the mean loss of every step is appended to it (over the examples still
            being optimised, with ``early_stop``).
        fool: labels (N,) of an attack. With them, an iterate the model misclassifies beats every iterate it
            classifies correctly, whatever their losses: once the attack has found an adversarial example it never
            trades it for a higher-loss iterate that is classified correctly. Among iterates of the same kind the
            higher loss wins. Needs ``use_best``.
        early_stop: with ``fool``, stop working on an example at its first misclassified iterate and drop it from
            the batch. The same examples end misclassified as without it (an example is misclassified at the end
            if and only if some iterate was), for the work of the iterates up to that point only.

    Returns:
        The optimised images, shaped like ``x0``, inside the ball and the box, on the model's device.
    """
    loss = loss or cross_entropy
    geometry = CONSTRAINTS[constraint](eps, step_size)
    sign = -1.0 if minimize else 1.0
    if fool is not None and not use_best:
        raise ValueError("projected_gradient: fool= needs use_best=True (the misclassified iterate is kept).")
    if early_stop and fool is None:
        raise ValueError("projected_gradient: early_stop=True needs the labels to fool (fool=...).")
    x0 = to_model(x0.detach(), model)
    target = to_model(target, model) if torch.is_tensor(target) else target
    start = to_model(start, model) if start is not None else None
    if fool is not None:
        fool = to_model(fool, model)
        model = _Recording(model)  # the loss's own forward pass tells which iterates are misclassified

    def box(x):
        return x.clamp(*clamp) if clamp is not None else x

    if start is not None:
        x = box(geometry.project(start.detach().clone(), x0))
    elif random_start:
        x = box(geometry.project(geometry.random_perturb(x0), x0))
    else:
        x = x0.clone()

    best_x = x.clone()
    best_loss = torch.full((len(x0),), -float("inf"), device=x0.device, dtype=x0.dtype)
    best_fooled = torch.zeros(len(x0), dtype=torch.bool, device=x0.device)
    active = torch.arange(len(x0), device=x0.device)  # the examples still optimised (all, without early_stop)
    centre, goal, labels = x0, target, fool
    with eval_mode(model):
        for i in range(steps + 1):
            last = i == steps
            if last and not use_best:
                break
            if last:  # the final iterate is only scored, not stepped from
                with torch.no_grad():
                    values = sign * loss(model, x, goal)
            else:
                x.requires_grad_(True)
                values = sign * loss(model, x, goal)
                grad, = torch.autograd.grad(values.sum(), x)
            with torch.no_grad():
                if history is not None:
                    history.append(float(sign * values.mean()))
                if use_best:
                    fooled = model.misclassified(x, labels) if fool is not None else best_fooled[active]
                    was_fooled = best_fooled[active]
                    better = (fooled & ~was_fooled) | ((fooled == was_fooled) & (values > best_loss[active]))
                    at = active[better]
                    best_loss[at], best_fooled[at] = values[better].to(best_loss.dtype), fooled[better]
                    best_x[at] = x[better]
                if last:
                    break
                x = box(geometry.project(geometry.step(x, grad), centre)).detach()
                if early_stop and fooled.any():
                    keep = ~fooled
                    active, x, centre, grad = active[keep], x[keep], centre[keep], None
                    goal, labels = goal[keep], labels[keep]
                    if len(active) == 0:
                        break
    return (best_x if use_best else x).detach()


#: Attack precisions: the dtype of the forward and backward passes of an attack's gradient steps.
ATTACK_PRECISIONS = {"fp32": "float32 throughout",
                     "bf16": "gradient steps under bfloat16 autocast, decisions in float32"}


class _Autocast(nn.Module):
    """``model`` with its forward pass under bfloat16 autocast, its output in the model's own dtype (float32): the
    model an attack's gradient steps use in precision ``bf16``. bfloat16 has float32's exponent range, so small
    gradients do not underflow as they would in float16; only their mantissa is shorter (8 bits), and an L∞ step
    uses only their sign.

    A model with a ``representation`` and a ``head`` (every :class:`~rilib.models.Classifier`: ``forward`` is
    ``head(representation(x))``) computes its representation under autocast and its logits from it in float32.
    bfloat16 logits round to 1/16–1/8 at the size of a standard model's logits, which blurs the differences of
    logits that the margin and DLR losses and APGD's step-size rule compare: with bfloat16 logits (its decisions
    already in float32), the book's headline attack left up to 4 more robust images in 1,000 than in float32
    (``benchmarks/attack_precision.py``). Any other model runs whole under autocast, its output cast back."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.split = callable(getattr(model, "representation", None)) and callable(getattr(model, "head", None))
        self.dtype = next(model.parameters(), torch.empty(0)).dtype  # the dtype the output goes back to
        self.train(model.training)  # so that eval_mode restores the wrapped model's own mode

    def forward(self, x):
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
            out = self.model.representation(x) if self.split else self.model(x)
        return self.model.head(out.to(self.dtype)) if self.split else out.to(self.dtype)


def gradient_model(model: nn.Module, precision: str) -> nn.Module:
    """The model an attack in ``precision`` (one of :data:`ATTACK_PRECISIONS`) takes its gradient steps on."""
    if precision not in ATTACK_PRECISIONS:
        from .errors import UnknownNameError
        raise UnknownNameError(f"Unknown attack precision {precision!r}. Valid: {', '.join(ATTACK_PRECISIONS)}.")
    return _Autocast(model) if precision == "bf16" else model


def _precision_key(attack) -> dict:
    """``{"precision": …}`` unless the attack runs in float32, so that float32 attacks keep their cache keys."""
    return {} if attack.precision == "fp32" else {"precision": attack.precision}


def _precision_label(attack) -> str:
    return ", bf16 gradient steps" if attack.precision == "bf16" else ""


class _Recording(nn.Module):
    """A model that remembers its last output, so that :func:`projected_gradient` can tell from the loss's own
    forward pass which iterates are misclassified (one more forward only if the loss did not call the model on
    the batch)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.last = None
        self.train(model.training)  # so that eval_mode restores the wrapped model's own mode

    def forward(self, x):
        self.last = (x, self.model(x))
        return self.last[1]

    def misclassified(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.last is None or self.last[0] is not x:
            self.forward(x)
        wrong = self.last[1].argmax(1) != labels
        if isinstance(self.model, _Autocast) and wrong.any():
            # Confirm in float32 what looks misclassified under autocast: an early stop on a bfloat16 rounding
            # would end the search next to the boundary, on the wrong side of it in float32.
            with torch.no_grad():
                wrong[wrong.clone()] = self.model.model(x[wrong]).argmax(1) != labels[wrong]
        return wrong


@dataclass
class PGD:
    """Projected gradient descent attack (Madry et al. 2018) with random restarts.

    ``step_size`` defaults to 2.5·ε/steps, which lets the iterates reach the ball's edge and back
    (Madry et al.); a much smaller step (e.g. 0.01 at ε = 0.3 with 20 steps) is a *weak* attack.
    With ``restarts > 1`` each restart attacks only the examples that every earlier restart failed to
    misclassify, so an example counts as robust only if all restarts fail.

    ``early_stop`` (the default) is for measuring accuracy: an example is no longer attacked once an iterate is
    misclassified, and that iterate is returned. ``early_stop=False`` attacks every example for all its steps and
    returns its highest-loss iterate, the perturbation to use when the image itself is measured (for example the
    first-layer damping of chapter 2). The early stop can only fool more examples, never fewer: the full attack
    might trade a misclassified iterate for a higher-loss one that is not. On a fixed seed the two leave the same
    robust set (tests/test_attacks.py; benchmarks/attacks.py on the book's models).

    ``precision="bf16"`` takes the gradient steps under bfloat16 autocast; whether a restart fooled an image is
    still decided in float32, so an image goes on to the next restart unless the float32 model misclassifies it.

    Call as ``PGD(eps=0.3)(model, x, y)`` → adversarial images, same shape, in [0, 1] and the ball.
    """

    eps: float
    steps: int = 40
    step_size: Optional[float] = None
    restarts: int = 1
    random_start: bool = True
    norm: str = "linf"
    loss: Optional[LossFn] = None
    early_stop: bool = True
    precision: str = "fp32"

    @property
    def alpha(self) -> float:
        return self.step_size if self.step_size is not None else 2.5 * self.eps / self.steps

    def describe(self) -> str:
        start = "random start" if self.random_start else "no random start"
        loss = f", {self.loss.__name__.replace('_', ' ')}" if self.loss is not None else ""
        return (f"PGD-{self.steps} ({self.norm}, ε={self.eps:g}, step {self.alpha:.4g}, "
                f"{self.restarts} restart{'s' if self.restarts != 1 else ''}, {start}{loss}"
                f"{_precision_label(self)})")

    def cache_key(self) -> dict:
        """Every setting as a JSON-able dict; a custom loss by :func:`loss_id`."""
        key = {"attack": "PGD", **{f.name: getattr(self, f.name) for f in fields(self)
                                   if f.name not in ("loss", "precision")}, **_precision_key(self)}
        if self.loss is not None:
            key["loss"] = loss_id(self.loss)
        return key

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, y = to_model(x, model), to_model(y, model)
        x_adv = x.detach().clone()
        todo = torch.ones(len(x), dtype=torch.bool, device=x.device)
        stepping = gradient_model(model, self.precision)
        for r in range(self.restarts):
            idx = todo.nonzero().flatten()
            if len(idx) == 0:
                break
            adv = projected_gradient(stepping, x[idx], y[idx], constraint=self.norm, eps=self.eps,
                                     step_size=self.alpha, steps=self.steps, loss=self.loss,
                                     random_start=self.random_start or r > 0,
                                     fool=y[idx] if self.early_stop else None, early_stop=self.early_stop)
            x_adv[idx] = adv
            with torch.no_grad(), eval_mode(model):
                fooled = model(adv).argmax(1) != y[idx]
            todo[idx[fooled]] = False
        return x_adv


@dataclass
class WorstOf:
    """Several attacks in turn, each on the images every earlier one failed on: an image counts as robust only
    if all of them fail (the worst case per image, as AutoAttack reports it). ``WorstOf((a, b))(model, x, y)``."""

    attacks: tuple

    def describe(self) -> str:
        return "worst case per image of " + " and ".join(a.describe() for a in self.attacks)

    def cache_key(self) -> dict:
        return {"attack": "WorstOf", "attacks": [a.cache_key() for a in self.attacks]}

    def stage(self, i: int, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
              alive: torch.Tensor) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
        """Run the chain's ``i``-th attack on the images of ``x`` (on the model's device) that ``alive`` (a boolean
        mask) marks as still classified correctly, and clear the mask where it fools the model. Returns (indices
        attacked, their adversarial images), or None if no image was left."""
        idx = alive.nonzero().flatten()
        if not len(idx):
            return None
        adv = self.attacks[i](model, x[idx], y[idx])
        with torch.no_grad(), eval_mode(model):
            alive[idx] = model(adv).argmax(1) == y[idx]
        return idx, adv

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
            seconds: Optional[list] = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(adversarial images, per attack a mask of the images still classified correctly after it and every
        earlier one). Images the model misclassifies clean count as fooled and are not attacked. If ``seconds``
        is a list of one number per attack, each attack's wall time is added to its entry."""
        x, y = to_model(x, model), to_model(y, model)
        x_adv = x.detach().clone()
        with torch.no_grad(), eval_mode(model):
            alive = model(x).argmax(1) == y
        masks = []
        for i in range(len(self.attacks)):
            t0 = time.perf_counter()
            done = self.stage(i, model, x, y, alive)
            if done is not None:
                x_adv[done[0]] = done[1]
            if seconds is not None:
                seconds[i] += time.perf_counter() - t0
            masks.append(alive.clone())
        return x_adv, masks

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.run(model, x, y)[0]


@dataclass
class APGD:
    """Auto-PGD (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of diverse
    parameter-free attacks"), run by torchattacks: the step size adapts itself, so there is nothing to tune.

    ``loss="ce"`` is APGD-CE; ``loss="targeted"`` is APGD-T, the targeted DLR loss against each of the ``targets``
    classes the model ranks highest after the true one, in turn (AutoAttack's standard version uses 9 on 10
    classes; ``benchmarks/attack_strength.py`` measures what 3 leave out). Random starts are seeded with ``seed``
    in a fork of the generators, so the caller's random state is untouched. ``precision="bf16"`` runs torchattacks
    on the model under bfloat16 autocast (:class:`PGD` says what that means); :class:`WorstOf` then decides in
    float32 which images it fooled.
    """

    eps: float
    steps: int = 100
    loss: str = "ce"
    targets: int = 9
    norm: str = "linf"
    seed: int = 0
    precision: str = "fp32"

    def describe(self) -> str:
        name = f"APGD-T ({self.targets} target classes)" if self.loss == "targeted" else f"APGD-{self.loss.upper()}"
        return f"{name}, {self.steps} steps ({self.norm}, ε={self.eps:g}, torchattacks{_precision_label(self)})"

    def cache_key(self) -> dict:
        import torchattacks
        return {"attack": "APGD", **{f.name: getattr(self, f.name) for f in fields(self) if f.name != "precision"},
                **_precision_key(self), "torchattacks": torchattacks.__version__}

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        import torchattacks

        from .errors import RilibError
        norms = {"linf": "Linf", "l2": "L2"}
        if self.norm not in norms or self.loss not in ("ce", "dlr", "targeted"):
            raise RilibError(f"APGD with norm {self.norm!r} and loss {self.loss!r} is not defined. Valid norms: "
                             f"{', '.join(norms)}; losses: ce, dlr, targeted.")
        x, y = to_model(x, model), to_model(y, model)
        if not len(y):
            return x
        stepping = gradient_model(model, self.precision)
        with seeded(self.seed), eval_mode(stepping):
            if self.loss == "targeted":
                with torch.no_grad():
                    classes = stepping(x[:1]).shape[1]
                atk = torchattacks.APGDT(stepping, norm=norms[self.norm], eps=self.eps, steps=self.steps,
                                         n_classes=classes, seed=self.seed)
                atk.n_target_classes = min(self.targets, classes - 1)
            else:
                atk = torchattacks.APGD(stepping, norm=norms[self.norm], eps=self.eps, steps=self.steps,
                                        loss=self.loss, seed=self.seed)
            adv = atk(x, y).detach()
            if stepping is not model:
                # torchattacks keeps, and stops at, the first iterate that looks misclassified, so it decided under
                # autocast: the images that look fooled there but are not in float32 are attacked again in float32.
                with torch.no_grad():
                    redo = (stepping(adv).argmax(1) != y) & (model(adv).argmax(1) == y)
                if redo.any():
                    adv[redo] = replace(self, precision="fp32")(model, x[redo], y[redo])
            return adv


def FGSM(eps: float, random_start: bool = False, step_size: Optional[float] = None) -> PGD:
    """Fast gradient sign method (Goodfellow et al. 2015): one L∞ step of size ε.

    With ``random_start=True`` and ``step_size=1.25·ε`` it is the FGSM-RS of Wong et al. (2020).
    """
    return PGD(eps=eps, steps=1, step_size=step_size if step_size is not None else eps,
               random_start=random_start)
