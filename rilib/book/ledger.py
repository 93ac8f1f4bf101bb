"""The claims ledger: every claim of the papers as a measured, executable check.

A claim is a function registered with :func:`claim`. It takes a :class:`~rilib.profiles.Profile`,
measures something on zoo models (training them on first use, then cached) and returns a
:class:`Measurement`: the measured value(s), the comparison it was held to, and pass/fail.
:func:`run` runs the claims of a profile (optionally one chapter) and :func:`format_ledger` prints them;
``rilib claims --profile cpu --json FILE`` does both from the command line. The chapters register their claims
when ``rilib.chapters`` is imported.

A claim that does not reproduce is reported as failed with its measured value: that is a finding. A claim whose
intervals had to leave out non-finite values says how many in its measured values. A claim says, in ``differs``,
how its test differs from the paper's (data, scale, recipe); a failed claim's ``reason`` then says whether it
failed under the paper's protocol (a finding) or under a different one.

The ledger as data (:func:`write_json`, :func:`read_json`, :func:`compare`), schema ``rilib.ledger`` version 1::

    {"schema": "rilib.ledger", "schema_version": 1,
     "profile": "cpu", "created": "2026-11-22T17:00:00+00:00", "commit": "<git commit or null>",
     "versions": {"rilib": ..., "python": ..., "torch": ..., "torchvision": ..., "numpy": ...},
     "hardware": {"measured on": {"device": "cpu", "cpu_capability": "AVX512", "threads": 2},   # rilib.zoo.hardware
                  "zoo trained on": [{"hardware": {...} or null, "models": 52}]},            # or null (no claims)
     "passed": 5, "total": 15,
     "claims": [{"id": "ch1.pgd-0.3-survives-strong-attack", "chapter": "1",
                 "paper": "madry2018",            # the paper the claim is filed under (rilib.book.papers)
                 "papers": ["madry2018"],         # every paper it tests
                 "statement": ..., "citation": ...,
                 "measured": {...},                # the values, as the claim reports them
                 "interval": {name: {"mean", "low", "high"[, "nonfinite"]}} or null,  # 95 % intervals, where
                                                  # the claim has them; "nonfinite" (only when > 0) counts the
                                                  # values an interval left out
                 "test": ...,                      # the comparison the values were held to
                 "passed": true, "reason": "",     # why it failed: a finding, or a test that differs from the paper's
                 "note": ..., "differs": ..., "profile": "cpu", "seconds": 0.03}]}

``rilib claims --compare A.json B.json`` prints the claims whose outcome or values moved between two ledgers, and
(:func:`hardware_note`) whether their zoos were trained on different hardware. The field ``hardware`` was added
within version 1; a ledger without it compares as before.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import RilibError, UnknownNameError
from ..lenses.stats import Interval
from ..paths import atomic_write_text
from ..profiles import Profile, get_profile
from ..registry import Registry
from .papers import PAPERS, cite
from .plotting import model_label


@dataclass
class Measurement:
    """What a claim function returns: ``measured`` values, the ``comparison`` applied, and ``passed``."""

    measured: Any
    comparison: str
    passed: bool
    note: str = ""
    intervals: Optional[dict[str, Interval]] = None  # the 95 % intervals behind ``measured``, where there are any


@dataclass
class Claim:
    id: str
    chapter: str
    statement: str
    papers: tuple[str, ...]
    measure: Callable[[Profile], Measurement]
    differs: str | Callable[[Profile], str] = ""

    @property
    def paper(self) -> str:
        """The paper the claim is filed under: the first of ``papers``."""
        return self.papers[0]

    @property
    def citation(self) -> str:
        return cite(*self.papers)


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
    paper: str = ""
    papers: tuple = ()
    interval: Optional[dict] = None
    differs: str = ""

    @property
    def reason(self) -> str:
        """Why a failed claim failed, in one line: "" when it passed."""
        if self.passed:
            return ""
        what = self.note or "the measured values do not meet the test"
        if self.differs:
            return f"the test differs from the paper's ({self.differs}): {what}"
        return f"finding, under the paper's protocol: {what}"


CLAIMS: Registry[Claim] = Registry("claim")


def claim(id: str, *, chapter: str, statement: str, papers: tuple[str, ...] | str,
          differs: str | Callable[[Profile], str] = ""):
    """Decorator registering ``fn(profile) -> Measurement`` as a claim of ``chapter`` that tests ``papers`` (keys
    of :data:`~rilib.book.papers.PAPERS`, the one it is filed under first). ``differs`` says how the test differs
    from the paper's (a string, or a function of the profile), and is empty when it follows the paper's protocol."""
    papers = (papers,) if isinstance(papers, str) else tuple(papers)
    for key in papers:
        PAPERS[key]  # an unknown key raises, listing the known papers

    def deco(fn: Callable[[Profile], Measurement]):
        CLAIMS.add(id, Claim(id, chapter, statement, papers, fn, differs))
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
    return Measurement(measured, comparison, not failed, f"not reproduced for: {', '.join(failed)}" if failed else "",
                       intervals={model_label(name): iv for name, iv in margins.items()})


def seed_verdict(name: str, diffs, iv: Interval, above: bool = True, bound: float = 0.0, kinds: bool = True) -> str:
    """Why a seed-level comparison failed, in one clause ("" if it holds): the claim needs ``iv`` (the Student-t
    interval over seed pairs of ``diffs``) wholly above ``bound`` (``above``) or wholly below it.

    - *finding*: the interval lies wholly on the other side of ``bound``;
    - *no difference*: every seed (pair) measures exactly ``bound``;
    - *unresolved at n seeds (limit of scale)*: every seed (or seed pair) points the claimed way, but the interval is
      too wide; or the seeds disagree (some point the claimed way, some do not), so more seeds would be needed;
    - *finding at n seeds*: no seed points the claimed way, though their spread keeps ``bound`` inside the interval.

    ``kinds=False`` leaves the words *finding* and *limit of scale* out, for a caller that has already said which
    kind the failure is (a profile too small to test the claim says what it measures, not a finding)."""
    if (iv.low > bound) if above else (iv.high < bound):
        return ""
    if (iv.high < bound) if above else (iv.low > bound):
        return (f"{name}: {'finding, ' if kinds else ''}the interval over seeds {iv.format('+.3f')} lies wholly on "
                f"the other side of {bound:g}")
    if all(d == bound for d in diffs):
        return f"{name}: no difference, every seed (pair) measures exactly {bound:g}"
    agree = sum((d > bound) if above else (d < bound) for d in diffs)
    scale = " (limit of scale)" if kinds else ""
    if agree == len(diffs):
        return (f"{name}: unresolved at {len(diffs)} seeds{scale}, every seed points the claimed way "
                f"but the interval {iv.format('+.3f')} contains {bound:g}")
    if agree == 0:
        return (f"{name}: {'finding ' if kinds else ''}at {len(diffs)} seeds, none points the claimed way (their "
                f"spread keeps {bound:g} inside the interval {iv.format('+.3f')})")
    return (f"{name}: unresolved at {len(diffs)} seeds{scale}, the seeds disagree: {agree} of "
            f"{len(diffs)} {'points' if agree == 1 else 'point'} the claimed way and the interval "
            f"{iv.format('+.3f')} contains {bound:g}")


def paired_verdict(name: str, iv: Interval, over: str, above: bool = True, bound: float = 0.0) -> str:
    """Why a paired comparison over the items (images, canvases) of one trained model failed, in one clause ("" if it
    holds): the claim needs ``iv`` (the paired interval over ``iv.n`` items of ``over``) wholly above ``bound``
    (``above``) or wholly below it. Both failures are findings about that model, not limits of seeds:

    - *finding*: the interval lies wholly on the other side of ``bound``;
    - *finding, no difference that n items resolve*: the interval contains ``bound``.

    ``name`` prefixes the clause (``"name: finding, …"``) unless empty."""
    prefix = f"{name}: " if name else ""
    if (iv.low > bound) if above else (iv.high < bound):
        return ""
    if (iv.high < bound) if above else (iv.low > bound):
        return (f"{prefix}finding, the interval over {over} {iv.format('+.3f')} lies wholly "
                f"{'below' if above else 'above'} {bound:g}")
    return f"{prefix}finding, no difference that {iv.n} {over} resolve: the interval {iv.format('+.3f')} contains {bound:g}"


def list_claims(chapter: Optional[str] = None) -> list[Claim]:
    """The registered claims (of ``chapter``, if given), ordered by chapter, then as registered."""
    claims = [c for _, c in CLAIMS.items() if chapter is None or c.chapter == chapter]
    return sorted(claims, key=lambda c: (len(c.chapter), c.chapter))


def run(profile: str | Profile, chapter: Optional[str] = None) -> list[ClaimResult]:
    """Measure every registered claim (of ``chapter``, if given) under ``profile``."""
    prof = get_profile(profile)
    chapters = sorted({c.chapter for c in list_claims()})
    if chapter is not None and str(chapter) not in chapters:
        raise UnknownNameError(f"No claims registered for chapter {chapter!r}. "
                               f"Chapters with claims: {', '.join(chapters)}.")
    chapter = None if chapter is None else str(chapter)
    results = []
    for c in list_claims(chapter):
        t0 = time.perf_counter()
        m = c.measure(prof)
        intervals = None if m.intervals is None else {
            k: {"mean": iv.mean, "low": iv.low, "high": iv.high, **({"nonfinite": iv.nonfinite} if iv.nonfinite else {})}
            for k, iv in m.intervals.items()}
        results.append(ClaimResult(c.id, c.chapter, c.statement, c.citation, prof.name, m.measured,
                                   m.comparison, bool(m.passed), m.note, time.perf_counter() - t0,
                                   c.paper, c.papers, intervals,
                                   c.differs(prof) if callable(c.differs) else c.differs))
    return results


def from_json(data: dict) -> list[ClaimResult]:
    """The claims of a ledger as :func:`read_json` returns it, as :class:`ClaimResult` (the inverse of
    :func:`to_json`)."""
    from dataclasses import fields
    names = {f.name for f in fields(ClaimResult)} - {"comparison", "papers"}
    return [ClaimResult(**{k: v for k, v in c.items() if k in names}, comparison=c.get("test", ""),
                        papers=tuple(c.get("papers", ()))) for c in data["claims"]]


def format_intervals(result: ClaimResult) -> str:
    """A claim's 95 % intervals as ``name mean [low, high]`` (its measured values where it has none)."""
    if result.interval:
        return "; ".join(f"{k} {v['mean']:+.3f} [{v['low']:+.3f}, {v['high']:+.3f}]"
                         + (f" ({v['nonfinite']} non-finite left out)" if v.get("nonfinite") else "")
                         for k, v in result.interval.items())
    return format_value(result.measured)


