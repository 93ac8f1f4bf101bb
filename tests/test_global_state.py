"""No hidden global state: rilib leaves the caller's random state, float mode and model modes as it found them,
asks for a profile where a default would silently pick one, and fails loudly where it cannot do what it was
asked."""

from __future__ import annotations

import pytest
import torch

import rilib
from rilib import RilibError, zoo
from rilib.lenses import lipschitz, metrics, saliency
from rilib.rng import flush_denormal_is_on

from conftest import train_tiny


def _untouched(call):
    """Whether ``call()`` leaves the global generator where it was."""
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    call()
    return torch.equal(torch.rand(3), expected)


def test_randomness_goes_through_forks(tiny_standard, mnist_small):
    x = mnist_small.x_test[:4]
    assert _untouched(lambda: metrics.randomize_top_layers(tiny_standard, 1))
    assert _untouched(lambda: saliency.SmoothGrad(tiny_standard, n_samples=3).attribute(x))
    spec = rilib.Spec.make("mnist-5k", "tiny-cnn", "standard", epochs=1, n_train=200, n_test=50, batch_size=64, seed=31)
    assert _untouched(lambda: zoo.train(spec, progress=False))
    assert _untouched(lambda: zoo.evaluate(spec, rilib.PGD(eps=0.1, steps=2), "smoke", n=10, progress=False))
    # ... and a seeded computation gives the same answer whatever ran before it
    a = saliency.SmoothGrad(tiny_standard, n_samples=3).attribute(x)
    torch.rand(100)
    assert torch.equal(a, saliency.SmoothGrad(tiny_standard, n_samples=3).attribute(x))


def test_training_restores_the_float_mode(mnist_small):
    assert not flush_denormal_is_on()
    train_tiny(mnist_small.subset(n_train=128, n_test=32), epochs=1)
    assert not flush_denormal_is_on()
    torch.set_flush_denormal(True)
    try:
        train_tiny(mnist_small.subset(n_train=128, n_test=32), epochs=1)
        assert flush_denormal_is_on()
    finally:
        torch.set_flush_denormal(False)


def test_gradient_l1_restores_the_model_mode(tiny_standard, mnist_small):
    tiny_standard.train()
    try:
        lipschitz.gradient_l1(tiny_standard, mnist_small.x_test[:4], mnist_small.y_test[:4])
        assert tiny_standard.training
    finally:
        tiny_standard.eval()


def test_the_zoo_asks_for_a_profile():
    for call in (lambda: zoo.resolve("mnist-standard"), lambda: zoo.get("mnist-standard"),
                 lambda: zoo.evaluate("mnist-standard", rilib.PGD(eps=0.1))):
        with pytest.raises(TypeError, match="profile"):
            call()


def test_deleting_a_model_fails_loudly(monkeypatch):
    spec = rilib.Spec.make("mnist-5k", "tiny-cnn", "standard", epochs=1, n_train=200, n_test=50, batch_size=64, seed=32)
    zoo.train(spec, progress=False)

    def refuse(path, *a, **k):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("shutil.rmtree", refuse)
    with pytest.raises(RilibError, match="Could not delete"):
        zoo.delete(spec)
    assert zoo.is_trained(spec)
    monkeypatch.undo()
    assert zoo.delete(spec) and not zoo.delete(spec)


def test_claims_say_when_values_were_not_finite():
    from rilib.book.ledger import margins_above_zero
    from rilib.lenses.stats import mean_ci
    measured, failed = margins_above_zero({"a": mean_ci(torch.tensor([0.2, 0.3, float("nan"), 0.25]))})
    assert "1 non-finite left out" in measured["a"] and failed == []


def test_a_table_mean_that_left_values_out_is_named_in_the_claim():
    import pandas as pd

    from rilib.book.ledger import join_notes, nonfinite_note
    from rilib.lenses.stats import mean_ci
    rows = {"a": mean_ci(torch.tensor([1.0, float("inf"), 2.0])), "b": mean_ci(torch.tensor([1.0, 2.0]))}
    table = pd.DataFrame({"psnr": [iv.mean for iv in rows.values()],
                          "psnr non-finite": [iv.nonfinite for iv in rows.values()]}, index=list(rows))
    assert nonfinite_note(table, ["psnr"], ["a", "b"]) == "non-finite values left out of the means: 1 in psnr (a)"
    assert nonfinite_note(table, ["psnr"], ["b"]) == ""
    assert join_notes("x", "", "y") == "x; y"
