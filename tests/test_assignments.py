"""The classroom edition: exercises that check themselves, student and instructor worksheets, grading."""

from __future__ import annotations

import html as html_lib
import json
import re
from pathlib import Path

import nbformat
import pytest

import rilib
import rilib.chapters  # noqa: F401  (registers the chapters' exercises)
from rilib.book import assignments, exercises
from rilib.errors import RilibError, UnknownNameError

ROOT = Path(__file__).resolve().parents[1]

SOURCE = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A chapter

Its introduction.

```{code-cell} ipython3
:tags: [parameters]

profile = "cpu"
```

```{code-cell} ipython3
:tags: [remove-cell]

import rilib
```

## Figures

```{code-cell} ipython3
figure = "expensive"
```

## Exercises

```{exercise}
:label: ex-toy-value

Compute the answer.
```

```{code-cell} ipython3
:tags: [exercise-starter, raises-exception]

answer = ...
```

````{solution-start} ex-toy-value
:class: dropdown
````

The secret reasoning.

```{code-cell} ipython3
:tags: [solution]

answer = 41 + 1  # the secret code
```

````{solution-end}
````

```{code-cell} ipython3
:tags: [exercise-check, raises-exception]

check("ex-toy-value", answer, prof)
```

```{exercise}
:label: ex-toy-prose

Discuss.
```

