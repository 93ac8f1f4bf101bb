"""One figure style for the whole book, and the plots the chapters share.

Call :func:`use_style` once at the top of a notebook. Every model has one :class:`Style` (a short label and a
colour), registered by the chapter that defines it in :data:`STYLES`, so a model looks the same in every figure
and nothing here reads meaning out of a model's name. A diverging colormap (``SIGNED_CMAP``) is used for signed
maps.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib as mpl
import matplotlib.pyplot as plt

from ..registry import Registry

SIGNED_CMAP = "RdBu_r"
#: Colours by training objective (PGD-AT models get a shade of its colour per ε, see :func:`pgd_color`).
OBJECTIVE_COLORS = {"standard": "#4d4d4d", "pgd": "#1f77b4", "trades": "#2ca02c", "fgsm_rs": "#d62728",
                    "input_gradient_penalty": "#9467bd", "input_gradient_penalty_l2": "#c5b0d5",
                    "jacobian_penalty": "#8c564b", "label_smoothing": "#ff7f0e", "distillation": "#e377c2",
                    "ce_random_kl": "#bcbd22"}
_PGD_SHADES = {0.1: "#9ecae1", 0.2: "#4292c6", 0.3: "#08519c"}


@dataclass(frozen=True)
class Style:
    """How a model appears in figures: a short ``label`` and a ``color``."""

    label: str
    color: str


#: The style of every model name a chapter defines; :func:`style` falls back to the name in grey.
STYLES: Registry[Style] = Registry("model style")


def pgd_color(eps: float) -> str:
    """The colour of a PGD-AT model: darker blue for a larger training ε."""
    return _PGD_SHADES.get(round(eps, 6), OBJECTIVE_COLORS["pgd"])


def style(name: str) -> Style:
    """The registered style of model ``name`` (its name in grey if none is registered)."""
    return STYLES[name] if name in STYLES else Style(name, "#7f7f7f")


def model_label(name: str) -> str:
    """The short label of model ``name`` in figures."""
    return style(name).label


def model_color(name: str) -> str:
    """The colour of model ``name`` in figures."""
    return style(name).color

STYLE = {
    "figure.dpi": 110, "savefig.dpi": 150, "figure.figsize": (7.0, 3.6), "font.size": 10,
    "axes.titlesize": 11, "axes.labelsize": 10, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.alpha": 0.3, "legend.frameon": False, "legend.fontsize": 9,
    "image.cmap": "gray", "figure.constrained_layout.use": True,
}


def use_style() -> None:
    """Apply the book's matplotlib style."""
    mpl.rcParams.update(STYLE)


def learning_curves(histories: dict[str, list[dict]], title: str = "") -> plt.Figure:
    """Three panels over epochs: training loss (of each model's own objective), clean test accuracy, and
    the PGD-10 monitor accuracy at the model's training ε (robust models only)."""
    use_style()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    panels = [("train_loss", "training loss (own objective)", None),
              ("test_acc", "clean test accuracy (%)", 100),
              ("monitor_robust_acc", "PGD-10 accuracy at training ε (%)", 100)]
    for ax, (key, label, scale) in zip(axes, panels):
        for name, hist in histories.items():
            pts = [(r["epoch"], r[key]) for r in hist if r.get(key) is not None]
            if not pts:
                continue
            ep, val = zip(*pts)
            val = [v * scale for v in val] if scale else val
            ax.plot(ep, val, marker="o", ms=3, label=model_label(name), color=model_color(name))
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
    axes[1].legend(loc="lower right")
    if title:
        fig.suptitle(title)
    return fig


def weak_vs_strong(table, weak_col: str, strong_col: str, title: str = "") -> plt.Figure:
    """Grouped bars: accuracy of each model under a weak and a strong attack (percent)."""
    use_style()
    import numpy as np

    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    names = list(table.index)
    pos = np.arange(len(names))
    ax.bar(pos - 0.2, table[weak_col] * 100, 0.4, label=weak_col, color="#bdbdbd")
    ax.bar(pos + 0.2, table[strong_col] * 100, 0.4, label=f"{strong_col} (coloured by model)",
           color=[model_color(n) for n in names])
    ax.set_xticks(pos, [model_label(n) for n in names], rotation=30, ha="right")  # long names would overlap
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(loc="upper left")
    if title:
        ax.set_title(title)
    return fig


