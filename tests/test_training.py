"""Objectives, the training loop and the zoo: caching, tamper detection, resume, NaN."""

from __future__ import annotations

import json

import pytest
import torch

import rilib
from rilib import RilibError, zoo
from rilib.attacks import PGD
from rilib.evaluate import accuracy, robust_accuracy
from rilib.train import OBJECTIVES, fit

from conftest import train_tiny


@pytest.mark.slow
def test_robust_model_beats_standard_under_pgd(mnist_small, tiny_standard):
    robust = train_tiny(mnist_small, "pgd", {"eps": 0.1, "steps": 5}, epochs=8, eps_warmup=2, lr=3e-3)
    x, y = mnist_small.x_test, mnist_small.y_test
    attack = PGD(eps=0.1, steps=20, restarts=2)
    torch.manual_seed(0)
    acc_std = robust_accuracy(tiny_standard, x, y, attack, progress=False)
    torch.manual_seed(0)
    acc_rob = robust_accuracy(robust, x, y, attack, progress=False)
    assert acc_rob > acc_std + 0.15, (acc_rob, acc_std)


@pytest.mark.parametrize("objective,params", [("standard", {}), ("pgd", {"eps": 0.1, "steps": 2}),
                                              ("trades", {"eps": 0.1, "steps": 2}), ("fgsm_rs", {"eps": 0.1})])
def test_every_objective_trains(mnist_small, objective, params):
    ds = mnist_small.subset(n_train=256, n_test=64)
    hist = fit(rilib.create_model("tiny-cnn", ds.shape, 10, ds.mean, ds.std), ds, objective=objective,
               params=params, epochs=2, progress=False)
    assert len(hist) == 2 and hist[1]["train_loss"] < hist[0]["train_loss"] * 1.5
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in hist)


