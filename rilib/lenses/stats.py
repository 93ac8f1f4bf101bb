"""Intervals and paired comparisons: the one place where rilib turns per-image values into a statement.

- :func:`mean_ci`: the mean with its 95 % normal-approximation interval, as an :class:`Interval` that also counts
  the values it had to leave out because they were not finite;
- :func:`paired_ci`: the same for the per-image difference of two measurements on the same images, the test
  every "model A beats model B" claim of the book is held to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

Z95 = 1.96  #: two-sided 95 % quantile of the standard normal


@dataclass(frozen=True)
class Interval:
    """A mean and its 95 % interval over ``n`` finite values; ``nonfinite`` values (NaN, ±inf) were left out."""

    mean: float
    low: float
    high: float
    n: int
    nonfinite: int = 0

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def above(self, value: float = 0.0) -> bool:
        """Whether the whole interval lies above ``value``."""
        return self.low > value

    def format(self, spec: str = "+.3f") -> str:
        """``"+0.123 [+0.100, +0.146]"``, with a note when values were left out."""
        text = f"{self.mean:{spec}} [{self.low:{spec}}, {self.high:{spec}}]"
        return text + (f" ({self.nonfinite} non-finite left out)" if self.nonfinite else "")


def _as_double(values) -> torch.Tensor:
    if torch.is_tensor(values):
        return values.detach().cpu().double().flatten()
    return torch.as_tensor(np.asarray(values, dtype=np.float64)).flatten()


def mean_ci(values) -> Interval:
    """The mean of ``values`` (a tensor, array or sequence) with its 95 % normal-approximation interval,
    mean ± 1.96 · s / √n. Non-finite values are left out and counted in :attr:`Interval.nonfinite`; with fewer
    than two finite values the interval is NaN."""
    v = _as_double(values)
    finite = torch.isfinite(v)
    v = v[finite]
    m = float(v.mean()) if len(v) else float("nan")
    half = Z95 * float(v.std()) / math.sqrt(len(v)) if len(v) > 1 else float("nan")
    return Interval(m, m - half, m + half, len(v), int((~finite).sum()))


def proportion_ci(share: float, n: int) -> Interval:
    """A share of ``n`` trials (an accuracy) with its 95 % Wilson score interval."""
    if n <= 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    p, z2 = float(share), Z95 ** 2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return Interval(p, centre - half, centre + half, n)


def paired_ci(a, b) -> Interval:
    """Mean per-item difference ``a − b`` of two measurements on the same items (images), with its 95 %
    interval: the paired comparison, which removes the spread that the items themselves add. The difference is
    taken in the values' own precision, then averaged in double precision."""
    def tensor(v):
        return v.detach().cpu() if torch.is_tensor(v) else torch.as_tensor(np.asarray(v))
    return mean_ci(tensor(a) - tensor(b))
