"""Benchmark: the perceptual-ball optimisers against the authors' way of running L-BFGS, on the same canvases.

Elliott, Law & Russell run ``torch.optim.LBFGS`` (PyTorch's defaults, ``max_iter`` 100) on one image at a time.
This script measures, on the same canvases and the same standard ``canvas-cnn`` (trained here for a few epochs):

1. ``torch.optim.LBFGS`` one image at a time (the authors' protocol; the reference);
2. rilib's L-BFGS (:func:`rilib.lenses.perceptual.lbfgs`): the same algorithm for every image of a batch at once,
   each with its own history (the chapter's choice);
3. ``torch.optim.LBFGS`` on the summed objective of the whole batch: one history and one step length shared by
   every image;
4. the same with a strong-Wolfe line search;
5. :func:`rilib.attacks.projected_gradient` descending the same objective (L2-normalised steps, best iterate kept).

For each: the seconds, the ratio to the reference, the mean objective reached, the share of canvases whose decision
flipped, and how far its maps agree with the reference's (mean cosine similarity, pointing-game agreement).

    python benchmarks/perceptual_ball.py [--canvases 64] [--iterations 100] [--epochs 3] [--gamma 10]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from rilib import load_dataset
from rilib.lenses import localisation as loc
from rilib.lenses.perceptual import PerceptualBall, explain
from rilib.models import create_model
from rilib.rng import seeded
from rilib.train import fit


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--canvases", type=int, default=64, help="test canvases explained (default 64)")
    parser.add_argument("--iterations", type=int, default=100, help="L-BFGS max_iter / gradient steps (default 100)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs of the explained model (default 3)")
    parser.add_argument("--gamma", type=float, default=10.0, help="weight of the activation term (default 10, the "
                        "value chapter 6 chooses on profile cpu)")
    args = parser.parse_args(argv)

    ds = load_dataset("mnist-canvas")
    with seeded(0):
        model = create_model("canvas-cnn", ds.shape, ds.num_classes, ds.mean, ds.std)
    fit(model, ds, objective="standard", params={}, epochs=args.epochs, weight_decay=0.01, progress=False)
    model.eval()
    with torch.no_grad():
        right = (model(ds.x_test).argmax(1) == ds.y_test).nonzero().flatten()[:args.canvases]
    x, y, masks = ds.x_test[right], ds.y_test[right], ds.annotations_test["masks"][right]
    base = PerceptualBall(layers=5, gamma=args.gamma, iterations=args.iterations, sigma=2.0 * 64 / 224,
                          batch_size=args.canvases)
    runs = {
        "torch LBFGS, one canvas at a time (authors)": replace(base, optimizer="lbfgs-torch", batch_size=1),
        "rilib L-BFGS, per canvas, batched (chapter)": base,
        "torch LBFGS, batch sum (shared history)": replace(base, optimizer="lbfgs-torch"),
        "torch LBFGS, batch sum, strong-Wolfe": replace(base, optimizer="lbfgs-torch", line_search="strong_wolfe"),
        "projected gradient, batched": replace(base, optimizer="gradient", step_size=0.02),
    }
    out, seconds = {}, {}
    for name, settings in runs.items():
        t0 = time.perf_counter()
        out[name] = explain(model, x, settings, target=y)
        seconds[name] = time.perf_counter() - t0
    ref_name = next(iter(runs))
    ref = out[ref_name]
    ref_hits = loc.pointing_game(ref.maps, masks)
    print(f"{len(x)} canvases, canvas-cnn after {args.epochs} epochs, γ {args.gamma:g}, 5 layers, "
          f"{args.iterations} iterations; maps compared with the first row's")
    print(f"{'optimiser':<44}{'s':>8}{'× ref':>8}{'objective':>11}{'flipped':>9}{'map cos':>9}{'PG agree':>10}")
    for name, res in out.items():
        cos = torch.nn.functional.cosine_similarity(res.maps.flatten(1), ref.maps.flatten(1), dim=1).mean()
        agree = (loc.pointing_game(res.maps, masks) == ref_hits).float().mean()
        print(f"{name:<44}{seconds[name]:>8.1f}{seconds[name] / seconds[ref_name]:>8.2f}"
              f"{float(res.objective.mean()):>11.4g}{float((res.margin < 0).float().mean()):>9.1%}"
              f"{float(cos):>9.3f}{float(agree):>10.1%}")


if __name__ == "__main__":
    main()
