"""The classroom edition: student and instructor notebooks from the chapters' own MyST sources, and grading.

As in Neuromatch Academy, one source makes both editions: the chapter in ``notebooks/`` is the instructor's source,
and the student's edition is that source with every solution removed.

:func:`build` (``rilib assignments build``) writes, for each chapter with exercises:

- ``dist/student/<chapter>.ipynb``: a worksheet of the chapter: its title and introduction, a link to the page in
  the book, its parameters cell (the profile), the bootstrap cell that installs rilib and unpacks the trained zoo
  on Colab (:func:`rilib.book.publish.bootstrap_source`), its set-up cell and its exercises, with every solution
  removed (gated ``{solution-start}`` … ``{solution-end}`` blocks with their code cells, and ``{solution}``
  directives), the starter cells' ``...`` stubs in place and no outputs;
- ``dist/instructor/<chapter>.ipynb``: the same worksheet with the solutions;
- with ``html=True``, ``dist/student-html/``: the book built from the executed chapters with sphinx-exercise's
  ``hide_solutions``, so no solution is in the HTML.

The worksheets hold the exercises and what they need, not the chapter's figures: a chapter's measurements take
minutes on ``cpu``, the exercises a lab's worth, and the figures are in the book.

:func:`check` (``rilib assignments check NOTEBOOK``) executes a notebook with papermill on a profile and reads back
every check cell's outcome (:data:`rilib.book.exercises.MIME`): passed, failed or not attempted. Starter and check
cells are tagged ``raises-exception``, so a student's error fails that exercise and the others still run. A check
cell that is missing, or that never ran, fails.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from ..errors import RilibError
from ..paths import atomic_write_text
from ..profiles import get_profile
from . import exercises as ex
from .runner import CHAPTER_TIMINGS_FILE, PRECOMPUTE_SUFFIX, project, recorded_chapter_timings, select

EDITIONS = ("student", "instructor")
EXERCISES_HEADING = "## Exercises"
_FENCE = re.compile(r"^(`{3,}|~{3,})\{([\w-]+)\}\s*(.*)$")
_LABEL = re.compile(r"^:label:\s*(\S+)")


def _blocks(lines: list[str]) -> list[tuple[int, int, str, str]]:
    """The top-level MyST directive blocks of ``lines``: (first line, line after the closing fence, directive,
    argument)."""
    out, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence = m.group(1)
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != fence:
            j += 1
        out.append((i, min(j + 1, len(lines)), m.group(2), m.group(3).strip()))
        i = j + 1
    return out


def _solution_lines(lines: list[str], inside: bool = False) -> tuple[list[bool], bool]:
    """Which of ``lines`` belong to a solution: ``{solution}`` directives, and everything from a
    ``{solution-start}`` fence to the end of its ``{solution-end}`` fence. ``inside``: whether the lines begin
    inside a gated solution (a notebook's gated solution spans cells); returns the mask and whether they end inside
    one."""
    drop = [inside] * len(lines)
    for a, b, name, _ in _blocks(lines):
        if name == "solution" and not inside:
            drop[a:b] = [True] * (b - a)
        elif name == "solution-start":
            inside = True
            drop[a:] = [True] * (len(lines) - a)
        elif name == "solution-end":
            if not inside:
                raise RilibError("A {solution-end} without its {solution-start}: fix the chapter's source.")
            drop[a:b] = [True] * (b - a)
            drop[b:] = [False] * (len(lines) - b)
            inside = False
    return drop, inside


def strip_solutions(text: str) -> str:
    """MyST ``text`` without its solutions (:func:`_solution_lines`), prose and code cells alike."""
    lines = text.split("\n")
    drop, inside = _solution_lines(lines)
    if inside:
        raise RilibError("A {solution-start} without its {solution-end}: fix the chapter's source.")
    kept = [line for line, d in zip(lines, drop) if not d]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept))


def strip_notebook_solutions(nb) -> int:
    """Remove every solution (:func:`_solution_lines`) from an executed chapter notebook in place, across cells: a
    gated solution's code cells go with their outputs. Returns how many cells were removed. sphinx-exercise's
    ``hide_solutions`` cannot do this itself: it drops a gated solution's start but not its end, and the build
    fails."""
    kept, removed, inside = [], 0, False
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            if inside or ex.SOLUTION_TAG in cell.metadata.get("tags", []):
                removed += 1
            else:
                kept.append(cell)
            continue
        lines = cell.source.split("\n")
        drop, inside = _solution_lines(lines, inside)
        text = "\n".join(line for line, d in zip(lines, drop) if not d).strip()
        if text:
            cell.source = text
            kept.append(cell)
        else:
            removed += 1
    nb.cells = kept
    return removed


def exercise_labels(text: str) -> list[str]:
    """The labels of the ``{exercise}`` directives in MyST ``text``, in order."""
    lines = text.split("\n")
    labels = []
    for a, b, name, _ in _blocks(lines):
        if name == "exercise":
            labels += [m.group(1) for line in lines[a:b] if (m := _LABEL.match(line))]
    return labels


def checked_labels(text: str) -> list[str]:
    """The labels the check cells of MyST ``text`` check, in order."""
    return re.findall(r'check\(\s*["\']([\w-]+)["\']', text)


@dataclass
class Worksheet:
    """The parts of a chapter's MyST source a worksheet is made of."""

    front: str          # the jupytext front matter, with its fences
    intro: str          # the title and introduction, up to the first code cell
    parameters: str     # the parameters cell
    setup: str          # the first code cell after it (the imports)
    exercises: str      # the exercises section, to the end of the chapter


def split(text: str, name: str = "chapter") -> Worksheet:
    """Split a chapter's MyST source into the parts of a worksheet; a source without them raises an error that
    says what is missing."""
    m = re.match(r"^(---\n.*?\n---\n)", text, re.S)
    front = m.group(1) if m else ""
    body = text[len(front):]
    cells = list(re.finditer(r"^```\{code-cell\}[^\n]*\n.*?^```[ \t]*$\n?", body, re.S | re.M))
    params = next((c for c in cells if re.search(r"^:tags:.*\bparameters\b", c.group(0), re.M)), None)
    if params is None:
        raise RilibError(f"{name} has no code cell tagged 'parameters'.")
    setup = next((c for c in cells if c.start() > params.start()), None)
    at = body.find(f"\n{EXERCISES_HEADING}\n")
    if setup is None or at < 0:
        raise RilibError(f"{name} has no set-up cell after its parameters or no '{EXERCISES_HEADING}' section.")
    return Worksheet(front, body[:cells[0].start()].strip() + "\n", params.group(0), setup.group(0),
                     body[at + 1:].rstrip() + "\n")


def _plain(text: str) -> str:
    """The exercises' MyST directives as markdown a notebook shows (Jupyter does not render MyST directives)."""
    lines = text.split("\n")
    out, last = [], 0
    for a, b, name, arg in _blocks(lines):
        out += lines[last:a]
        inner = [line for line in lines[a + 1:b - 1] if not re.match(r"^:[\w-]+:", line)]
        label = next((m.group(1) for line in lines[a:b] if (m := _LABEL.match(line))), arg)
        if name == "exercise":
            title = ex.EXERCISES[label].title if label in ex.EXERCISES else ""
            out += [f"### Exercise `{label}`" + (f": {title}" if title else ""), ""] + inner
        elif name == "solution":
            out += [f"**Solution to `{label}`.**", ""] + inner
        elif name == "solution-start":
            out += [f"**Solution to `{label}`.**"]
        elif name != "solution-end":
            out += lines[a:b]
        last = b
    out += lines[last:]
    return "\n".join(out)


def worksheet(text: str, edition: str, profile: str, stem: str, cfg: dict):
    """The ``edition`` worksheet of the chapter whose MyST source is ``text``, as a notebook without outputs."""
    import jupytext
    import nbformat

    from .publish import BOOTSTRAP_TAG, bootstrap_source
    from .runner import KERNELSPEC
    if edition not in EDITIONS:
        raise RilibError(f"Unknown edition {edition!r}. Valid: {', '.join(EDITIONS)}.")
    parts = split(text, stem)
    exercises = strip_solutions(parts.exercises) if edition == "student" else parts.exercises
    url = cfg.get("html", {}).get("baseurl", "").rstrip("/") + f"/book/{stem}.html"
    note = (f"> **{edition.capitalize()} edition** of this chapter's exercises (profile `{profile}`). The figures and "
            f"the argument are in the book: <{url}>. Run the cells from the top; in each starter cell replace every "
            f"`...`, then run the check below it. `rilib assignments check {stem}.ipynb` grades the whole notebook.")
    params = re.sub(r'^profile = .*$', f'profile = "{profile}"', parts.parameters, flags=re.M)
    md = "\n".join([parts.front, parts.intro, note, "", params, "", parts.setup, "", _plain(exercises)])
    nb = jupytext.reads(md, fmt="md:myst")
    params_at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(params_at + 1, nbformat.v4.new_code_cell(bootstrap_source(cfg),
                                                              metadata={"tags": [BOOTSTRAP_TAG]}))
    for cell in nb.cells:
        if cell.metadata.get("tags") == ["remove-cell"]:  # the book hides the set-up cell; a worksheet shows it
            del cell.metadata["tags"]
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.pop("jupytext", None)
    nb.metadata["rilib"] = {"edition": edition, "chapter": stem, "profile": profile,
                            "exercises": exercise_labels(exercises), "checks": checked_labels(exercises)}
    return nb


def chapters_with_exercises(names: Optional[Sequence[str]] = None, root=None) -> list[Path]:
    """The chapter sources (all, or ``names``) that have an exercises section."""
    return [p for p in select(names, root) if f"\n{EXERCISES_HEADING}\n" in p.read_text()]


def build(profile: str = "cpu", names: Optional[Sequence[str]] = None, root=None, out=None, html: bool = False,
          repository: Optional[str] = None, quiet: bool = True) -> dict[str, list[Path]]:
    """Write the student and instructor worksheets of the chapters (default: every chapter with exercises) into
    ``out`` (default ``<root>/dist``), and with ``html`` the student HTML edition; return the paths by edition."""
    import nbformat

    from .publish import book_config
    get_profile(profile)
    root_path = project(root)
    out_dir = Path(out) if out else root_path / "dist"
    cfg = book_config(root_path, repository)
    chapters = chapters_with_exercises(names, root_path)
    if not chapters:
        raise RilibError("No chapter has an exercises section: nothing to build.")
    written: dict[str, list[Path]] = {e: [] for e in EDITIONS}
    for src in chapters:
        text = src.read_text()
        for edition in EDITIONS:
            nb = worksheet(text, edition, profile, src.stem, cfg)
            path = out_dir / edition / f"{src.stem}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, nbformat.writes(nb) + "\n")
            written[edition].append(path)
    if html:
        written["student-html"] = [student_html(root_path, out_dir / "student-html", repository, quiet)]
    return written


def student_html(root: Path, out: Path, repository: Optional[str] = None, quiet: bool = True) -> Path:
    """Build the book without solutions into ``out/_build/html`` from a copy of ``root``'s executed chapters with
    every solution removed (:func:`strip_notebook_solutions`), and sphinx-exercise's ``hide_solutions`` on; return
    its ``index.html``."""
    import shutil

    import nbformat

    from .runner import build as build_book
    stage = Path(out) / "source"
    if stage.exists():
        shutil.rmtree(stage)
    (stage / "book").mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / name, stage / name)
    shutil.copytree(root / "notebooks", stage / "notebooks")
    if (root / "rilib").is_dir():  # the pages show the library's code with {literalinclude} ../rilib/...
        shutil.copytree(root / "rilib", stage / "rilib", ignore=shutil.ignore_patterns("__pycache__"))
    for path in (root / "book").iterdir():
        if path.name.startswith("."):
            continue
        if path.suffix == ".ipynb":
            nb = nbformat.read(path, as_version=4)
            strip_notebook_solutions(nb)
            nbformat.write(nb, stage / "book" / path.name)
        elif path.is_file():
            shutil.copy2(path, stage / "book" / path.name)
    return build_book(stage, quiet=quiet, repository=repository, output=out, hide_solutions=True)


