"""Reliability: a run that is killed, a corrupt artefact, two processes at once, a read-only or full cache.

Each case ends in a clear message or a correct recomputation, and each checks that nothing that existed before is
lost. Models are tiny and trained on a few hundred digits; the chapters that are stopped sleep in one cell.
"""

from __future__ import annotations

import builtins
import errno
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

import rilib
from rilib import RilibError, paths, zoo
from rilib.attacks import PGD

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _spec(seed: int, epochs: int = 3, n_train: int = 300) -> rilib.Spec:
    return rilib.Spec.make("mnist-5k", "tiny-cnn", "standard", epochs=epochs, n_train=n_train, n_test=100,
                           batch_size=64, seed=seed)


def _python(code: str, env: dict, **kw) -> subprocess.Popen:
    """Start ``code`` in a new Python process with ``env`` added to this one's environment."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _files(folder: pathlib.Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# ---------------------------------------------------------------------------------------------------
# Killed in the middle

def test_kill_9_in_the_middle_of_training_then_resume_gives_the_uninterrupted_weights(tmp_path, monkeypatch):
    killed = _python("""
        import os, signal, rilib
        from rilib import zoo
        spec = rilib.Spec.make("mnist-5k", "tiny-cnn", "standard", epochs=3, n_train=300, n_test=100,
                               batch_size=64, seed=41)
        zoo.train(spec, progress=False,
                  on_epoch_end=lambda epoch, record: os.kill(os.getpid(), signal.SIGKILL) if epoch == 1 else None)
    """, {"RILIB_CACHE": str(tmp_path / "a")})
    killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL
    spec = _spec(41)
    monkeypatch.setenv("RILIB_CACHE", str(tmp_path / "a"))
    folder = spec.folder()
    assert (folder / "checkpoint.pt").exists() and not (folder / "model.pt").exists()
    resumed_epochs = []
    zoo.train(spec, progress=False, on_epoch_end=lambda e, r: resumed_epochs.append(e))  # the lock died with it
    assert resumed_epochs == [2]
    resumed = zoo.load(spec).state_dict()

    monkeypatch.setenv("RILIB_CACHE", str(tmp_path / "b"))
    zoo.train(spec, progress=False)
    straight = zoo.load(spec).state_dict()
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)


# ---------------------------------------------------------------------------------------------------
# Corrupt artefacts, one by one

def test_a_corrupt_checkpoint_is_never_reported_as_cached():
    spec = _spec(42, epochs=1)
    folder = zoo.train(spec, progress=False)
    blob = bytearray((folder / "model.pt").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (folder / "model.pt").write_bytes(bytes(blob))
    before = _files(folder)
    with pytest.raises(RilibError, match="corrupt or was modified") as err:
        zoo.train(spec, progress=False)
    assert "--retrain" in str(err.value) and str(folder) in str(err.value)
    assert zoo.check(spec)["model"] == "corrupt"
    assert _files(folder) == before, "refusing must not touch the folder"
    zoo.train(spec, progress=False, retrain=True)
    assert zoo.check(spec)["model"] == "ok" and zoo.load(spec) is not None


def test_a_retraining_that_fails_puts_the_old_model_back():
    spec = _spec(45, epochs=2)
    folder = zoo.train(spec, progress=False)
    before = _files(folder)

    def interrupt(epoch, record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        zoo.train(spec, progress=False, retrain=True, on_epoch_end=interrupt)
    assert _files(folder) == before, "a failed retraining must leave the previous model as it was"
    assert zoo.check(spec)["model"] == "ok"
    assert not list(folder.parent.glob(f".{folder.name}*")), "nothing set aside is left behind"


def _killed_retraining(spec: rilib.Spec) -> tuple[pathlib.Path, dict]:
    """Train ``spec``, then leave its zoo as a retraining killed in its first epoch leaves it (its previous folder
    set aside, the new one holding a checkpoint and no model); returns the folder and the previous model's files."""
    folder = zoo.train(spec, progress=False)
    before = _files(folder)
    state = folder.parent.parent / "killed-state"

    def kill(epoch, record):  # what is on disk at this moment is what kill -9 would leave
        shutil.copytree(folder.parent, state)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        zoo.train(spec, progress=False, retrain=True, on_epoch_end=kill)
    shutil.rmtree(folder.parent)
    os.replace(state, folder.parent)
    assert (folder / "checkpoint.pt").exists() and not (folder / "model.pt").exists()
    assert _files(zoo._set_aside(folder)) == before
    return folder, before