def metrics_by_depth(per_depth, metrics=("sparsity", "variance_entropy", "orthogonality"),
                     labels=("sparsity (share of sparse kernels)", "variance entropy (log₁₀)",
                             "orthogonality (1 − mean |cos|)")) -> plt.Figure:
    """One panel per filter metric against the depth bin (``first``, then deciles of normalised depth),
    one line per model. ``per_depth`` is :func:`rilib.chapters.convolution_filters.per_depth`'s long table."""
    use_style()
    fig, axes = plt.subplots(1, len(metrics), figsize=(11, 3.4))
    order = list(dict.fromkeys(sorted(per_depth["bin"], key=lambda b: -1.0 if b == "first" else float(b[1:]))))
    for ax, metric, label in zip(axes, metrics, labels):
        for name, g in per_depth.groupby("model", sort=False):
            g = g.set_index("bin").reindex(order)
            ax.plot(range(len(order)), g[metric], marker="o", ms=4, label=model_label(name), color=model_color(name))
        ax.set_xticks(range(len(order)), order)
        ax.set_xlabel("depth bin")
        ax.set_ylabel(label)
    axes[0].set_ylim(bottom=0)
    axes[0].legend(loc="best")
    return fig


def kernel_grid(weights: dict, max_filters: int = 16, title: str = "") -> plt.Figure:
    """First-layer 3×3 kernels, one row per model (first input channel), each kernel on a symmetric
    diverging scale (red positive, blue negative)."""
    use_style()
    rows = len(weights)
    fig, axes = plt.subplots(rows, max_filters, figsize=(max_filters * 0.55, rows * 0.7 + 0.4),
                             squeeze=False, layout="constrained")
    for r, (name, w) in enumerate(weights.items()):
        w = w.detach().cpu()
        for c in range(max_filters):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            for side in ax.spines.values():
                side.set_visible(False)
            if c < w.shape[0]:
                k = w[c, 0]
                lim = float(k.abs().max()) or 1.0
                ax.imshow(k, cmap=SIGNED_CMAP, vmin=-lim, vmax=lim)
        axes[r, 0].set_ylabel(model_label(name), rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def pca_bases(bases: dict, title: str = "") -> plt.Figure:
    """For each model, the nine principal 3×3 kernel components (diverging colours) and the share of
    variance each explains. ``bases[name] = (basis (9, 3, 3), ratio (9,))``."""
    use_style()
    rows = len(bases)
    fig, axes = plt.subplots(rows, 10, figsize=(11, rows * 1.05 + 0.4), squeeze=False,
                             gridspec_kw={"width_ratios": [1] * 9 + [3]})
    for r, (name, (basis, ratio)) in enumerate(bases.items()):
        for c in range(9):
            ax = axes[r, c]
            lim = float(basis[c].abs().max()) or 1.0
            ax.imshow(basis[c].cpu(), cmap=SIGNED_CMAP, vmin=-lim, vmax=lim)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if r == 0:
                ax.set_title(f"PC{c + 1}", fontsize=8)
        axes[r, 0].set_ylabel(model_label(name), rotation=0, ha="right", va="center", fontsize=8)
        ax = axes[r, 9]
        ax.bar(range(1, 10), ratio.cpu() * 100, color=model_color(name))
        ax.set_ylim(0, max(float(share.max()) for _, share in bases.values()) * 110)
        ax.set_ylabel("% of variance", fontsize=7)
        ax.set_xticks(range(1, 10))
        ax.tick_params(labelsize=7)
        if r == rows - 1:
            ax.set_xlabel("component", fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def interval_bars(table, column: str, low: str, high: str, ylabel: str, title: str = "") -> plt.Figure:
    """One bar per model (rows of ``table``) with its 95 % interval as an error bar."""
    use_style()
    import numpy as np

    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    names = list(table.index)
    vals = table[column].to_numpy()
    err = np.vstack([vals - table[low].to_numpy(), table[high].to_numpy() - vals])
    ax.bar(range(len(names)), vals, yerr=err, capsize=3, color=[model_color(n) for n in names])
    ax.set_xticks(range(len(names)), [model_label(n) for n in names])
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return fig


def seed_spread(panels: dict, intervals: dict, ylabel: str | dict, title: str = "") -> plt.Figure:
    """One panel per measurement (``panels[title][arm]``: one value per training seed), each arm's seeds as dots and
    their mean with its interval (``intervals[title][arm]``, an object with ``mean``, ``low`` and ``high``) as a bar.
    ``ylabel``: one label for every panel, or a label per panel title."""
    use_style()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.2), squeeze=False)
    for ax, (name, arms) in zip(axes[0], panels.items()):
        for i, (arm, values) in enumerate(arms.items()):
            iv = intervals[name][arm]
            ax.errorbar([i], [iv.mean], yerr=[[iv.mean - iv.low], [iv.high - iv.mean]], fmt="_", ms=14, capsize=4,
                        color=model_color(arm), lw=1.5)
            ax.scatter([i + 0.12] * len(values), values, s=14, color=model_color(arm), alpha=0.8, zorder=3)
        ax.set_xticks(range(len(arms)), [model_label(a) for a in arms], rotation=30, ha="right")
        ax.set_title(name)
        ax.set_ylabel(ylabel[name] if isinstance(ylabel, dict) else ylabel)
    if title:
        fig.suptitle(title)
    return fig