@dataclass
class Report:
    """What :func:`check` found in one notebook: the outcome of each exercise, and the seconds it ran."""

    notebook: str
    profile: str
    outcomes: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""
    edition: str = ""

    @property
    def failed(self) -> bool:
        return any(o["status"] == ex.FAILED for o in self.outcomes)

    def counts(self) -> dict[str, int]:
        return {s: sum(o["status"] == s for o in self.outcomes) for s in ex.OUTCOMES}

    def to_json(self) -> dict:
        return {"notebook": self.notebook, "edition": self.edition, "profile": self.profile,
                "seconds": round(self.seconds, 1),
                "counts": self.counts(), "exercises": self.outcomes, "error": self.error}

    def table(self) -> str:
        width = max([len(o["label"]) for o in self.outcomes] + [8])
        rows = [f"{self.notebook} (profile {self.profile}, {self.seconds:.0f} s)"]
        rows += [f"  {o['label']:<{width}}  {o['status']:<13}  {o['message']}" for o in self.outcomes]
        c = self.counts()
        rows.append(f"  {c[ex.PASSED]} passed, {c[ex.FAILED]} failed, {c[ex.NOT_ATTEMPTED]} not attempted")
        if self.error:
            rows.append(f"  the notebook stopped early: {self.error}")
        return "\n".join(rows)