def test_a_killed_retraining_is_settled_by_the_next_run_and_loses_nothing(capfd, monkeypatch):
    """kill -9 runs no handler, so the retraining cannot put the previous model back itself: the next process that
    takes the model's lock puts it back. Before, a second retraining deleted the only complete model."""
    spec = _spec(46, epochs=2)
    folder, before = _killed_retraining(spec)
    assert zoo.check(spec)["model"] == "interrupted" and "puts it back" in zoo.check(spec)["detail"]
    with monkeypatch.context() as m:
        m.setenv("RILIB_TRAIN", "0")  # it finds the previous model, and trains nothing
        zoo.train(spec, progress=False)
    assert _files(folder) == before and zoo.check(spec)["model"] == "ok"
    assert "was killed before it completed; its previous folder is restored" in capfd.readouterr().err
    assert not list(folder.parent.glob(f".{folder.name}*")), "nothing set aside is left behind"

    folder, before = _killed_retraining(spec)  # then a second retraining, itself interrupted

    def interrupt(epoch, record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        zoo.train(spec, progress=False, retrain=True, on_epoch_end=interrupt)
    assert _files(folder) == before, "the only complete model must survive two failed retrainings"
    assert not list(folder.parent.glob(f".{folder.name}*"))


def test_a_retraining_killed_after_it_completed_keeps_the_new_model_and_delete_removes_what_was_set_aside():
    spec = _spec(46, epochs=1)
    folder = zoo.train(spec, progress=False, retrain=True)
    new = _files(folder)
    shutil.copytree(folder, zoo._set_aside(folder))  # killed after the new model, before deleting the previous one
    zoo.train(spec, progress=False)
    assert _files(folder) == new and not zoo._set_aside(folder).exists()
    _killed_retraining(spec)
    assert zoo.delete(spec) and not folder.exists() and not zoo._set_aside(folder).exists()


def test_an_unreadable_metrics_file_is_a_clear_error():
    spec = _spec(43, epochs=1)
    folder = zoo.train(spec, progress=False)
    (folder / "metrics.json").write_text('{"sha256": ')
    before = _files(folder)
    with pytest.raises(RilibError, match="not valid JSON") as err:
        zoo.train(spec, progress=False)
    assert "--retrain" in str(err.value)
    assert _files(folder) == before


def test_a_corrupt_evaluation_cache_is_set_aside_and_recomputed():
    spec = _spec(44, epochs=1)
    attack = PGD(eps=0.1, steps=2)
    first = zoo.evaluate(spec, attack, "smoke", n=20, progress=False)
    path = spec.folder() / "evals.json"
    path.write_text('{"truncated": ')
    with pytest.warns(UserWarning, match="could not read the cache"):
        again = zoo.evaluate(spec, attack, "smoke", n=20, progress=False)
    assert again == first
    assert (spec.folder() / "evals.json.corrupt").read_text() == '{"truncated": '
    assert len(json.loads(path.read_text())) == 1


def test_a_corrupt_results_file_is_set_aside_and_recomputed(tiny_standard):
    import dataclasses

    from rilib.chapters import convolution_filters as ch2
    profile = dataclasses.replace(rilib.get_profile("smoke"), name="reliability")
    models = {"mnist-standard": tiny_standard}  # cached under the catalogue model's key
    first = ch2.damping(profile, models, progress=False)
    [path] = list((paths.cache_dir() / "results").glob("convolution_filters-reliability-*.json"))
    path.write_text("[{")
    with pytest.warns(UserWarning, match="recomputing"):
        again = ch2.damping(profile, models, progress=False)
    assert again.equals(first)
    assert path.with_name(path.name + ".corrupt").read_text() == "[{"
    assert json.loads(path.read_text())[0]["damping ratio"] == first["damping ratio"].iloc[0]


def _book(tmp_path, cells: list[str]) -> pathlib.Path:
    """A one-chapter book: notebooks/01_page.md with a parameters cell and ``cells``."""
    root = tmp_path / "book-root"
    (root / "notebooks").mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    body = "\n".join(f"```{{code-cell}} ipython3\n{c}\n```\n" for c in cells)
    (root / "notebooks" / "01_page.md").write_text(textwrap.dedent("""\
        ---
        jupytext:
          text_representation: {extension: .md, format_name: myst}
        kernelspec: {display_name: Python 3, language: python, name: python3}
        ---
        # A page

        ```{code-cell} ipython3
        :tags: [parameters]

        profile = "cpu"
        ```
        """) + body)
    return root


@pytest.mark.slow
def test_a_failing_chapter_leaves_no_notebook_that_the_build_would_publish(tmp_path):
    from rilib.book import runner
    root = _book(tmp_path, ["x = 1", "raise RuntimeError('boom')", "y = 2"])
    with pytest.raises(RilibError, match="boom") as err:
        runner.run(["01_page"], "smoke", root)
    assert not (root / "book" / "01_page.ipynb").exists()
    failed = root / "book" / ".01_page.failed.ipynb"
    assert failed.exists() and str(failed) in str(err.value)
    # a complete earlier run survives a failing one
    good = _book(tmp_path / "good", ["x = 1"])
    runner.run(["01_page"], "smoke", good)
    executed = (good / "book" / "01_page.ipynb").read_bytes()
    (good / "notebooks" / "01_page.md").write_text((good / "notebooks" / "01_page.md").read_text()
                                                   + "```{code-cell} ipython3\nraise ValueError('late')\n```\n")
    with pytest.raises(RilibError, match="keeps its last complete run"):
        runner.run(["01_page"], "smoke", good)
    assert (good / "book" / "01_page.ipynb").read_bytes() == executed


@pytest.mark.slow
def test_a_published_chapter_keeps_what_its_cells_print_and_names_no_machine_path(tmp_path):
    """Progress bars and library warnings go to stderr and name the machine's paths: the published notebook (which
    Binder, Colab and the page's download open) leaves them out, as the HTML does; what a cell prints stays, and
    papermill's record of where it ran names the project's files, not the machine's folders."""
    import nbformat

    from rilib.book import runner
    root = _book(tmp_path, ["import sys, warnings\nprint('shown')\nprint('progress 50%', file=sys.stderr)\n"
                            "warnings.warn('from /some/machine/path')"])
    runner.run(["01_page"], "smoke", root)
    nb = nbformat.read(root / "book" / "01_page.ipynb", as_version=4)
    streams = [(o["name"], o["text"]) for c in nb.cells if c.cell_type == "code" for o in c.outputs
               if o["output_type"] == "stream"]
    assert ("stdout", "shown\n") in streams and not [t for name, t in streams if name == "stderr"], streams
    assert nb.metadata.papermill.input_path == "notebooks/01_page.md"
    assert nb.metadata.papermill.output_path == "book/01_page.ipynb"
    assert str(tmp_path) not in (root / "book" / "01_page.ipynb").read_text(), "the notebook names a machine path"


@pytest.mark.slow
def test_an_up_to_date_chapter_is_not_executed_again(tmp_path, capsys):
    from rilib.book import runner
    root = _book(tmp_path, ["import time\nstamp = time.time()\nstamp"])
    runner.run(["01_page"], "smoke", root)
    first = (root / "book" / "01_page.ipynb").read_bytes()
    runner.run(["01_page"], "smoke", root)
    assert "up to date" in capsys.readouterr().out
    assert (root / "book" / "01_page.ipynb").read_bytes() == first
    runner.run(["01_page"], "paper", root)  # another profile is another run
    assert (root / "book" / "01_page.ipynb").read_bytes() != first


@pytest.mark.slow
def test_parallel_chapters_run_together_and_the_synthesis_page_after_them(tmp_path):
    """``jobs=2``: two chapters overlap in time, a page whose front matter says ``rilib: {after: all}`` starts
    only once both have ended, and each leaves its executed notebook and its log."""
    from rilib.book import runner
    root = _book(tmp_path, [])
    stamp = ("import time, pathlib\nt0 = time.time()\ntime.sleep({sleep})\n"
             "pathlib.Path('{name}.times').write_text(f'{{t0}} {{time.time()}}')")
    page = (root / "notebooks" / "01_page.md").read_text()
    for name, sleep in (("01_page", 1), ("02_other", 8), ("99_last", 0)):  # the last page must wait for the slow one
        text = page + f"```{{code-cell}} ipython3\n{stamp.format(name=name, sleep=sleep)}\n```\n"
        if name == "99_last":
            text = text.replace("kernelspec:", "rilib: {after: all}\nkernelspec:", 1)
        (root / "notebooks" / f"{name}.md").write_text(text)
    runner.run(None, "smoke", root, jobs=2)
    times = {n: [float(v) for v in (root / "book" / f"{n}.times").read_text().split()]
             for n in ("01_page", "02_other", "99_last")}
    assert times["01_page"][0] < times["02_other"][1] and times["02_other"][0] < times["01_page"][1], times
    assert times["99_last"][0] > max(times["01_page"][1], times["02_other"][1]), times
    for name in times:
        assert (root / "book" / f"{name}.ipynb").exists() and (root / "book" / f".{name}.log").exists()


@pytest.mark.slow
def test_a_chapters_precomputation_runs_first_beside_the_other_chapters(tmp_path, monkeypatch):
    """A chapter whose front matter names a precomputation (``rilib: {precompute: module:function}``): ``jobs=2``
    runs it in a process of its own before the chapters that wait for a lane, with the profile; the chapter finds its
    result; the timing log counts it as a chapter job, and the recorded chapter time includes it."""
    from rilib.book import assignments, runner
    root = _book(tmp_path, [])
    helper = tmp_path / "helpers"
    helper.mkdir()
    (helper / "precompute_probe.py").write_text(textwrap.dedent(f"""\
        import pathlib, time
        def fill(profile):
            t0 = time.time()
            time.sleep(2)
            pathlib.Path({str(root)!r}, "filled").write_text(f"{{profile}} {{t0}} {{time.time()}}")
        """))
    monkeypatch.setenv("PYTHONPATH", str(helper))
    log = tmp_path / "timings.jsonl"
    monkeypatch.setenv("RILIB_TIMINGS", str(log))
    stamp = ("import time, pathlib\nt0 = time.time()\nfound = pathlib.Path({root!r}, 'filled').read_text()\n"
             "pathlib.Path('{name}.times').write_text(f'{{t0}} {{time.time()}} {{found}}')")
    page = (root / "notebooks" / "01_page.md").read_text()
    for name, precomputed in (("01_page", False), ("02_other", True)):
        text = page + f"```{{code-cell}} ipython3\nimport time; time.sleep(4)\n```\n"
        if precomputed:  # reads what its precomputation wrote, after the first chapter freed a lane
            text = text.replace("kernelspec:", "rilib: {precompute: 'precompute_probe:fill'}\nkernelspec:", 1)
            text += f"```{{code-cell}} ipython3\n{stamp.format(root=str(root), name=name)}\n```\n"
        (root / "notebooks" / f"{name}.md").write_text(text)
    assert runner.precompute_target(root / "notebooks" / "02_other.md") == "precompute_probe:fill"
    assert runner.precompute_target(root / "notebooks" / "01_page.md") is None
    runner.run(None, "smoke", root, jobs=2)
    profile, t0, t1 = (root / "filled").read_text().split()
    chapter_start = float((root / "book" / "02_other.times").read_text().split()[0])
    assert profile == "smoke" and float(t1) < chapter_start
    records = [json.loads(line) for line in log.read_text().splitlines()]
    pre = [r for r in records if r["name"] == "02_other (precompute)"]
    assert len(pre) == 1 and pre[0]["kind"] == "chapter" and pre[0]["precompute"] and pre[0]["seconds"] >= 2
    from rilib import timing
    path = assignments.record_chapter_timings(timing.report(log), root=root)
    recorded = json.loads(path.read_text())["chapters"]
    chapter = next(r for r in records if r["name"] == "02_other")
    assert set(recorded) == {"01_page", "02_other"}
    assert recorded["02_other"]["seconds"] == pytest.approx(chapter["seconds"] + pre[0]["seconds"], abs=0.01)


def test_a_precomputation_that_is_not_module_function_is_a_clear_error(tmp_path):
    from rilib.book import runner
    root = _book(tmp_path, [])
    src = root / "notebooks" / "01_page.md"
    src.write_text(src.read_text().replace("kernelspec:", "rilib: {precompute: no_colon}\nkernelspec:", 1))
    with pytest.raises(RilibError, match="module:function"):
        runner.precompute_target(src)
    with pytest.raises(RilibError, match="module:function"):
        runner.precompute("01_page", "smoke", root)
    src.write_text(src.read_text().replace("no_colon", "'no_such_module_here:fill'"))
    with pytest.raises(RilibError, match="cannot be found"):
        runner.precompute("01_page", "smoke", root)


def test_parallel_runs_start_the_longest_recorded_chapters_first(tmp_path):
    """Longest processing time first, from the recorded chapter timings; a chapter without a record goes ahead of
    the recorded ones in its own order; an unreadable record leaves the order alone."""
    from rilib.book import runner
    srcs = [tmp_path / "notebooks" / f"{n}.md" for n in ("01_a", "02_b", "03_new", "04_c", "05_new")]
    assert runner.longest_first(srcs, tmp_path) == srcs  # nothing recorded
    record = tmp_path / runner.CHAPTER_TIMINGS_FILE
    record.parent.mkdir()
    record.write_text(json.dumps({"chapters": {"01_a": {"seconds": 900.0}, "02_b": {"seconds": 60.0},
                                               "04_c": {"seconds": 1500.0}, "99_gone": {"seconds": 9e9}}}))
    assert [s.stem for s in runner.longest_first(srcs, tmp_path)] == ["03_new", "05_new", "04_c", "01_a", "02_b"]
    record.write_text('{"chapters": {"01_a": {"seconds": "slow"}')
    assert runner.longest_first(srcs, tmp_path) == srcs


@pytest.mark.slow
def test_a_failing_parallel_chapter_is_named_with_its_log_and_stops_the_synthesis_page(tmp_path):
    from rilib.book import runner
    root = _book(tmp_path, ["x = 1"])
    page = (root / "notebooks" / "01_page.md").read_text()
    (root / "notebooks" / "02_bad.md").write_text(page + "```{code-cell} ipython3\nraise ValueError('kaput')\n```\n")
    (root / "notebooks" / "99_last.md").write_text(page.replace("kernelspec:", "rilib: {after: all}\nkernelspec:", 1))
    with pytest.raises(RilibError, match=r"(?s)02_bad\.md \(exit 1\).*kaput"):
        runner.run(None, "smoke", root, jobs=2)
    assert (root / "book" / "01_page.ipynb").exists()  # the chapter that worked keeps its notebook
    assert not (root / "book" / "02_bad.ipynb").exists() and (root / "book" / ".02_bad.failed.ipynb").exists()
    assert not (root / "book" / "99_last.ipynb").exists()


def _start_parallel_book(tmp_path) -> tuple[subprocess.Popen, pathlib.Path]:
    """`rilib book run --jobs 2` of two chapters that sleep for two minutes, returned once both kernels sleep."""
    root = _book(tmp_path, ["import time\ntime.sleep(120)"])
    page = (root / "notebooks" / "01_page.md").read_text()
    (root / "notebooks" / "02_other.md").write_text(page)
    parent = _python(f"""
        import signal, sys
        signal.signal(signal.SIGINT, signal.default_int_handler)  # even if this test runs with SIGINT ignored
        from rilib.cli import main
        sys.exit(main(["book", "run", "--profile", "smoke", "--root", {str(root)!r}, "--jobs", "2"]))
    """, {})
    book = root / "book"
    deadline = time.time() + 120
    while not all((book / f".{n}.running.ipynb").exists() for n in ("01_page", "02_other")):
        assert parent.poll() is None and time.time() < deadline, parent.communicate()
        time.sleep(0.2)
    time.sleep(3)  # the kernels are in the sleeping cell
    return parent, book


def _assert_stopped_and_kept(book: pathlib.Path) -> None:
    """Each chapter keeps its partial notebook as .failed and leaves no notebook the build would publish."""
    for name in ("01_page", "02_other"):
        assert not (book / f"{name}.ipynb").exists() and not (book / f".{name}.running.ipynb").exists()
        assert (book / f".{name}.failed.ipynb").exists()


@pytest.mark.slow
@pytest.mark.parametrize("how, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "kill-pid"])
def test_an_interrupted_parallel_run_stops_its_chapters_and_publishes_nothing(tmp_path, how, code):
    """Ctrl-C (SIGINT) or `kill PID` (SIGTERM) to `rilib book run` alone, while two chapters run in their own
    processes: both stop within seconds, the command exits with the shell's code for the signal, and each chapter
    leaves its partial notebook as .failed and no notebook the build would publish."""
    parent, book = _start_parallel_book(tmp_path)
    t0 = time.time()
    parent.send_signal(how)
    _, err = parent.communicate(timeout=60)
    assert parent.returncode == code and time.time() - t0 < 45, err
    _assert_stopped_and_kept(book)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_chapters_of_a_killed_book_run_stop_by_themselves(tmp_path):
    """`kill -9` of `rilib book run --jobs 2`: no handler runs in it, yet its chapters' processes and their kernels
    notice that it is gone and stop within seconds, saying why, each keeping its partial notebook."""
    parent, book = _start_parallel_book(tmp_path)
    chapters = _children(parent.pid)
    kernels = [k for c in chapters for k in _children(c)]
    try:
        assert len(chapters) == 2 and len(kernels) >= 2
        parent.send_signal(signal.SIGKILL)
        parent.communicate(timeout=60)
        deadline = time.time() + 45
        while [p for p in chapters + kernels if _alive(p)]:
            assert time.time() < deadline, "a chapter or its kernel outlived its killed parent by 45 s"
            time.sleep(0.2)
    finally:
        for pid in chapters + kernels:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    _assert_stopped_and_kept(book)
    for name in ("01_page", "02_other"):
        assert "is gone; stopping" in (book / f".{name}.log").read_text()


@pytest.mark.slow
def test_two_runs_of_one_chapter_at_once_execute_it_once(tmp_path):
    """Two `rilib book run` of the same chapter in one checkout (two `make book`): the second waits for the first,
    which holds the chapter until the second has said that it waits, then finds the chapter executed and does not
    execute it again. (Before, both kernels ran and wrote one hidden notebook.)"""
    root = _book(tmp_path, [textwrap.dedent("""\
        import os, pathlib, time
        with open(os.environ["RUNS"], "a") as fh:
            fh.write("ran\\n")
        pathlib.Path(os.environ["STARTED"]).touch()
        t0 = time.time()
        while not pathlib.Path(os.environ["ASKED"]).exists() and time.time() - t0 < 60:
            time.sleep(0.1)""")])
    env = {**os.environ, "RUNS": str(tmp_path / "runs"), "STARTED": str(tmp_path / "started"),
           "ASKED": str(tmp_path / "asked")}
    cmd = [sys.executable, "-m", "rilib", "book", "run", "01_page", "--profile", "smoke", "--root", str(root),
           "--jobs", "1"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "first.err", "w"))
    deadline = time.time() + 120
    while not (tmp_path / "started").exists():
        assert first.poll() is None and time.time() < deadline, (tmp_path / "first.err").read_text()
        time.sleep(0.1)
    second = subprocess.Popen(cmd, env=env, stdout=open(tmp_path / "second.out", "w"),
                              stderr=open(tmp_path / "second.err", "w"))
    while "waiting for another process" not in (tmp_path / "second.err").read_text():
        if second.poll() is not None or time.time() > deadline:
            break
        time.sleep(0.1)
    (tmp_path / "asked").touch()
    assert [first.wait(timeout=120), second.wait(timeout=120)] == [0, 0], (tmp_path / "second.err").read_text()
    assert (tmp_path / "runs").read_text() == "ran\n", "the chapter was executed twice at once"
    assert "executed by another process meanwhile" in (tmp_path / "second.out").read_text()
    assert (root / "book" / "01_page.ipynb").exists() and not list((root / "book").glob(".01_page.*.ipynb"))


def test_train_many_trains_a_teacher_before_its_student_in_parallel_processes(tmp_path, monkeypatch, capfd):
    """``jobs=2``: every spec ends trained and verified, a distillation student starts only after its teacher has
    finished (else one process would wait on the teacher's lock held by the other, and say so), and a cached model
    is reported as cached."""
    monkeypatch.setenv("RILIB_CACHE", str(tmp_path / "cache"))
    teacher = rilib.Spec.make("mnist-5k", "tiny-cnn", "standard", params={"temperature": 5.0}, epochs=1,
                              n_train=200, n_test=50, batch_size=64, seed=47)
    student = rilib.Spec.make("mnist-5k", "tiny-cnn", "distillation", params={"temperature": 5.0}, teacher=teacher,
                              epochs=1, n_train=200, n_test=50, batch_size=64, seed=47)
    specs = {"student": student, "teacher": teacher, "other": _spec(48, epochs=1, n_train=200)}
    done = []
    zoo.train_many(specs, jobs=2, report=lambda name, spec, cached, s: done.append((name, cached, time.time())))
    names = [n for n, _, _ in done]
    assert sorted(names) == sorted(specs) and all(zoo.is_trained(s) for s in specs.values())
    assert names.index("teacher") < names.index("student")
    assert "waiting for another process" not in capfd.readouterr().err
    done.clear()
    zoo.train_many(specs, jobs=2, report=lambda name, spec, cached, s: done.append((name, cached, time.time())))
    assert all(cached for _, cached, _ in done) and len(done) == 3
    # a cached teacher does not hold back its student
    zoo.delete(student)
    zoo.delete(specs["other"])
    zoo.train_many(specs, jobs=2)
    assert zoo.is_trained(student) and zoo.is_trained(specs["other"])


def test_train_many_raises_the_first_failure_after_the_others_finish(tmp_path, monkeypatch):
    monkeypatch.setenv("RILIB_CACHE", str(tmp_path / "cache"))
    bad = rilib.Spec.make("mnist-5k", "no-such-arch", "standard", epochs=1, n_train=200, n_test=50, seed=49)
    good = _spec(50, epochs=1, n_train=200)
    with pytest.raises(RilibError, match="no-such-arch"):
        zoo.train_many({"bad": bad, "good": good}, jobs=2)
    assert zoo.is_trained(good) and not zoo.is_trained(bad)
    with pytest.raises(RilibError, match="jobs must be 1 or more"):
        zoo.train_many({"good": good}, jobs=0)


def _children(pid: int) -> list[int]:
    """The pids of the live processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


_SLOW_PAIR = """
    import sys
    import rilib
    from rilib import chapters, zoo  # noqa: F401 (the book's groups first, as the command line registers them)

    @zoo.ZOO_GROUPS.register("test-slow-pair")
    def _slow(profile):
        return {f"slow-{seed}": rilib.Spec.make("mnist-5k", "tiny-cnn", "standard", epochs=10000, n_train=200,
                                                n_test=100, batch_size=64, seed=seed) for seed in (61, 62)}

    from rilib.cli import main
    sys.exit(main(["zoo", "train", "slow-61", "slow-62", "--profile", "smoke", "--jobs", "2"]))
"""


def _start_slow_pair(tmp_path) -> tuple[subprocess.Popen, list[int], list[pathlib.Path]]:
    """`rilib zoo train` of two endless models with --jobs 2, returned once both workers have a checkpoint."""
    env = {**os.environ, "RILIB_CACHE": str(tmp_path / "cache")}
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_SLOW_PAIR)], env=env,
                              stdout=open(tmp_path / "out.txt", "w"), stderr=open(tmp_path / "err.txt", "w"))
    folders = [tmp_path / "cache" / "zoo" / _spec(seed, epochs=10000, n_train=200).folder_name()
               for seed in (61, 62)]
    deadline = time.time() + 180
    while not all((f / "checkpoint.pt").exists() for f in folders):
        assert parent.poll() is None and time.time() < deadline, (tmp_path / "err.txt").read_text()
        time.sleep(0.2)
    # the training processes, not multiprocessing's resource tracker, which exits on its own once the run has ended
    workers = [pid for pid in _children(parent.pid) if b"resource_tracker" not in _cmdline(pid)]
    return parent, workers, folders


def _kill_all(parent: subprocess.Popen, workers: list[int]) -> None:
    """Whatever a test of stopping found: nothing of it may train on after the test."""
    for pid in [parent.pid, *workers]:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    parent.wait(timeout=60)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_pid_of_a_parallel_zoo_train_stops_its_workers_at_their_checkpoints(tmp_path):
    """`kill PID` (SIGTERM) to `rilib zoo train --jobs 2` alone: the command exits 143 within seconds, saying so,
    its two training processes are gone too (before, they trained their models to the end for nobody, holding
    the models' locks), and each model keeps its last epoch checkpoint, so the next run resumes it."""
    parent, workers, folders = _start_slow_pair(tmp_path)
    try:
        assert len(workers) == 2
        t0 = time.time()
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=60)
        assert parent.returncode == 143 and time.time() - t0 < 30, (tmp_path / "err.txt").read_text()
        assert "terminated (SIGTERM)" in (tmp_path / "err.txt").read_text()
        assert not [w for w in workers if _alive(w)], "a training process outlived the command"
    finally:
        _kill_all(parent, workers)
    for folder in folders:
        assert (folder / "checkpoint.pt").exists() and not (folder / "model.pt").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_workers_of_a_killed_zoo_train_stop_by_themselves(tmp_path):
    """`kill -9` of `rilib zoo train --jobs 2`: no handler runs in it, yet its training processes notice that it is
    gone and stop within seconds, saying why."""
    parent, workers, folders = _start_slow_pair(tmp_path)
    try:
        assert len(workers) == 2
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=60)
        deadline = time.time() + 30
        while [w for w in workers if _alive(w)]:
            assert time.time() < deadline, "a training process outlived its killed parent by 30 s"
            time.sleep(0.2)
    finally:
        _kill_all(parent, workers)
    assert "is gone; stopping" in (tmp_path / "err.txt").read_text()
    for folder in folders:
        assert (folder / "checkpoint.pt").exists() and not (folder / "model.pt").exists()


