"""Where the time of a run goes.

When ``RILIB_TIMINGS`` names a file, the pieces of a run append one JSON line each to it: the install check (from
``make``), the training of each model, each evaluation, each chapter's measurements, each chapter and the book's
build. Processes (the zoo's trainer, the chapters' kernels) share the file, each appending whole lines.
:func:`report` turns the log into ``_build/timings.json``: every record, the sums by kind and ``total_seconds``,
the wall-clock time from the first record's start to the last one's end. ``make book`` writes it; the README's
table of times comes from it.

Without ``RILIB_TIMINGS`` nothing is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Iterator

ENV = "RILIB_TIMINGS"
#: Kinds of record, in the order of a run.
KINDS = ("install", "train", "chapter", "measurement", "evaluate", "build")


def log_path() -> Path | None:
    """The log this process appends to (``RILIB_TIMINGS``), or None."""
    value = os.environ.get(ENV)
    return Path(value) if value else None


def record(kind: str, name: str, seconds: float, **info) -> None:
    """Append one record (``kind``, ``name``, ``seconds``, its ``end`` time and any ``info``) to the log, if any."""
    path = log_path()
    if path is None:
        return
    line = json.dumps({"kind": kind, "name": name, "seconds": round(float(seconds), 3), "end": time.time(), **info})
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:  # one write of one line: appends from several processes do not interleave
        fh.write(line + "\n")


@contextlib.contextmanager
def timed(kind: str, name: str, **info) -> Iterator[dict]:
    """Time the body and :func:`record` it; the body may add to the yielded ``info`` (e.g. ``cached=True``)."""
    t0 = time.perf_counter()
    yield info
    record(kind, name, time.perf_counter() - t0, **info)


def report(log: Path) -> dict:
    """The timing report of a log: ``records`` (in order), ``by_kind`` (sum of seconds per kind: with parallel
    processes, more than the wall-clock time), ``wall_by_kind`` (per kind, the wall-clock span from its first
    record's start to its last one's end) and ``total_seconds`` (the wall-clock span all records cover)."""
    records = [json.loads(line) for line in Path(log).read_text().splitlines() if line.strip()]
    if not records:
        return {"records": [], "by_kind": {}, "wall_by_kind": {}, "total_seconds": 0.0}
    start = min(r["end"] - r["seconds"] for r in records)
    end = max(r["end"] for r in records)
    by_kind: dict = {}
    spans: dict = {}
    for r in records:
        by_kind[r["kind"]] = round(by_kind.get(r["kind"], 0.0) + r["seconds"], 3)
        lo, hi = spans.get(r["kind"], (r["end"] - r["seconds"], r["end"]))
        spans[r["kind"]] = (min(lo, r["end"] - r["seconds"]), max(hi, r["end"]))
    wall = {k: round(hi - lo, 3) for k, (lo, hi) in spans.items()}
    return {"records": records, "by_kind": by_kind, "wall_by_kind": wall, "total_seconds": round(end - start, 3)}


def format_report(rep: dict) -> str:
    """The report as a short plain-text table: install, training, each chapter and the build, in minutes."""
    minutes = lambda s: f"{s / 60:6.1f} min ({s:5.0f} s)"  # noqa: E731
    wall = rep.get("wall_by_kind", rep["by_kind"])

    def line(label: str, kind: str) -> str:
        summed = rep["by_kind"][kind]
        extra = (f"  wall clock; {summed / 60:.1f} min summed over parallel processes"
                 if summed > 1.05 * wall[kind] else "")
        return f"{label:<32} {minutes(wall[kind])}{extra}"

    lines = [f"{'total (wall clock)':<32} {minutes(rep['total_seconds'])}"]
    for kind, label in (("install", "install check"), ("train", "training the zoo"),
                        ("chapter", "executing the chapters"), ("build", "building the HTML")):
        if kind in rep["by_kind"]:
            lines.append(line(label, kind))
    for r in rep["records"]:
        if r["kind"] == "chapter":
            state = "" if r.get("executed", True) else "  (up to date, not executed)"
            lines.append(f"{'  chapter ' + r['name']:<32} {minutes(r['seconds'])}{state}")
    return "\n".join(lines)