def saliency_grid(x, maps: dict, signed: bool = True, title: str = "", row_labels=None) -> plt.Figure:
    """Rows = images, columns = the input and then one map per model (``maps[name]`` shaped like ``x``).

    Each map is summed over channels and drawn on its own symmetric scale: diverging (red positive, blue
    negative) when ``signed``, otherwise magnitude from white to black. The cells are tiled into one
    image, so a grid of hundreds of cells draws in a fraction of a second.
    """
    import numpy as np

    cmap = mpl.colormaps[SIGNED_CMAP if signed else "gray_r"]
    columns = {"input": [_gray_rgb(img) for img in x]}
    for name, m in maps.items():
        cells = []
        for r in range(len(x)):
            s = m[r].detach().cpu().sum(0).numpy()
            lim = float(np.abs(s).max()) or 1.0
            cells.append(cmap((s / lim + 1) / 2 if signed else np.abs(s) / lim)[..., :3])
        columns[name] = cells
    ylabel = "test image (true label)" if row_labels is not None else "test image"
    return _mosaic_figure(columns, title, row_labels, ylabel)


def image_grid(columns: dict, title: str = "", row_labels=None, ylabel: str = "") -> plt.Figure:
    """Rows = images, one column per entry of ``columns`` (each (N, C, H, W) in [0, 1]), drawn as images."""
    return _mosaic_figure({name: [_gray_rgb(img) for img in imgs] for name, imgs in columns.items()},
                          title, row_labels, ylabel)


def _gray_rgb(img):
    """An image (C, H, W) in [0, 1] as an RGB array (H, W, 3)."""
    a = img.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
    return a if a.shape[-1] == 3 else mpl.colormaps["gray"](a[..., 0])[..., :3]