def format_value(value: Any) -> str:
    """A measured value as the ledger prints it: floats to 3 decimals, dicts as ``key=value`` pairs."""
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={format_value(v)}" for k, v in value.items())
    return str(value)


def to_frame(results: list[ClaimResult]):
    """The ledger as a pandas DataFrame (one row per claim), for notebooks: with each failed claim's reason (a
    finding, or a limit of scale or a test that differs from the paper's, see :attr:`ClaimResult.reason`)."""
    import pandas as pd
    return pd.DataFrame([{"claim": r.id, "statement": r.statement, "measured": format_value(r.measured),
                          "held to": r.comparison, "result": "pass" if r.passed else "FAIL",
                          "why it failed": r.reason, "source": r.citation} for r in results])


def format_ledger(results: list[ClaimResult]) -> str:
    """A plain-text ledger for the terminal."""
    if not results:
        return "No claims registered."
    lines = [f"Claims ledger, profile {results[0].profile}: "
             f"{sum(r.passed for r in results)} passed, {sum(not r.passed for r in results)} failed", ""]
    for r in results:
        lines += [f"[{'PASS' if r.passed else 'FAIL'}] {r.id} (chapter {r.chapter})",
                  f"    claim:    {r.statement}",
                  f"    measured: {format_value(r.measured)}",
                  f"    held to:  {r.comparison}",
                  f"    source:   {r.citation}"]
        if r.note:
            lines.append(f"    note:     {r.note}")
    return "\n".join(lines)


