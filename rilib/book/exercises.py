"""Exercises that check themselves, for the classroom edition of the book.

A code exercise of a chapter is four things in its MyST source (``notebooks/``):

- the ``{exercise}`` directive with its label, the task in prose;
- a **starter** cell (tag ``exercise-starter``) with ``...`` stubs for the student to replace;
- a gated solution (``{solution-start}`` … ``{solution-end}``) whose code cell (tag ``solution``) computes the answer;
- a **check** cell (tag ``exercise-check``): ``check("ex-…", answer, prof)``.

The chapter registers the exercise with :func:`exercise` (value exercises: a reference function computes the
expected value, compared within a tolerance) or :func:`property_exercise` (the answer is tested, for example a
student's attack run against the library's). :func:`check` prints a short message that says what was expected,
never the solution's code, and shows its outcome as ``application/vnd.rilib.exercise+json`` as well, which
``rilib assignments check`` reads back from the executed notebook.

An answer that still holds a ``...`` (or a stub function that returns ``None``) is *not attempted*; an answer of
the wrong shape, or one whose test raises, *fails* with the reason. Nothing here raises on a student's answer,
only on an unknown label or profile.

The chapters register their exercises when ``rilib.chapters`` is imported, as they register their claims.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..errors import UnknownNameError
from ..profiles import Profile, get_profile

PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted"
#: The outcomes of a check, in the order a report lists them.
OUTCOMES = (PASSED, FAILED, NOT_ATTEMPTED)
#: The MIME type of a check's outcome in an executed notebook.
MIME = "application/vnd.rilib.exercise+json"
#: Cell tags of the MyST sources.
STARTER_TAG, SOLUTION_TAG, CHECK_TAG = "exercise-starter", "solution", "exercise-check"
DIFFICULTIES = ("easy", "medium", "hard")


class NotAttempted(Exception):
    """Raised by a property test when the student's function is still a stub."""


@dataclass(frozen=True)
class Exercise:
    """A code exercise: ``expected`` tells the student what a right answer is, in words; ``reference(profile)``
    computes it (value exercises) or ``test(answer, profile)`` returns ``None`` for a right answer and a message
    otherwise (property exercises)."""

    label: str
    chapter: str
    title: str
    difficulty: str
    expected: str
    minutes: int = 10
    reference: Optional[Callable[[Profile], Any]] = None
    test: Optional[Callable[[Any, Profile], Optional[str]]] = None
    atol: float = 0.0
    rtol: float = 0.0

    @property
    def kind(self) -> str:
        """``value`` or ``property`` (code exercises with a check), or ``prose`` (a question answered in words)."""
        if self.test is not None:
            return "property"
        return "value" if self.reference is not None else "prose"


EXERCISES: dict[str, Exercise] = {}


def _register(ex: Exercise) -> None:
    if ex.difficulty not in DIFFICULTIES:
        raise ValueError(f"Difficulty {ex.difficulty!r} of {ex.label}: valid are {', '.join(DIFFICULTIES)}.")
    EXERCISES[ex.label] = ex


def exercise(label: str, *, chapter: str, title: str, difficulty: str, expected: str, atol: float = 0.0,
             rtol: float = 0.0, minutes: int = 10):
    """Register a value exercise whose decorated function computes the reference answer on a profile. Numbers are
    compared within ``atol + rtol·|reference|``; dicts by key, sequences by position, strings and booleans exactly."""
    def register(fn: Callable[[Profile], Any]):
        _register(Exercise(label, chapter, title, difficulty, expected, minutes, reference=fn, atol=atol, rtol=rtol))
        return fn
    return register


def property_exercise(label: str, *, chapter: str, title: str, difficulty: str, expected: str, minutes: int = 10):
    """Register a property exercise: the decorated ``test(answer, profile)`` returns ``None`` when the answer has
    the property, a message saying what is wrong otherwise, and raises :class:`NotAttempted` for a stub."""
    def register(fn: Callable[[Any, Profile], Optional[str]]):
        _register(Exercise(label, chapter, title, difficulty, expected, minutes, test=fn))
        return fn
    return register


def prose_exercise(label: str, *, chapter: str, title: str, difficulty: str, minutes: int = 10,
                   expected: str = "an answer in words; the solution under the exercise discusses it") -> None:
    """Register a question answered in words (no check), so that the instructor's list has its difficulty."""
    _register(Exercise(label, chapter, title, difficulty, expected, minutes))


