"""Intervals and paired comparisons: the one place where rilib turns per-image values into a statement.

- :func:`mean_ci`: the mean with its 95 % normal-approximation interval, as an :class:`Interval` that also counts
  the values it had to leave out because they were not finite;
- :func:`paired_ci`: the same for the per-image difference of two measurements on the same images, the test
  every "model A beats model B" claim of the book is held to;
- :func:`seed_ci`: the mean over training seeds with its Student-t interval (t on n − 1 degrees of freedom), the
  interval a claim about a *training procedure* is held to: each seed is one draw of the procedure (cut at the
  range of a bounded quantity, :data:`SHARE` or :data:`SIGNED_SHARE`);
- :func:`proportion_ci`: a share (an accuracy) with its Wilson score interval;
- :func:`mcnemar`: McNemar's exact test for two classifiers' predictions on the same images;
- :func:`bootstrap_ci`: a percentile bootstrap interval of any statistic of a set of items (for example the
  kernels of a layer), with a fixed generator.

Each has a known-answer test against ``scipy.stats`` or a textbook value (``tests/test_stats.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

Z95 = 1.96  #: two-sided 95 % quantile of the standard normal
#: The ranges :func:`seed_ci` cuts its intervals at: an accuracy or another share, and a difference of two shares
#: or a correlation.
SHARE, SIGNED_SHARE = (0.0, 1.0), (-1.0, 1.0)


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
    return torch.from_numpy(np.array(values, dtype=np.float64)).flatten()  # a copy: the input may be read-only


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


def seed_ci(values, bounds: tuple[float, float] | None = None) -> Interval:
    """Mean over training seeds (one value per seed) with its 95 % Student-t interval,
    mean ± t₀.₉₇₅,ₙ₋₁ · s / √n: with 3 seeds t = 4.30, so the interval is wide unless the seeds agree. NaN with
    fewer than two finite values.

    ``bounds`` (low, high): the range the quantity cannot leave (an accuracy [0, 1], a difference of accuracies or a
    rank correlation [−1, 1]); the interval is cut at them, since the Student-t interval of a few values can reach
    past them. Cutting never changes whether the interval contains a value inside the range."""
    from scipy import stats as st
    v = _as_double(values)
    finite = torch.isfinite(v)
    v = v[finite]
    m = float(v.mean()) if len(v) else float("nan")
    n = len(v)
    half = float(st.t.ppf(0.975, n - 1)) * float(v.std()) / math.sqrt(n) if n > 1 else float("nan")
    low, high = m - half, m + half
    if bounds is not None and n > 1:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return Interval(m, low, high, n, int((~finite).sum()))


@dataclass(frozen=True)
class McNemar:
    """McNemar's exact test of two classifiers A and B on the same items: ``a_only`` items only A gets right,
    ``b_only`` only B; ``p`` is the two-sided exact binomial p-value of ``a_only`` among the discordant items
    (H0: either is as likely to be the one that is right). ``difference`` is acc(A) − acc(B) over all ``n``."""

    a_only: int
    b_only: int
    n: int
    p: float

    @property
    def difference(self) -> float:
        return (self.a_only - self.b_only) / self.n if self.n else float("nan")

    def format(self) -> str:
        return f"{self.difference:+.3f} (A only {self.a_only}, B only {self.b_only}, McNemar p = {self.p:.2g})"


def mcnemar(correct_a, correct_b) -> McNemar:
    """McNemar's exact test on per-item correctness (booleans, same items, same order) of two classifiers."""
    from scipy import stats as st
    a = np.asarray(correct_a.cpu() if torch.is_tensor(correct_a) else correct_a, dtype=bool).ravel()
    b = np.asarray(correct_b.cpu() if torch.is_tensor(correct_b) else correct_b, dtype=bool).ravel()
    if a.shape != b.shape:
        raise ValueError(f"McNemar needs predictions on the same items: {a.size} vs {b.size}")
    a_only, b_only = int((a & ~b).sum()), int((b & ~a).sum())
    p = float(st.binomtest(a_only, a_only + b_only, 0.5).pvalue) if a_only + b_only else 1.0
    return McNemar(a_only, b_only, int(a.size), p)


def bootstrap_ci(items, statistic, resamples: int = 1000, seed: int = 0) -> Interval:
    """``statistic(items)`` with its 95 % percentile-bootstrap interval: ``items`` (a tensor, first dimension the
    items, for example a layer's kernels) are resampled with replacement ``resamples`` times with a generator
    seeded by ``seed``, so the interval is the same on every run. ``nonfinite`` counts resamples whose statistic was
    not finite (left out)."""
    items = items if torch.is_tensor(items) else torch.as_tensor(np.asarray(items))
    gen = torch.Generator().manual_seed(seed)
    n = len(items)
    draws = [float(statistic(items[torch.randint(n, (n,), generator=gen)])) for _ in range(resamples)]
    return percentile_interval(float(statistic(items)), draws, n)


def percentile_interval(point: float, draws, n: int) -> Interval:
    """The 95 % percentile interval of bootstrap ``draws`` around the estimate ``point`` from ``n`` items;
    non-finite draws are left out and counted."""
    values = _as_double(draws)
    finite = torch.isfinite(values)
    if not finite.any():
        return Interval(point, float("nan"), float("nan"), n, len(values))
    lo, hi = torch.quantile(values[finite], torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return Interval(point, lo, hi, n, int((~finite).sum()))


def paired_ci(a, b) -> Interval:
    """Mean per-item difference ``a − b`` of two measurements on the same items (images), with its 95 %
    interval: the paired comparison, which removes the spread that the items themselves add. The difference is
    taken in the values' own precision, then averaged in double precision."""
    def tensor(v):
        return v.detach().cpu() if torch.is_tensor(v) else torch.as_tensor(np.asarray(v))
    return mean_ci(tensor(a) - tensor(b))
