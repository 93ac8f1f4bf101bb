"""Execute the chapters with papermill and build the book with Jupyter Book 1.x.

Chapter sources are jupytext files in ``notebooks/`` (MyST markdown ``.md`` or percent ``.py``), each with a
cell tagged ``parameters`` holding ``profile``. :func:`run` converts each to ``book/<name>.ipynb`` and
executes it there with papermill, unless that notebook is already up to date; :func:`build` runs
``jupyter-book build`` on the project root (``_config.yml`` sets ``execute_notebooks: 'off'``: papermill already
ran them).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from .. import stopping, timing
from ..errors import RilibError, UnknownNameError
from ..paths import atomic_write_text, file_lock, project_root
from ..profiles import get_profile

SOURCE_SUFFIXES = (".md", ".py")
#: The kernel every executed notebook names.
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
#: Where the measured run time of every chapter is kept (written by :func:`rilib.book.assignments.record_chapter_timings`
#: from a run's timing log, ``rilib book timings LOG --record-chapters``): the instructors' page shows it, and
#: parallel runs start the longest chapters first (:func:`longest_first`).
CHAPTER_TIMINGS_FILE = "book/chapter-timings.json"


def project(root: Optional[str | Path] = None) -> Path:
    """The book's project folder: ``root``, or this checkout."""
    path = Path(root) if root else project_root()
    if path is None or not (path / "notebooks").is_dir():
        raise RilibError("Could not find the book's project folder (with notebooks/ and _toc.yml). "
                         "Run from a rilib checkout or pass --root PATH.")
    return path.resolve()


def sources(root: Optional[str | Path] = None) -> list[Path]:
    """The chapter sources in ``notebooks/``, in name order."""
    return sorted(p for p in (project(root) / "notebooks").iterdir()
                  if p.suffix in SOURCE_SUFFIXES and not p.name.startswith((".", "_")))


def select(names: Sequence[str] | None, root: Optional[str | Path] = None) -> list[Path]:
    """Chapter sources by stem or file name (all when ``names`` is empty); unknown names list the valid ones."""
    found = sources(root)
    if not names:
        return found
    by_name = {p.stem: p for p in found} | {p.name: p for p in found}
    missing = [n for n in names if Path(n).name not in by_name and Path(n).stem not in by_name]
    if missing:
        raise UnknownNameError(f"Unknown notebook(s) {', '.join(missing)}. "
                               f"Valid: {', '.join(p.stem for p in found)}.")
    return [by_name.get(Path(n).name) or by_name[Path(n).stem] for n in names]


def recorded_chapter_timings(root: Path, keys: Sequence[str] = ("seconds",)) -> Optional[dict]:
    """The record at :data:`CHAPTER_TIMINGS_FILE` (``{"chapters": {name: {"seconds": ..., "profile": ...}}, "measured",
    "cores", "note"}``), or ``None`` if nothing was recorded yet. A record that cannot be read, or whose chapters lack
    one of ``keys`` or have seconds that are not a number, raises an error that says how to record it again."""
    import json
    path = Path(root) / CHAPTER_TIMINGS_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        for name, v in data["chapters"].items():
            if any(k not in v for k in keys) or not isinstance(v.get("seconds"), (int, float)):
                raise ValueError(f"chapter {name!r} needs {', '.join(keys)} (seconds a number), not {v!r}")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RilibError(f"{path} cannot be read ({exc}); record it again with `rilib book timings "
                         f"_build/timings.jsonl --record-chapters`.") from None
    return data


def longest_first(chapters: Sequence[Path], root: Path) -> list[Path]:
    """``chapters`` ordered by their recorded run time (:func:`recorded_chapter_timings`), longest first, so that a
    parallel run does not end on one long chapter while the other cores idle (longest-processing-time-first
    scheduling). Chapters without a record keep their order, ahead of the recorded ones (they may be long); with no
    readable record at all the order is unchanged (the record only orders the run, so a corrupt one is ignored)."""
    import math
    try:
        recorded = recorded_chapter_timings(root)
    except RilibError:
        recorded = None
    if recorded is None:
        return list(chapters)
    seconds = {name: v["seconds"] for name, v in recorded["chapters"].items()}
    return sorted(chapters, key=lambda src: -seconds.get(src.stem, math.inf))


