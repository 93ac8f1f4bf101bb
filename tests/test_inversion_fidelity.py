"""Known answers for the paper-faithful parts of chapter 4: the inversion's stopping rule (Engstrom et al. 2019),
the Fréchet distance of the FID (Boychev 2023), the seeds that carry no class, and the paired test of two shares."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rilib.lenses import inversion as inv


class _Identity(nn.Module):
    """A "model" whose representation is the image itself: the inversion loss is ‖x − x₀‖ / ‖x₀‖, a convex cone
    whose L2-normalised gradient points straight at x₀."""

    def representation(self, x):
        return x.flatten(1)


def _toy(k: int, step: float):
    """A target x₀ = 0.5 on 16 pixels (‖x₀‖ = 2) and a seed (k + ½) steps away along the diagonal, inside the box."""
    x0 = torch.full((1, 1, 4, 4), 0.5, dtype=torch.float64)
    d = (k + 0.5) * step
    return x0, x0 + d / 4  # each of 16 pixels moved by d/4: distance d


def test_stopping_rule_stops_at_the_known_step_of_a_convex_cone():
    # Steps of 0.1 straight at x₀ from 1.05 away: after k = 10 steps the distance is 0.05; step 11 overshoots to
    # 0.05 again, the first step without progress, so the rule (tol 1e-3, window 1) stops the image there, at
    # relative distance 0.05 / 2 = 0.025. Every earlier step lowers the loss by at least 0.1 / 1.05 ≫ tol.
    x0, seed = _toy(10, 0.1)
    info, curve = {}, []
    x = inv.invert(_Identity(), x0, seed, inv.InversionSettings(step_size=0.1, steps=100, tol=1e-3, window=1),
                   history=curve, info=info)
    assert int(info["steps"][0]) == 11 and bool(info["converged"][0])
    assert float((x - x0).flatten().norm()) == pytest.approx(0.05, abs=1e-9)
    assert len(curve) == 12 and curve[-1] == pytest.approx(0.025, abs=1e-9)
    assert curve[0] == pytest.approx(1.05 / 2, abs=1e-9)
    assert all(b < a for a, b in zip(curve[:11], curve[1:11]))  # strictly falling until the stop


def test_stopping_rule_window_and_the_cap():
    # Window 3: progress over the last 3 steps first vanishes at step 13 (best at step 10 = best at 13).
    x0, seed = _toy(10, 0.1)
    info = {}
    inv.invert(_Identity(), x0, seed, inv.InversionSettings(step_size=0.1, steps=100, tol=1e-3, window=3), info=info)
    assert int(info["steps"][0]) == 13
    # A cap below the stop: the image runs to the cap and is reported as not converged; tol 0 never stops.
    for settings in (inv.InversionSettings(step_size=0.1, steps=5, tol=1e-3), inv.InversionSettings(step_size=0.1,
                                                                                                      steps=30)):
        info, curve = {}, []
        inv.invert(_Identity(), x0, seed, settings, history=curve, info=info)
        assert int(info["steps"][0]) == settings.steps and not bool(info["converged"][0])
        assert len(curve) == settings.steps + 1


def test_a_batch_stops_image_by_image():
    # Two images 3.5 and 7.5 steps away stop at steps 4 and 8 and each keeps its own best.
    x0 = torch.full((2, 1, 4, 4), 0.5, dtype=torch.float64)
    seed = x0.clone()
    seed[0] += 3.5 * 0.1 / 4
    seed[1] -= 7.5 * 0.1 / 4
    info = {}
    x = inv.invert(_Identity(), x0, seed, inv.InversionSettings(step_size=0.1, steps=50, tol=1e-3), info=info)
    assert info["steps"].tolist() == [4, 8]
    assert torch.allclose((x - x0).flatten(1).norm(dim=1), torch.tensor([0.05, 0.05], dtype=torch.float64))


def test_bad_settings_name_what_is_valid():
    with pytest.raises(ValueError, match="window ≥ 1"):
        inv.InversionSettings(window=0)


def test_grey_seeds_are_near_grey_and_seeded():
    s = inv.grey_seeds((3, 1, 28, 28), seed=0)
    assert s.min() >= 0.5 and s.max() <= 0.55 and torch.equal(s, inv.grey_seeds((3, 1, 28, 28), seed=0))


def test_frechet_distance_of_gaussians_with_known_answers():
    mu1, mu2 = np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.0, 1.0])
    eye = np.eye(3)
    assert inv.frechet_distance(mu1, eye, mu2, eye) == pytest.approx(1 + 4 + 4)   # identity covariances: ‖μ₁ − μ₂‖²
    # Commuting (diagonal) covariances: Σ (σ₁ − σ₂)² per axis, plus the means' term.
    c1, c2 = np.diag([4.0, 1.0, 9.0]), np.diag([1.0, 1.0, 1.0])
    assert inv.frechet_distance(mu1, c1, mu1, c2) == pytest.approx((2 - 1) ** 2 + 0 + (3 - 1) ** 2)
    # 1-D: (μ₁ − μ₂)² + (σ₁ − σ₂)².
    assert inv.frechet_distance([0.0], [[0.25]], [3.0], [[4.0]]) == pytest.approx(9 + (0.5 - 2) ** 2)
    # A non-commuting pair: symmetric in its arguments and zero against itself.
    a = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 0.5]])
    b = np.array([[1.0, -0.4, 0.1], [-0.4, 2.0, 0.0], [0.1, 0.0, 1.5]])
    assert inv.frechet_distance(mu1, a, mu2, b) == pytest.approx(inv.frechet_distance(mu2, b, mu1, a))
    assert inv.frechet_distance(mu1, a, mu1, a) == pytest.approx(0, abs=1e-9)
    with pytest.raises(ValueError, match="means of one length"):
        inv.frechet_distance(mu1, eye, mu2[:2], eye[:2, :2])


def test_frechet_features_of_samples_approach_the_population_value():
    gen = np.random.default_rng(0)
    a = gen.normal(0.0, 1.0, size=(20_000, 2))
    b = gen.normal([3.0, 0.0], [2.0, 1.0], size=(20_000, 2))
    # Population value: 3² + (1 − 2)² + 0 = 10.
    assert inv.frechet_features(torch.tensor(a), torch.tensor(b)) == pytest.approx(10.0, rel=0.03)
    with pytest.raises(ValueError, match="same D"):
        inv.frechet_features(torch.zeros(5, 2), torch.zeros(5, 3))


def test_pooled_seeds_carry_no_class(mnist_small):
    # One Gaussian of all classes: its seeds' mean is the mean training image, whatever class they are for.
    s = inv.pooled_gaussian_seeds(mnist_small.x_train, 2000, seed=0)
    assert s.shape == (2000, 1, 28, 28) and s.min() >= 0 and s.max() <= 1
    mean = mnist_small.x_train.mean(0)
    per_class = [mnist_small.x_train[mnist_small.y_train == c].mean(0) for c in range(10)]
    gap = (s.mean(0) - mean).norm()
    assert all(gap < (s.mean(0) - m).norm() for m in per_class)


def test_the_fitted_reference_gives_the_same_distance_as_sqrtm():
    gen = np.random.default_rng(1)
    real = gen.normal(size=(300, 6)) @ gen.normal(size=(6, 6))
    fake = gen.normal(0.5, 2.0, size=(40, 6))
    ref = inv.FrechetReference(torch.tensor(real))
    assert ref.distance(torch.tensor(fake)) == pytest.approx(inv.frechet_features(fake, real), rel=1e-6)
