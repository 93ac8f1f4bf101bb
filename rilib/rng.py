"""Randomness without side effects.

rilib never reseeds the process's global generator for good: code that needs a fixed random stream runs inside
:func:`seeded`, which forks PyTorch's generators (the CPU's and, when present, the current CUDA device's), seeds
the fork and restores the caller's state on the way out. A notebook's own random numbers are therefore the same
whether or not a rilib call ran in between.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the body with PyTorch's global generators seeded to ``seed``; restore their state afterwards."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def flush_denormal_is_on() -> bool:
    """Whether the CPU flushes denormal floats to zero (``torch.set_flush_denormal``), probed by arithmetic:
    PyTorch can set the mode but not report it."""
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # a denormal float32
    return float((tiny * 1.0)[0]) == 0.0


@contextlib.contextmanager
def flush_denormal() -> Iterator[None]:
    """Flush denormal floats to zero inside the body (tiny double-backpropagation gradients slow the CPU badly),
    and restore the mode the caller had afterwards."""
    before = flush_denormal_is_on()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)
