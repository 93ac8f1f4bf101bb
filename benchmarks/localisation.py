"""Benchmark: rilib's batched localisation metrics against Quantus on the same maps, in the same run.

The pointing game (tolerance 1: the maximum itself must be on the mask, Quantus's protocol) and the energy inside
the mask (Quantus's ``RelevanceMassAccuracy``) of the same maps and masks, computed by
:mod:`rilib.lenses.localisation` (batched torch) and by ``quantus`` (NumPy, per batch), each timed over
``--repeats`` runs (best time kept). The scores must agree exactly (the pointing game) or to 1e-5 (the energy).
Goal: rilib at least 10× faster. Weak localisation has no Quantus counterpart; its time is printed alone (its
connected components are scikit-image's: a batched torch label propagation measured here ran 300 times slower).

    python benchmarks/localisation.py [--maps 1000] [--size 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from rilib.lenses import localisation as loc


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--maps", type=int, default=1000, help="maps and masks (default 1000)")
    parser.add_argument("--size", type=int, default=64, help="side of each map in pixels (default 64)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each, best kept (default 3)")
    args = parser.parse_args(argv)
    import quantus

    g = torch.Generator().manual_seed(0)
    n, s = args.maps, args.size
    maps = torch.rand(n, 1, s, s, generator=g) ** 4
    masks = torch.zeros(n, 1, s, s, dtype=torch.bool)
    corner = torch.randint(0, s // 2, (n, 2), generator=g)
    for i, (r, c) in enumerate(corner.tolist()):
        masks[i, 0, r:r + s // 3, c:c + s // 3] = True
    a, m = maps.numpy(), masks.float().numpy()
    kw = dict(model=None, x_batch=np.zeros_like(a), y_batch=np.zeros(n, dtype=int), a_batch=a, s_batch=m,
              device="cpu", batch_size=n)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q_pg_t, q_pg = best_of(lambda: quantus.PointingGame(disable_warnings=True)(**kw), args.repeats)
        q_m_t, q_m = best_of(lambda: quantus.RelevanceMassAccuracy(disable_warnings=True)(**kw), args.repeats)
    r_pg_t, r_pg = best_of(lambda: loc.pointing_game(maps, masks, tolerance=1), args.repeats)
    r_m_t, r_m = best_of(lambda: loc.energy_in_mask(maps, masks), args.repeats)
    assert np.array_equal(np.asarray(q_pg, dtype=bool), r_pg.numpy()), "pointing game disagrees with Quantus"
    np.testing.assert_allclose(np.asarray(q_m, dtype=np.float64), r_m.numpy(), rtol=1e-5)

    print(f"{n} maps of {s}×{s}; best of {args.repeats} runs; scores identical to Quantus")
    print(f"{'metric':<22}{'rilib s':>10}{'Quantus s':>12}{'speed-up':>10}")
    for name, ours, theirs in (("pointing game", r_pg_t, q_pg_t), ("energy in mask", r_m_t, q_m_t)):
        print(f"{name:<22}{ours:>10.4f}{theirs:>12.4f}{theirs / ours:>9.1f}×")
    total = (q_pg_t + q_m_t) / (r_pg_t + r_m_t)
    print(f"both: rilib is {total:.1f}× faster than Quantus (goal: at least 10×)")

    boxes = torch.stack([corner[:, 1], corner[:, 0], corner[:, 1] + s // 3, corner[:, 0] + s // 3], 1)
    k = min(n, 200)
    w_t, _ = best_of(lambda: loc.weak_localisation(maps[:k], boxes[:k]), args.repeats)
    print(f"weak localisation (no Quantus counterpart), {k} maps × {len(loc.THRESHOLDS)} thresholds: {w_t:.3f} s")

if __name__ == "__main__":
    main()