```{solution} ex-toy-prose
:class: dropdown

The secret discussion.
```
"""

SECRETS = ("The secret reasoning", "the secret code", "The secret discussion")


def test_strip_solutions_removes_gated_and_plain_solutions_and_keeps_the_rest():
    student = assignments.strip_solutions(SOURCE)
    for secret in SECRETS:
        assert secret in SOURCE and secret not in student
    assert "{solution" not in student
    assert "answer = ..." in student and 'check("ex-toy-value"' in student and "Discuss." in student
    assert assignments.exercise_labels(student) == ["ex-toy-value", "ex-toy-prose"]
    with pytest.raises(RilibError, match="without its"):
        assignments.strip_solutions(SOURCE.replace("````{solution-end}\n````", ""))


def test_worksheet_editions():
    cfg = {"html": {"baseurl": "https://example.org/book/"}, "repository": {"url": "https://github.com/o/r"}}
    student = assignments.worksheet(SOURCE, "student", "smoke", "01_toy", cfg)
    instructor = assignments.worksheet(SOURCE, "instructor", "smoke", "01_toy", cfg)
    text = "\n".join(c.source for c in student.cells)
    for secret in SECRETS:
        assert secret not in text
        assert secret in "\n".join(c.source for c in instructor.cells)
    assert not any(exercises.SOLUTION_TAG in c.metadata.get("tags", []) for c in student.cells)
    assert "expensive" not in text, "a worksheet holds the set-up and the exercises, not the chapter's figures"
    assert 'profile = "smoke"' in text and "import rilib" in text and "https://example.org/book/book/01_toy.html" in text
    assert student.metadata["rilib"] == {"edition": "student", "chapter": "01_toy", "profile": "smoke",
                                         "exercises": ["ex-toy-value", "ex-toy-prose"], "checks": ["ex-toy-value"]}
    assert all(c.get("outputs", []) == [] for c in student.cells)
    assert "### Exercise `ex-toy-value`" in text and "```{exercise}" not in text
    with pytest.raises(RilibError, match="Exercises"):
        assignments.split(SOURCE.replace("## Exercises", "## More"))


def test_strip_notebook_solutions_cuts_gated_solutions_across_cells():
    import jupytext
    nb = jupytext.reads(SOURCE, fmt="md:myst")
    removed = assignments.strip_notebook_solutions(nb)
    text = "\n".join(c.source for c in nb.cells)
    assert removed >= 2
    for secret in SECRETS:
        assert secret not in text
    assert "answer = ..." in text and "Discuss." in text and "solution-end" not in text


def test_compare_says_where_and_never_the_reference():
    assert exercises.compare({"a": 0.5, "b": [1, 2]}, {"a": 0.51, "b": [1, 2]}, 0.02, 0) is None
    msg = exercises.compare({"a": 0.3}, {"a": 0.8125}, 0.01, 0)
    assert "answer['a']" in msg and "too low" in msg and "0.8125" not in msg
    assert "missing" in exercises.compare({"a": 1}, {"a": 1, "b": 2}, 0, 0)
    assert "sequence of 2" in exercises.compare([1], [1, 2], 0, 0)
    assert "NaN" in exercises.compare(float("nan"), 1.0, 0.1, 0)
    assert "number" in exercises.compare("x", 1.0, 0.1, 0)


@pytest.fixture
def toy_exercises():
    calls = []

    @exercises.exercise("ex-toy-value", chapter="0", title="toy", difficulty="easy", atol=0.01,
                        expected="a number near forty-two")
    def _ref(prof):
        calls.append(prof.name)
        return 42.0

    @exercises.property_exercise("ex-toy-property", chapter="0", title="toy", difficulty="hard",
                                 expected="a function that doubles")
    def _test(fn, prof):
        out = fn(2)
        if out is None:
            raise exercises.NotAttempted
        return None if out == 4 else f"f(2) = {out}, not 4"

    yield calls
    for label in ("ex-toy-value", "ex-toy-property"):
        exercises.EXERCISES.pop(label, None)
    exercises._REFERENCES.clear()


def test_evaluate_outcomes(toy_exercises):
    ev = exercises.evaluate
    assert ev("ex-toy-value", ..., "smoke").status == exercises.NOT_ATTEMPTED
    assert ev("ex-toy-value", {"x": ...}, "smoke").status == exercises.NOT_ATTEMPTED
    assert ev("ex-toy-value", 42.005, "smoke").status == exercises.PASSED
    wrong = ev("ex-toy-value", 40.0, "smoke")
    assert wrong.status == exercises.FAILED and "forty-two" in wrong.message and "42" not in wrong.message
    exercises._REFERENCES.clear()  # as in a new process: the reference comes from the disk cache
    assert ev("ex-toy-value", 42.0, "smoke").status == exercises.PASSED
    assert toy_exercises == ["smoke"], "the reference is computed once per profile"
    path = exercises._reference_path("ex-toy-value", rilib.get_profile("smoke"))
    path.write_bytes(b"corrupt")
    exercises._REFERENCES.clear()
    assert ev("ex-toy-value", 42.0, "smoke").status == exercises.PASSED and toy_exercises == ["smoke", "smoke"]
    assert ev("ex-toy-property", lambda v: None, "smoke").status == exercises.NOT_ATTEMPTED
    assert ev("ex-toy-property", lambda v: 2 * v, "smoke").status == exercises.PASSED
    assert "not 4" in ev("ex-toy-property", lambda v: v + 3, "smoke").message
    broken = ev("ex-toy-property", lambda v: 1 / 0, "smoke")
    assert broken.status == exercises.FAILED and "ZeroDivisionError" in broken.message
    with pytest.raises(UnknownNameError, match="ex-ch1-step"):
        ev("ex-nope", 1, "smoke")
    out = exercises.Outcome("ex-toy-value", exercises.PASSED, "ok")._repr_mimebundle_()
    assert out[exercises.MIME]["status"] == "passed" and "✓" in out["text/plain"]


def test_every_chapter_has_three_exercises_two_with_a_check():
    chapters = assignments.chapters_with_exercises(root=ROOT)
    assert len(chapters) >= 6
    registered = set(exercises.EXERCISES)
    in_sources = set()
    for src in chapters:
        text = src.read_text()
        labels = assignments.exercise_labels(text)
        checked = assignments.checked_labels(text)
        in_sources |= set(labels)
        assert len(labels) >= 3, src.name
        assert len(set(checked)) >= 2, f"{src.name}: at least two exercises must ask for code and check it"
        assert set(labels) <= registered, f"{src.name}: unregistered exercises {set(labels) - registered}"
        for label in checked:
            assert exercises.EXERCISES[label].kind in ("value", "property"), label
            # the exercise's starter (with a stub), its solution cell and its check cell, in that order
            block = text[text.index(f":label: {label}"):text.index(f'check("{label}"')]
            assert re.search(r":tags: \[exercise-starter[^\]]*\]\n\n[^`]*\.\.\.", block), label
            assert f"{{solution-start}} {label}" in block and ":tags: [solution]" in block, label
            # the stub still matches the solution: both define the name the check is given
            answer = re.search(rf'check\("{label}",\s*(\w+)', text).group(1)
            starter, _, rest = block.partition("{solution-start}")
            defines = rf"^(def {answer}\(|{answer}(\[[^\]]*\])?(,\s*\w+)*\s*=[^=])"
            assert re.search(defines, starter, re.M), f"{label}: the starter does not define {answer}"
            assert re.search(defines, rest, re.M), f"{label}: the solution does not define {answer}"
    assert in_sources == registered, f"registered but in no chapter: {registered - in_sources}"


def test_student_worksheets_of_the_book_hold_no_solution(tmp_path):
    written = assignments.build("smoke", root=ROOT, out=tmp_path)
    assert len(written["student"]) == len(written["instructor"]) >= 6
    for student_path, instructor_path in zip(written["student"], written["instructor"]):
        student, instructor = (nbformat.read(p, as_version=4) for p in (student_path, instructor_path))
        s_text = "\n".join(c.source for c in student.cells)
        assert not [c for c in student.cells if exercises.SOLUTION_TAG in c.metadata.get("tags", [])]
        assert "{solution" not in s_text and "**Solution" not in s_text
        solutions = [c for c in instructor.cells if exercises.SOLUTION_TAG in c.metadata.get("tags", [])]
        assert len(solutions) >= 2, instructor_path.name
        starters = [c for c in student.cells if exercises.STARTER_TAG in c.metadata.get("tags", [])]
        stub_lines = {ln for c in starters for ln in c.source.splitlines()}  # e.g. the signature a stub shares
        for cell in solutions:
            lines = [ln for ln in cell.source.splitlines() if len(ln.strip()) > 25 and ln not in stub_lines]
            assert not [ln for ln in lines if ln in s_text], f"{student_path.name} shows solution code"
        assert starters and all("..." in c.source for c in starters)
        assert student.metadata["rilib"]["checks"] == instructor.metadata["rilib"]["checks"]


def test_assignments_cli_help_and_errors(cli, tmp_path):
    out = cli("assignments", "--help")
    assert out.returncode == 0 and "build" in out.stdout and "check" in out.stdout
    bad = cli("assignments", "build", "--chapters", "07_nope", "--out", str(tmp_path))
    assert bad.returncode == 2 and "01_standard_and_robust" in bad.stderr
    missing = cli("assignments", "check", str(tmp_path / "nope.ipynb"))
    assert missing.returncode == 1 and "assignments build" in missing.stderr


@pytest.mark.slow
def test_assignments_on_smoke_build_grade_and_hide(smoke_book, tmp_path):
    """Acceptance: build on smoke (with the student HTML), every instructor exercise passes, every untouched
    student exercise is 'not attempted' or failed and nothing crashes, and the student HTML shows no solution."""
    root, _ = smoke_book
    written = assignments.build("smoke", root=root, out=tmp_path, html=True)
    from concurrent.futures import ThreadPoolExecutor
    notebooks = written["instructor"] + written["student"]
    with ThreadPoolExecutor(2) as pool:  # each check is a kernel of its own
        reports = dict(zip(notebooks, pool.map(lambda p: assignments.check(p, "smoke"), notebooks)))
    for path in written["instructor"]:
        r = reports[path]
        assert not r.error and r.outcomes, r.table()
        assert all(o["status"] == exercises.PASSED for o in r.outcomes), r.table()
    for path in written["student"]:
        r = reports[path]
        assert not r.error, r.table()
        assert r.outcomes and all(o["status"] in (exercises.NOT_ATTEMPTED, exercises.FAILED)
                                  for o in r.outcomes), r.table()
    assignments.write_json(reports.values(), tmp_path / "grades.json")
    assert json.loads((tmp_path / "grades.json").read_text())["schema"] == "rilib.assignments"

    html = tmp_path / "student-html" / "_build" / "html"
    full = root / "_build" / "html"
    solution_lines, stub_lines = set(), set()
    for path in written["instructor"]:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if exercises.SOLUTION_TAG in cell.metadata.get("tags", []):
                solution_lines |= {ln.strip() for ln in cell.source.splitlines() if len(ln.strip()) > 25}
            elif exercises.STARTER_TAG in cell.metadata.get("tags", []):
                stub_lines |= {ln.strip() for ln in cell.source.splitlines()}
    solution_lines -= stub_lines
    pages = sorted(html.glob("book/0*.html"))
    assert len(pages) >= 6
    seen_in_full = 0
    for page in pages:
        student_text = html_lib.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
        assert 'class="solution' not in page.read_text(), page.name
        assert not [ln for ln in solution_lines if ln in student_text], page.name
        full_text = html_lib.unescape(re.sub(r"<[^>]+>", "", (full / "book" / page.name).read_text()))
        seen_in_full += sum(ln in full_text for ln in solution_lines)
    assert seen_in_full, "the full book shows the solutions (else this test could not see them)"


def test_chapter_timings_are_recorded_from_a_timing_report_and_read_back(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "book").mkdir()
    assert assignments.chapter_timing_table(tmp_path) is None
    report = {"records": [{"kind": "train", "name": "m", "seconds": 50.0},
                          {"kind": "chapter", "name": "01_page", "seconds": 90.0, "executed": True, "profile": "cpu"},
                          {"kind": "chapter", "name": "02_page", "seconds": 0.0, "executed": False, "profile": "cpu"}]}
    path = assignments.record_chapter_timings(report, tmp_path, note="one make book")
    assert path == tmp_path / assignments.CHAPTER_TIMINGS_FILE
    table = assignments.chapter_timing_table(tmp_path)
    assert list(table.index) == ["01_page"] and table.loc["01_page", "minutes"] == 1.5
    assert "one make book" in assignments.timing_note(table)
    with pytest.raises(RilibError, match="no executed chapter"):
        assignments.record_chapter_timings({"records": report["records"][:1]}, tmp_path)
    path.write_text("{")
    with pytest.raises(RilibError, match="--record-chapters"):
        assignments.chapter_timing_table(tmp_path)


def test_a_solution_shows_its_answer_rounded_and_keeps_the_answer_whole():
    import numpy as np
    import torch
    answer = {0.1: np.float32(0.009722222574055195), "lip": [6229.95947265625, torch.tensor(0.1125113)],
              "n": 3, "ok": True, "name": "pgd"}
    assert exercises.shown(answer) == {0.1: 0.009722, "lip": [6230.0, 0.1125], "n": 3, "ok": True, "name": "pgd"}
    assert answer["lip"][0] == 6229.95947265625 and repr(exercises.shown(np.float32(0.30000001))) == "0.3"