def _error_text(cell) -> str:
    errs = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    return f"{errs[0]['ename']}: {errs[0]['evalue']}" if errs else ""


def read_outcomes(nb) -> tuple[list[dict], str]:
    """The outcome of every check of an executed notebook, in the order its metadata lists them, and the error that
    stopped the notebook early (or "")."""
    expected = nb.metadata.get("rilib", {}).get("checks") or []
    found: dict[str, dict] = {}
    stopped = ""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        err = _error_text(cell)
        if err and "raises-exception" not in tags and not stopped:
            stopped = err
        if ex.CHECK_TAG not in tags:
            continue
        labels = checked_labels(cell.source)
        shown = [o["data"][ex.MIME] for o in cell.get("outputs", []) if ex.MIME in o.get("data", {})]
        for d in shown:
            found[d["label"]] = {"label": d["label"], "status": d["status"], "message": d["message"]}
        for label in labels:
            if label not in found:
                why = (f"the check raised {err}" if err else
                       f"the check never ran (the notebook stopped earlier: {stopped})" if stopped else
                       "the check showed no outcome")
                found[label] = {"label": label, "status": ex.FAILED, "message": why}
    for label in expected:
        found.setdefault(label, {"label": label, "status": ex.FAILED,
                                 "message": "its check cell is missing from the notebook: restore it"})
    order = expected + [k for k in found if k not in expected]
    return [found[k] for k in order], stopped