def get_exercise(label: str) -> Exercise:
    if label not in EXERCISES:
        valid = ", ".join(EXERCISES) or "none (import rilib.chapters to register the book's exercises)"
        raise UnknownNameError(f"Unknown exercise {label!r}. Valid: {valid}.")
    return EXERCISES[label]


def list_exercises(chapter: Optional[str] = None) -> list[Exercise]:
    """The registered exercises (of one chapter), in the order the chapters register them."""
    return [e for e in EXERCISES.values() if chapter is None or e.chapter == str(chapter)]


def table():
    """The registered exercises as a DataFrame: chapter, label, title, kind, difficulty, minutes, expected answer."""
    import pandas as pd
    return pd.DataFrame([{"chapter": e.chapter, "exercise": e.label, "title": e.title, "kind": e.kind,
                          "difficulty": e.difficulty, "minutes": e.minutes} for e in EXERCISES.values()])


def display_table():
    """:func:`table` for the page, indexed by chapter and exercise label."""
    return table().set_index(["chapter", "exercise"])


def counts() -> dict:
    """How many exercises are registered (``n_exercises``), how many have a check (``n_code``: not prose) and over
    how many chapters (``n_chapters``)."""
    listed = table()
    return {"n_exercises": len(listed), "n_code": int((listed["kind"] != "prose").sum()),
            "n_chapters": int(listed["chapter"].nunique())}


@dataclass
class Outcome:
    """The outcome of one :func:`check`; shown as a line of text, and as JSON for ``rilib assignments check``."""

    label: str
    status: str
    message: str
    details: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"label": self.label, "status": self.status, "message": self.message}

    def __str__(self) -> str:
        mark = {PASSED: "✓", FAILED: "✗", NOT_ATTEMPTED: "…"}[self.status]
        return f"{mark} {self.label}: {self.message}"

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/plain": str(self), MIME: self.to_json()}

    def __repr__(self) -> str:
        return str(self)


def is_stub(answer: Any) -> bool:
    """Whether an answer still holds a ``...`` (anywhere inside it) or is ``None``."""
    if answer is None or answer is Ellipsis:
        return True
    if isinstance(answer, dict):
        return any(is_stub(k) or is_stub(v) for k, v in answer.items())
    if isinstance(answer, (list, tuple)):
        return any(is_stub(v) for v in answer)
    return False


def _number(value: Any) -> Optional[float]:
    """``value`` as a float if it is a real number (or a one-element tensor or array), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    item = getattr(value, "item", None)
    size = getattr(value, "numel", None) or getattr(value, "size", None)
    if callable(item) and (size() if callable(size) else size) == 1:
        try:
            v = item()
        except (TypeError, ValueError):
            return None
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    return None


def _sequence(value: Any) -> Optional[list]:
    if isinstance(value, (list, tuple)):
        return list(value)
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and not isinstance(value, (str, bytes)):
        out = tolist()
        return out if isinstance(out, list) else None
    return None


def compare(answer: Any, reference: Any, atol: float, rtol: float, where: str = "answer") -> Optional[str]:
    """``None`` if ``answer`` matches ``reference`` (numbers within ``atol + rtol·|reference|``), else a message
    that says where and how it differs, without the reference's value."""
    ref_num = _number(reference)
    if ref_num is not None:
        got = _number(answer)
        if got is None:
            return f"`{where}` should be a number, not {type(answer).__name__}"
        if math.isnan(got):
            return f"`{where}` is NaN"
        tol = atol + rtol * abs(ref_num)
        if abs(got - ref_num) > tol:
            side = "high" if got > ref_num else "low"
            return f"`{where}` = {got:.4g} is too {side} (by more than the tolerance {tol:.2g})"
        return None
    if isinstance(reference, dict):
        if not isinstance(answer, dict):
            return f"`{where}` should be a dict with keys {sorted(map(str, reference))}, not {type(answer).__name__}"
        missing = [k for k in reference if k not in answer]
        extra = [k for k in answer if k not in reference]
        if missing or extra:
            return (f"`{where}` should have the keys {list(reference)}"
                    + (f"; missing {missing}" if missing else "") + (f"; unexpected {extra}" if extra else ""))
        for k in reference:
            msg = compare(answer[k], reference[k], atol, rtol, f"{where}[{k!r}]")
            if msg:
                return msg
        return None
    ref_seq = _sequence(reference)
    if ref_seq is not None:
        got_seq = _sequence(answer)
        if got_seq is None or len(got_seq) != len(ref_seq):
            return f"`{where}` should be a sequence of {len(ref_seq)} values"
        for i, (a, r) in enumerate(zip(got_seq, ref_seq)):
            msg = compare(a, r, atol, rtol, f"{where}[{i}]")
            if msg:
                return msg
        return None
    if answer != reference:
        return f"`{where}` = {answer!r} is not the expected answer"
    return None


