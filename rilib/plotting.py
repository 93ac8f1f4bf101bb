"""One figure style for the whole book, and the plots the chapters share.

Call :func:`use_style` once at the top of a notebook. Colours follow the model's objective, so a model
has the same colour in every chapter; a diverging colormap (``SIGNED_CMAP``) is used for signed maps.
"""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt

SIGNED_CMAP = "RdBu_r"
OBJECTIVE_COLORS = {"standard": "#4d4d4d", "pgd": "#1f77b4", "trades": "#2ca02c", "fgsm_rs": "#d62728"}

STYLE = {
    "figure.dpi": 110, "savefig.dpi": 150, "figure.figsize": (7.0, 3.6), "font.size": 10,
    "axes.titlesize": 11, "axes.labelsize": 10, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.alpha": 0.3, "legend.frameon": False, "legend.fontsize": 9,
    "image.cmap": "gray", "figure.constrained_layout.use": True,
}


def use_style() -> None:
    """Apply the book's matplotlib style."""
    mpl.rcParams.update(STYLE)


def model_color(name: str, objective: str | None = None) -> str:
    """A stable colour for a model: by objective; PGD models get darker with larger ε in the name."""
    if objective == "pgd" or (objective is None and "-pgd-" in name):
        shades = {"0.1": "#9ecae1", "0.2": "#4292c6", "0.3": "#08519c"}
        return shades.get(name.rsplit("-", 1)[-1], OBJECTIVE_COLORS["pgd"])
    for key, color in OBJECTIVE_COLORS.items():
        if objective == key or key.replace("_", "-") in name:
            return color
    return "#7f7f7f"


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
            ax.plot(ep, val, marker="o", ms=3, label=name, color=model_color(name))
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
    ax.set_xticks(pos, [n.replace("mnist-", "") for n in names])
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
    one line per model. ``per_depth`` is :func:`rilib.chapter2.per_depth`'s long table."""
    use_style()
    fig, axes = plt.subplots(1, len(metrics), figsize=(11, 3.4))
    order = list(dict.fromkeys(sorted(per_depth["bin"], key=lambda b: -1.0 if b == "first" else float(b[1:]))))
    for ax, metric, label in zip(axes, metrics, labels):
        for name, g in per_depth.groupby("model", sort=False):
            g = g.set_index("bin").reindex(order)
            ax.plot(range(len(order)), g[metric], marker="o", ms=4, label=name, color=model_color(name))
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
        axes[r, 0].set_ylabel(name.replace("mnist-", ""), rotation=0, ha="right", va="center", fontsize=8)
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
        axes[r, 0].set_ylabel(name.replace("mnist-", ""), rotation=0, ha="right", va="center", fontsize=8)
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
    ax.set_xticks(range(len(names)), [n.replace("mnist-", "") for n in names])
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return fig