def check(notebook, profile: Optional[str] = None, output=None, progress: bool = False) -> Report:
    """Execute ``notebook`` with papermill under ``profile`` (default: the one it was built for) and report each
    exercise as passed, failed or not attempted. ``output`` keeps the executed notebook."""
    import nbformat
    import papermill as pm

    path = Path(notebook)
    if not path.is_file():
        raise RilibError(f"No notebook at {path}. Build them with `rilib assignments build`.")
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:
        raise RilibError(f"{path} is not a readable notebook ({type(exc).__name__}: {exc}).") from None
    profile = profile or nb.metadata.get("rilib", {}).get("profile") or "cpu"
    get_profile(profile)
    with tempfile.TemporaryDirectory() as tmp:
        executed = Path(output) if output else Path(tmp) / path.name
        t0 = time.perf_counter()
        error = ""
        try:
            pm.execute_notebook(str(path), str(executed), parameters={"profile": profile}, kernel_name="python3",
                                cwd=str(path.parent), progress_bar=progress)
        except pm.PapermillExecutionError:
            pass  # the outcomes below say which exercise failed
        except Exception as exc:  # the kernel died, the notebook is malformed: nothing ran to the end
            error = f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - t0
        if not executed.exists():
            raise RilibError(f"{path} could not be executed: {error}")
        outcomes, stopped = read_outcomes(nbformat.read(executed, as_version=4))
    return Report(path.name, profile, outcomes, seconds, error or stopped,
                  nb.metadata.get("rilib", {}).get("edition", ""))


def write_json(reports: Sequence[Report], path) -> None:
    """The reports as one JSON document (schema ``rilib.assignments`` version 1)."""
    atomic_write_text(Path(path), json.dumps({"schema": "rilib.assignments", "schema_version": 1,
                                              "notebooks": [r.to_json() for r in reports]}, indent=2) + "\n")


#: Where the measured run times of the worksheets are kept (written by :func:`record_timings`, read by the
#: instructors' page), beside the book's prose pages.
TIMINGS_FILE = "book/classroom-timings.json"