# ---------------------------------------------------------------------------------------------------
# Two processes at once

def _first_holds_second_asks(code: str, env: dict, tmp_path: pathlib.Path, timeout: float) -> list:
    """Run ``code`` as ROLE=first, and once it has touched STARTED (it then holds its lock until ASKED exists), as
    ROLE=second; both must exit 0. Returns [(stdout, stderr)] of the first and the second."""
    env = {**env, "STARTED": str(tmp_path / "started"), "ASKED": str(tmp_path / "asked")}
    first = _python(code, {**env, "ROLE": "first"})
    deadline = time.time() + timeout / 2
    while not (tmp_path / "started").exists():
        assert first.poll() is None and time.time() < deadline, first.communicate()
        time.sleep(0.05)
    second = _python(code, {**env, "ROLE": "second"})
    outs = [p.communicate(timeout=timeout) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    return outs


def test_two_concurrent_trainings_of_one_spec_train_it_once(tmp_path):
    """The first process holds the spec (it waits in its first epoch until the second one has asked for it); the
    second must wait for the lock and then find the model trained, not train it a second time."""
    code = """
        import os, pathlib, time, rilib
        from rilib import zoo
        spec = rilib.Spec.make("mnist-5k", "tiny-cnn", "standard", epochs=2, n_train=300, n_test=100,
                               batch_size=64, seed=45)
        started, asked = pathlib.Path(os.environ["STARTED"]), pathlib.Path(os.environ["ASKED"])
        def hold(epoch, record):
            started.touch()
            while not asked.exists():
                time.sleep(0.05)
            time.sleep(1.0)  # the second process goes from `asked` to the lock in milliseconds
        epochs = []
        if os.environ["ROLE"] == "second":
            asked.touch()
        zoo.train(spec, progress=False, on_epoch_end=lambda e, r: (epochs.append(e), hold(e, r)))
        zoo.load(spec)
        print("TRAINED" if epochs else "FOUND IT TRAINED")
    """
    outs = _first_holds_second_asks(code, {"RILIB_CACHE": str(tmp_path / "cache")}, tmp_path, timeout=600)
    assert [o.strip() for o, _ in outs] == ["TRAINED", "FOUND IT TRAINED"], outs
    assert "waiting for another process" in outs[1][1]


def test_two_processes_that_need_one_locked_derived_value_compute_it_once(tmp_path):
    """As the chapter's two canvas models, trained side by side, both need the canvases: the first process computes
    the value (held until the second has asked for it), the second must wait for the lock and then load what the
    first stored, not compute it a second time."""
    code = """
        import os, pathlib, time
        from rilib import paths
        started, asked = pathlib.Path(os.environ["STARTED"]), pathlib.Path(os.environ["ASKED"])
        computed = []
        def compute():
            computed.append(1)
            started.touch()
            while not asked.exists():
                time.sleep(0.05)
            time.sleep(1.0)  # the second process goes from `asked` to the lock in milliseconds
            return os.environ["ROLE"]
        if os.environ["ROLE"] == "second":
            asked.touch()
        value = paths.cached(pathlib.Path(os.environ["OUT"]), compute, load=lambda p: p.read_text(),
                             dump=str.encode, name="toy", lock=True)
        print("COMPUTED" if computed else "LOADED", value)
    """
    outs = _first_holds_second_asks(code, {"OUT": str(tmp_path / "results" / "toy.txt")}, tmp_path, timeout=120)
    assert [o.strip() for o, _ in outs] == ["COMPUTED first", "LOADED first"], outs
    assert "waiting for another process that computes toy" in outs[1][1]


def test_two_concurrent_evaluations_of_one_model_keep_both_entries(tmp_path):
    """Two chapters running side by side evaluate one model under different attacks. The first process is held
    between reading evals.json and writing it back, until the second has evaluated and stored its entry (or for
    5 s, if the lock keeps the second one waiting). Both entries must survive: without the lock around the merge,
    the first process's write would drop the second one's entry."""
    cache = tmp_path / "cache"
    code = """
        import os, pathlib, time, rilib
        from rilib import paths, zoo
        from rilib.attacks import PGD
        spec = rilib.Spec.make("mnist-5k", "tiny-cnn", "standard", epochs=1, n_train=300, n_test=100,
                               batch_size=64, seed=46)
        ready, done = pathlib.Path(os.environ["READY"]), pathlib.Path(os.environ["DONE"])
        if os.environ["ROLE"] == "first":
            store = paths.store_cache
            def slow_store(path, data):
                if path.name == "evals.json":
                    deadline = time.time() + 120
                    while not ready.exists() and time.time() < deadline:
                        time.sleep(0.05)
                    deadline = time.time() + 5
                    while not done.exists() and time.time() < deadline:
                        time.sleep(0.05)
                return store(path, data)
            paths.store_cache = slow_store
        else:
            ready.touch()
        print(zoo.evaluate(spec, PGD(eps=float(os.environ["EPS"]), steps=2), "smoke", n=20, progress=False))
        if os.environ["ROLE"] == "second":
            done.touch()
    """
    env = {"RILIB_CACHE": str(cache), "READY": str(tmp_path / "ready"), "DONE": str(tmp_path / "done")}
    trained = _python("""
        import rilib
        from rilib import zoo
        zoo.train(rilib.Spec.make("mnist-5k", "tiny-cnn", "standard", epochs=1, n_train=300, n_test=100,
                                  batch_size=64, seed=46), progress=False)
    """, env)
    assert trained.wait(timeout=300) == 0, trained.communicate()
    first = _python(code, {**env, "ROLE": "first", "EPS": "0.1"})
    second = _python(code, {**env, "ROLE": "second", "EPS": "0.2"})
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    [evals] = list(cache.glob("zoo/*/evals.json"))
    assert sorted(json.loads(k)["eps"] for k in json.loads(evals.read_text())) == [0.1, 0.2]


# ---------------------------------------------------------------------------------------------------
# A read-only cache, a full disk

@pytest.fixture
def read_only_cache(monkeypatch):
    """Make every write into the cache fail as a read-only folder would (root ignores file permissions, so the
    refusal is simulated where Python opens, creates or renames)."""
    cache = paths.cache_dir().resolve()
    inside = lambda p: str(pathlib.Path(p).resolve()).startswith(str(cache))  # noqa: E731
    real_open, real_mkdir, real_replace = builtins.open, pathlib.Path.mkdir, os.replace

    def guarded_open(file, mode="r", *a, **k):
        if any(c in mode for c in "wax+") and inside(file):
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, mode, *a, **k)

    def guarded_mkdir(self, *a, **k):
        if inside(self) and not self.exists():
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *a, **k)

    def guarded_replace(src, dst, *a, **k):
        if inside(dst):
            raise PermissionError(errno.EACCES, "Permission denied", str(dst))
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(pathlib.Path, "mkdir", guarded_mkdir)
    monkeypatch.setattr(os, "replace", guarded_replace)
    yield cache


