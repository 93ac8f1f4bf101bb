"""The colour path (RGB, 3×32×32, CIFAR-sized) of every lens, on a synthetic dataset and tiny models.

The book's chapters run on MNIST (one channel); the paper profile runs CIFAR-10 on a GPU. This file keeps the
colour path from rotting on a machine without either: 96 images of ten classes of coloured Gaussian blobs (the
class sets the colour and the place of the blob, so a tiny network learns them in seconds), built from a seeded
generator, with no download and no trained zoo. Every measurement function of ``rilib.lenses``, the attacks and
the training objectives runs on them once; each test checks shapes, finiteness, ranges and one simple property
(most of them a known answer that holds for any model), and that all three colour channels take part.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import rilib
from rilib.data import Dataset
from rilib.lenses import filters, inversion, lipschitz, localisation, metrics, perceptual, saliency
from rilib.train import fit

SHAPE = (3, 32, 32)
N_CLASSES = 10
N_TRAIN, N_TEST = 64, 32
N = 8  # images the slower lenses explain


@pytest.fixture(scope="module")
def colour(colour_blobs):
    """The dataset (64 training, 32 test images) and the test images' masks and boxes (``colour_blobs``: the
    generator shared in conftest.py)."""
    x, y, masks, boxes = colour_blobs(N_TRAIN + N_TEST, seed=0)
    ds = Dataset("colour-blobs", x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:],
                 [str(c) for c in range(N_CLASSES)], "synthetic coloured blobs for tests")
    return ds, masks[N_TRAIN:], boxes[N_TRAIN:]


def new_model(ds, arch="tiny-cnn", seed=0):
    torch.manual_seed(seed)
    return rilib.create_model(arch, ds.shape, ds.num_classes, ds.mean, ds.std)


@pytest.fixture(scope="module")
def model(colour):
    """tiny-cnn trained by cross-entropy for 12 epochs of 64 images (about a second)."""
    ds, _, _ = colour
    m = new_model(ds)
    history = fit(m, ds, objective="standard", params={}, epochs=12, batch_size=32, lr=3e-3, progress=False)
    m.history = history
    return m.eval()


@pytest.fixture(scope="module")
def xy(colour):
    ds, _, _ = colour
    return ds.x_test[:N].clone(), ds.y_test[:N].clone()


def finite(t) -> bool:
    return bool(torch.isfinite(torch.as_tensor(t)).all())


def per_channel_mass(maps: torch.Tensor) -> torch.Tensor:
    """Σ|map| per colour channel (3,)."""
    return maps.abs().sum(dim=(0, 2, 3))


class Scaled(nn.Module):
    """The model with its logits multiplied by ``c``."""

    def __init__(self, model, c):
        super().__init__()
        self.model, self.c = model, c

    def forward(self, x):
        return self.c * self.model(x)


# --- data, models, training, attacks --------------------------------------------------------------------------------

def test_the_synthetic_dataset_is_colour_and_a_tiny_cnn_learns_it(colour, model):
    ds, masks, boxes = colour
    assert ds.shape == SHAPE and ds.num_classes == N_CLASSES
    assert len(ds.mean) == len(ds.std) == 3
    assert 0 <= float(ds.x_train.min()) and float(ds.x_train.max()) <= 1
    assert torch.equal(torch.bincount(ds.y_train, minlength=10) > 0, torch.ones(10, dtype=torch.bool))
    assert masks.shape == (N_TEST, 32, 32) and masks.flatten(1).any(1).all()
    assert boxes.shape == (N_TEST, 4)
    h = model.history
    assert all(finite(r["train_loss"]) for r in h)
    assert h[-1]["train_loss"] < h[0]["train_loss"]
    assert h[-1]["test_acc"] >= 0.5  # chance is 0.1


@pytest.mark.parametrize("params", [{"eps": 8 / 255, "steps": 3}, {"eps": 0.5, "steps": 3, "norm": "l2"}],
                         ids=["linf", "l2"])
def test_pgd_adversarial_training_runs_on_colour_images_with_augmentation(colour, params):
    ds, _, _ = colour
    m = new_model(ds)
    before = [p.detach().clone() for p in m.parameters()]
    history = fit(m, ds, objective="pgd", params=params, epochs=2, batch_size=32, augment=True,
                  monitor_eps=params["eps"] if "norm" not in params else None, monitor_n=16, progress=False)
    assert len(history) == 2 and all(finite(r["train_loss"]) for r in history)
    assert all(0 <= r["test_acc"] <= 1 for r in history)
    assert any(not torch.equal(a, b) for a, b in zip(before, m.parameters()))


def test_preact_resnet18_takes_colour_images_forward_and_backward(colour):
    ds, _, _ = colour
    m = new_model(ds, "preact-resnet18")
    x = ds.x_train[:4].clone().requires_grad_(True)
    logits = m(x)
    assert logits.shape == (4, N_CLASSES) and finite(logits)
    F.cross_entropy(logits, ds.y_train[:4]).backward()
    assert x.grad.shape == x.shape and finite(x.grad)
    assert (per_channel_mass(x.grad) > 0).all()
    assert m.features[0].weight.grad is not None and m.features[0].weight.shape[1] == 3


def test_a_grey_model_fed_colour_images_fails_with_a_message_naming_the_channels(colour):
    ds, _, _ = colour
    grey = rilib.create_model("tiny-cnn", (1, 32, 32), N_CLASSES, [0.5], [0.25])
    with pytest.raises(RuntimeError, match="channels"):
        grey(ds.x_test[:2])


@pytest.mark.parametrize("norm,eps", [("linf", 8 / 255), ("l2", 0.5)])
def test_pgd_stays_in_the_ball_and_the_box_and_never_raises_accuracy(model, colour, norm, eps):
    ds, _, _ = colour
    x, y = ds.x_test, ds.y_test
    adv = rilib.PGD(eps=eps, steps=10, norm=norm)(model, x, y)
    delta = (adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert adv.shape == x.shape and finite(adv)
    assert float(size.max()) <= eps + 1e-5
    assert 0 <= float(adv.min()) and float(adv.max()) <= 1
    with torch.no_grad():
        clean, robust = (model(x).argmax(1) == y), (model(adv).argmax(1) == y)
    assert not (robust & ~clean).any()  # an image the model got wrong clean is not made right
    assert robust.float().mean() < clean.float().mean()  # ε = 8/255 and 0.5 break a standard tiny model somewhere


@pytest.mark.parametrize("norm,eps", [("linf", 8 / 255), ("l2", 0.5)])
def test_apgd_stays_in_the_ball_on_colour_images(model, xy, norm, eps):
    from rilib.attacks import APGD
    x, y = xy
    adv = APGD(eps=eps, steps=10, norm=norm)(model, x, y)
    delta = (adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert adv.shape == x.shape and finite(adv)
    assert float(size.max()) <= eps + 1e-4
    assert 0 <= float(adv.min()) and float(adv.max()) <= 1


# --- filters (Gavrikov & Keuper 2022) --------------------------------------------------------------------------------

def test_filter_statistics_of_a_colour_first_layer(model):
    stats = filters.layer_stats(model)
    assert list(stats.shape) == [2, stats.shape[1]]
    first = stats.iloc[0]
    assert first["shape"] == "8×3×3×3" and first["kernels"] == 24  # 3 input channels: 8 · 3 kernels
    assert stats.sparsity.between(0, 1).all()
    assert stats.orthogonality.between(0, 1).all()
    assert stats.variance_entropy.between(0, filters.MAX_ENTROPY + 1e-9).all()
    overall = filters.overall_stats(stats)
    assert set(overall) == {*filters.WEIGHTS, "variance_entropy_deepest"}
    assert all(math.isfinite(v) for v in overall.values())
    # the kernel-weighted sparsity is the share of sparse kernels over both layers
    sparse = sum(int(filters.sparse_mask(c.weight).sum()) for _, c in filters.conv3x3_layers(model))
    assert overall["sparsity"] == pytest.approx(sparse / stats.kernels.sum())
    intervals = filters.bootstrap_overall(model, resamples=50)
    assert set(intervals) == set(overall)
    for key, iv in intervals.items():
        assert iv.mean == pytest.approx(overall[key])
        assert math.isfinite(iv.low) and iv.low <= iv.high


def test_first_layer_damping_sees_every_channel_and_is_bounded_by_the_linear_ratio(model, xy):
    x, _ = xy
    g = torch.Generator().manual_seed(1)
    delta = 0.03 * torch.randn(x.shape, generator=g)
    damping = filters.first_layer_damping(model, x, x + delta)
    assert damping.shape == (N,) and finite(damping) and (damping >= 0).all()
    conv, norm = filters.first_layer(model), model.normalize
    with torch.no_grad():  # ReLU is 1-Lipschitz: the ratio after it is at most the ratio before it
        linear = (conv(norm(x + delta)) - conv(norm(x))).flatten(1).norm(dim=1) / delta.flatten(1).norm(dim=1)
    assert (damping <= linear + 1e-5).all()
    for ch in range(3):  # a perturbation of one colour channel alone reaches the first layer
        only = torch.zeros_like(delta)
        only[:, ch] = delta[:, ch]
        assert (filters.first_layer_damping(model, x, x + only) > 0).all()


def test_filter_statistics_of_preact_resnet18(colour):
    ds, _, _ = colour
    m = new_model(ds, "preact-resnet18")
    stats = filters.layer_stats(m)
    assert len(stats) == 17 and stats.iloc[0]["shape"] == "64×3×3×3"
    assert stats.orthogonality.between(0, 1).all() and stats.sparsity.between(0, 1).all()


# --- Lipschitz (Helland & VanHoudnos 2021; Yang et al. 2020) --------------------------------------------------------

@pytest.mark.parametrize("space", ["logit", "kl"])
def test_local_lipschitz_in_both_spaces(model, xy, space):
    x, _ = xy
    torch.manual_seed(0)
    est = lipschitz.local_lipschitz(model, x, eps=8 / 255, steps=5, space=space)
    assert est.shape == (N,) and finite(est) and (est >= 0).all()
    torch.manual_seed(0)
    doubled = lipschitz.local_lipschitz(Scaled(model, 2.0), x, eps=8 / 255, steps=5, space=space)
    if space == "logit":  # logit units: doubling the logits doubles the estimate (same seed, same path)
        assert doubled == pytest.approx(2 * est, rel=1e-4)
    else:
        assert finite(doubled)


def test_unknown_lipschitz_space_names_the_valid_ones(model, xy):
    with pytest.raises(rilib.RilibError, match="logit, kl"):
        lipschitz.local_lipschitz(model, xy[0], eps=0.01, space="l2")


def test_margin_ratio_is_scale_free_and_gradient_l1_is_the_autograd_norm(model, xy):
    x, y = xy
    ratio = lipschitz.margin_ratio(model, x)
    assert ratio.shape == (N,) and finite(ratio) and (ratio >= 0).all()
    assert lipschitz.margin_ratio(Scaled(model, 3.0), x) == pytest.approx(ratio, rel=1e-4)
    l1 = lipschitz.gradient_l1(model, x, y)
    xr = x.clone().requires_grad_(True)
    g, = torch.autograd.grad(F.cross_entropy(model(xr), y, reduction="sum"), xr)
    assert l1 == pytest.approx(g.flatten(1).abs().sum(1), rel=1e-4, abs=1e-7)


# --- inversion and generation (Engstrom et al. 2019; Santurkar et al. 2019; Boychev 2023) ------------------------

def test_inversion_of_colour_images_gets_closer_to_the_target_representation(model, xy):
    x, _ = xy
    seeds = inversion.grey_seeds(x.shape)
    assert seeds.shape == x.shape
    info, history = {}, []
    settings = inversion.InversionSettings(steps=15, step_size=0.5)
    out = inversion.invert(model, x, seeds, settings, history=history, info=info)
    assert out.shape == x.shape and finite(out) and 0 <= float(out.min()) and float(out.max()) <= 1
    with torch.no_grad():
        target = model.representation(x)
        start = inversion.representation_distance(model, seeds, target)
        end = inversion.representation_distance(model, out, target)
    assert (end <= start + 1e-6).all() and float(end.mean()) < float(start.mean())
    assert len(history) == 16 and history[-1] <= history[0]
    assert info["steps"].shape == (N,)
    faked = inversion.invert(model, x, seeds, settings, fake_relu=True)
    assert faked.shape == x.shape and finite(faked)


def test_generation_raises_the_target_logit_inside_the_l2_ball(model, colour):
    ds, _, _ = colour
    gauss = inversion.ClassGaussian(ds.x_train, ds.y_train, grain=4)
    assert gauss.classes == list(range(N_CLASSES))
    target = torch.arange(N) % N_CLASSES
    seeds = gauss.sample(target, seed=0)
    assert seeds.shape == (N, *SHAPE) and 0 <= float(seeds.min()) and float(seeds.max()) <= 1
    pooled = inversion.pooled_gaussian_seeds(ds.x_train, N, seed=0)
    assert pooled.shape == (N, *SHAPE) and finite(pooled)
    settings = inversion.GenerationSettings(eps=30.0, step_size=0.5, steps=10)  # Santurkar et al.'s CIFAR ball
    out = inversion.generate(model, target, seeds, settings)
    assert out.shape == seeds.shape and 0 <= float(out.min()) and float(out.max()) <= 1
    assert float((out - seeds).flatten(1).norm(dim=1).max()) <= settings.eps + 1e-4
    with torch.no_grad():
        assert (inversion.target_logit(model, out, target) >= inversion.target_logit(model, seeds, target)).all()
    hit = inversion.recognised(model, out, target)
    assert hit.shape == (N,) and set(hit.tolist()) <= {0.0, 1.0}


@pytest.mark.filterwarnings("ignore:Matrix is singular")  # 32 images in 84 features: a singular covariance
def test_frechet_distance_in_a_judges_features_of_colour_images(model, colour):
    ds, _, _ = colour
    judge = new_model(ds, "lenet", seed=1)
    a = inversion.judge_features(judge, ds.x_train[:32])
    b = inversion.judge_features(judge, ds.x_test)
    assert a.shape == (32, 84) and finite(a)
    assert inversion.frechet_features(a, a) == pytest.approx(0.0, abs=1e-6)
    d = inversion.frechet_features(a, b)
    assert d > 0 and math.isfinite(d)
    assert inversion.FrechetReference(b).distance(a) == pytest.approx(d, rel=1e-6)


def test_ssim_psnr_of_colour_images_on_one_channel_left_alone(xy):
    x, _ = xy
    noisy = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    ssim, psnr = inversion.ssim_psnr(noisy, x)
    assert ssim.shape == psnr.shape == (N,) and finite(ssim) and finite(psnr)
    assert (ssim <= 1).all() and (ssim > -1).all() and (psnr > 0).all()


def test_ssim_psnr_sees_a_change_in_any_colour_channel(xy):
    x, _ = xy
    for ch in (1, 2):
        changed = x.clone()
        changed[:, ch] = 1 - changed[:, ch]
        ssim, psnr = inversion.ssim_psnr(changed, x)
        assert (ssim < 0.99).all() and torch.isfinite(psnr).all()


# --- perceptual ball (Elliott, Law & Russell 2021) ------------------------------------------------------------------

def test_perceptual_ball_explains_colour_images(model, xy):
    x, _ = xy
    settings = perceptual.PerceptualBall(layers=2, iterations=5, batch_size=N, sigma=1.0)
    out = perceptual.explain(model, x, settings)
    assert out.x_prime.shape == x.shape and finite(out.x_prime)
    assert out.maps.shape == (N, 1, 32, 32) and finite(out.maps) and (out.maps >= 0).all()
    assert out.objective.shape == out.margin.shape == (N,) and finite(out.objective)
    with torch.no_grad():  # from x′ = x the objective is (margin − v)²; keep_best can only lower it
        start = (perceptual.margin(model(x), model(x).argmax(1)) - settings.margin) ** 2
    assert (out.objective <= start + 1e-5).all() and float(out.objective.mean()) < float(start.mean())
    # the map is the blurred RMS of x′ − x over the three channels
    assert out.maps == pytest.approx(perceptual.saliency(out.x_prime, x, settings.sigma), abs=1e-6)


# --- localisation (Elliott et al. 2021) -----------------------------------------------------------------------------

def test_localisation_of_maps_on_colour_blobs(model, colour):
    ds, masks, boxes = colour
    x = ds.x_test
    peak_on_blob = x.amax(1) * masks  # a made-up map that is right: the blob's own brightness, inside its mask
    hits = localisation.pointing_game(peak_on_blob, masks, tolerance=1.0)
    assert hits.shape == (N_TEST,) and hits.dtype == torch.bool and hits.all()
    assert localisation.energy_in_mask(peak_on_blob, masks) == pytest.approx(torch.ones(N_TEST))
    box_map = torch.zeros(N_TEST, 32, 32)
    for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        box_map[i, max(y0, 0):y1, max(x0, 0):x1] = 1.0
    weak = localisation.weak_localisation(box_map, boxes.clamp(0, 32))
    assert weak.shape == (N_TEST, len(localisation.THRESHOLDS)) and weak.all()
    wrong = box_map.roll(16, dims=1)  # the box moved half the image away
    assert not localisation.weak_localisation(wrong, boxes.clamp(0, 32)).any()
    # a real gradient map of the colour model, summed over channels: shapes and ranges only
    grad = saliency.Gradient(model, absolute=True).attribute(x).sum(1)
    assert localisation.pointing_game(grad, masks).shape == (N_TEST,)
    energy = localisation.energy_in_mask(grad.unsqueeze(1), masks.unsqueeze(1))
    assert finite(energy) and ((energy >= 0) & (energy <= 1 + 1e-6)).all()
    assert localisation.best_threshold(localisation.weak_localisation(grad, boxes.clamp(0, 32))) in range(10)


# --- saliency methods (written last: another change to saliency.py was under way) -----------------------------------

def method_settings(name, background):
    """Cheap settings for every registered method; a new method fails here until it is given some."""
    settings = {
        "gradient": {},
        "smoothgrad": {"n_samples": 4},
        "integrated_gradients": {"steps": 16},
        "shap": {"background": background, "n_samples": 8},
    }
    if name not in settings:
        pytest.fail(f"tests/test_colour.py has no settings for the saliency method {name!r}: add cheap ones")
    return settings[name]


@pytest.mark.parametrize("name", saliency.list_methods())
def test_every_saliency_method_gives_colour_maps(model, colour, xy, name):
    ds, _, _ = colour
    x, _ = xy
    method = saliency.METHODS[name](model, **method_settings(name, ds.x_train[:16]))
    maps = method.attribute(x)
    assert maps.shape == x.shape and finite(maps)
    assert (per_channel_mass(maps) > 0).all()  # every colour channel is attributed


def test_gradient_is_the_autograd_gradient_and_smoothgrad_without_noise_equals_it(model, xy):
    x, _ = xy
    g = saliency.Gradient(model).attribute(x)
    xr = x.clone().requires_grad_(True)
    logits = model(xr)
    ref, = torch.autograd.grad(logits.gather(1, logits.argmax(1, keepdim=True)).sum(), xr)
    assert g == pytest.approx(ref, abs=1e-6)
    sg = saliency.SmoothGrad(model, noise=1e-7, n_samples=2).attribute(x)
    assert sg == pytest.approx(ref, abs=1e-4)


@pytest.mark.parametrize("output", saliency.IntegratedGradients.OUTPUTS)
def test_integrated_gradients_is_nearly_complete_on_colour_images(model, xy, output):
    x, _ = xy
    ig = saliency.IntegratedGradients(model, steps=64, output=output)
    err = ig.completeness_error(x)
    with torch.no_grad():
        f = model if output == "logit" else (lambda z: torch.softmax(model(z), 1))
        t = model(x).argmax(1, keepdim=True)
        change = (f(x).gather(1, t) - f(torch.zeros_like(x)).gather(1, t)).abs().squeeze(1)
    assert err.shape == (N,) and finite(err)
    assert float(err.mean()) <= 0.05 * float(change.mean()) + 1e-4
    uniform = saliency.IntegratedGradients(model, baseline="uniform", n_baselines=2, steps=8, output=output)
    maps = uniform.attribute(x)
    assert maps.shape == x.shape and finite(maps)


def test_shap_explains_the_predicted_class_only(model, colour, xy):
    ds, _, _ = colour
    x, _ = xy
    method = saliency.GradientSHAP(model, ds.x_train[:16], n_samples=4)
    wrong = (saliency.predicted(model, x) + 1) % N_CLASSES
    with pytest.raises(ValueError, match="predicted class"):
        method.attribute(x, target=wrong)


# --- metrics (written last: another change to metrics.py was under way) ---------------------------------------------

def test_alignment_and_etmann_alignment_agree_on_colour_images(model, xy):
    x, y = xy
    a = metrics.alignment(model, x)
    assert a.shape == (N,) and finite(a) and ((a >= 0) & (a <= 1 + 1e-6)).all()
    grad = saliency.Gradient(model).attribute(x)
    assert a == pytest.approx(metrics.alignment_of(x, grad), rel=1e-4, abs=1e-7)
    # with Ψ the predicted logit, the paper's distance is the scale-free alignment times ‖x‖
    e = metrics.etmann_alignment(model, x, psi="logit")
    assert e == pytest.approx(a * x.flatten(1).norm(dim=1), rel=1e-4, abs=1e-6)
    e_true = metrics.etmann_alignment(model, x, target=y, psi="logit")
    assert e_true.shape == (N,) and finite(e_true) and (e_true >= 0).all()
    m = metrics.etmann_alignment(model, x, psi="margin")
    assert m.shape == (N,) and finite(m) and (m >= 0).all()
    assert (m <= x.flatten(1).norm(dim=1) + 1e-5).all()  # Cauchy–Schwarz: |⟨x, g⟩| / ‖g‖ ≤ ‖x‖
    with pytest.raises(ValueError, match="logit, margin"):
        metrics.etmann_alignment(model, x, psi="loss")


def test_map_statistics_on_colour_maps(model, xy):
    x, _ = xy
    grad = saliency.Gradient(model).attribute(x)
    share = metrics.stroke_share(x, grad)
    assert share.shape == (N,) and ((share >= 0) & (share <= 1 + 1e-6)).all()
    ink = (x.sum(1, keepdim=True) > 0.5).expand_as(x)
    assert metrics.stroke_share(x, ink.float()) == pytest.approx(torch.ones(N))  # a map on the ink only
    edges = metrics.sobel_map(x)
    assert edges.shape == x.shape and finite(edges) and (edges >= 0).all()
    flat = metrics.sobel_map(torch.full((1, *SHAPE), 0.3))
    assert float(flat.abs().max()) < 1e-6  # no edges in a constant colour image
    g = metrics.gini(grad)
    assert g.shape == (N,) and ((g >= 0) & (g <= 1)).all()
    assert metrics.gini(torch.ones(2, *SHAPE)) == pytest.approx(torch.zeros(2), abs=1e-6)
    assert metrics.spearman(grad, grad) == pytest.approx(torch.ones(N), abs=1e-6)
    assert metrics.spearman(grad, -grad) == pytest.approx(-torch.ones(N), abs=1e-6)
    assert metrics.map_ssim(grad, grad) == pytest.approx(torch.ones(N), abs=1e-6)
    other = saliency.Gradient(metrics.randomize_top_layers(model, 2)).attribute(x)
    s = metrics.map_ssim(grad, other)
    assert s.shape == (N,) and finite(s) and (s <= 1).all()


def test_deletion_and_insertion_on_colour_images(model, xy):
    x, _ = xy
    grad = saliency.Gradient(model, absolute=True).attribute(x)
    deletion, insertion = metrics.deletion_insertion(model, x, grad, steps=8)
    for auc in (deletion, insertion):
        assert auc.shape == (N,) and finite(auc) and ((auc >= 0) & (auc <= 1)).all()
    ref_del, ref_ins = metrics.deletion_insertion_reference(model, x[:2], grad[:2], steps=8)
    assert deletion[:2] == pytest.approx(torch.tensor(ref_del), abs=1e-5)
    assert insertion[:2] == pytest.approx(torch.tensor(ref_ins), abs=1e-5)


def test_cascading_randomisation_of_the_colour_model(model, xy):
    x, _ = xy
    layers = metrics.parametrised_layers(model)
    cascade = metrics.cascade_models(model, seed=0)
    assert len(cascade) == len(layers) == 4
    assert torch.equal(layers[0].weight, metrics.parametrised_layers(cascade[-2])[0].weight)  # bottom kept
    assert not torch.equal(layers[0].weight, metrics.parametrised_layers(cascade[-1])[0].weight)
    base = saliency.Gradient(model).attribute(x)
    last = saliency.Gradient(cascade[-1]).attribute(x)
    assert last.shape == x.shape and finite(last)
    rho = metrics.spearman(base, last)
    assert finite(rho) and float(rho.mean()) < 0.9  # a fully random network's maps are not the trained one's
