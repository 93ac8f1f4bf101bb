"""Clean and robust accuracy.

Robust accuracy is measured under a strong attack: :class:`rilib.attacks.PGD` with step 2.5·ε/steps and
random restarts (Madry et al. 2018). A point counts as robust only if every restart fails.
"""

from __future__ import annotations

import time
from typing import Callable

import torch
from torch import nn

from .attacks import eval_mode
from .models import PASS_BATCH, to_model


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Share of images (N, C, H, W) in [0, 1] that ``model`` classifies as ``y``. The images may live anywhere;
    each batch is moved to the model's device."""
    correct = 0
    with eval_mode(model):
        for i in range(0, len(y), batch_size):
            xb, yb = to_model(x[i:i + batch_size], model), to_model(y[i:i + batch_size], model)
            correct += int((model(xb).argmax(1) == yb).sum())
    return correct / max(1, len(y))


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    attack: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
                    batch_size: int = PASS_BATCH, progress: bool = True, desc: str = "attack") -> float:
    """Share of images still classified correctly after ``attack(model, x, y)``.

    Images the model already misclassifies count as non-robust and are not attacked. Each batch is moved to the
    model's device.
    """
    from tqdm import tqdm

    correct = 0
    with eval_mode(model):
        for i in tqdm(range(0, len(y), batch_size), desc=desc, leave=False, disable=not progress):
            xb, yb = to_model(x[i:i + batch_size], model), to_model(y[i:i + batch_size], model)
            with torch.no_grad():
                ok = model(xb).argmax(1) == yb
            if ok.any():
                adv = attack(model, xb[ok], yb[ok])
                with torch.no_grad():
                    correct += int((model(adv).argmax(1) == yb[ok]).sum())
    return correct / max(1, len(y))


def staged_robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack, batch_size: int = PASS_BATCH,
                           progress: bool = True, desc: str = "attack") -> tuple[list[float], list[float]]:
    """For a chain of attacks (:class:`rilib.attacks.WorstOf`, each attack run on the images every earlier one
    failed on): after each attack of the chain, the share of images still classified correctly, and the seconds
    each attack took. The last share is the chain's robust accuracy, the worst case per image.

    The chain runs attack by attack: every batch through the first attack, then every batch's survivors through the
    second, and so on. So the first attack draws its random starts exactly as it would alone in
    :func:`robust_accuracy` from the same random state, and the first share *is* that attack's robust accuracy,
    not a second draw of it (``tests/test_attacks.py``)."""
    from tqdm import tqdm

    k, starts = len(attack.attacks), range(0, len(y), batch_size)
    correct, seconds = [0] * k, [0.0] * k

    def batch(i):
        return to_model(x[i:i + batch_size], model), to_model(y[i:i + batch_size], model)

    with eval_mode(model):
        with torch.no_grad():
            alive = [model(xb).argmax(1) == yb for xb, yb in map(batch, starts)]
        with tqdm(total=k * len(starts), desc=desc, leave=False, disable=not progress) as bar:
            for j in range(k):
                t0 = time.perf_counter()
                for b, i in enumerate(starts):
                    attack.stage(j, model, *batch(i), alive[b])
                    bar.update(1)
                seconds[j] = time.perf_counter() - t0
                correct[j] = sum(int(a.sum()) for a in alive)
    return [c / max(1, len(y)) for c in correct], seconds