def test_a_read_only_cache_refuses_to_train_with_a_clear_message(read_only_cache):
    spec = _spec(46, epochs=1)
    with pytest.raises(RilibError, match="Could not write .*RILIB_CACHE"):
        zoo.train(spec, progress=False)


def test_a_read_only_cache_serves_trained_models_and_computes_without_caching(monkeypatch, request):
    spec = _spec(47, epochs=1)
    zoo.train(spec, progress=False)
    before = _files(spec.folder())
    request.getfixturevalue("read_only_cache")
    assert zoo.load(spec) is not None
    with pytest.warns(UserWarning, match="not cached"):
        acc = zoo.evaluate(spec, PGD(eps=0.1, steps=2), "smoke", n=10, progress=False)
    assert 0.0 <= acc <= 1.0
    assert _files(spec.folder()) == before


def test_a_full_disk_keeps_the_old_artefacts(monkeypatch):
    spec = _spec(48, epochs=3)

    class Stop(Exception):
        pass

    def stop_after_first(epoch, record):
        if epoch == 0:
            raise Stop

    with pytest.raises(Stop):
        zoo.train(spec, progress=False, on_epoch_end=stop_after_first)
    checkpoint = spec.folder() / "checkpoint.pt"
    saved = checkpoint.read_bytes()

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(RilibError, match="No space left on device") as err:
        zoo.train(spec, progress=False)
    assert "intact" in str(err.value)
    assert checkpoint.read_bytes() == saved, "the last complete checkpoint survives"
    assert not list(spec.folder().glob(".*.tmp")), "no half-written file is left behind"
    monkeypatch.undo()
    epochs = []
    zoo.train(spec, progress=False, on_epoch_end=lambda e, r: epochs.append(e))
    assert epochs == [1, 2] and zoo.check(spec)["model"] == "ok"