class _Recording(torch.nn.Module):
    """A linear classifier that records the smallest and largest pixel value of every input it sees."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(28 * 28, 10)
        self.seen: list[tuple[float, float]] = []

    def forward(self, x):
        self.seen.append((float(x.detach().min()), float(x.detach().max())))
        return self.linear(x.flatten(1))


@pytest.mark.parametrize("box_start", [True, False])
def test_fgsm_rs_takes_its_gradient_where_wong_et_al_take_it(box_start):
    """Wong et al.'s MNIST code takes FGSM's gradient at the random start before it is clipped to the image box;
    their CIFAR-10 code (and ``box_start=True``) clips first. Both return a point in the ε-ball and the box."""
    torch.manual_seed(0)
    model, x, y = _Recording(), torch.zeros(8, 1, 28, 28), torch.arange(8)
    loss, logits = OBJECTIVES["fgsm_rs"](model, x, y, eps=0.3, alpha=0.375, box_start=box_start)
    (gradient_at, _), trained_on = model.seen[0], model.seen[-1]
    assert (gradient_at < -0.2) is not box_start, model.seen   # x = 0: an unclipped start goes below 0
    assert 0.0 <= trained_on[0] and trained_on[1] <= 0.3 + 1e-6, trained_on
    assert torch.isfinite(loss) and logits.shape == (8, 10)


def _spec(**kw):
    base = dict(arch="tiny-cnn", objective="standard", epochs=2, n_train=300, n_test=100, batch_size=64)
    base.update(kw)
    return rilib.Spec.make("mnist-5k", base.pop("arch"), base.pop("objective"), **base)


def test_zoo_does_not_retrain_a_cached_spec(monkeypatch):
    spec = _spec(seed=11)
    folder = zoo.train(spec, progress=False)
    stamp = (folder / "model.pt").stat().st_mtime_ns

    def no_training(*a, **k):
        raise AssertionError("a cached spec was trained again")

    monkeypatch.setattr("rilib.zoo.fit", no_training)
    assert zoo.train(spec, progress=False) == folder
    model = zoo.get(spec, "smoke", progress=False)
    assert (folder / "model.pt").stat().st_mtime_ns == stamp
    assert isinstance(model, torch.nn.Module)
    info = json.loads((folder / "metrics.json").read_text())
    assert info["key"] == spec.key() and len(info["history"]) == 2 and "versions" in info
    # where it was trained, as far as that decides the weights' last bits (this process trained it)
    assert info["hardware"] == {"device": "cpu", "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                                "threads": torch.get_num_threads()}


def test_spec_hash_changes_with_any_field():
    a, b = _spec(), _spec(epochs=3)
    assert a.key() == _spec().key() and a.key() != b.key() and a.folder() != b.folder()


def test_zoo_rejects_a_tampered_checkpoint():
    spec = _spec(seed=12)
    folder = zoo.train(spec, progress=False)
    weights = folder / "model.pt"
    blob = bytearray(weights.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.raises(RilibError, match="corrupt or was modified") as err:
        zoo.load(spec)
    assert str(folder) in str(err.value) and "trained again" in str(err.value)


class Interrupt(Exception):
    pass


def test_interrupted_training_resumes_and_matches_an_uninterrupted_run(monkeypatch, tmp_path):
    spec = _spec(epochs=3, seed=13)

    def stop_after_first(epoch, record):
        if epoch == 0:
            raise Interrupt

    with pytest.raises(Interrupt):
        zoo.train(spec, progress=False, on_epoch_end=stop_after_first)
    folder = spec.folder()
    assert (folder / "checkpoint.pt").exists() and not (folder / "model.pt").exists()

    epochs_run = []
    zoo.train(spec, progress=False, on_epoch_end=lambda e, r: epochs_run.append(e))
    assert epochs_run == [1, 2], "resume must continue after the last complete epoch"
    assert not (folder / "checkpoint.pt").exists()
    resumed = zoo.load(spec).state_dict()

    monkeypatch.setenv("RILIB_CACHE", str(tmp_path))  # a fresh zoo: the same spec, uninterrupted
    zoo.train(spec, progress=False)
    straight = zoo.load(spec).state_dict()
    for k in straight:
        assert torch.allclose(resumed[k], straight[k], atol=1e-6), k


def test_nan_loss_is_a_clear_error(mnist_small, monkeypatch):
    def broken(model, x, y):
        logits = model(x)
        return logits.sum() * float("nan"), logits

    monkeypatch.setitem(OBJECTIVES._items, "broken", broken)
    ds = mnist_small.subset(n_train=64, n_test=16)
    with pytest.raises(RilibError, match="loss became nan at epoch 1, batch 1"):
        fit(rilib.create_model("tiny-cnn", ds.shape, 10, ds.mean, ds.std), ds, objective="broken",
            params={}, epochs=1, progress=False)


@pytest.mark.parametrize("clip", [None, 1e-3])
def test_grad_clip_bounds_the_step_and_keeps_unclipped_keys(mnist_small, clip):
    """One SGD step (momentum starts at zero, no decay) moves the weights by lr · the gradient: with ``grad_clip``
    that is at most lr · clip; without it, far more. A spec without ``grad_clip`` hashes as before the field existed."""
    ds = mnist_small.subset(n_train=32, n_test=16)
    model = rilib.create_model("tiny-cnn", ds.shape, 10, ds.mean, ds.std)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    fit(model, ds, objective="standard", params={}, epochs=1, batch_size=32, optimizer="sgd", lr=1.0,
        grad_clip=clip, progress=False)
    moved = float((torch.cat([p.detach().flatten() for p in model.parameters()]) - before).norm())
    if clip is None:
        assert moved > 1e-2
    else:
        assert moved <= 1.0 * clip * 1.001
    spec = _spec(grad_clip=clip)
    assert ("grad_clip" in spec.to_dict()) == (clip is not None)
    assert rilib.Spec.from_dict(spec.to_dict()) == spec
    assert (spec.key() == _spec().key()) == (clip is None)


def test_clean_accuracy_is_recorded(mnist_small):
    spec = _spec(seed=14)
    zoo.train(spec, progress=False)
    ds = rilib.load_dataset("mnist-5k", 300, 100)
    assert zoo.metrics(spec)["clean_acc"] == pytest.approx(accuracy(zoo.load(spec), ds.x_test, ds.y_test))


def test_bf16_precision_runs_the_objective_under_autocast_and_keeps_float32_weights(mnist_small, monkeypatch):
    """``precision="bf16"``: the objective sees bfloat16 activations (autocast), the weights and the loss the optimiser
    steps on stay float32, and the trained weights differ from a float32 run's from the same seed; a spec at fp32
    hashes as before the field existed, one at bf16 does not, and its recipe label says so."""
    seen = []

    def spy(model, x, y):
        logits = model(x)
        seen.append(logits.dtype)
        return torch.nn.functional.cross_entropy(logits, y), logits

    monkeypatch.setitem(OBJECTIVES._items, "spy", spy)
    ds = mnist_small.subset(n_train=64, n_test=16)
    weights = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = rilib.create_model("tiny-cnn", ds.shape, 10, ds.mean, ds.std)
        fit(model, ds, objective="spy", params={}, epochs=1, batch_size=32, precision=precision, progress=False)
        weights[precision] = torch.cat([p.detach().flatten() for p in model.parameters()])
        assert all(p.dtype == torch.float32 for p in model.parameters())
    assert seen == [torch.float32] * 2 + [torch.bfloat16] * 2
    assert torch.isfinite(weights["bf16"]).all() and not torch.equal(weights["fp32"], weights["bf16"])
    assert _spec(precision="fp32").key() == _spec().key() and _spec(precision="bf16").key() != _spec().key()
    assert rilib.Spec.from_dict(_spec(precision="bf16").to_dict()) == _spec(precision="bf16")
    assert "bf16 mixed precision" in _spec(precision="bf16").optimizer_label()
    with pytest.raises(RilibError, match="Unknown training precision 'fp8'. Valid: fp32, bf16"):
        fit(model, ds, objective="spy", params={}, epochs=1, precision="fp8", progress=False)


def test_precision_auto_follows_the_cpu_and_rilib_precision_overrides_it(monkeypatch):
    import rilib.chapters.catalog
    from rilib import train
    monkeypatch.delenv("RILIB_PRECISION", raising=False)
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(train, "native_bf16", lambda native=native: native)
        assert train.resolve_precision("auto") == expected and train.resolve_precision("fp32") == "fp32"
    monkeypatch.setenv("RILIB_PRECISION", "fp32")
    assert rilib.get_profile("cpu").training_precision() == "fp32"
    assert rilib.chapters.catalog.catalog_zoo(rilib.get_profile("cpu"))["mnist-pgd-0.3"].precision == "fp32"
    monkeypatch.setenv("RILIB_PRECISION", "bf16")
    assert rilib.chapters.catalog.catalog_zoo(rilib.get_profile("cpu"))["mnist-pgd-0.3"].precision == "bf16"
    assert rilib.get_profile("paper").training_precision() == "bf16"  # the variable wins over every profile
    monkeypatch.setenv("RILIB_PRECISION", "half")
    with pytest.raises(RilibError, match="Unknown training precision 'half' .from RILIB_PRECISION.. Valid: fp32, "
                                         "bf16, auto"):
        rilib.get_profile("cpu").training_precision()


def test_a_model_missing_in_one_precision_points_to_the_zoo_copy_in_the_other(monkeypatch):
    """With RILIB_TRAIN=0, asking for a bf16 model that the zoo holds only in fp32 (a zoo packed on a machine
    without native bfloat16) says which RILIB_PRECISION finds it; a model the zoo lacks in both says nothing of it."""
    zoo.train(_spec(seed=15), progress=False)
    monkeypatch.setenv("RILIB_TRAIN", "0")
    with pytest.raises(RilibError, match="trained in fp32 .*set RILIB_PRECISION=fp32"):
        zoo.train(_spec(seed=15, precision="bf16"), progress=False)
    with pytest.raises(RilibError, match="RILIB_TRAIN=0 forbids") as err:
        zoo.train(_spec(seed=16, precision="bf16"), progress=False)
    assert "RILIB_PRECISION" not in str(err.value)


def test_the_training_monitor_changes_no_weight(mnist_small):
    """The book sets ``monitor_eps`` only where a page draws the learning curve (chapters.catalog): dropping the
    PGD-10 monitor, whose random starts draw from the global generator, must leave the trained weights unchanged."""
    ds = mnist_small.subset(n_train=256, n_test=64)

    def weights(monitor_eps):
        torch.manual_seed(3)
        model = rilib.create_model("tiny-cnn", ds.shape, 10, ds.mean, ds.std)
        hist = fit(model, ds, objective="pgd", params={"eps": 0.1, "steps": 2}, epochs=3, seed=5,
                   monitor_eps=monitor_eps, monitor_n=32, progress=False)
        return model.state_dict(), [(h["monitor_robust_acc"], h["monitor_n"]) for h in hist]

    (plain, none), (watched, curve) = weights(None), weights(0.1)
    assert none == [(None, None)] * 3 and all(0 <= a <= 1 and n == 32 for a, n in curve)
    assert all(torch.equal(plain[k], watched[k]) for k in plain)


def test_the_epoch_line_says_how_many_images_the_monitor_attacked(capsys):
    """The monitor attacks the first ``monitor_n`` test images and the test accuracy uses all of them, so the line
    must say so: a monitor above the test accuracy is then a smaller sample, not a bug."""
    record = {"train_loss": 1.2, "test_acc": 0.920, "monitor_robust_acc": 0.925, "monitor_n": 200, "seconds": 5.0}
    zoo._epoch_line("mnist-trades", 12)(5, record)
    assert capsys.readouterr().out.strip() == ("[rilib] mnist-trades: epoch 6/12, train loss 1.200, test acc 0.920, "
                                               "PGD-10 monitor 0.925 (first 200 test images), 5 s")
    zoo._epoch_line("mnist-standard", 12)(0, {**record, "monitor_robust_acc": None, "monitor_n": None})
    assert "monitor" not in capsys.readouterr().out


def test_only_the_models_whose_learning_curves_a_page_draws_run_the_monitor():
    import rilib.chapters  # noqa: F401  (registers the book's zoo groups)
    from rilib.chapters import standard_and_robust as ch1
    prof = rilib.get_profile("cpu")
    monitored = {n for n, s in zoo.zoo_specs(prof).items() if s.monitor_eps is not None}
    assert monitored and monitored <= set(ch1.chapter_models(prof)), sorted(monitored - set(ch1.chapter_models(prof)))
