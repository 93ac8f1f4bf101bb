"""The ε dashboard of the synthesis page: every lens of the book against the training ε of the models.

A chapter registers one :class:`Panel` per lens it measures with :func:`panel`. A panel's function takes the
profile and returns ``{series: {model: Interval}}``: for each curve of the panel (say, the attribution method),
the model's mean and 95 % interval, read from the chapter's cached results. :func:`figure` draws one panel per
registered lens on a shared x-axis, training ε, with the standard model at ε = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping

from ..lenses.stats import Interval, seed_ci
from ..profiles import Profile, get_profile
from ..registry import Registry
from .plotting import use_style

Series = Mapping[str, Mapping[str, Interval]]


@dataclass(frozen=True)
class Panel:
    """One lens: its ``title``, the chapter that measures it, the y-axis label (with units), whether to draw it
    on a log scale, and ``values(profile) -> {series: {model: Interval}}``."""

    title: str
    chapter: str
    ylabel: str
    values: Callable[[Profile], Series]
    log: bool = False


PANELS: Registry[Panel] = Registry("dashboard panel")


def panel(name: str, *, title: str, chapter: str, ylabel: str, log: bool = False):
    """Decorator registering ``fn(profile) -> {series: {model: Interval}}`` as the dashboard panel ``name``."""

    def deco(fn: Callable[[Profile], Series]):
        PANELS.add(name, Panel(title, chapter, ylabel, fn, log))
        return fn

    return deco


def over_seeds(per_seed, otherwise: Callable[[], Interval]) -> Interval:
    """A point's interval: the Student-t interval over training seeds of ``per_seed`` (one value per seed) where
    there are two or more seeds, else ``otherwise()`` (an interval over images, of a model trained once)."""
    return seed_ci(per_seed) if per_seed is not None and len(per_seed) > 1 else otherwise()


def collect(profile: str | Profile) -> dict[str, Series]:
    """Every registered panel's values under ``profile``, by panel name, in registration order."""
    prof = get_profile(profile)
    return {name: p.values(prof) for name, p in PANELS.items()}


def figure(values: Mapping[str, Series], train_eps: Mapping[str, float], columns: int = 4,
           title: str = "", l2_eps: Mapping[str, float] | None = None):
    """One panel per entry of ``values`` (see :func:`collect`): each series as a line over the models of
    ``train_eps`` ({model: training ε}, the standard model at 0), with its 95 % interval as a vertical segment
    (drawn from its bounds, so an interval that does not contain its estimate, as a bootstrap interval of a biased
    statistic may not, is shown as it is). Models a panel did not measure are left out of its line.

    Models of ``l2_eps`` ({model: training ε in the L2 norm}) are drawn on their own axis at the top of the panel,
    as open squares joined by a dashed line in the colour of their series, and only in the panels that measured
    them: an L2 radius and an L∞ radius are not on one scale."""
    import matplotlib.pyplot as plt
    use_style()
    names = list(values)
    rows = max(1, math.ceil(len(names) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.0 * rows), squeeze=False, sharex=True)
    order = sorted(train_eps, key=train_eps.get)
    top_axes: dict = {}
    for ax, name in zip(axes.flat, names):
        p = PANELS[name]
        for series, by_model in values[name].items():
            models = [m for m in order if m in by_model]
            xs = [train_eps[m] for m in models]
            ivs = [by_model[m] for m in models]
            line, = ax.plot(xs, [iv.mean for iv in ivs], marker="o", label=series)
            _intervals(ax, xs, ivs, line.get_color())
            l2 = [m for m in sorted(l2_eps or {}, key=(l2_eps or {}).get) if m in by_model]
            if l2:
                top = top_axes.get(name) or top_axes.setdefault(name, ax.twiny())
                l2_ivs = [by_model[m] for m in l2]
                top.plot([l2_eps[m] for m in l2], [iv.mean for iv in l2_ivs], marker="s", mfc="none", ls="--",
                         color=line.get_color())
                _intervals(top, [l2_eps[m] for m in l2], l2_ivs, line.get_color())
        ax.set_title(f"{p.title} (ch. {p.chapter})")
        ax.set_ylabel(p.ylabel)
        if p.log:
            ax.set_yscale("log")
        if len(values[name]) > 1:
            ax.legend(loc="best", fontsize=7)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    for ax in axes.flat[:len(names)]:
        ax.set_xlabel("training ε (L∞, pixel scale [0, 1])")
        ax.xaxis.set_tick_params(labelbottom=True)
    for top in top_axes.values():
        top.set_xlim(0, 1.1 * max(l2_eps.values()))
        top.set_xlabel("L2-trained models (open squares): training ε (L2)", fontsize=7)
        top.tick_params(labelsize=7)
    if title:
        fig.suptitle(title)
    return fig


def _intervals(ax, xs, ivs, color) -> None:
    """95 % intervals as vertical segments at ``xs``, skipping those without bounds."""
    bounded = [(x, iv) for x, iv in zip(xs, ivs) if not (math.isnan(iv.low) or math.isnan(iv.high))]
    if bounded:
        ax.vlines([x for x, _ in bounded], [iv.low for _, iv in bounded], [iv.high for _, iv in bounded],
                  color=color, lw=1.5)