def test_zoo_verify_reports_each_model(cli, monkeypatch):
    spec = _spec(49, epochs=1)
    zoo.train(spec, progress=False)
    monkeypatch.setattr(zoo, "zoo_specs", lambda profile, group=None: {"tiny": spec})
    out = cli("zoo", "verify", "--profile", "smoke")
    assert out.returncode == 0 and "model: ok" in out.stdout
    (spec.folder() / "model.pt").write_bytes(b"tampered")
    out = cli("zoo", "verify", "--profile", "smoke")
    assert out.returncode == 1 and "model: corrupt" in out.stdout and "--retrain" in out.stdout


def test_zoo_verify_reports_chapter_results_and_executed_chapters(cli, monkeypatch, tmp_path):
    from rilib.book import runner
    monkeypatch.setenv("RILIB_CACHE", str(tmp_path / "cache"))  # a cache of its own: no other test's results
    monkeypatch.setattr(zoo, "zoo_specs", lambda profile, group=None: {})
    results = paths.cache_dir() / "results"
    results.mkdir(parents=True)
    (results / "saliency-smoke-0123456789ab.json").write_text('{"ok": 1}')
    (results / "saliency-smoke-ba9876543210.pt").write_bytes(b"half a tensor")
    (results / "saliency-cpu-0123456789ab.json").write_text("not this profile's")
    book = tmp_path / "root" / "book"
    book.mkdir(parents=True)
    monkeypatch.setattr(runner, "project", lambda root=None: tmp_path / "root")
    out = cli("zoo", "verify", "--profile", "smoke")
    assert out.returncode == 0, out.stdout  # a corrupt derived result heals itself: reported, not a failure
    assert "saliency-smoke-0123456789ab.json" in out.stdout and "saliency-cpu" not in out.stdout
    assert re.search(r"saliency-smoke-ba9876543210\.pt\s+corrupt", out.stdout)
    (book / "01_page.ipynb").write_text('{"cells": [')
    out = cli("zoo", "verify", "--profile", "smoke")
    assert out.returncode == 1 and "01_page" in out.stdout and "unreadable" in out.stdout
    assert "rilib book run 01_page --force --profile smoke" in out.stdout


