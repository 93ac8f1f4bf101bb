"""What a page shows besides its figures: glued numbers, tables with intervals, and one claims section.

Notebooks glue every number their prose quotes (MyST-NB ``glue``) and every figure they show; the helpers here
keep the keys and the formats the same on every page:

- :func:`glue_key`: a model's glue key from its figure label (``mnist-pgd-0.3`` → ``pgd_03``);
- :func:`glue_table`, :func:`glue_by_model`, :func:`glue_intervals`, :func:`glue_values`, :func:`glue_figures`:
  glue a table's cells, one number per model, intervals, plain values, figures;
- :func:`mean_pm`: a table of means and half-widths as ``mean ± half-width`` strings;
- :func:`recipe_table`: "the recipe here vs the paper", one row per aspect, with why each difference exists;
- :class:`Sentence`: a sentence a cell shows as prose, not as a quoted Python string;
- :func:`claims_section`: a page's claims, measured, as a table, with ``claims_passed``, ``claims_total`` and
  ``claims_profile`` glued for the sentence below it;
- :func:`stored_claims_section`: the same claims beside a ledger measured once under another profile and shipped
  with the book (:data:`MEASURED`), for runs too long to repeat at every build.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Optional

from ..lenses.stats import Interval
from ..profiles import Profile, get_profile
from . import ledger
from .plotting import model_label


def glue_key(name: str) -> str:
    """A model's glue key, from its figure label: ``mnist-pgd-0.3`` (label ``pgd-0.3``) → ``pgd_03``."""
    return model_label(name).replace(".", "").replace("-", "_").replace("/", "_")


def _glue(key: str, value, display: bool = False) -> None:
    """MyST-NB's ``glue``. Without MyST-NB (a notebook run where only rilib is installed, as on Colab), figures
    are shown and the rest is skipped: only the book's build reads glued values."""
    try:
        from myst_nb import glue
    except ImportError:
        if display:
            from IPython.display import display as show
            show(value)
        return
    glue(key, value, display=display)


def glue_table(table, columns: Mapping[str, str]) -> None:
    """Glue every cell of ``table``'s ``columns`` for the prose, as ``<prefix>_<glue_key(row name)>``.

    ``columns`` maps a key prefix to a column name. Values are glued as plain Python floats, so that
    ``{glue:text}`key:.1%``` formats them (a NumPy scalar's text form would not parse).
    """
    for name, row in table.iterrows():
        for prefix, column in columns.items():
            value = row[column]
            _glue(f"{prefix}_{glue_key(str(name))}", None if value is None else float(value))


def glue_by_model(prefix: str, values: Mapping[str, float]) -> None:
    """Glue one number per model as ``<prefix>_<glue_key(model)>`` (as a Python float)."""
    for name, value in values.items():
        _glue(f"{prefix}_{glue_key(name)}", float(value))


def glue_intervals(prefix: str, intervals: Mapping[str, Interval]) -> None:
    """Glue each model's interval as ``<prefix>_<key>``, ``<prefix>_<key>_low`` and ``<prefix>_<key>_high``."""
    for name, iv in intervals.items():
        key = f"{prefix}_{glue_key(name)}"
        _glue(key, iv.mean)
        _glue(f"{key}_low", iv.low)
        _glue(f"{key}_high", iv.high)


def glue_values(**values) -> None:
    """Glue plain values under their keyword names: text as it is, numbers as Python floats or ints (a NumPy or
    torch scalar becomes one, so that ``{glue:text}`key:.1%``` can format it)."""
    for key, value in values.items():
        _glue(key, value.item() if hasattr(value, "item") and getattr(value, "ndim", None) == 0 else value)


def glue_figures(figures: Mapping) -> None:
    """Glue each figure under its key for a ``{glue:figure}`` directive, and close it.

    The figure is glued *displayed*: the executed notebook carries it as a plain ``image/png`` output, so Jupyter,
    Binder, Colab and the page's ``.ipynb`` download show it too. The book shows it once, where the prose places
    it, because every cell that glues figures is tagged ``remove-output`` (or ``remove-cell``)."""
    import matplotlib.pyplot as plt
    for key, fig in figures.items():
        _glue(key, fig, display=True)
        plt.close(fig)