def _mosaic_figure(columns: dict, title: str, row_labels, ylabel: str) -> plt.Figure:
    """Tile RGB cells (``columns[name]`` a list of (H, W, 3) arrays, one per row) into one image on one axes,
    with the column names on top and the row labels on the left."""
    use_style()
    import numpy as np

    cols = list(columns)
    n = len(columns[cols[0]])
    h, w = columns[cols[0]][0].shape[:2]
    pad = max(1, h // 14)
    mosaic = np.ones((n * (h + pad) - pad, len(cols) * (w + pad) - pad, 3))
    for c, name in enumerate(cols):
        for r, cell in enumerate(columns[name]):
            mosaic[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = np.clip(cell, 0, 1)
    fig, ax = plt.subplots(figsize=(len(cols) * 0.85 + 0.6, n * 0.85 + 0.6), layout="constrained")
    ax.imshow(mosaic, interpolation="nearest")
    ax.grid(False)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.xaxis.tick_top()
    ax.set_xticks([c * (w + pad) + w / 2 for c in range(len(cols))],
                  [model_label(name) for name in cols], fontsize=8)
    ax.set_yticks([r * (h + pad) + h / 2 for r in range(n)],
                  [str(v) for v in row_labels] if row_labels is not None else [""] * n, fontsize=8)
    ax.tick_params(length=0)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def metric_vs_eps(table, column: str = "alignment", low: str = "ci95 low", high: str = "ci95 high",
                  ylabel: str = "alignment |⟨x, ∇Ψ⟩| / (‖x‖‖∇Ψ‖)", title: str = "", ax=None) -> plt.Figure:
    """A per-model measurement (mean and 95 % interval) against training ε: the standard model (ε = 0) and the
    PGD-AT models joined by a line, the other objectives (TRADES, FGSM-RS) as separate markers beside it.
    ``table`` is indexed by model with columns ``objective``, ``train ε``, ``column``, ``low`` and ``high``."""
    use_style()
    import numpy as np

    fig, ax = plt.subplots(figsize=(5.6, 3.4)) if ax is None else (ax.figure, ax)
    line = table[table.objective.isin(["standard", "pgd"])].sort_values("train ε")
    err = np.vstack([line[column] - line[low], line[high] - line[column]])
    ax.errorbar(line["train ε"], line[column], yerr=err, marker="o", capsize=3, color=OBJECTIVE_COLORS["pgd"],
                label="standard (ε = 0) and PGD-AT")
    others = table[~table.objective.isin(["standard", "pgd"])]
    for offset, (name, row) in zip((0.006, -0.006, 0.012), others.iterrows()):
        ax.errorbar(row["train ε"] + offset, row[column],
                    yerr=[[row[column] - row[low]], [row[high] - row[column]]],
                    marker="s", capsize=3, linestyle="none", color=model_color(name),
                    label=model_label(name))
    ax.set_xlabel("training ε (L∞, pixel scale [0, 1])")
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.legend(loc="best")
    if title:
        ax.set_title(title)
    return fig


def metric_heatmaps(table, metrics=("deletion", "insertion"), labels=None) -> plt.Figure:
    """One heatmap per metric: models (rows) × methods (columns) of the mean values in ``table``
    (:func:`rilib.chapters.saliency.summary`), each cell annotated."""
    use_style()
    import numpy as np

    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.6), squeeze=False)
    for ax, metric, label in zip(axes[0], metrics, labels or metrics):
        wide = table[metric].unstack("method")
        wide = wide[list(dict.fromkeys(table.index.get_level_values("method")))]
        wide = wide.loc[list(dict.fromkeys(table.index.get_level_values("model")))]
        values = wide.to_numpy()
        im = ax.imshow(values, cmap="viridis", aspect="auto")
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, f"{v:.3f}", ha="center", va="center", fontsize=7,
                    color="white" if v < values.mean() else "black")
        ax.set_xticks(range(wide.shape[1]), wide.columns, rotation=35, ha="right", fontsize=8)
        ax.set_yticks(range(wide.shape[0]), [model_label(n) for n in wide.index], fontsize=8)
        ax.grid(False)
        ax.set_title(label)
        fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def loss_curves(curves: dict, ylabel: str, title: str = "", log: bool = True) -> plt.Figure:
    """One curve per model (``curves[name]``: the loss at every optimisation step) against the step."""
    use_style()
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    for name, curve in curves.items():
        ax.plot(range(len(curve)), [float(v) for v in curve], label=model_label(name),
                color=model_color(name))
    ax.set_xlabel("optimisation step")
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.legend(loc="best")
    if title:
        ax.set_title(title)
    return fig


def sweep_panels(table, x: str, panels, title: str = "") -> plt.Figure:
    """One panel per entry of ``panels`` = [(columns, ylabel, error column or None), ...], each column of
    ``table`` plotted against column ``x`` on a symmetric-log axis (so that x = 0 can be shown)."""
    use_style()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.8 * len(panels), 3.3), squeeze=False)
    for ax, (columns, ylabel, err) in zip(axes[0], panels):
        for col, marker in zip(columns, "os^"):
            yerr = table[err] if err else None
            ax.errorbar(table[x], table[col], yerr=yerr, marker=marker, capsize=3, label=col)
        ax.set_xscale("symlog", linthresh=min(v for v in table[x] if v > 0))
        ax.set_xlabel(x)
        ax.set_ylabel(ylabel)
        if len(columns) > 1:
            ax.legend(loc="best")
    if title:
        fig.suptitle(title)
    return fig


def distributions(values: dict, ylabel: str, title: str = "", log: bool = True) -> plt.Figure:
    """Box plots (median, quartiles, 5–95 % whiskers) of per-image values, one box per model."""
    use_style()
    names = list(values)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * len(names) + 1.5), 3.6))
    box = ax.boxplot([list(values[n]) for n in names], whis=(5, 95), showfliers=False, patch_artist=True)
    for patch, name in zip(box["boxes"], names):
        patch.set_facecolor(model_color(name))
        patch.set_alpha(0.6)
    ax.set_xticks(range(1, len(names) + 1), [model_label(n) for n in names], rotation=35, ha="right")
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    return fig