def test_the_timing_report_spans_every_process_that_wrote_to_the_log(tmp_path, monkeypatch):
    from rilib import timing
    log = tmp_path / "timings.jsonl"
    timing.record("chapter", "ignored", 1.0)  # no RILIB_TIMINGS: nothing is written anywhere
    monkeypatch.setenv("RILIB_TIMINGS", str(log))
    timing.record("install", "make install", 2.0)
    with timing.timed("chapter", "01_page", executed=True):
        time.sleep(0.05)
    rep = timing.report(log)
    assert [r["kind"] for r in rep["records"]] == ["install", "chapter"]
    assert rep["by_kind"]["install"] == 2.0 and rep["records"][1]["seconds"] >= 0.05
    assert rep["total_seconds"] >= 2.0 and "chapter 01_page" in timing.format_report(rep)
    # the machine the times belong to (runs on different machines, or days, do not compare)
    assert rep["machine"]["cores"] == os.cpu_count()
    assert rep["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and rep["machine"]["cpu"]
    assert timing.format_report(rep).splitlines()[0].endswith(f"{rep['machine']['cpu_capability']}, "
                                                              f"{os.cpu_count()} cores")


def test_the_timing_report_gives_parallel_work_its_wall_clock_time(tmp_path):
    """Two trainings of 60 s that overlap for 40 s (two processes) took 80 s of wall-clock time, not 120."""
    from rilib import timing
    log = tmp_path / "timings.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in [
        {"kind": "train", "name": "a", "seconds": 60.0, "end": 1060.0},
        {"kind": "train", "name": "b", "seconds": 60.0, "end": 1080.0},
        {"kind": "chapter", "name": "01_page", "seconds": 10.0, "end": 1090.0}]) + "\n")
    rep = timing.report(log)
    assert rep["by_kind"]["train"] == 120.0 and rep["wall_by_kind"]["train"] == 80.0
    assert rep["total_seconds"] == 90.0
    text = timing.format_report(rep)
    assert "training the zoo                    1.3 min (   80 s)" in text and "2.0 min summed" in text