def library_digest() -> str:
    """The sha256 of the whole library's source (file names and contents)."""
    import hashlib

    from ..paths import PACKAGE_DIR
    h = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        h.update(str(path.relative_to(PACKAGE_DIR)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def run_key(source: Path, profile: str, library: Optional[str] = None) -> str:
    """What an executed chapter depends on, hashed: its source, the profile, and the source of the whole library
    (code or sizes changed anywhere: run it again). ``library``: :func:`library_digest`, if already computed."""
    import hashlib
    h = hashlib.sha256()
    h.update(Path(source).read_bytes())
    h.update(profile.encode())
    h.update((library or library_digest()).encode())
    return h.hexdigest()[:16]


def _executed_key(path: Path) -> Optional[str]:
    """The run key stored in an executed notebook, or None (missing, unreadable, or not run by rilib)."""
    import nbformat
    try:
        return nbformat.read(path, as_version=4).metadata.get("rilib", {}).get("run_key")
    except Exception:  # a missing or broken notebook is simply not up to date
        return None


def _readable(path: Path) -> bool:
    """Whether ``path`` is a notebook that nbformat can read and validate."""
    import nbformat
    try:
        nbformat.validate(nbformat.read(path, as_version=4))
        return True
    except Exception:  # truncated JSON, a notebook that is not one: either way it must not be published
        return False


def check_executed(profile: str, root: Optional[str | Path] = None) -> list[dict]:
    """The state of each executed chapter in ``book/``, for ``rilib zoo verify``: ``chapter``, ``state`` (``ok``:
    readable and executed under ``profile``; ``other profile``; ``unreadable``: half-written or edited, left out
    of the build), and ``profile``."""
    import nbformat
    out = []
    for path in sorted((project(root) / "book").glob("*.ipynb")):
        if path.name.startswith("."):
            continue
        if not _readable(path):
            out.append({"chapter": path.stem, "state": "unreadable", "profile": None})
            continue
        ran = nbformat.read(path, as_version=4).metadata.get("rilib", {}).get("profile")
        out.append({"chapter": path.stem, "state": "ok" if ran == profile else "other profile", "profile": ran})
    return out


def run(names: Sequence[str] | None, profile: str, root: Optional[str | Path] = None,
        log_output: bool = False, force: bool = False, progress: bool = True,
        jobs: Optional[int] = None) -> list[Path]:
    """Execute chapters under ``profile`` with papermill; return the executed notebooks in ``book/``.

    ``progress`` shows a bar over each chapter's cells on stderr; ``log_output`` streams every cell's output as it
    runs (what a long chapter is doing, minute by minute).

    A chapter whose executed notebook is up to date (same source, profile and library, see :func:`run_key`) is
    not executed again unless ``force``. A chapter executes into a hidden file that replaces ``book/<name>.ipynb``
    only when it completes: an interrupted or failing run leaves ``book/.<name>.failed.ipynb`` for a look and never
    a partial notebook that ``build`` would publish. Two processes asking for one chapter take turns, and the second
    finds it executed (:func:`_execute_once`).

    ``jobs`` chapters execute at once (default :func:`rilib.zoo.default_jobs`: one per CPU core on a CPU), each by
    its own ``rilib book run`` process whose kernel has cores/jobs threads, logging to ``book/.<name>.log``; the
    longest chapters (by their recorded run times, :func:`longest_first`) start first; a chapter whose front matter
    says ``rilib: {after: all}`` (the synthesis page, which reads the others' results) starts only after the others
    have finished.
    """
    get_profile(profile)  # fail early on an unknown profile
    root_path = project(root)
    out_dir = root_path / "book"
    out_dir.mkdir(exist_ok=True)
    library = library_digest()
    todo, executed = [], []
    for src in select(names, root_path):
        target = out_dir / f"{src.stem}.ipynb"
        if not force and _executed_key(target) == run_key(src, profile, library):
            print(f"[rilib] {src.name} is up to date for profile {profile}: not executed again "
                  f"(--force executes it anyway)", flush=True)
            timing.record("chapter", src.stem, 0.0, executed=False, profile=profile)
        else:
            todo.append(src)
        executed.append(target)
    from ..zoo import default_jobs
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise RilibError(f"jobs must be 1 or more, not {jobs}.")
    if jobs > 1 and len(todo) > 1:
        _run_parallel(todo, profile, root_path, jobs, force=force, log_output=log_output)
    else:
        for src in todo:
            _execute_once(src, profile, root_path, run_key(src, profile, library), force, log_output, progress)
    return executed


def _execute_once(src: Path, profile: str, root_path: Path, key: str, force: bool, log_output: bool,
                  progress: bool) -> None:
    """:func:`_execute` holding the chapter's lock: a second process asking for the same chapter (two ``make book``
    in one checkout) waits, then finds it executed and does not execute it again (unless ``force``). Without the
    lock both kernels would write the same hidden notebook, and the first to finish could publish the other's
    partial one."""
    target = root_path / "book" / f"{src.stem}.ipynb"
    with _chapter_lock(root_path, src.stem, f"[rilib] waiting for another process that executes {src.name}"):
        if not force and _executed_key(target) == key:
            print(f"[rilib] {src.name} was executed by another process meanwhile: not executed again", flush=True)
            timing.record("chapter", src.stem, 0.0, executed=False, profile=profile)
            return
        _execute(src, profile, root_path, key, log_output, progress)


def _chapter_lock(root_path: Path, stem: str, waiting: str):
    """The lock a process holds while it executes chapter ``stem`` (``book/.locks/<stem>.lock``); :func:`build`
    takes it too before it adds the bootstrap cell to the executed notebook."""
    return file_lock(root_path / "book" / ".locks" / f"{stem}.lock", waiting=waiting)


def _front_matter(src: Path) -> dict:
    """The ``rilib:`` entry of a chapter's front matter (``after``, ``precompute``), or an empty dict."""
    import jupytext
    return jupytext.read(src).metadata.get("rilib", {})


def _runs_after_all(src: Path) -> bool:
    """Whether a chapter's front matter asks to run after every other chapter (``rilib: {after: all}``)."""
    return _front_matter(src).get("after") == "all"


#: What a chapter's precomputation is called in the timing log, after the chapter's name.
PRECOMPUTE_SUFFIX = " (precompute)"


def precompute_target(src: Path) -> Optional[str]:
    """The function a chapter's front matter names as its precomputation (``rilib: {precompute: module:function}``),
    or None. The function takes the profile and fills caches the chapter reads (under a file lock, so that the
    chapter waits for a value the precomputation is still computing rather than computing it twice)."""
    target = _front_matter(src).get("precompute")
    if target is not None and (not isinstance(target, str) or target.count(":") != 1):
        raise RilibError(f"{src.name}: `rilib: precompute` must be 'module:function', not {target!r}.")
    return target


def precompute(name: str, profile: str, root: Optional[str | Path] = None) -> float:
    """Run chapter ``name``'s precomputation (:func:`precompute_target`) under ``profile``; return its seconds. It
    is logged as a chapter job called ``<name>`` + :data:`PRECOMPUTE_SUFFIX`, so that the timing report and its replay count it
    among the chapters' jobs."""
    import importlib
    get_profile(profile)
    (src,) = select([name], root)
    target = precompute_target(src)
    if target is None:
        raise RilibError(f"{src.name} names no precomputation in its front matter (`rilib: precompute: "
                         f"module:function`). Chapters that do: "
                         f"{', '.join(s.stem for s in sources(root) if precompute_target(s)) or 'none'}.")
    module, function = target.split(":")
    try:
        fn = getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError) as exc:
        raise RilibError(f"{src.name}: its precomputation {target!r} cannot be found ({exc}).") from None
    t0 = time.perf_counter()
    print(f"[rilib] precomputing for {src.name} (profile {profile}): {target}", flush=True)
    fn(profile)
    seconds = time.perf_counter() - t0
    timing.record("chapter", src.stem + PRECOMPUTE_SUFFIX, seconds, executed=True, profile=profile, precompute=True)
    print(f"[rilib] precomputation for {src.name} done in {seconds:.0f} s", flush=True)
    return seconds


def _run_parallel(todo: Sequence[Path], profile: str, root: Path, jobs: int, force: bool,
                  log_output: bool = False) -> None:
    """Execute the chapters ``todo`` ``jobs`` at a time, each by a ``rilib book run NAME`` process with cores/jobs
    threads and its output in ``book/.<name>.log``; print a line when each starts and ends, and every minute which
    are running. Chapters that run after all (:func:`_runs_after_all`) start when the others have ended. The first
    failure stops chapters not yet started and is raised when the running ones end; an interrupt stops them all
    (each keeps its ``.failed`` notebook, as :func:`run` says)."""
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    # stopping.child_env: each chapter's process stops when this one is gone, however it was killed
    env = stopping.child_env(dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads))
    first = [s for s in todo if not _runs_after_all(s)]
    # Precomputations first: they must be done before their chapter needs them, and they run beside the longest
    # chapters on the other cores.
    waves = [[_Precompute(s) for s in first if precompute_target(s)] + longest_first(first, root),
             [s for s in todo if _runs_after_all(s)]]
    running: dict = {}
    failed: list[str] = []
    t_start = beat = time.perf_counter()
    try:
        for waiting in waves:
            while (waiting or running) and not (failed and not running):
                while waiting and len(running) < jobs and not failed:
                    src = waiting.pop(0)
                    log = root / "book" / f".{src.stem}.log"
                    if isinstance(src, _Precompute):
                        cmd = [sys.executable, "-m", "rilib", "book", "precompute", src.source.stem, "--profile",
                               profile, "--root", str(root)]
                    else:
                        cmd = [sys.executable, "-m", "rilib", "book", "run", src.stem, "--profile", profile,
                               "--root", str(root), "--jobs", "1"] + (["--force"] if force else []) + (
                            ["--log-output"] if log_output else [])
                    fh = open(log, "w")
                    running[src] = (subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                                     preexec_fn=_default_sigint), fh, time.perf_counter(), log)
                    print(f"[rilib] {'starting' if isinstance(src, _Precompute) else 'executing'} {src.name} "
                          f"(profile {profile}, {threads} thread(s)); its log: {log.relative_to(root)}", flush=True)
                time.sleep(0.5)
                for src, (proc, fh, t0, log) in list(running.items()):
                    if proc.poll() is None:
                        continue
                    fh.close()
                    del running[src]
                    if proc.returncode == 0:
                        print(f"[rilib] {src.name} done in {time.perf_counter() - t0:.0f} s", flush=True)
                    else:
                        failed.append(f"{src.name} (exit {proc.returncode}), the end of its log:\n{_tail(log)}")
                if running and time.perf_counter() - beat > 60:
                    beat = time.perf_counter()
                    now = ", ".join(f"{s.stem} for {(beat - t0) / 60:.1f} min"
                                    for s, (_, _, t0, _) in running.items())
                    print(f"[rilib] {(beat - t_start) / 60:.0f} min: running {now}", flush=True)
            if failed:
                break
    finally:  # on an interrupt or an error here, stop what still runs as Ctrl-C would (its kernel shut down, its
        # partial notebook kept as .failed), then for good if it does not stop within 30 s
        import signal
        for proc, _, _, _ in running.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 30
        for proc, fh, _, _ in running.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            fh.close()
    if failed:
        raise RilibError("Chapter(s) failed: " + "\n".join(failed))