_REFERENCES: dict[tuple[str, str], Any] = {}


def _reference_path(label: str, prof: Profile):
    """Where the reference answer of ``label`` is cached: keyed by the library's whole source, the profile and the
    sha256 of every trained model of the profile's zoo, so that a change to any of them computes it afresh."""
    from .. import paths, zoo
    from ..errors import RilibError
    from .runner import library_digest
    trained = {}
    for spec in zoo.zoo_specs(prof).values():
        if zoo.is_trained(spec):
            try:
                trained[spec.key()] = zoo.metrics(spec).get("sha256")
            except RilibError:  # a broken model: its loader will say so if the reference needs it
                continue
    return paths.results_path(f"exercise-{label}", prof.name, {"library": library_digest(), "models": trained}, ".pt")


def reference(label: str, profile: str | Profile) -> Any:
    """The reference answer of a value exercise on a profile. Cached on disk (:func:`_reference_path`) as a
    derived value, so that grading a class's notebooks computes each reference once; a corrupt cache is
    recomputed."""
    from .. import paths
    ex, prof = get_exercise(label), get_profile(profile)
    if ex.reference is None:
        raise UnknownNameError(f"{label} has no reference value (it is a {ex.kind} exercise).")
    key = (label, prof.name)
    if key not in _REFERENCES:
        _REFERENCES[key] = paths.cached(_reference_path(label, prof), lambda: ex.reference(prof),
                                        load=paths.torch_load, dump=paths.torch_bytes, name=f"exercise {label}")
    return _REFERENCES[key]


def evaluate(label: str, answer: Any, profile: str | Profile) -> Outcome:
    """The outcome of ``answer`` to exercise ``label`` on ``profile``, without printing it."""
    ex, prof = get_exercise(label), get_profile(profile)
    if ex.kind == "prose":
        raise UnknownNameError(f"{label} is answered in words and has no check. Exercises with a check: "
                               f"{', '.join(e.label for e in EXERCISES.values() if e.kind != 'prose')}.")
    hint = f"Expected: {ex.expected}"
    if callable(answer) and ex.test is None:
        return Outcome(label, FAILED, f"Not yet: the answer is a function, but this exercise wants its value. {hint}")
    if ex.test is None and is_stub(answer):
        return Outcome(label, NOT_ATTEMPTED, f"not attempted yet: replace every `...` in the starter cell. {hint}")
    try:
        if ex.test is not None:
            problem = ex.test(answer, prof)
        else:
            problem = compare(answer, reference(label, prof), ex.atol, ex.rtol)
    except NotAttempted:
        return Outcome(label, NOT_ATTEMPTED, f"not attempted yet: fill in the stub in the starter cell. {hint}")
    except Exception as exc:  # a student's answer may break in any way: say how, never crash the notebook
        return Outcome(label, FAILED, f"Not yet: checking your answer raised {type(exc).__name__}: {exc}. {hint}")
    if problem:
        return Outcome(label, FAILED, f"Not yet: {problem}. {hint}")
    return Outcome(label, PASSED, "well done, your answer holds.")


def check(label: str, answer: Any, profile: str | Profile) -> None:
    """Check a student's ``answer`` to exercise ``label`` on ``profile`` (the notebook's ``prof``) and show the
    outcome: passed, failed (with what was expected) or not attempted. :func:`evaluate` returns it instead."""
    outcome = evaluate(label, answer, profile)
    try:
        from IPython import get_ipython
        from IPython.display import display
        if get_ipython() is not None:
            display(outcome)
            return
    except ImportError:
        pass
    print(outcome)


def shown(answer: Any, digits: int = 4) -> Any:
    """``answer`` as a solution cell shows it: every number rounded to ``digits`` significant digits, in dicts,
    lists and tuples as deep as they go; the answer itself is not changed (:func:`check` reads the full values).
    A float32 result printed whole reads ``0.004444444552063942``."""
    import numbers

    import torch
    if isinstance(answer, dict):
        return {k: shown(v, digits) for k, v in answer.items()}
    if isinstance(answer, (list, tuple)):
        return type(answer)(shown(v, digits) for v in answer)
    if torch.is_tensor(answer) and answer.ndim == 0:
        answer = answer.item()
    if isinstance(answer, numbers.Real) and not isinstance(answer, (bool, numbers.Integral)):
        return float(f"{float(answer):.{digits}g}")
    return answer
