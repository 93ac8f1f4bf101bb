"""Caches that cannot go stale: evaluation keys that name a loss by its code, a dataset cache keyed on everything
it reads, and subsets that never hand out the cached tensors themselves."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch

import rilib
from rilib import zoo
from rilib.attacks import PGD


def _loss_a():
    def loss(model, x, y):
        return torch.nn.functional.cross_entropy(model(x), y, reduction="none")
    return loss


def _loss_b():
    def loss(model, x, y):  # same __name__, another objective: the margin of the true class
        z = model(x)
        return -z.gather(1, y.view(-1, 1)).squeeze(1)
    return loss


def test_two_losses_with_the_same_name_get_their_own_evaluations():
    spec = rilib.Spec.make("mnist-5k", "tiny-cnn", "standard", epochs=1, n_train=200, n_test=50, batch_size=64,
                           seed=21)
    a, b = _loss_a(), _loss_b()
    assert a.__name__ == b.__name__ == "loss"
    zoo.evaluate(spec, PGD(eps=0.1, steps=3, loss=a), "smoke", n=20, progress=False)
    zoo.evaluate(spec, PGD(eps=0.1, steps=3, loss=b), "smoke", n=20, progress=False)
    cache = json.loads((spec.folder() / "evals.json").read_text())
    assert len(cache) == 2, list(cache)


def test_a_chains_first_attack_is_cached_as_its_own_evaluation_with_the_same_number():
    from rilib.attacks import WorstOf, margin_loss
    from rilib.evaluate import robust_accuracy
    from rilib.rng import seeded
    spec = rilib.Spec.make("mnist-5k", "tiny-cnn", "standard", epochs=1, n_train=200, n_test=50, batch_size=64,
                           seed=22)
    first = PGD(eps=0.05, steps=2, step_size=0.01)
    chain = WorstOf((first, PGD(eps=0.05, steps=2, step_size=0.01, loss=margin_loss)))
    record = zoo.evaluation(spec, chain, "smoke", n=40, progress=False)
    cache = json.loads((spec.folder() / "evals.json").read_text())
    assert len(cache) == 2, list(cache)
    alone = zoo.evaluation(spec, first, "smoke", n=40, progress=False)  # read, not run
    assert alone["robust_acc"] == record["stages"][0]["robust_acc"] and "from" in alone
    ds = rilib.load_dataset(spec.dataset, spec.n_train, spec.n_test)
    with seeded(0):  # what running the attack alone gives
        assert robust_accuracy(zoo.load(spec), ds.x_test[:40], ds.y_test[:40], first, progress=False) == \
            alone["robust_acc"]


def test_editing_a_loaded_dataset_in_place_leaves_the_next_load_unchanged():
    first = rilib.load_dataset("mnist-5k")
    total = float(first.x_train.sum())
    first.x_train.zero_()
    first.y_test.fill_(3)
    again = rilib.load_dataset("mnist-5k")
    assert float(again.x_train.sum()) == total
    assert again.y_test.bincount().tolist() == [100] * 10


def _write_mnist(root, label):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split, n in (("train", 20), ("t10k", 10)):
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        with open(raw / f"{split}-images-idx3-ubyte", "wb") as fh:
            fh.write(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        with open(raw / f"{split}-labels-idx1-ubyte", "wb") as fh:
            fh.write(struct.pack(">II", 2049, n) + np.full(n, label, dtype=np.uint8).tobytes())


def test_the_dataset_cache_follows_the_data_root(tmp_path, monkeypatch):
    _write_mnist(tmp_path / "a", 1)
    _write_mnist(tmp_path / "b", 7)
    monkeypatch.setenv("RILIB_DATA_DIR", str(tmp_path / "a"))
    assert set(rilib.load_dataset("mnist").y_train.tolist()) == {1}
    monkeypatch.setenv("RILIB_DATA_DIR", str(tmp_path / "b"))
    assert set(rilib.load_dataset("mnist").y_train.tolist()) == {7}


def test_a_corrupt_results_file_reads_as_missing(tmp_path):
    from rilib import paths
    path = tmp_path / "results.pt"
    path.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="recomputing"):
        assert paths.load_cache(path, lambda p: torch.load(p, weights_only=True)) is None
    assert not path.exists() and (tmp_path / "results.pt.corrupt").exists()
    assert paths.load_cache(tmp_path / "missing.pt", paths.read_json) is None