def test_a_run_replayed_without_some_jobs_keeps_its_lanes_order_and_waves(tmp_path):
    """Two lanes: models a (60 s) and b (40 s) start together, c (30 s) where b ended. Chapters p1 (100 s) and p2
    (50 s) start together, p3 (50 s) where p2 ended, and the synthesis page (10 s) only after all three."""
    from rilib import timing
    records = [{"kind": "train", "name": "a", "seconds": 60.0, "end": 60.0},
               {"kind": "train", "name": "b", "seconds": 40.0, "end": 40.0},
               {"kind": "train", "name": "c", "seconds": 30.0, "end": 70.0},
               {"kind": "chapter", "name": "p1", "seconds": 100.0, "end": 200.0},
               {"kind": "chapter", "name": "p2", "seconds": 50.0, "end": 150.0},
               {"kind": "chapter", "name": "p3", "seconds": 50.0, "end": 200.0},
               {"kind": "chapter", "name": "99_synthesis", "seconds": 10.0, "end": 210.0}]
    train = timing.replay(records, "train", ("b",))
    assert train == {"measured": 70.0, "replayed": 70.0, "without": 60.0, "lanes": 2, "removed": ["b"]}
    # Without p2, p3 starts at once beside p1; the synthesis page still waits for p1 (110 s, not 100).
    chapters = timing.replay(records, "chapter", ("p2",))
    assert chapters == {"measured": 110.0, "replayed": 110.0, "without": 110.0, "lanes": 2, "removed": ["p2"]}
    assert timing.replay(records, "chapter", ("p1",))["without"] == 60.0
    # The whole run less what the replay saves, and a name that matches no job is an error that lists the jobs.
    log = tmp_path / "timings.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    text = timing.format_replay(timing.report(log), ("b", "p1"))
    assert "training the zoo                   60 s without 1 job(s), 70 s with them" in text
    assert "(  150 s): the measured 210 s less the 60 s the replay saves" in text
    with pytest.raises(ValueError, match=r"--without nope matches no training or chapter .* 99_synthesis, a, b, c"):
        timing.format_replay(timing.report(log), ("b", "nope"))


