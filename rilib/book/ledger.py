"""The claims ledger: every claim of the papers as a measured, executable check.

A claim is a function registered with :func:`claim`. It takes a :class:`~rilib.profiles.Profile`,
measures something on zoo models (training them on first use, then cached) and returns a
:class:`Measurement`: the measured value(s), the comparison it was held to, and pass/fail.
:func:`run` runs the claims of a profile (optionally one chapter) and :func:`format_ledger` prints them;
``rilib claims --profile cpu --json FILE`` does both from the command line. The chapters register their claims
when ``rilib.chapters`` is imported.

A claim that does not reproduce is reported as failed with its measured value: that is a finding. A claim whose
intervals had to leave out non-finite values says how many in its measured values.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import RilibError
from ..lenses.stats import Interval
from ..paths import atomic_write_text
from ..profiles import Profile, get_profile
from ..registry import Registry
from .plotting import model_label


@dataclass
class Measurement:
    """What a claim function returns: ``measured`` values, the ``comparison`` applied, and ``passed``."""

    measured: Any
    comparison: str
    passed: bool
    note: str = ""


@dataclass
class Claim:
    id: str
    chapter: str
    statement: str
    citation: str
    measure: Callable[[Profile], Measurement]


@dataclass
class ClaimResult:
    id: str
    chapter: str
    statement: str
    citation: str
    profile: str
    measured: Any
    comparison: str
    passed: bool
    note: str = ""
    seconds: float = 0.0


CLAIMS: Registry[Claim] = Registry("claim")


def claim(id: str, *, chapter: str, statement: str, citation: str):
    """Decorator registering ``fn(profile) -> Measurement`` as a claim of ``chapter``."""

    def deco(fn: Callable[[Profile], Measurement]):
        CLAIMS.add(id, Claim(id, chapter, statement, citation, fn))
        return fn

    return deco


def margins_above_zero(margins: dict[str, Interval]) -> tuple[dict, list]:
    """For paired margins ``{model: Interval}``, the measured values as ``"+0.123 [+0.100, +0.146]"`` strings
    (with the count of non-finite values left out, if any) keyed by the models' figure labels, and the models whose
    interval does not lie entirely above 0."""
    measured = {model_label(name): iv.format("+.3f") for name, iv in margins.items()}
    return measured, [name for name, iv in margins.items() if not iv.above(0.0)]


def nonfinite_note(table, columns, rows) -> str:
    """For a table of means with ``<column> non-finite`` counts (see :class:`~rilib.lenses.stats.Interval`), a
    sentence naming every (row, column) whose mean left out non-finite values, or "" when none did."""
    found = [f"{int(table.loc[r, f'{c} non-finite'])} in {c} ({model_label(r)})" for c in columns for r in rows
             if table.loc[r, f"{c} non-finite"] > 0]
    return f"non-finite values left out of the means: {', '.join(found)}" if found else ""


def join_notes(*notes: str) -> str:
    """The non-empty notes, joined by "; "."""
    return "; ".join(n for n in notes if n)


def margins_claim(margins: dict[str, Interval], comparison: str) -> Measurement:
    """The measurement of a claim that every paired margin ``{model: Interval}`` lies above 0."""
    measured, failed = margins_above_zero(margins)
    return Measurement(measured, comparison, not failed, f"not reproduced for: {', '.join(failed)}" if failed else "")


def list_claims(chapter: Optional[str] = None) -> list[Claim]:
    """The registered claims (of ``chapter``, if given), ordered by chapter, then as registered."""
    claims = [c for _, c in CLAIMS.items() if chapter is None or c.chapter == chapter]
    return sorted(claims, key=lambda c: (len(c.chapter), c.chapter))


def run(profile: str | Profile, chapter: Optional[str] = None) -> list[ClaimResult]:
    """Measure every registered claim (of ``chapter``, if given) under ``profile``."""
    prof = get_profile(profile)
    chapters = sorted({c.chapter for c in list_claims()})
    if chapter is not None and str(chapter) not in chapters:
        raise RilibError(f"No claims registered for chapter {chapter!r}. Chapters with claims: {', '.join(chapters)}.")
    chapter = None if chapter is None else str(chapter)
    results = []
    for c in list_claims(chapter):
        t0 = time.perf_counter()
        m = c.measure(prof)
        results.append(ClaimResult(c.id, c.chapter, c.statement, c.citation, prof.name, m.measured,
                                   m.comparison, bool(m.passed), m.note, time.perf_counter() - t0))
    return results


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    return str(value)


def to_frame(results: list[ClaimResult]):
    """The ledger as a pandas DataFrame (one row per claim), for notebooks."""
    import pandas as pd
    return pd.DataFrame([{"claim": r.id, "statement": r.statement, "measured": _fmt(r.measured),
                          "held to": r.comparison, "result": "pass" if r.passed else "FAIL",
                          "source": r.citation} for r in results])


def format_ledger(results: list[ClaimResult]) -> str:
    """A plain-text ledger for the terminal."""
    if not results:
        return "No claims registered."
    lines = [f"Claims ledger, profile {results[0].profile}: "
             f"{sum(r.passed for r in results)} passed, {sum(not r.passed for r in results)} failed", ""]
    for r in results:
        lines += [f"[{'PASS' if r.passed else 'FAIL'}] {r.id} (chapter {r.chapter})",
                  f"    claim:    {r.statement}",
                  f"    measured: {_fmt(r.measured)}",
                  f"    held to:  {r.comparison}",
                  f"    source:   {r.citation}"]
        if r.note:
            lines.append(f"    note:     {r.note}")
    return "\n".join(lines)


def write_json(results: list[ClaimResult], path: str | Path) -> None:
    """Write the ledger as JSON (atomically)."""
    atomic_write_text(Path(path), json.dumps([asdict(r) for r in results], indent=2, default=str))