SCHEMA, SCHEMA_VERSION = "rilib.ledger", 1


def _commit() -> Optional[str]:
    """The git commit of this checkout, or None outside a git checkout."""
    import subprocess
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _versions() -> dict:
    import platform
    from importlib import metadata
    found = {"python": platform.python_version()}
    for name in ("rilib", "torch", "torchvision", "numpy"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def hardware(profile) -> dict:
    """The hardware of the ledger (:func:`rilib.zoo.hardware`): where it was measured, and what the profile's trained
    models were trained on, each kind with its count of models (``null``: a model trained before models recorded
    it). Two zoos of the same specs trained on different hardware can differ in their weights' last bits, which can
    move a claim on the edge of its test; :func:`hardware_note` says so."""
    from collections import Counter

    from .. import zoo
    trained = Counter()
    for spec in zoo.zoo_specs(profile).values():
        if zoo.is_trained(spec):
            try:
                found = zoo.metrics(spec).get("hardware")
            except RilibError:  # unreadable metrics: zoo.verify says how to mend them; not this function's job
                found = None
            trained[json.dumps(found, sort_keys=True)] += 1
    return {"measured on": zoo.hardware(),
            "zoo trained on": [{"hardware": json.loads(k), "models": n} for k, n in sorted(trained.items())]}


def to_json(results: list[ClaimResult]) -> dict:
    """The ledger as a JSON-able dict of schema ``rilib.ledger`` version 1 (see the module's docstring)."""
    from datetime import datetime, timezone
    claims = []
    for r in results:
        row = asdict(r)
        row["papers"] = list(r.papers)
        row["test"] = row.pop("comparison")
        row["reason"] = r.reason
        claims.append(row)
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION,
            "profile": results[0].profile if results else None,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "commit": _commit(), "versions": _versions(),
            "hardware": hardware(results[0].profile) if results else None,
            "passed": sum(r.passed for r in results), "total": len(results), "claims": claims}