def record_timings(reports: dict[str, Sequence[Report]], root=None, note: str = "") -> Path:
    """Keep the seconds each worksheet ran, by edition (``{"student": [...], "instructor": [...]}``), with the
    profile, the machine's core count, the date and ``note``, in :data:`TIMINGS_FILE`."""
    import datetime
    import os
    path = project(root) / TIMINGS_FILE
    data = {"schema": "rilib.classroom-timings", "schema_version": 1,
            "measured": datetime.date.today().isoformat(), "cores": os.cpu_count(), "note": note,
            "editions": {edition: [r.to_json() for r in rs] for edition, rs in reports.items()}}
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path


def record_chapter_timings(report: dict, root=None, note: str = "") -> Path:
    """Keep the seconds each chapter took to execute in a run's timing ``report`` (:func:`rilib.timing.report`;
    chapters not executed in it are left out; a chapter's precomputation is added to it) with its profile, the
    date, the machine's core count and ``note``, in :data:`CHAPTER_TIMINGS_FILE`."""
    import datetime
    import os
    executed = [r for r in report["records"] if r["kind"] == "chapter" and r.get("executed")]
    chapters = {r["name"]: {"seconds": r["seconds"], "profile": r.get("profile")} for r in executed
                if not r.get("precompute")}
    for r in executed:  # a chapter run alone computes what `book run` precomputed beside it
        owner = r["name"].removesuffix(PRECOMPUTE_SUFFIX)
        if r.get("precompute") and owner in chapters:
            chapters[owner]["seconds"] = round(chapters[owner]["seconds"] + r["seconds"], 3)
    if not chapters:
        raise RilibError("The timing log records no executed chapter: run `make book` (or `rilib book run` with "
                         "RILIB_TIMINGS set) first.")
    data = {"schema": "rilib.chapter-timings", "schema_version": 1, "measured": datetime.date.today().isoformat(),
            "cores": os.cpu_count(), "note": note, "chapters": chapters}
    path = project(root) / CHAPTER_TIMINGS_FILE
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path


def chapter_timing_table(root=None):
    """:data:`CHAPTER_TIMINGS_FILE` as a DataFrame (minutes per chapter, and its profile), with its date, cores and
    note in ``attrs``; ``None`` if nothing was measured yet."""
    import pandas as pd
    data = recorded_chapter_timings(project(root), keys=("seconds", "profile"))
    if data is None:
        return None
    rows = {name: {"profile": v["profile"], "minutes": round(v["seconds"] / 60, 1)}
            for name, v in sorted(data["chapters"].items())}
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("chapter")
    table.attrs.update({k: data.get(k) for k in ("measured", "cores", "note")})
    return table


def timing_note(timings) -> str:
    """A line that says when and where :func:`timing_table`'s ``timings`` were measured, or how to measure them,
    shown as prose on the page (:class:`rilib.book.display.Sentence`)."""
    from .display import Sentence
    if timings is None:
        return Sentence("Not measured yet: `rilib assignments check dist/*/*.ipynb --profile cpu --record` "
                        "(worksheets), `rilib book timings _build/timings.jsonl --record-chapters` (chapters)")
    return Sentence(f"Measured {timings.attrs['measured']} on {timings.attrs['cores']} cores. "
                    f"{timings.attrs['note']}")


def timing_table(root=None):
    """The measured run times of the worksheets (:data:`TIMINGS_FILE`) as a DataFrame, one row per chapter:
    seconds for the untouched student edition and for the completed one (the instructor edition, every solution
    and check run), and the profile; ``None`` if nothing was measured yet."""
    import pandas as pd
    path = project(root) / TIMINGS_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RilibError(f"{path} is not valid JSON ({exc}); measure again with `rilib assignments check "
                         f"dist/*/*.ipynb --profile cpu --record`.") from None
    rows: dict[str, dict] = {}
    for edition, reports in data["editions"].items():
        for r in reports:
            row = rows.setdefault(Path(r["notebook"]).stem, {"profile": r["profile"]})
            col = "completed (instructor edition)" if edition == "instructor" else "untouched student edition"
            row[f"{col}, seconds"] = round(r["seconds"])
            if edition == "instructor":
                row["exercises passed"] = f"{r['counts']['passed']} of {len(r['exercises'])}"
    table = pd.DataFrame.from_dict(rows, orient="index").sort_index()
    table.index.name = "chapter"
    table.attrs.update({k: data.get(k) for k in ("measured", "cores", "note")})
    return table
