"""Every lens and chapter entry point feeds a model inputs on the model's own device and in its dtype.

There is no GPU here, so double precision stands in for the device: the models are converted to float64 and their
input normalisation asserts that what it is fed matches the model's device and dtype. A CPU float32 tensor that
reaches such a model is exactly the tensor that would crash a model on a GPU (``PROFILE=paper`` on CUDA).
"""

from __future__ import annotations

import dataclasses

import matplotlib
import pytest
import torch

from rilib import zoo
from rilib.attacks import PGD, WorstOf, margin_loss, projected_gradient
from rilib.evaluate import accuracy, robust_accuracy
from rilib.lenses import filters, inversion, lipschitz, localisation, metrics, perceptual, saliency

matplotlib.use("Agg")


def strict(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` in float64, refusing any input that is not on its device in its dtype."""
    model = model.double()
    ref = next(model.parameters())

    def check(module, args):
        x = args[0]
        assert x.dtype == ref.dtype and x.device == ref.device, \
            f"fed {x.dtype} on {x.device} to a model in {ref.dtype} on {ref.device}"

    model.normalize.register_forward_pre_hook(check)
    return model.eval()


def test_the_stand_in_catches_a_missed_move(mnist_small, tiny_standard):
    import copy
    model = strict(copy.deepcopy(tiny_standard))
    with pytest.raises(AssertionError, match="fed torch.float32"):
        model(mnist_small.x_test[:2])
    model(mnist_small.x_test[:2].double())


@pytest.fixture(scope="module")
def strict_tiny(tiny_standard):
    import copy
    return strict(copy.deepcopy(tiny_standard))


def _lens_calls(x, y):
    settings = inversion.InversionSettings(steps=2, step_size=0.1)
    return {
        "accuracy": lambda m: accuracy(m, x, y),
        "robust_accuracy": lambda m: robust_accuracy(m, x, y, PGD(eps=0.1, steps=2, restarts=2), progress=False),
        "worst_of": lambda m: WorstOf((PGD(eps=0.1, steps=2), PGD(eps=0.1, steps=2, loss=margin_loss))).run(m, x, y),
        "projected_gradient": lambda m: projected_gradient(m, x, y, eps=0.1, step_size=0.05, steps=2),
        "gradient": lambda m: saliency.Gradient(m).attribute(x),
        "smoothgrad": lambda m: saliency.SmoothGrad(m, n_samples=2).attribute(x, y),
        "ig-zero": lambda m: saliency.IntegratedGradients(m, steps=3).attribute(x),
        "ig-uniform": lambda m: saliency.IntegratedGradients(m, "uniform", n_baselines=2, steps=3).completeness_error(x),
        "shap": lambda m: saliency.GradientSHAP(m, x, n_samples=2).attribute(x),
        "alignment": lambda m: metrics.alignment(m, x),
        "deletion_insertion": lambda m: metrics.deletion_insertion(m, x, torch.rand_like(x), steps=4),
        "deletion_insertion_reference": lambda m: metrics.deletion_insertion_reference(m, x, torch.rand_like(x), 4),
        "invert": lambda m: inversion.invert(m, x, torch.rand_like(x), settings),
        "invert_fake_relu": lambda m: inversion.invert(m, x, torch.rand_like(x), settings, fake_relu=True),
        "generate": lambda m: inversion.generate(m, y, x, inversion.GenerationSettings(steps=2)),
        "representation_distance": lambda m: inversion.representation_distance(m, x, torch.zeros(len(x), 32)),
        "recognised": lambda m: inversion.recognised(m, x, y),
        "first_layer_damping": lambda m: filters.first_layer_damping(m, x, x + 0.1),
        "local_lipschitz": lambda m: lipschitz.local_lipschitz(m, x, eps=0.1, steps=2),
        "gradient_l1": lambda m: lipschitz.gradient_l1(m, x, y),
        "perceptual_ball": lambda m: perceptual.explain(m, x, perceptual.PerceptualBall(layers=1, iterations=2)),
        "perceptual_ball_gradient": lambda m: perceptual.explain(
            m, x, perceptual.PerceptualBall(layers=1, iterations=2, optimizer="gradient")),
        "localisation": lambda m: localisation.weak_localisation(
            perceptual.explain(m, x, perceptual.PerceptualBall(layers=0, iterations=1)).maps,
            torch.tensor([[0, 0, 10, 10]] * len(x))),
        "predicted": lambda m: saliency.predicted(m, x),
    }


@pytest.mark.parametrize("name", list(_lens_calls(None, None)))
def test_every_lens_moves_its_inputs_to_the_model(name, strict_tiny, mnist_small):
    x, y = mnist_small.x_test[:4], mnist_small.y_test[:4]
    _lens_calls(x, y)[name](strict_tiny)


# ---------------------------------------------------------------------------------------------------
# The chapters' entry points, on a tiny profile whose models are trained in a cache of the test's own.

@pytest.fixture(scope="module")
def device_profile(private_cache):
    """A profile named ``device``: the smoke profile's data and epochs on the tiny CNN (a float64 model is slow),
    with every chapter sized to a few images. Every model of its zoo is trained (in float32, as usual), then
    ``zoo.load`` hands out strict float64 models."""
    import rilib.chapters  # noqa: F401  (registers the zoo groups and claims)
    from rilib.chapters import inversion as ch4
    from rilib.chapters import lipschitz as ch5
    from rilib.chapters import perceptual_ball as ch6
    from rilib.chapters import saliency as ch3
    from rilib.lenses import GenerationSettings

    mp = pytest.MonkeyPatch()
    prof = dataclasses.replace(rilib.get_profile("smoke"), name="device", mnist_arch="tiny-cnn", eval_n=4,
                               eval_steps=2, eval_restarts=2)
    # Every size, and the settings of the methods, as small as the code paths allow: a float64 model is slow.
    mp.setitem(ch3.SIZES._items, "device", ch3.SaliencySizes(n=4, sanity_n=2, ig_steps_grid=2, ig_steps_metrics=2))
    for name, value in (("SMOOTHGRAD_SAMPLES", 2), ("SHAP_SAMPLES", 2), ("SHAP_BACKGROUND", 8), ("IG_ZERO_STEPS", 2),
                        ("N_BASELINES", 2), ("DELETION_STEPS", 4)):
        mp.setattr(ch3, name, value)
    mp.setitem(ch4.SIZES._items, "device", ch4.InversionSizes(n=10, invert_steps=2, gen_per_class=1))
    mp.setattr(ch4, "GENERATION", GenerationSettings(steps=2))
    mp.setitem(ch5.SIZES._items, "device", ch5.LipschitzSizes(n=4))
    mp.setitem(ch6.SIZES._items, "device", ch6.PerceptualSizes(n=4, sweep_n=2, calibration=2, iterations=2, epochs=1,
                                                               robust_epochs=1, n_train=64, grid=2))
    for name, value in (("SMOOTHGRAD_SAMPLES", 2), ("IG_STEPS", 2), ("DELETION_STEPS", 4)):
        mp.setattr(ch6, name, value)
    zoo.train_many(zoo.zoo_specs(prof))  # as make book does: one model per core
    real_load = zoo.load
    mp.setattr(zoo, "load", lambda spec: strict(real_load(spec)))
    yield prof
    mp.undo()


def _chapter_calls():
    from rilib.chapters import catalog
    from rilib.chapters import convolution_filters as ch2
    from rilib.chapters import inversion as ch4
    from rilib.chapters import lipschitz as ch5
    from rilib.chapters import perceptual_ball as ch6
    from rilib.chapters import saliency as ch3
    from rilib.chapters import standard_and_robust as ch1

    def ch3_pages(prof):
        models = catalog.load_models(prof)
        x, y = ch3.grid_images(prof, per_class=1)
        x, y = x[:3], y[:3]
        ch3.grid_figures(prof, models, x, y, progress=False)
        ch3.completeness(prof, models, x)
        ch3.summary(prof, ch3.measure(prof, progress=False))

    def ch4_pages(prof):
        models, judges = ch4.load(prof, progress=False)
        results = ch4.images(prof, progress=False)
        ch4.score_table(results, judges)
        ch4.judge_accuracy(prof, judges)

    def ch2_pages(prof):
        models = catalog.load_models(prof)
        ch2.overall(models)
        ch2.damping(prof, models, progress=False)

    return {
        "standard_and_robust": lambda prof: ch1.results_table(prof, progress=False),
        "convolution_filters": ch2_pages,
        "saliency": ch3_pages,
        "inversion": ch4_pages,
        "lipschitz": lambda prof: (ch5.measure(prof, progress=False), ch5.gradient_figure(prof)),
        "perceptual_ball": lambda prof: ch6.summary(ch6.measure(prof, progress=False)),
    }


@pytest.mark.slow
@pytest.mark.parametrize("page", ["standard_and_robust", "convolution_filters", "saliency", "inversion", "lipschitz",
                                  "perceptual_ball"])
def test_every_chapter_moves_its_inputs_to_the_models(page, device_profile):
    import matplotlib.pyplot as plt
    _chapter_calls()[page](device_profile)
    plt.close("all")


@pytest.mark.slow
def test_every_claim_runs_on_models_off_the_default_device(device_profile):
    from rilib.book import ledger
    results = ledger.run(device_profile)
    assert len(results) == len(ledger.list_claims())