def mean_pm(table, columns=None, fmt: str = ".3f"):
    """A display copy of ``table`` in which each ``<column>`` with a ``<column> ±`` partner (the half-width of
    its 95 % interval) becomes one ``mean ± half-width`` string; ``columns`` defaults to every such column.
    Missing values show as "–". ``fmt="auto"``: both numbers to the decimal of the half-width's second significant
    digit (0.9700 ± 0.0075, 5930 ± 75), for columns whose scales differ by orders of magnitude."""
    import pandas as pd
    columns = [c for c in table.columns if f"{c} ±" in table.columns] if columns is None else columns
    shown = pd.DataFrame(index=table.index)
    for col in columns:
        if col in table:
            shown[col] = ["–" if pd.isna(m) else _pm(m, h, fmt) for m, h in zip(table[col], table[f"{col} ±"])]
    return shown


def _pm(mean: float, half: float, fmt: str) -> str:
    if fmt != "auto":
        return f"{mean:{fmt}} ± {half:{fmt}}"
    if not math.isfinite(half) or half <= 0:
        return f"{mean:.3g} ± {half:.3g}"
    decimals = max(0, 1 - math.floor(math.log10(half)))
    return f"{mean:.{decimals}f} ± {half:.{decimals}f}"


class Sentence(str):
    """A string that a notebook cell shows as prose (Markdown), not as a quoted Python string; otherwise a str."""

    def _repr_markdown_(self) -> str:
        return str(self)


def recipe_table(rows, profile: str | Profile):
    """The table every chapter shows near its top: ``rows`` of ``(aspect, here, paper, why)``, "here" being what
    the book does under ``profile``."""
    import pandas as pd
    prof = get_profile(profile)
    table = pd.DataFrame(rows, columns=["aspect", f"this book (profile {prof.name})", "the paper", "why"])
    return table.set_index("aspect").style.set_caption("The recipe here and in the paper")


def claims_section(profile: str | Profile, chapter: str, results: Optional[list] = None):
    """Measure the claims of ``chapter`` under ``profile`` (or show ``results``) as a table, and glue
    ``claims_passed``, ``claims_total`` and ``claims_profile`` for the page's sentence about them."""
    prof = get_profile(profile)
    results = ledger.run(prof, chapter=chapter) if results is None else results
    glue_values(claims_passed=sum(r.passed for r in results), claims_total=len(results), claims_profile=prof.name)
    return ledger.to_frame(results).style.hide(axis="index")


#: Ledgers measured once under a profile too slow to run at every build (``full``: hours on 2 cores), written by
#: ``rilib claims --profile P --chapter N --json FILE`` and shipped with the package.
MEASURED = Path(__file__).resolve().parent / "measured"


def stored_claims_section(profile: str | Profile, chapter: str, stored: str | Path,
                          results: Optional[list] = None):
    """The claims of ``chapter`` under ``profile`` (measured now, or ``results``) beside the same claims in the
    ledger ``stored`` (a name in :data:`MEASURED` or a path), one row per claim: each side's result and 95 %
    intervals, and why a claim failed on either side. A claim that the stored ledger lacks shows "not in the stored
    ledger" (it was measured before the claim existed). Glues ``stored_profile``, ``stored_commit`` (12
    characters), ``stored_date``, ``stored_passed`` and ``stored_total`` for the page's sentence about it."""
    import pandas as pd
    prof = get_profile(profile)
    path = Path(stored) if Path(stored).suffix == ".json" else MEASURED / f"{stored}.json"
    data = ledger.read_json(path)
    here = ledger.run(prof, chapter=chapter) if results is None else results
    there = {r.id: r for r in ledger.from_json(data) if r.chapter == str(chapter)}
    other = data.get("profile") or "stored"
    commit, date = (data.get("commit") or "unknown")[:12], (data.get("created") or "unknown")[:10]
    glue_values(stored_profile=other, stored_commit=commit, stored_date=date,
                stored_passed=sum(r.passed for r in there.values()), stored_total=len(there))
    rows = []
    for r in here:
        s = there.get(r.id)
        rows.append({"claim": r.id, f"{prof.name}": "pass" if r.passed else "FAIL",
                     f"{prof.name}: measured": ledger.format_intervals(r),
                     f"{prof.name}: why it failed": r.reason,
                     f"{other}": "–" if s is None else "pass" if s.passed else "FAIL",
                     f"{other}: measured": "not in the stored ledger" if s is None else ledger.format_intervals(s),
                     f"{other}: why it failed": "" if s is None or s.passed else s.note})
    caption = (f"Profile {prof.name}, measured in this run, beside profile {other}, measured once ({date}, "
               f"commit {commit})")
    return pd.DataFrame(rows).style.hide(axis="index").set_caption(caption)