@dataclass(frozen=True)
class _Precompute:
    """A chapter's precomputation (:func:`precompute`) as a job of :func:`_run_parallel`."""

    source: Path

    @property
    def name(self) -> str:
        return f"the precomputation of {self.source.name}"

    @property
    def stem(self) -> str:
        return f"{self.source.stem}.precompute"


def _default_sigint() -> None:
    """In a chapter's process, before it starts: SIGINT at its default, so that Python turns it into
    KeyboardInterrupt even where this run inherited it ignored (started in the background by a shell without job
    control, or under nohup), and :func:`_run_parallel` can stop the chapter cleanly."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def _execute(src: Path, profile: str, root_path: Path, key: str, log_output: bool, progress: bool) -> None:
    """Execute one chapter source into ``book/<name>.ipynb`` (see :func:`run`)."""
    import jupytext
    import nbformat
    import papermill as pm

    out_dir = root_path / "book"
    target = out_dir / f"{src.stem}.ipynb"
    nb = jupytext.read(src)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    staging = out_dir / f".{src.stem}.input.ipynb"
    running = out_dir / f".{src.stem}.running.ipynb"
    failed = out_dir / f".{src.stem}.failed.ipynb"
    nbformat.write(nb, staging)
    t0 = time.perf_counter()
    print(f"[rilib] executing {src.name} (profile {profile}) -> {target.relative_to(root_path)}", flush=True)
    try:
        pm.execute_notebook(str(staging), str(running), parameters={"profile": profile},
                            kernel_name="python3", cwd=str(out_dir), log_output=log_output,
                            progress_bar=_progress_bar(src.stem) if progress else False)
    except BaseException as exc:  # a failing cell, an interrupt: keep what ran, publish nothing
        if running.exists():
            os.replace(running, failed)
        kept = (f"{target.relative_to(root_path)} keeps its last complete run" if target.exists()
                else f"{target.relative_to(root_path)} was not written")
        if isinstance(exc, pm.PapermillExecutionError):
            raise RilibError(f"{src.name} failed under profile {profile!r} in cell {exc.exec_count}: "
                             f"{exc.ename}: {exc.evalue}\nThe partly executed notebook is {failed}; "
                             f"{kept}.") from None
        print(f"[rilib] {src.name} did not complete; the partly executed notebook is {failed}; {kept}.",
              file=sys.stderr, flush=True)
        raise
    finally:
        staging.unlink(missing_ok=True)
    _finish(running, key, profile, paths={"input_path": src.relative_to(root_path).as_posix(),
                                          "output_path": target.relative_to(root_path).as_posix()})
    os.replace(running, target)
    failed.unlink(missing_ok=True)
    timing.record("chapter", src.stem, time.perf_counter() - t0, executed=True, profile=profile)
    print(f"[rilib] {src.name} done in {time.perf_counter() - t0:.0f} s", flush=True)


def _progress_bar(name: str) -> dict:
    """papermill's bar over a chapter's cells: on stderr, redrawn at most every 5 s when stderr is a log file."""
    return {"desc": name, "file": sys.stderr, "mininterval": 0.5 if sys.stderr.isatty() else 5.0,
            "dynamic_ncols": True}


def _finish(path: Path, key: str, profile: str, paths: Optional[dict] = None) -> None:
    """In one read and write of an executed notebook: hide the source's default ``parameters`` cell in the book
    (papermill's injected cell below it shows the profile the chapter actually ran with), drop what the cells wrote
    to stderr (progress bars and library warnings, which name the machine's paths; the HTML leaves them out too,
    ``nb_output_stderr: remove``, and a failed run keeps them in its ``.failed`` notebook), replace papermill's
    absolute ``input_path`` and ``output_path`` by ``paths`` (the chapter's source and executed notebook, relative
    to the project: the published notebook names no folder of the machine that ran it), and record the run key and
    the profile in its metadata."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    if paths and "papermill" in nb.metadata:
        nb.metadata["papermill"].update(paths)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.get("outputs", [])
                            if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
    tags = [c.get("metadata", {}).get("tags", []) for c in nb.cells]
    if any("injected-parameters" in t for t in tags):
        for cell, t in zip(nb.cells, tags):
            if "parameters" in t and "remove-cell" not in t:
                cell.metadata["tags"] = [*t, "remove-cell"]
    nb.metadata["rilib"] = {"run_key": key, "profile": profile}
    nbformat.write(nb, path)


def build(root: Optional[str | Path] = None, quiet: bool = True, profile: Optional[str] = None,
          repository: Optional[str] = None, output: Optional[str | Path] = None,
          hide_solutions: bool = False) -> Path:
    """Build the HTML book into ``<output>/_build/html`` (default ``output``: ``root``); return the path of its
    ``index.html``.

    - Chapters not executed yet, and executed notebooks that cannot be read (a half-written file), are left out of
      this build, with a note naming them and how to run them (a broken file stays where it is); the introduction
      must exist.
    - ``_config.yml`` is resolved for ``repository`` (``owner/name``; default ``RILIB_REPOSITORY``) by
      :func:`rilib.book.publish.book_config`, and every executed chapter gets the hidden bootstrap cell
      (:func:`rilib.book.publish.add_bootstrap`) that Colab and Binder run.
    - With ``profile``, also measure the registered claims under it (from the chapters' caches) and ship them
      beside the HTML as ``ledger.json`` (see :func:`rilib.book.ledger.write_json`).
    - With ``hide_solutions``, sphinx-exercise leaves every solution out of the HTML (the student edition of
      :mod:`rilib.book.assignments`).
    """
    import yaml

    from . import publish
    root_path = project(root)
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(root_path)]
    if quiet:
        cmd.append("--quiet")
    toc = yaml.safe_load((root_path / "_toc.yml").read_text())
    pages = _toc_files(root_path, toc)
    if not pages[0].exists():
        raise RilibError(f"The book's first page {pages[0]} is missing; restore it from git.")
    missing = [p for p in pages if not p.exists()]
    if missing:
        print(f"[rilib] building without {len(missing)} chapter(s) not executed yet: "
              f"{', '.join(p.stem for p in missing)}. `rilib book run --profile cpu` (or `make book`) executes "
              f"them.", file=sys.stderr, flush=True)
    broken = [p for p in pages[1:] if p.suffix == ".ipynb" and p.exists() and not _readable(p)]
    if broken:  # left where they are (nothing is lost), but never published
        print(f"[rilib] building without {len(broken)} executed chapter(s) that cannot be read (half-written or "
              f"edited by hand): {', '.join(str(p.relative_to(root_path)) for p in broken)}. "
              f"`rilib book run {' '.join(p.stem for p in broken)} --force` executes them again.",
              file=sys.stderr, flush=True)
        missing += broken
    cfg = publish.book_config(root_path, repository)
    if hide_solutions:
        cfg.setdefault("sphinx", {}).setdefault("config", {})["hide_solutions"] = True
    out_root = Path(output).resolve() if output else root_path
    generated = out_root / "_build" / ".rilib"
    # One build at a time per output folder (two would write one _build together). Each executed chapter gets its
    # bootstrap cell under that chapter's lock, so a chapter another process is executing is added once it is
    # published, and the build never writes its old version over the new one.
    with file_lock(generated / "build.lock", waiting=f"[rilib] waiting for another build into {out_root / '_build'}"):
        for page in pages[1:]:
            if page.suffix == ".ipynb" and page.exists() and page not in broken:
                with _chapter_lock(root_path, page.stem, f"[rilib] waiting for another process that executes "
                                                         f"{page.stem} before the build adds it"):
                    publish.add_bootstrap(page, cfg)
        atomic_write_text(generated / "_config.yml", yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
        atomic_write_text(generated / "_toc.yml",
                          yaml.safe_dump(_toc_without(toc, root_path, missing), sort_keys=False))
        cmd += ["--config", str(generated / "_config.yml"), "--toc", str(generated / "_toc.yml")]
        if output:
            cmd += ["--path-output", str(out_root)]
        env = dict(os.environ, PYDEVD_DISABLE_FILE_VALIDATION="1")
        with timing.timed("build", "jupyter-book"):
            proc = subprocess.run(cmd, cwd=root_path, env=env, capture_output=True, text=True)
        index = out_root / "_build" / "html" / "index.html"
        if proc.returncode != 0 or not index.exists():
            raise RilibError(f"jupyter-book build failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")
        if profile is not None:
            from . import ledger
            if not ledger.list_claims():
                raise RilibError("No claims are registered, so there is no ledger to ship: import rilib.chapters "
                                 "before rilib.book.build(profile=...) (the rilib command does).")
            with timing.timed("build", "ledger.json"):
                ledger.write_json(ledger.run(profile), index.parent / "ledger.json")
        return index


def _toc_without(toc: dict, root: Path, missing: Sequence[Path]) -> dict:
    """A copy of the table of contents ``toc`` (of the book at ``root``) without the pages in ``missing``, at every
    depth :func:`_toc_files` reads: chapters, their sections, and the chapters of parts."""
    gone = {p.relative_to(root).with_suffix("").as_posix() for p in missing}

    def keep(entries):
        out = []
        for e in entries or []:
            if e.get("file") in gone:
                continue
            e = dict(e)
            if "sections" in e:
                e["sections"] = keep(e["sections"])
            if "parts" in e:
                e["parts"] = [dict(part, chapters=keep(part.get("chapters"))) for part in e["parts"]]
            out.append(e)
        return out

    kept = keep([toc])[0]  # the top level holds chapters and parts like an entry does
    if "chapters" in kept:
        kept["chapters"] = keep(kept["chapters"])
    return kept


def _toc_files(root: Path, toc: dict) -> list[Path]:
    """Files named in the table of contents ``toc`` of the book at ``root`` (with their suffix resolved)."""
    names = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                names.append(e["file"])
            walk(e.get("sections"))
            for part in e.get("parts", []) or []:
                walk(part.get("chapters"))

    walk(toc.get("chapters"))
    for part in toc.get("parts", []) or []:
        walk(part.get("chapters"))
    out = []
    for n in names:
        cands = [root / f"{n}{s}" for s in (".md", ".ipynb", ".rst")] + [root / n]
        out.append(next((c for c in cands if c.exists() and c.is_file()), cands[1]))
    return out