def write_json(results: list[ClaimResult], path: str | Path) -> None:
    """Write the ledger as JSON (schema ``rilib.ledger`` version 1, atomically)."""
    atomic_write_text(Path(path), json.dumps(to_json(results), indent=2, default=str))


def read_json(path: str | Path) -> dict:
    """Read a ledger written by :func:`write_json`. A ledger of the first, unversioned format (a list of claims)
    is read as version 0; anything else is refused with a message that says what was found."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise RilibError(f"No ledger at {path}. Write one with `rilib claims --profile cpu --json {path}`.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RilibError(f"{path} is not a readable JSON ledger ({type(exc).__name__}: {exc}). Write it again "
                         f"with `rilib claims --json {path}`.") from None
    if isinstance(data, list) and all(isinstance(c, dict) and "id" in c for c in data):
        claims = [{**c, "test": c.get("comparison", "")} for c in data]
        return {"schema": SCHEMA, "schema_version": 0, "profile": claims[0].get("profile") if claims else None,
                "claims": claims}
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise RilibError(f"{path} is not a rilib ledger (no \"schema\": \"{SCHEMA}\"). Write one with "
                         f"`rilib claims --json FILE`.")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise RilibError(f"{path} has ledger schema version {data.get('schema_version')!r}; this rilib reads "
                         f"versions 0 and {SCHEMA_VERSION}. Write it again with this rilib.")
    return data


def hardware_note(a: dict, b: dict) -> str | None:
    """A sentence when the zoos of two ledgers (as :func:`read_json` returns them) were trained on different
    hardware (:func:`hardware`), else None (also when either ledger does not record it)."""
    from ..zoo import describe_hardware
    zoos = [(d.get("hardware") or {}).get("zoo trained on") for d in (a, b)]
    if None in zoos or zoos[0] == zoos[1]:
        return None

    def kinds(rows):
        return "; ".join(f"{row['models']} model(s) on {describe_hardware(row['hardware'])}" for row in rows)
    return (f"The zoos were trained on different hardware (first: {kinds(zoos[0])}; second: {kinds(zoos[1])}), so "
            f"the weights of the same specs can differ in their last bits, and a claim on the edge of its test can "
            f"move.")


def compare(a: dict, b: dict) -> list[str]:
    """The differences between two ledgers (as :func:`read_json` returns them), one line each: claims added or
    removed, claims whose outcome changed, and claims whose measured values or intervals moved."""
    first, second = ({c["id"]: c for c in d["claims"]} for d in (a, b))
    lines = [f"only in the first: {i}" for i in first if i not in second]
    lines += [f"only in the second: {i}" for i in second if i not in first]
    for i, old in first.items():
        new = second.get(i)
        if new is None:
            continue
        if bool(old["passed"]) != bool(new["passed"]):
            lines.append(f"{i}: {'PASS' if old['passed'] else 'FAIL'} -> {'PASS' if new['passed'] else 'FAIL'}"
                         f" (measured {format_value(old['measured'])} -> {format_value(new['measured'])})")
        elif old["measured"] != new["measured"] or None not in (old.get("interval"), new.get("interval")) and \
                old["interval"] != new["interval"]:
            lines.append(f"{i}: still {'PASS' if new['passed'] else 'FAIL'}, measured "
                         f"{format_value(old['measured'])} -> {format_value(new['measured'])}")
    return lines
