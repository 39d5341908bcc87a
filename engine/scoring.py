"""Answer validation and scoring.  All arithmetic is exact (Fraction).

Scoring rules (docs/protocol.md, "Exam definition"):

* Unanswered (``None``; ``[]`` for multiple; whitespace-only text) scores
  ``(None, 0)``: it is neither right nor wrong and costs nothing.
* single / true_false / multiple with ``all_or_nothing``: right ->
  ``(True, points)``, wrong -> ``(False, -penalty)``.
* multiple with ``partial``: every correct option chosen earns
  ``points / len(answer)``, every wrong option chosen costs the same, and the
  question is floored at 0.  ``penalty`` is NOT applied in partial scoring.
  ``correct`` is True only for exactly the right set.
* numeric: right when ``|value - answer| <= tolerance``, with floats read
  as their shortest decimal repr (``Fraction(str(v))``), so 3.15 vs 3.14
  with tolerance 0.01 is exactly on the boundary and right.
* text: both sides NFC-normalized and ``strip()``-ed, then ``casefold()``-ed
  unless ``case_sensitive``; right when equal to any key.
* Exam score = max(0, sum of question points); ``percent = 100 * score /
  max_score``; ``passed = percent >= pass_percent``, all exact.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from fractions import Fraction
from typing import Mapping, Union

from .exam import Exam, Question, number
from .numbers import exact
from .refused import Refused

__all__ = [
    "Value", "Refused", "check_value", "score_question", "QuestionResult",
    "Result", "score_exam", "number",
]

Value = Union[None, bool, int, float, str, list[str]]

MAX_TEXT = 2000
MAX_NUMERIC = 1e15

_ZERO = Fraction(0)


def _bad(msg: str) -> Refused:
    return Refused("bad_value", msg)


def check_value(q: Question, value: object) -> Value:
    """Validate a candidate's value for ``q`` and return it normalized, or
    raise ``Refused("bad_value", ...)``.  ``None`` (clear) is always valid.
    A ``multiple`` value is returned as a list in option definition order."""
    if value is None:
        return None
    t = q.type
    if t == "single":
        if isinstance(value, str) and value in q.option_ids:
            return value
        raise _bad("expected one of the question's option ids")
    if t == "multiple":
        if not isinstance(value, (list, tuple)):
            raise _bad("expected a list of option ids")
        chosen = set()
        ids = [o.id for o in q.options]
        for v in value:
            if not isinstance(v, str) or v not in ids:
                raise _bad("expected a list of the question's option ids")
            if v in chosen:
                raise _bad("an option id is repeated")
            chosen.add(v)
        return [i for i in ids if i in chosen]
    if t == "true_false":
        if isinstance(value, bool):
            return value
        raise _bad("expected true or false")
    if t == "numeric":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad("expected a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise _bad("expected a finite number")
        if abs(value) > MAX_NUMERIC:
            raise _bad("number is too large")
        return value
    if t == "text":
        if not isinstance(value, str):
            raise _bad("expected a string")
        if len(value) > MAX_TEXT:
            raise _bad(f"text is longer than {MAX_TEXT} characters")
        return value
    raise _bad("unsupported question type")


def _norm_text(s: str, case_sensitive: bool) -> str:
    s = unicodedata.normalize("NFC", s).strip()
    if not case_sensitive:
        s = unicodedata.normalize("NFC", s.casefold())
    return s


_WRONG: tuple[bool, Fraction] = (False, Fraction(0))


def score_question(q: Question, value: object) -> tuple[bool | None, Fraction]:
    """``(correct, points)`` for one question (see module docstring).  A value
    of the wrong type for the question counts as a wrong answer."""
    if value is None:
        return None, _ZERO
    t = q.type
    wrong = (False, -q.penalty) if q.penalty else _WRONG
    if t == "multiple":
        if not isinstance(value, (list, tuple, set, frozenset)):
            return wrong
        chosen = frozenset(value)
        if not chosen:
            return None, _ZERO
        if q.scoring == "partial":
            unit = q.points / len(q.answer)  # type: ignore[arg-type]
            right = len(chosen & q.answer)  # type: ignore[operator]
            earned = unit * (right - (len(chosen) - right))
            return chosen == q.answer, max(_ZERO, earned)
        return (True, q.points) if chosen == q.answer else wrong
    if t == "text":
        if not isinstance(value, str):
            return wrong
        v = _norm_text(value, q.case_sensitive)
        if not v:
            return None, _ZERO
        if any(v == _norm_text(k, q.case_sensitive) for k in q.answer):  # type: ignore[attr-defined]
            return True, q.points
        return wrong
    if t == "numeric":
        f = exact(value)
        if f is None:
            return wrong
        return (True, q.points) if abs(f - q.answer) <= q.tolerance else wrong  # type: ignore[operator]
    if t == "true_false":
        return (True, q.points) if isinstance(value, bool) and value == q.answer else wrong
    # single
    return (True, q.points) if isinstance(value, str) and value == q.answer else wrong


@dataclass(frozen=True, slots=True)
class QuestionResult:
    id: str
    value: Value
    correct: bool | None
    points: Fraction


@dataclass(frozen=True, slots=True)
class Result:
    """A scored attempt; ``questions`` in exam definition order."""

    score: Fraction
    max_score: Fraction
    percent: Fraction
    passed: bool
    questions: tuple[QuestionResult, ...]

    def to_wire(self) -> dict:
        """JSON/MessagePack-ready dict; numbers through :func:`number`."""
        return {
            "score": number(self.score),
            "max_score": number(self.max_score),
            "percent": number(self.percent),
            "passed": self.passed,
            "questions": [
                {
                    "id": r.id,
                    "value": list(r.value) if isinstance(r.value, list) else r.value,
                    "correct": r.correct,
                    "points": number(r.points),
                }
                for r in self.questions
            ],
        }


def score_exam(exam: Exam, answers: Mapping[str, Value]) -> Result:
    """Score every question of ``exam`` (answers for unknown ids are ignored)."""
    rows = []
    whole, part = 0, _ZERO  # whole points summed as ints: Fraction additions cost a microsecond each
    for q in exam.questions:
        value = answers.get(q.id)
        correct, pts = score_question(q, value)
        if pts.denominator == 1:
            whole += pts.numerator
        else:
            part += pts
        rows.append(QuestionResult(q.id, value, correct, pts))
    score = max(_ZERO, part + whole)
    percent = 100 * score / exam.max_score if exam.max_score else _ZERO
    return Result(score, exam.max_score, percent, percent >= exam.pass_percent, tuple(rows))
