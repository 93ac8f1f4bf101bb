"""Known-answer tests of rilib.lenses.stats: every interval and test the claims use, against scipy.stats or a
textbook value."""

import numpy as np
import pytest
import torch
from scipy import stats as st

from rilib.lenses import stats


def test_seed_interval_is_the_student_t_interval():
    seeds = [0.78, 0.80, 0.79]
    iv = stats.seed_ci(seeds)
    low, high = st.t.interval(0.95, 2, loc=np.mean(seeds), scale=st.sem(seeds))
    assert (iv.low, iv.high) == pytest.approx((low, high), abs=1e-12)
    # Textbook value: t(0.975, 2) = 4.303, so with s = 0.01 over 3 seeds the half-width is 0.0248.
    assert iv.half_width == pytest.approx(4.3027 * 0.01 / np.sqrt(3), abs=1e-4)
    # Wider than the normal approximation for the same values: that is the point of using it for 3 seeds.
    assert iv.half_width > stats.mean_ci(seeds).half_width * 2
    assert np.isnan(stats.seed_ci([0.8]).low)


def test_mcnemar_is_the_exact_binomial_test_on_discordant_pairs():
    # 10 items only A gets right, 2 only B, 88 both: scipy's exact binomial test on 10 of 12.
    a = np.array([True] * 10 + [False] * 2 + [True] * 88)
    b = np.array([False] * 10 + [True] * 2 + [True] * 88)
    res = stats.mcnemar(a, b)
    assert (res.a_only, res.b_only, res.n) == (10, 2, 100)
    assert res.p == pytest.approx(st.binomtest(10, 12, 0.5).pvalue)
    assert res.p == pytest.approx(0.03857, abs=1e-5)   # textbook: 2 · P(X ≤ 2), X ~ Bin(12, ½)
    assert res.difference == pytest.approx(0.08)
    assert stats.mcnemar(torch.tensor(a), torch.tensor(a)).p == 1.0   # no discordant pair
    with pytest.raises(ValueError, match="same items"):
        stats.mcnemar(a, b[:50])


def test_bootstrap_interval_covers_the_mean_like_the_textbook_interval():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(400, generator=gen, dtype=torch.float64) + 3.0
    iv = stats.bootstrap_ci(x, torch.mean, resamples=2000)
    assert iv.mean == pytest.approx(float(x.mean()))
    ref = stats.mean_ci(x)   # for a mean, the percentile bootstrap ≈ the normal interval
    assert iv.low == pytest.approx(ref.low, abs=0.02) and iv.high == pytest.approx(ref.high, abs=0.02)
    assert stats.bootstrap_ci(x, torch.mean, resamples=200) == stats.bootstrap_ci(x, torch.mean, resamples=200)
    # Resampling rows: a statistic of whole kernels (rows of 9) is bootstrapped over kernels.
    kernels = torch.randn(50, 9, generator=gen)
    per_row = stats.bootstrap_ci(kernels, lambda k: k.abs().amax(1).mean(), resamples=300)
    assert per_row.low < per_row.mean < per_row.high and per_row.n == 50


def test_paired_interval_is_the_textbook_interval_of_the_differences():
    gen = np.random.default_rng(3)
    item = gen.normal(0.0, 1.0, 200)                    # the items themselves vary a lot...
    a, b = item + 0.10 + gen.normal(0, 0.05, 200), item + gen.normal(0, 0.05, 200)   # ...the difference little
    iv = stats.paired_ci(a, b)
    d = a - b
    low, high = st.norm.interval(0.95, loc=d.mean(), scale=st.sem(d))
    assert (iv.mean, iv.low, iv.high, iv.n) == pytest.approx((d.mean(), low, high, 200), abs=1e-3)
    assert iv.above(0.0)
    # Unpaired, the items' own spread swamps the difference: that is what pairing removes.
    unpaired = np.sqrt(st.sem(a) ** 2 + st.sem(b) ** 2) * 1.96
    assert iv.half_width < unpaired / 10 and unpaired > abs(a.mean() - b.mean())


def test_bootstrap_interval_matches_scipys_percentile_bootstrap():
    gen = np.random.default_rng(4)
    x = gen.exponential(1.0, 300)                       # skewed, so the percentile interval is not symmetric
    iv = stats.bootstrap_ci(torch.as_tensor(x), lambda v: v.median(), resamples=4000)
    ref = st.bootstrap((x,), np.median, n_resamples=4000, method="percentile", random_state=0).confidence_interval
    width = ref.high - ref.low
    assert iv.mean == pytest.approx(float(np.median(x)), abs=0.01)
    assert iv.low == pytest.approx(ref.low, abs=0.1 * width) and iv.high == pytest.approx(ref.high, abs=0.1 * width)


def test_a_seed_interval_of_a_bounded_quantity_is_cut_at_its_range():
    """Three accuracies near 1 (or rank correlations near ±1): the Student-t interval reaches past the range the
    quantity can take; with ``bounds`` it stops at it, and its mean and its other end do not move."""
    seeds = [0.95, 1.0, 0.80]
    raw, cut = stats.seed_ci(seeds), stats.seed_ci(seeds, stats.SHARE)
    assert raw.high > 1 and cut.high == 1.0 and cut.low == raw.low and cut.mean == raw.mean
    rhos = [1.0, -0.4, 1.0]
    raw, cut = stats.seed_ci(rhos), stats.seed_ci(rhos, stats.SIGNED_SHARE)
    assert raw.low < -1 and raw.high > 1 and (cut.low, cut.high) == (-1.0, 1.0)
    inside = stats.seed_ci([0.78, 0.80, 0.79], stats.SHARE)
    assert (inside.low, inside.high) == (stats.seed_ci([0.78, 0.80, 0.79]).low, stats.seed_ci([0.78, 0.80, 0.79]).high)