def _outlined(cell, box, color=(0.85, 0.1, 0.1)):
    """An RGB cell (H, W, 3) with the box ``(x0, y0, x1, y1)`` (exclusive ends) outlined in ``color``."""
    x0, y0, x1, y1 = (int(v) for v in box)
    cell = cell.copy()
    cell[y0, x0:x1] = cell[y1 - 1, x0:x1] = color
    cell[y0:y1, x0] = cell[y0:y1, x1 - 1] = color
    return cell


def localisation_grid(x, maps: dict, boxes, title: str = "", row_labels=None) -> plt.Figure:
    """Rows = images, columns = the input and then one non-negative map per method (``maps[label]`` (N, 1, H, W)),
    each map on its own scale (white 0 to black at its maximum), with the ground-truth box ``boxes[r]`` =
    ``(x0, y0, x1, y1)`` (exclusive ends) outlined in red in every cell."""
    cmap = mpl.colormaps["magma_r"]
    columns = {"input": [_outlined(_gray_rgb(img), b) for img, b in zip(x, boxes)]}
    for name, m in maps.items():
        cells = []
        for r in range(len(x)):
            s = m[r].detach().cpu().sum(0).numpy()
            cells.append(_outlined(cmap(s / (float(s.max()) or 1.0))[..., :3], boxes[r]))
        columns[name] = cells
    return _mosaic_figure(columns, title, row_labels, "test canvas (true label)" if row_labels is not None else "")


def boxed_images(x, boxes, labels, title: str = "") -> plt.Figure:
    """One row of images (N, C, H, W) in [0, 1], each with its box outlined in red and titled by its label."""
    columns = {f"#{i + 1}: {label}": [_outlined(_gray_rgb(img), box)]
               for i, (img, box, label) in enumerate(zip(x, boxes, labels))}
    return _mosaic_figure(columns, title, None, "")


def interval_sweeps(sweeps: dict, ylabel: str, title: str = "") -> plt.Figure:
    """One panel per entry of ``sweeps`` = ``{panel title: (x label, x values, {series: [Interval, ...]}, symlog)}``:
    each series' means with their 95 % intervals as error bars against x (a symmetric-log x axis when ``symlog``,
    so that x = 0 can be shown)."""
    use_style()
    import numpy as np

    fig, axes = plt.subplots(1, len(sweeps), figsize=(4.4 * len(sweeps), 3.4), squeeze=False, sharey=True)
    for ax, (panel, (xlabel, xs, series, symlog)) in zip(axes[0], sweeps.items()):
        for (name, ivs), marker in zip(series.items(), "os^vD"):
            means = np.array([iv.mean for iv in ivs])
            err = np.vstack([means - [iv.low for iv in ivs], [iv.high for iv in ivs] - means])
            ax.errorbar(xs, means, yerr=err, marker=marker, capsize=3, label=name)
        if symlog:
            ax.set_xscale("symlog", linthresh=min(v for v in xs if v > 0))
        else:
            ax.set_xticks(list(xs))
        ax.set_xlabel(xlabel)
        ax.set_title(panel)
    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(loc="best")
    if title:
        fig.suptitle(title)
    return fig


def budget_scatter(points, xlabel: str, ylabel: str, title: str = "") -> plt.Figure:
    """A scatter of ``(x, y, kind, group)`` points on a log x-axis: colour by ``kind`` (``standard`` grey, anything
    else blue), marker by ``group`` (one marker per group, in order of appearance), with a legend of both."""
    use_style()
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    markers = dict(zip(dict.fromkeys(p[3] for p in points), "os^Dv"))
    colors = {"standard": OBJECTIVE_COLORS["standard"]}
    for (group, kind) in dict.fromkeys((p[3], p[2]) for p in points):
        xs = [p[0] for p in points if p[3] == group and p[2] == kind]
        ys = [p[1] for p in points if p[3] == group and p[2] == kind]
        ax.scatter(xs, ys, marker=markers[group], color=colors.get(kind, OBJECTIVE_COLORS["pgd"]), alpha=0.8,
                   label=f"{group}, {kind}")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=-0.02)
    ax.legend(loc="best")
    if title:
        ax.set_title(title)
    return fig
