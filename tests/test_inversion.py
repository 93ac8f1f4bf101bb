"""Representation inversion, class generation, the Gaussian seeds and the scores of their images
(rilib.lenses.inversion)."""

from __future__ import annotations

import pytest
import torch

from rilib.lenses import inversion as inv


def test_inversion_lowers_the_representation_distance(tiny_standard, mnist_small):
    x0 = mnist_small.x_test[:8]
    noise = torch.rand(x0.shape, generator=torch.Generator().manual_seed(0))
    target = tiny_standard.representation(x0).detach()
    before = inv.representation_distance(tiny_standard, noise, target)
    curve = []
    x = inv.invert(tiny_standard, x0, noise, inv.InversionSettings(step_size=0.1, steps=40), history=curve)
    after = inv.representation_distance(tiny_standard, x, target).detach()
    assert (after < before).all() and after.mean() < 0.7 * before.mean()
    assert len(curve) == 41 and curve[-1] < curve[0]
    assert x.min() >= 0 and x.max() <= 1


def test_fake_relu_passes_gradient_through_dead_units(tiny_standard, mnist_small):
    x0 = mnist_small.x_test[:4]
    fake = inv.with_fake_relu(tiny_standard)
    assert isinstance(list(fake.features.modules())[-1], inv.FakeReLU)
    assert torch.equal(fake.representation(x0), tiny_standard.representation(x0))  # same forward pass
    noise = torch.rand(x0.shape, generator=torch.Generator().manual_seed(1))
    target = tiny_standard.representation(x0).detach()
    x = inv.invert(tiny_standard, x0, noise, inv.InversionSettings(step_size=0.1, steps=20), fake_relu=True)
    assert (inv.representation_distance(tiny_standard, x, target) <
            inv.representation_distance(tiny_standard, noise, target)).all()


def test_generation_raises_the_target_logit(tiny_standard, mnist_small):
    classes = torch.arange(10)
    seeds = inv.ClassGaussian(mnist_small.x_train, mnist_small.y_train).sample(classes, seed=0)
    x = inv.generate(tiny_standard, classes, seeds, inv.GenerationSettings(eps=5.0, step_size=0.25, steps=20))
    with torch.no_grad():
        before = inv.target_logit(tiny_standard, seeds, classes)
        after = inv.target_logit(tiny_standard, x, classes)
    assert (after > before).all()
    assert ((x - seeds).flatten(1).norm(dim=1) <= 5.0 + 1e-4).all() and x.min() >= 0 and x.max() <= 1


def test_gaussian_seeds_are_images_with_class_dependent_means(mnist_small):
    g = inv.ClassGaussian(mnist_small.x_train, mnist_small.y_train)
    classes = torch.tensor([0] * 200 + [1] * 200)
    s = g.sample(classes, seed=0)
    assert s.shape == (400, 1, 28, 28) and s.min() >= 0 and s.max() <= 1
    assert torch.equal(s, g.sample(classes, seed=0))  # seeded
    # The mean seed of each class is closer to that class's mean training image than to the other class's.
    means = {c: mnist_small.x_train[mnist_small.y_train == c].mean(0) for c in (0, 1)}
    for c, sl in ((0, slice(0, 200)), (1, slice(200, 400))):
        m = s[sl].mean(0)
        assert (m - means[c]).norm() < (m - means[1 - c]).norm()


def test_judge_scores_real_digits_high_and_noise_near_chance(tiny_standard, mnist_small):
    x, y = mnist_small.x_test, mnist_small.y_test
    assert inv.recognised(tiny_standard, x, y).mean() > 0.8
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(0))
    targets = torch.randint(0, 10, (len(x),), generator=torch.Generator().manual_seed(0))
    assert inv.recognised(tiny_standard, noise, targets).mean() < 0.25


def test_ssim_and_psnr_of_an_image_with_itself_and_with_noise(mnist_small):
    x = mnist_small.x_test[:5]
    ssim, psnr = inv.ssim_psnr(x, x)
    assert torch.allclose(ssim, torch.ones(5)) and torch.isinf(psnr).all()
    ssim_n, psnr_n = inv.ssim_psnr(torch.rand(x.shape, generator=torch.Generator().manual_seed(0)), x)
    assert (ssim_n < 0.2).all() and (psnr_n < 10).all()


def test_seed_differences_pair_replicates_and_take_a_student_t_interval():
    from rilib.chapters import inversion as ch4
    scores = {arm: {"recognised": [0.1, 0.2, 0.3]} for arm in ch4.SEEDED_ARMS}
    scores["mnist-pgd-0.3"]["recognised"] = [0.3, 0.5, 0.4]  # differences 0.2, 0.3, 0.1: mean 0.2, s = 0.1
    out = ch4.seed_differences(scores, "recognised")
    diffs, iv = out["mnist-pgd-0.3"]
    assert diffs == pytest.approx([0.2, 0.3, 0.1])
    assert iv.mean == pytest.approx(0.2) and iv.half_width == pytest.approx(4.302653 * 0.1 / 3 ** 0.5, rel=1e-5)
    assert out["mnist-pgd-0.1"][0] == pytest.approx([0, 0, 0]) and set(out) == set(ch4.SEEDED_ARMS[1:])


def test_generation_seeds_name_the_valid_kinds():
    from rilib.chapters import inversion as ch4
    from rilib.errors import UnknownNameError
    with pytest.raises(UnknownNameError, match="pooled, class"):
        ch4.generation_seeds("smoke", "uniform")