def test_only_a_parent_that_asked_is_watched_and_its_request_is_not_inherited(monkeypatch):
    """A ``rilib`` command watches its parent only when started with ``stopping.child_env``; the request leaves the
    command's environment, so a kernel or a training worker it starts does not take the parent as its own."""
    from rilib import stopping
    monkeypatch.delenv(stopping.PARENT_ENV, raising=False)
    assert not stopping.stop_with_parent_from_env()
    monkeypatch.setenv(stopping.PARENT_ENV, "not-a-pid")
    assert not stopping.stop_with_parent_from_env() and stopping.PARENT_ENV not in os.environ
    env = stopping.child_env({"A": "1"})
    assert env == {"A": "1", stopping.PARENT_ENV: str(os.getpid())}
    watched = []
    monkeypatch.setattr(stopping, "stop_with_parent", lambda parent, **kw: watched.append(parent))
    monkeypatch.setenv(stopping.PARENT_ENV, "4242")
    assert stopping.stop_with_parent_from_env() and stopping.PARENT_ENV not in os.environ and watched == [4242]


# ---------------------------------------------------------------------------------------------------
# Building the book while something else writes to it

def _executed_book(tmp_path) -> pathlib.Path:
    """A book of an introduction and one executed chapter, book/01_page.ipynb (its run says "old run")."""
    root = tmp_path / "built"
    for folder in ("book", "notebooks"):
        (root / folder).mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    (root / "_config.yml").write_text("title: A book\n")
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/01_page\n")
    (root / "book" / "intro.md").write_text("# Introduction\n")
    _write_run(root, "old run")
    return root


def _write_run(root: pathlib.Path, text: str) -> None:
    """Publish an executed run of book/01_page.ipynb whose output cell says ``text`` (as the runner does)."""
    import nbformat
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('profile = "smoke"', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_markdown_cell(text)])
    tmp = root / "book" / ".01_page.running.ipynb"
    nbformat.write(nb, tmp)
    os.replace(tmp, root / "book" / "01_page.ipynb")


def _fake_jupyter_book(monkeypatch, calls: list, gate=None) -> None:
    """Replace the jupyter-book process by one that records its call, waits for ``gate`` (if any) and writes an
    index.html; every other subprocess runs for real."""
    from rilib.book import runner
    real = subprocess.run

    def run(cmd, *args, **kw):
        if not str(cmd[0]).endswith("jupyter-book"):
            return real(cmd, *args, **kw)
        calls.append("start")
        if gate is not None:
            gate.wait(60)
        out = pathlib.Path(cmd[cmd.index("--path-output") + 1] if "--path-output" in cmd else kw["cwd"])
        (out / "_build" / "html").mkdir(parents=True, exist_ok=True)
        (out / "_build" / "html" / "index.html").write_text("<html></html>")
        calls.append("end")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(runner.subprocess, "run", run)


def _wait_for(capsys, text: str, seconds: float = 20) -> str:
    """What was printed until ``text`` appeared on stderr, or after ``seconds`` without it."""
    seen, deadline = "", time.time() + seconds
    while text not in seen and time.time() < deadline:
        seen += capsys.readouterr().err
        time.sleep(0.05)
    return seen


def test_a_build_waits_for_a_chapter_being_executed_and_adds_its_new_run(tmp_path, monkeypatch, capsys):
    """`rilib book build` while another process executes a chapter: the build waits for the chapter, then gives
    the new run its bootstrap cell. (Before, the build read the old run and could write it back over the new one,
    or leave the new one without its bootstrap cell.)"""
    import threading

    import nbformat

    from rilib.book import publish, runner
    root = _executed_book(tmp_path)
    _fake_jupyter_book(monkeypatch, calls := [])
    errors = []

    def build():
        try:
            runner.build(root)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    with paths.file_lock(root / "book" / ".locks" / "01_page.lock"):  # another process executes the chapter
        builder = threading.Thread(target=build)
        builder.start()
        seen = _wait_for(capsys, "waiting for another process that executes 01_page")
        _write_run(root, "new run")  # the chapter's process publishes its new run, then lets go of the lock
    builder.join(60)
    assert not errors and not builder.is_alive() and calls == ["start", "end"], errors
    assert "waiting for another process that executes 01_page" in seen, seen
    nb = nbformat.read(root / "book" / "01_page.ipynb", as_version=4)
    sources = [c.source for c in nb.cells]
    assert "new run" in sources, "the build wrote the old run over the new one"
    assert any(publish.BOOTSTRAP_TAG in c.metadata.get("tags", []) for c in nb.cells), \
        "the new run was published without its bootstrap cell"


def test_two_builds_into_one_folder_take_turns(tmp_path, monkeypatch, capsys):
    """Two `rilib book build` at once (two terminals, or `make book` beside a build): the second waits until the
    first has finished writing _build, then builds. (Before, both ran jupyter-book into one folder together.)"""
    import threading

    from rilib.book import runner
    root = _executed_book(tmp_path)
    gate = threading.Event()
    _fake_jupyter_book(monkeypatch, calls := [], gate)
    builders = [threading.Thread(target=runner.build, args=(root,)) for _ in range(2)]
    builders[0].start()
    while not calls:
        time.sleep(0.05)
    builders[1].start()
    seen = _wait_for(capsys, "waiting for another build")
    running = list(calls)
    gate.set()
    for b in builders:
        b.join(60)
    assert "waiting for another build" in seen and running == ["start"], (running, seen)
    assert calls == ["start", "end", "start", "end"]


def test_a_full_disk_while_adding_the_bootstrap_cell_keeps_the_executed_chapter(tmp_path, monkeypatch):
    """The build rewrites each executed chapter to add its bootstrap cell: a write that fails leaves the chapter as
    it was, not half-written (which would cost executing it again)."""
    from rilib.book import publish
    root = _executed_book(tmp_path)
    path = root / "book" / "01_page.ipynb"
    before = path.read_bytes()

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    import io
    fills = _open_that_fills_the_disk(builtins.open, path)
    monkeypatch.setattr(builtins, "open", fills)
    monkeypatch.setattr(io, "open", fills)  # what pathlib's Path.open calls
    with pytest.raises((RilibError, OSError)):
        publish.add_bootstrap(path, publish.book_config(root))
    monkeypatch.undo()
    assert path.read_bytes() == before, "a failed write destroyed the executed chapter"
    assert not list(path.parent.glob(".*.tmp"))
    assert publish.add_bootstrap(path, publish.book_config(root)) and path.read_bytes() != before


def _open_that_fills_the_disk(real_open, path: pathlib.Path):
    """``open`` for which writing to ``path`` itself stops half-way with ENOSPC, as on a full disk (the atomic write
    goes to a temporary file, whose fsync the test makes fail too)."""
    class HalfWriter:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            self.fh.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    def fake(file, mode="r", *args, **kw):
        fh = real_open(file, mode, *args, **kw)
        if pathlib.Path(file) == path and ("w" in mode):
            return HalfWriter(fh)
        return fh

    return fake
