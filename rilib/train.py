"""Training objectives in one registry, and one training loop.

An objective is a small function ``objective(model, x, y, **params) -> (loss, logits)``: the scalar loss
to minimise and the logits whose accuracy the progress bar reports. Later chapters add regularisers by
registering one more function in :data:`OBJECTIVES`.

Registered: ``standard`` (cross-entropy), ``pgd`` (Madry et al. 2018), ``trades`` (Zhang et al. 2019,
"Theoretically Principled Trade-off between Robustness and Accuracy"), ``fgsm_rs`` (Wong et al. 2020,
"Fast is better than free"); for the Lipschitz chapter ``input_gradient_penalty`` (Ross & Doshi-Velez 2018),
``jacobian_penalty`` (Hoffman et al. 2019), ``label_smoothing``, ``distillation`` (Papernot et al. 2016) and
``ce_random_kl`` (cross-entropy plus the KL to a random neighbour: average-case smoothness, with the orientation
term kept).

:data:`PRECISIONS`: ``fp32``, or ``bf16``: the objective (attack steps included) under bfloat16 autocast, the weights,
their gradients and the optimiser kept in float32 (mixed precision, as Wong et al. 2020 trained FGSM-RS and PGD-AT
with apex's fp16 AMP in ``fast_adversarial``). :func:`resolve_precision` turns a profile's ``auto`` into ``bf16``
only where the CPU multiplies bfloat16 natively (``benchmarks/precision.py`` measures the speed-up here).

:func:`fit` trains with fixed seeds, a tqdm bar, a checkpoint at the end of every epoch, and resumes an
interrupted run from its last checkpoint. Each epoch seeds a fork of the generators from (seed, epoch), so a
resumed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from . import data as data_mod
from .attacks import PGD, projected_gradient
from .errors import RilibError, UnknownNameError
from .evaluate import accuracy, robust_accuracy
from .paths import save_atomic
from .registry import Registry
from .rng import flush_denormal, seeded

Objective = Callable[..., tuple[torch.Tensor, torch.Tensor]]
OBJECTIVES: Registry[Objective] = Registry("objective")


def list_objectives() -> list[str]:
    return list(OBJECTIVES)


@OBJECTIVES.register("standard")
def standard(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Empirical risk: mean cross-entropy on clean images, of ``logits / temperature`` (a teacher for
    defensive distillation is trained at its temperature; the model itself still outputs raw logits)."""
    logits = model(x)
    return F.cross_entropy(logits / temperature, y), logits


@OBJECTIVES.register("pgd")
def pgd(model, x, y, *, eps: float, steps: int = 7, step_size: Optional[float] = None,
        norm: str = "linf") -> tuple[torch.Tensor, torch.Tensor]:
    """PGD adversarial training (Madry et al. 2018): cross-entropy on the last iterate of a PGD attack
    from a random start in the ε-ball. ``step_size`` defaults to 2.5·ε/steps."""
    alpha = step_size if step_size is not None else 2.5 * eps / steps
    x_adv = projected_gradient(model, x, y, constraint=norm, eps=eps, step_size=alpha, steps=steps,
                               random_start=True, use_best=False)
    logits = model(x_adv)
    return F.cross_entropy(logits, y), logits


def _kl_to(model: nn.Module, x: torch.Tensor, p_clean: torch.Tensor) -> torch.Tensor:
    """Per-example KL(p_clean ‖ softmax(model(x))), the TRADES inner objective."""
    return F.kl_div(F.log_softmax(model(x), dim=1), p_clean, reduction="none").sum(1)


