"""Where the time of a run goes.

When ``RILIB_TIMINGS`` names a file, the pieces of a run append one JSON line each to it: the install check (from
``make``), the training of each model, each evaluation, each chapter's measurements, each chapter and the book's
build. Processes (the zoo's trainer, the chapters' kernels) share the file, each appending whole lines.
:func:`report` turns the log into ``_build/timings.json``: every record, the sums by kind and ``total_seconds``,
the wall-clock time from the first record's start to the last one's end, and the ``machine`` (:func:`machine`).
``make book`` writes it; the README's table of times comes from it. :func:`replay` answers "how long would this run
have taken without these jobs" from the run's own job times (``rilib book timings LOG --without NAME``).

Without ``RILIB_TIMINGS`` nothing is written.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import os
import time
from pathlib import Path
from typing import Iterator

ENV = "RILIB_TIMINGS"
#: Kinds of record, in the order of a run.
KINDS = ("install", "train", "chapter", "measurement", "evaluate", "build")
#: What the reports call the phases of a run, in its order.
PHASES = {"install": "install check", "train": "training the zoo", "chapter": "executing the chapters",
          "build": "building the HTML"}
#: The phases that run as separate jobs, one or several at a time (:func:`replay`).
JOB_KINDS = ("train", "chapter")
#: Seconds of slack when :func:`replay` decides that a job waited for every job before it (a new wave).
WAVE_SLACK = 0.5


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


def machine() -> dict:
    """The machine times belong to: the CPU's model name (from ``/proc/cpuinfo`` where there is one, else
    :func:`platform.processor`), the instruction set PyTorch's CPU kernels use (``AVX512``, ``AVX2``, ...), the
    cores, and the GPU if there is one. Times from different machines do not compare, nor from one cloud machine on
    different days: the same cold book took 101.0 min and 59.7 min on the CI machine on two days."""
    import platform

    import torch
    cpu = platform.processor() or platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    found = {"cpu": cpu, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cores": os.cpu_count()}
    if torch.cuda.is_available():
        found["gpu"] = torch.cuda.get_device_name()
    return found


def report(log: Path) -> dict:
    """The timing report of a log: ``records`` (in order), ``by_kind`` (sum of seconds per kind: with parallel
    processes, more than the wall-clock time), ``wall_by_kind`` (per kind, the wall-clock span from its first
    record's start to its last one's end) and ``total_seconds`` (the wall-clock span all records cover)."""
    records = [json.loads(line) for line in Path(log).read_text().splitlines() if line.strip()]
    if not records:
        return {"records": [], "by_kind": {}, "wall_by_kind": {}, "total_seconds": 0.0, "machine": machine()}
    start = min(r["end"] - r["seconds"] for r in records)
    end = max(r["end"] for r in records)
    by_kind: dict = {}
    spans: dict = {}
    for r in records:
        by_kind[r["kind"]] = round(by_kind.get(r["kind"], 0.0) + r["seconds"], 3)
        lo, hi = spans.get(r["kind"], (r["end"] - r["seconds"], r["end"]))
        spans[r["kind"]] = (min(lo, r["end"] - r["seconds"]), max(hi, r["end"]))
    wall = {k: round(hi - lo, 3) for k, (lo, hi) in spans.items()}
    return {"records": records, "by_kind": by_kind, "wall_by_kind": wall, "total_seconds": round(end - start, 3),
            "machine": machine()}


def format_report(rep: dict) -> str:
    """The report as a short plain-text table: install, training, each chapter and the build, in minutes, under the
    machine they were measured on."""
    minutes = lambda s: f"{s / 60:6.1f} min ({s:5.0f} s)"  # noqa: E731
    wall = rep.get("wall_by_kind", rep["by_kind"])

    def line(label: str, kind: str) -> str:
        summed = rep["by_kind"][kind]
        extra = (f"  wall clock; {summed / 60:.1f} min summed over parallel processes"
                 if summed > 1.05 * wall[kind] else "")
        return f"{label:<32} {minutes(wall[kind])}{extra}"

    lines = [f"{'total (wall clock)':<32} {minutes(rep['total_seconds'])}"]
    if rep.get("machine"):  # a report written before reports named their machine has none
        m = rep["machine"]
        lines.insert(0, f"{'machine':<32} {m.get('gpu') or m['cpu']}, {m['cpu_capability']}, {m['cores']} cores")
    for kind, label in PHASES.items():
        if kind in rep["by_kind"]:
            lines.append(line(label, kind))
    for r in rep["records"]:
        if r["kind"] == "chapter":
            state = "" if r.get("executed", True) else "  (up to date, not executed)"
            lines.append(f"{'  chapter ' + r['name']:<32} {minutes(r['seconds'])}{state}")
    return "\n".join(lines)


def _span(waves: list[list[float]], lanes: int) -> float:
    """Greedy list scheduling: each wave's jobs, in order, each on the lane that frees first; a wave starts when the
    one before has ended. Returns the end of the last job."""
    start = 0.0
    for wave in waves:
        free = [start] * lanes
        for seconds in wave:
            heapq.heappush(free, heapq.heappop(free) + seconds)
        start = max(free) if wave else start
    return start


def replay(records: list[dict], kind: str, without: tuple[str, ...] = ()) -> dict:
    """Replay the ``kind`` jobs (``train`` or ``chapter``) of a logged run, with and without the jobs whose names
    contain any of ``without``, and return ``{"measured", "replayed", "without", "lanes", "removed"}`` in seconds.

    The replay keeps what the run did: its jobs' own times, the order they started in, as many lanes as jobs
    overlapped at most, and its waves (a job that started only when every earlier job had ended, such as the
    synthesis page after the chapters, waits for the jobs before it). Each job goes to the lane that frees first,
    as the runner's process pool does. ``replayed`` against ``measured`` shows how well that model fits the run
    (startup between jobs is left out); ``without`` is the same schedule with the named jobs removed."""
    jobs = sorted((r["end"] - r["seconds"], r["seconds"], r["name"]) for r in records if r["kind"] == kind)
    if not jobs:
        return {"measured": 0.0, "replayed": 0.0, "without": 0.0, "lanes": 0, "removed": []}
    lanes = max(sum(1 for s, d, _ in jobs if s <= t < s + d) for t, _, _ in jobs)
    waves, kept, removed, latest = [], [], [], None
    for start, seconds, name in jobs:
        if latest is None or start >= latest - WAVE_SLACK:
            waves.append([])
            kept.append([])
        latest = start + seconds if latest is None else max(latest, start + seconds)
        waves[-1].append(seconds)
        if any(part in name for part in without):
            removed.append(name)
        else:
            kept[-1].append(seconds)
    measured = max(s + d for s, d, _ in jobs) - jobs[0][0]
    return {"measured": round(measured, 3), "replayed": round(_span(waves, lanes), 3),
            "without": round(_span(kept, lanes), 3), "lanes": lanes, "removed": removed}


def format_replay(rep: dict, without: tuple[str, ...]) -> str:
    """The run's training and chapters replayed without the jobs named by ``without`` (:func:`replay`), and the
    whole run less what they saved, as plain text. Raises :class:`ValueError` if a name matches no job."""
    names = sorted({r["name"] for r in rep["records"] if r["kind"] in JOB_KINDS})
    unmatched = [part for part in without if not any(part in name for name in names)]
    if unmatched:
        raise ValueError(f"--without {' '.join(unmatched)} matches no training or chapter of this log. Its jobs are: "
                         f"{', '.join(names)}. Give a part of one of these names.")
    saved, lines = 0.0, [f"replayed without the jobs named by {', '.join(without)} (each job's own time, the run's "
                         f"order, lanes and waves):"]
    for kind in JOB_KINDS:
        r = replay(rep["records"], kind, without)
        if not r["lanes"]:
            continue
        saved += r["replayed"] - r["without"]
        lines.append(f"  {PHASES[kind]:<30} {r['without']:6.0f} s without {len(r['removed'])} job(s), {r['replayed']:.0f} s "
                     f"with them (measured {r['measured']:.0f} s, {r['lanes']} lane(s))")
    total = rep["total_seconds"] - saved
    lines.append(f"  {'total (wall clock)':<30} {total / 60:6.1f} min ({total:5.0f} s): the measured "
                 f"{rep['total_seconds']:.0f} s less the {saved:.0f} s the replay saves")
    return "\n".join(lines)