@OBJECTIVES.register("trades")
def trades(model, x, y, *, eps: float, beta: float = 6.0, steps: int = 10,
           step_size: Optional[float] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """TRADES (Zhang et al. 2019): CE(f(x), y) + β · KL(f(x) ‖ f(x')), x' maximising the KL in the L∞ ball.

    As in the authors' code, the inner maximisation starts at x + 0.001·N(0, 1) and takes ``steps`` sign
    steps of ``step_size`` (default 2.5·ε/steps).
    """
    alpha = step_size if step_size is not None else 2.5 * eps / steps
    with torch.no_grad():
        p_clean = F.softmax(model(x), dim=1)
    x_adv = projected_gradient(model, x, p_clean, eps=eps, step_size=alpha, steps=steps, loss=_kl_to,
                               start=x + 0.001 * torch.randn_like(x), use_best=False)
    logits = model(x)
    robust = F.kl_div(F.log_softmax(model(x_adv), dim=1), F.softmax(logits, dim=1), reduction="batchmean")
    return F.cross_entropy(logits, y) + beta * robust, logits


@OBJECTIVES.register("fgsm_rs")
def fgsm_rs(model, x, y, *, eps: float, alpha: Optional[float] = None,
            box_start: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """FGSM with a random start (Wong et al. 2020): one sign step of α = 1.25·ε from a uniform start.

    ``box_start=False`` takes the gradient as Wong et al.'s MNIST code does (``fast_adversarial/MNIST/
    train_mnist.py``): at x + δ with δ uniform in [−ε, ε], before the start is clipped to the image box [0, 1];
    only the step's result is clipped to the ε-ball and the box. Their CIFAR-10 code clips the start first, as
    ``box_start=True`` (the default) does. On MNIST the difference decides whether their recipe overfits
    catastrophically (``benchmarks/fgsm_wong.py``; chapter 1's FGSM-RS arm on Wong et al.'s recipe)."""
    alpha = alpha if alpha is not None else 1.25 * eps
    if not box_start:
        delta = torch.empty_like(x).uniform_(-eps, eps).requires_grad_(True)
        grad, = torch.autograd.grad(F.cross_entropy(model(x + delta), y), delta)
        x_adv = (x + (delta.detach() + alpha * grad.sign()).clamp(-eps, eps)).clamp(0, 1).detach()
        logits = model(x_adv)
        return F.cross_entropy(logits, y), logits
    x_adv = projected_gradient(model, x, y, eps=eps, step_size=alpha, steps=1, random_start=True,
                               use_best=False)
    logits = model(x_adv)
    return F.cross_entropy(logits, y), logits


# ---------------------------------------------------------------------------------------------------
# Regularisers of the Lipschitz chapter (Helland & VanHoudnos 2021 place them in one frame): a loss term that
# orients the decision boundary plus a penalty on the local Lipschitz constant.

def input_gradient(model, x, y, create_graph: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(per-example CE (N,), logits (N, K), ∇ₓ of the summed CE, shaped like x). With ``create_graph`` the graph
    is kept for double backpropagation (the gradient penalties); without it the gradient is a plain value."""
    x = x.detach().requires_grad_(True)
    logits = model(x)
    ce = F.cross_entropy(logits, y, reduction="none")
    grad, = torch.autograd.grad(ce.sum(), x, create_graph=create_graph)
    return ce, logits, grad


@OBJECTIVES.register("input_gradient_penalty")
def input_gradient_penalty(model, x, y, *, lam: float, norm: str = "l1") -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy + λ · mean over examples of ‖∇ₓ CE‖ (double backpropagation; Drucker & LeCun 1992,
    Ross & Doshi-Velez 2018). ``norm="l1"``: the dual norm of an L∞ threat, so that λ = ε is the first-order
    expansion of L∞ adversarial training (Simon-Gabriel et al. 2019); ``norm="l2"``: the squared L2 norm of Ross
    & Doshi-Velez."""
    ce, logits, grad = input_gradient(model, x, y)
    g = grad.flatten(1)
    if norm == "l1":
        penalty = g.abs().sum(1)
    elif norm == "l2":
        penalty = g.pow(2).sum(1)
    else:
        raise UnknownNameError(f"Unknown gradient-penalty norm {norm!r}. Valid: l1, l2.")
    return ce.mean() + lam * penalty.mean(), logits


@OBJECTIVES.register("jacobian_penalty")
def jacobian_penalty(model, x, y, *, lam: float, projections: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy + λ/2 · ‖J‖²_F, the Frobenius norm of the input–logit Jacobian estimated with random unit
    projections (Hoffman, Roberts & Yaida 2019): ‖J‖²_F ≈ C/n_proj · Σ ‖vᵀJ‖², v uniform on the unit sphere."""
    x = x.detach().requires_grad_(True)
    logits = model(x)
    n, c = logits.shape
    frob = 0.0
    for _ in range(projections):
        v = torch.randn(n, c, device=x.device)
        v = v / v.norm(dim=1, keepdim=True)
        jv, = torch.autograd.grad((logits * v).sum(), x, create_graph=True)
        frob = frob + c * jv.flatten(1).pow(2).sum(1) / projections
    return F.cross_entropy(logits, y) + lam / 2 * frob.mean(), logits


@OBJECTIVES.register("label_smoothing")
def label_smoothing(model, x, y, *, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy against labels smoothed by α (Szegedy et al. 2016): a control that lowers confidence
    without any penalty on how fast the output changes near the data."""
    logits = model(x)
    return F.cross_entropy(logits, y, label_smoothing=alpha), logits


@OBJECTIVES.register("distillation")
def distillation(model, x, y, *, teacher: nn.Module, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Defensive distillation (Papernot et al. 2016): cross-entropy between the teacher's softmax at
    temperature T and the student's, both at T. ``teacher`` is the trained teacher itself: a zoo spec names it in
    its ``teacher`` field, and :func:`rilib.zoo.train` trains (or loads) it and passes it here. The student is
    used at T = 1, where its logits are about T times larger and its softmax saturates."""
    with torch.no_grad():
        soft = F.softmax(teacher.eval()(x) / temperature, dim=1)
    logits = model(x)
    return -(soft * F.log_softmax(logits / temperature, dim=1)).sum(1).mean(), logits


@OBJECTIVES.register("ce_random_kl")
def ce_random_kl(model, x, y, *, eps: float, beta: float = 6.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy plus the KL to a random neighbour: CE(f(x), y) + β · KL(f(x) ‖ f(x + δ)), δ uniform in the
    L∞ ε-ball (clipped to [0, 1]). Average-case smoothness with the orientation term kept: the cross-entropy is
    Helland & VanHoudnos's (2021) orientation term; the KL is TRADES's (Zhang et al. 2019) smoothness penalty with
    its worst-case δ replaced by a random one (compare stability training, Zheng et al. 2016). It penalises how much
    the output changes near x on average, not along the direction in which it changes fastest. With β = 0 it is
    the standard objective."""
    logits = model(x)
    x_noisy = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
    smooth = F.kl_div(F.log_softmax(model(x_noisy), dim=1), F.softmax(logits, dim=1), reduction="batchmean")
    return F.cross_entropy(logits, y) + beta * smooth, logits


def learning_rate(base: float, schedule: str, progress: float) -> float:
    """Learning rate at ``progress`` ∈ [0, 1] of training: ``constant``, ``cosine`` or ``onecycle``
    (linear up to the peak at 40 %, then linearly down to 0, as in Wong et al. 2020)."""
    if schedule == "constant":
        return base
    if schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "onecycle":
        return base * (progress / 0.4 if progress < 0.4 else max(0.0, (1 - progress) / 0.6))
    raise UnknownNameError(f"Unknown learning-rate schedule {schedule!r}. Valid: constant, cosine, onecycle.")


def make_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """``adam`` (decoupled weight decay: AdamW), ``sgd`` (momentum 0.9) or ``sgd-nesterov`` (Nesterov momentum 0.9,
    the recipe of Gavrikov & Keuper's normal models). Both SGDs couple the weight decay into the gradient, so it is
    carried by the momentum."""
    if name == "adam":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    if name in ("sgd", "sgd-nesterov"):
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay,
                               nesterov=name == "sgd-nesterov")
    raise UnknownNameError(f"Unknown optimizer {name!r}. Valid: adam, sgd, sgd-nesterov.")


#: Training precisions, with what each means.
PRECISIONS = {"fp32": "float32 throughout",
              "bf16": "mixed precision: the objective under bfloat16 autocast, weights and optimiser in float32"}


def native_bf16() -> bool:
    """True when this CPU multiplies bfloat16 in hardware (AVX512-BF16, or AMX), where autocast speeds convolutions
    up; elsewhere oneDNN emulates bfloat16, and training is several times slower than in float32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and _cpu_flag("avx512_bf16")
    except (AttributeError, RuntimeError):
        return False


def _cpu_flag(flag: str) -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return any(flag in line.split() for line in f if line.startswith("flags"))
    except OSError:
        return False


def resolve_precision(requested: str) -> str:
    """The precision to train in: ``RILIB_PRECISION`` (``fp32``, ``bf16`` or ``auto``) if set, else ``requested``;
    ``auto`` is ``bf16`` where :func:`native_bf16`, else ``fp32``. An unknown name raises an error listing the
    valid ones."""
    import os
    env = os.environ.get("RILIB_PRECISION", "").strip().lower()
    name = env or requested
    valid = (*PRECISIONS, "auto")
    if name not in valid:
        source = "RILIB_PRECISION" if env else "the profile's precision"
        raise UnknownNameError(f"Unknown training precision {name!r} (from {source}). Valid: {', '.join(valid)}; "
                               f"auto is bf16 where the CPU has native bfloat16, else fp32.")
    if name == "auto":
        return "bf16" if native_bf16() else "fp32"
    return name


def fit(model: nn.Module, dataset: data_mod.Dataset, *, objective: str, params: dict, epochs: int,
        batch_size: int = 128, optimizer: str = "adam", lr: float = 1e-3, weight_decay: float = 0.0,
        schedule: str = "constant", eps_warmup: int = 0, augment: bool = False, seed: int = 0,
        monitor_eps: Optional[float] = None, monitor_n: int = 200, grad_clip: Optional[float] = None,
        precision: str = "fp32", checkpoint: Optional[Path] = None, progress: bool = True,
        on_epoch_end: Optional[Callable[[int, dict], None]] = None,
        device: torch.device | str = "cpu") -> list[dict]:
    """Train ``model`` in place and return its per-epoch history.

    Args:
        objective, params: a name in :data:`OBJECTIVES` and its keyword arguments (e.g. ``eps``).
        eps_warmup: number of epochs over which ``params['eps']`` rises linearly from 0.
        monitor_eps: if set, each epoch also measures PGD-10 accuracy (step 2.5·ε/10) at this ε on
            ``monitor_n`` test images, for the learning curves. It is a cheap monitor, not an evaluation.
        grad_clip: if set, the loss gradient's global L2 norm is clipped to this before each step
            (:func:`torch.nn.utils.clip_grad_norm_`). SGD adds its coupled weight decay inside the step, after the
            clip, so the decay is never clipped.
        precision: a name in :data:`PRECISIONS`. With ``bf16`` the objective (its attack included) runs under
            bfloat16 autocast and its loss is cast back to float32; the monitor and the test accuracy stay float32.
        checkpoint: file written atomically at the end of every epoch; if it exists, training resumes
            after its last epoch.
        on_epoch_end: called as ``on_epoch_end(epoch, record)`` after each checkpoint.

    History records hold ``epoch``, ``train_loss``, ``train_acc`` (on the objective's logits),
    ``test_acc``, ``monitor_robust_acc`` and ``monitor_n`` (the monitor's image count; both None without a monitor),
    ``lr``, ``eps`` and ``seconds``.
    Raises :class:`RilibError` if the loss becomes NaN or infinite; the last checkpoint is kept.

    Each epoch runs with the global generators seeded from (seed, epoch) inside :func:`rilib.rng.seeded`, and
    denormal floats are flushed to zero (:func:`rilib.rng.flush_denormal`; tiny double-backpropagation gradients
    slow the CPU badly). The caller's random state and float mode are the same afterwards.
    """
    objective_fn = OBJECTIVES[objective]
    if precision not in PRECISIONS:
        raise UnknownNameError(f"Unknown training precision {precision!r}. Valid: {', '.join(PRECISIONS)}.")
    autocast = dict(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")
    opt = make_optimizer(model, optimizer, lr, weight_decay)
    history: list[dict] = []
    start_epoch = 0
    if checkpoint is not None and Path(checkpoint).exists():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        history = list(state["history"])
        start_epoch = int(state["epoch"]) + 1
    # channels_last speeds up 3x3 convolutions on the CPU: benchmarks/channels_last.py measures the ratio.
    model.to(device=device, memory_format=torch.channels_last)

    x_train, y_train = dataset.x_train.to(device), dataset.y_train.to(device)
    x_mon, y_mon = dataset.x_test[:monitor_n].to(device), dataset.y_test[:monitor_n].to(device)
    steps_per_epoch = math.ceil(len(y_train) / batch_size)
    total_steps = max(1, epochs * steps_per_epoch)
    full_eps = params.get("eps")

    for epoch in range(start_epoch, epochs):
        with flush_denormal(), seeded(seed * 100_003 + epoch):
            gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
            model.train()
            t0 = time.perf_counter()
            tot_loss, tot_correct, seen = 0.0, 0, 0
            bar = _progress(steps_per_epoch, f"{objective} epoch {epoch + 1}/{epochs}", progress)
            for i, (xb, yb) in enumerate(data_mod.batches(x_train, y_train, batch_size, shuffle=True,
                                                          generator=gen)):
                step = epoch * steps_per_epoch + i
                current = dict(params)
                if full_eps is not None and eps_warmup > 0:
                    current["eps"] = full_eps * min(1.0, (step + 1) / (eps_warmup * steps_per_epoch))
                lr_now = learning_rate(lr, schedule, step / total_steps)
                for group in opt.param_groups:
                    group["lr"] = lr_now
                if augment:
                    xb = data_mod.augment_crop_flip(xb, gen)
                with torch.autocast(**autocast):
                    loss, logits = objective_fn(model, xb, yb, **current)
                loss, logits = loss.float(), logits.float()
                if not torch.isfinite(loss):
                    done = f"epoch {epoch} (kept at {checkpoint})" if checkpoint and epoch > 0 else "no epoch"
                    raise RilibError(
                        f"The {objective} training loss became {float(loss.detach())} at epoch {epoch + 1}, "
                        f"batch {i + 1}. The last complete checkpoint is {done}. Lower the learning rate (now "
                        f"{lr}) or the objective's weight and train again; a changed spec trains afresh.")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                opt.step()
                tot_loss += float(loss.detach()) * len(yb)
                tot_correct += int((logits.argmax(1) == yb).sum())
                seen += len(yb)
                bar.update(1)
                bar.set_postfix(loss=f"{tot_loss / seen:.3f}", acc=f"{tot_correct / seen:.3f}")
            bar.close()
            record = {
                "epoch": epoch + 1,
                "train_loss": tot_loss / seen,
                "train_acc": tot_correct / seen,
                "test_acc": accuracy(model, dataset.x_test, dataset.y_test),
                "monitor_robust_acc": (robust_accuracy(model, x_mon, y_mon, PGD(eps=monitor_eps, steps=10),
                                                       progress=False) if monitor_eps else None),
                "monitor_n": len(y_mon) if monitor_eps else None,
                "lr": lr_now,
                "eps": current.get("eps"),
                "seconds": time.perf_counter() - t0,
            }
        history.append(record)
        if checkpoint is not None:
            save_atomic({"epoch": epoch, "model": model.state_dict(), "optimizer": opt.state_dict(),
                         "history": history}, checkpoint)
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)
    return history


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, leave=False, disable=not enabled)
