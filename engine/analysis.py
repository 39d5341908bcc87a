"""Classical item analysis of an exam's persisted results.

Contract of :func:`analyse`:

* Included records: mappings with ``exam_version == exam.version`` (an int,
  not a bool) and ``state`` ``"submitted"`` or ``"expired"``.  Terminated
  attempts (misconduct or aborted), other versions and anything that is not a
  mapping are not analysed; they are counted in ``excluded``.
* Item score ``x`` of a question = the record's ``"points"`` for it (ints,
  finite floats read as ``Fraction(str(x))``, Fractions); anything else, and
  a question missing from the record, counts as 0 points.  Entries whose
  ``id`` is not a question of the exam, repeated ids (after the first) and
  non-mapping entries are ignored; a non-list ``questions`` means every
  question is unanswered.
* Total ``T`` = sum of the item scores over the exam's questions, recomputed
  (the record's ``score`` is clamped at 0 and is not used); it may be negative.
* An item is *right* when ``x == points`` (full credit).  ``answered`` counts
  values that are not ``None``, an empty list or a whitespace-only string.
* Variances are population variances (divide by ``n``).  Arithmetic is exact
  (integers and Fractions); square roots are exact for squares of rationals
  and otherwise within 1e-9.  Every number goes out through :func:`number`
  (int when integral, else a float rounded to 4 places); ``None`` where a
  value is undefined (see the keys) or too large for a float.
* Never raises on malformed records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Iterable, Mapping, Sequence

from .exam import Exam, Question, number
from .numbers import exact

__all__ = ["analyse"]

INCLUDED_STATES = ("submitted", "expired")
BUCKETS = 10  # distribution buckets of 10 percentage points each

_ZERO = Fraction(0)
_ROOT_SCALE = 10**9


@dataclass(frozen=True, slots=True)
class _Sheet:
    """One included record aligned with the exam's questions."""

    values: tuple[object, ...]
    points: tuple[Fraction, ...]


def analyse(exam: Exam, records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Item analysis of ``records`` (persisted results) for ``exam``; see the
    module docstring for which records count and how item scores are read.

    Returns a JSON-ready dict: ``exam``, ``version``, ``n`` (records
    included), ``excluded``, ``max_score``; ``score`` with ``mean``,
    ``median``, ``sd``, ``min``, ``max`` of ``T`` (all None when ``n == 0``);
    ``distribution``, ten buckets ``{"from", "to", "count"}`` of
    ``100 * max(T, 0) / max_score`` with ``from <= p < to`` (the last also
    holds 100; everyone is in the first when ``max_score == 0``); ``kr20``
    (on right/wrong items) and ``alpha`` (Cronbach, on item scores), None when
    ``n < 2``, fewer than 2 questions or zero total variance; ``questions`` in
    exam order, each with ``id``, ``type``, ``points``, ``answered``,
    ``facility`` (mean ``x`` / points), ``p_correct`` (proportion right),
    ``point_biserial`` (Pearson r of ``x`` with ``T``), ``discrimination``
    (r of ``x`` with ``T - x``; both None when ``n < 2`` or a variance is 0)
    and ``options`` (choice counts; None for numeric and text).
    """
    sheets: list[_Sheet] = []
    excluded = 0
    for record in records:
        if _included(exam, record):
            sheets.append(_sheet(exam, record))
        else:
            excluded += 1

    n, k = len(sheets), exam.total
    # Scale every item score to an integer: X = x * d, exact.
    d = math.lcm(*{p.denominator for s in sheets for p in s.points})
    xs = [[p.numerator * (d // p.denominator) for p in s.points] for s in sheets]
    totals = [sum(row) for row in xs]
    sum_t = sum(totals)
    c_tt = _comoment(n, sum_t, sum_t, sum(t * t for t in totals))
    rights = [[s.points[i] == q.points for i, q in enumerate(exam.questions)] for s in sheets]

    questions = []
    sum_c_xx = 0  # sum of n^2 d^2 var(x_i)
    sum_pq = 0  # sum of n^2 p_i q_i
    for i, q in enumerate(exam.questions):
        col = [row[i] for row in xs]
        sum_x = sum(col)
        c_xx = _comoment(n, sum_x, sum_x, sum(x * x for x in col))
        c_xt = _comoment(n, sum_x, sum_t, sum(x * t for x, t in zip(col, totals)))
        right = sum(r[i] for r in rights)
        sum_c_xx += c_xx
        sum_pq += right * (n - right)
        values = [s.values[i] for s in sheets]
        questions.append({
            "id": q.id,
            "type": q.type,
            "points": number(q.points),
            "answered": sum(_answered(v) for v in values),
            "facility": _num(Fraction(sum_x, n * d) / q.points) if n and q.points else None,
            "p_correct": _num(Fraction(right, n)) if n else None,
            "point_biserial": _corr(n, c_xt, c_xx, c_tt),
            "discrimination": _corr(n, c_xt - c_xx, c_xx, c_tt - 2 * c_xt + c_xx),
            "options": _options(q, values),
        })

    per_candidate = [sum(r) for r in rights]
    s_r = sum(per_candidate)
    c_rr = _comoment(n, s_r, s_r, sum(r * r for r in per_candidate))

    return {
        "exam": exam.id,
        "version": exam.version,
        "n": n,
        "excluded": excluded,
        "max_score": number(exam.max_score),
        "score": _summary(totals, d),
        "distribution": _distribution(totals, d, exam.max_score),
        "kr20": _reliability(n, k, sum_pq, c_rr),
        "alpha": _reliability(n, k, sum_c_xx, c_tt),
        "questions": questions,
    }


# --------------------------------------------------------------------------
# Records


def _included(exam: Exam, record: object) -> bool:
    if not isinstance(record, Mapping):
        return False
    version, state = record.get("exam_version"), record.get("state")
    return (isinstance(version, int) and not isinstance(version, bool) and version == exam.version
            and isinstance(state, str) and state in INCLUDED_STATES)


def _sheet(exam: Exam, record: Mapping[str, Any]) -> _Sheet:
    values: list[object] = [None] * exam.total
    points = [_ZERO] * exam.total
    seen: set[int] = set()
    items = record.get("questions")
    for item in items if isinstance(items, (list, tuple)) else ():
        if not isinstance(item, Mapping):
            continue
        qid = item.get("id")
        i = exam.by_id.get(qid) if isinstance(qid, str) else None
        if i is None or i in seen:
            continue
        seen.add(i)
        values[i] = item.get("value")
        points[i] = _exact(item.get("points"))
    return _Sheet(tuple(values), tuple(points))


def _exact(v: object) -> Fraction:
    """Exact value of a recorded number; 0 for anything that is not one."""
    if isinstance(v, Fraction):
        return v
    return exact(v) or _ZERO
    if isinstance(v, (int, Fraction)):
        return Fraction(v)
    if isinstance(v, float) and math.isfinite(v):
        return Fraction(str(v))
    return _ZERO


def _answered(v: object) -> bool:
    if v is None:
        return False
    if isinstance(v, (list, tuple)):
        return bool(v)
    if isinstance(v, str):
        return bool(v.strip())
    return True


def _options(q: Question, values: Sequence[object]) -> dict[str, int] | None:
    """Choice counts: every option of a single/multiple question in option
    order (a multiple value counts each chosen option once); true/false for
    true_false; None otherwise.  Values of the wrong type count nowhere."""
    if q.type == "true_false":
        return {"true": sum(v is True for v in values), "false": sum(v is False for v in values)}
    if q.type not in ("single", "multiple"):
        return None
    counts = {o.id: 0 for o in q.options}
    for v in values:
        if q.type == "single":
            if isinstance(v, str) and v in counts:
                counts[v] += 1
        elif isinstance(v, (list, tuple)):
            for oid in counts:
                if oid in v:
                    counts[oid] += 1
    return counts


# --------------------------------------------------------------------------
# Statistics on integer-scaled scores


def _comoment(n: int, sum_x: int, sum_y: int, sum_xy: int) -> int:
    """``n * sum(x*y) - sum(x) * sum(y)``, i.e. ``n**2 * cov(x, y)``."""
    return n * sum_xy - sum_x * sum_y


def _sqrt(x: Fraction) -> Fraction:
    """Square root of ``x >= 0``: exact for squares of rationals, else at
    most 1e-9 below."""
    num, den = x.numerator, x.denominator
    return Fraction(math.isqrt(num * den * _ROOT_SCALE**2), den * _ROOT_SCALE)


def _num(x: Fraction) -> int | float | None:
    try:
        return number(x)
    except OverflowError:
        return None


def _corr(n: int, c_xy: int, c_xx: int, c_yy: int) -> int | float | None:
    """Pearson r from co-moments; None when ``n < 2`` or a variance is 0."""
    if n < 2 or c_xx <= 0 or c_yy <= 0:
        return None
    r = _sqrt(Fraction(c_xy * c_xy, c_xx * c_yy))
    return _num(r if c_xy >= 0 else -r)


def _reliability(n: int, k: int, sum_item: int, c_total: int) -> int | float | None:
    """``k/(k-1) * (1 - sum_item / c_total)`` (KR-20 / alpha with both terms
    scaled alike); None when ``n < 2``, ``k < 2`` or the total variance is 0."""
    if n < 2 or k < 2 or c_total <= 0:
        return None
    return _num(Fraction(k, k - 1) * (1 - Fraction(sum_item, c_total)))


def _summary(totals: Sequence[int], d: int) -> dict[str, int | float | None]:
    """Mean, median, population sd, min and max of ``totals / d``."""
    n = len(totals)
    if not n:
        return dict.fromkeys(("mean", "median", "sd", "min", "max"))
    ordered = sorted(totals)
    mid = n // 2
    median = Fraction(ordered[mid]) if n % 2 else Fraction(ordered[mid - 1] + ordered[mid], 2)
    c_tt = _comoment(n, sum(totals), sum(totals), sum(t * t for t in totals))
    return {
        "mean": _num(Fraction(sum(totals), n * d)),
        "median": _num(median / d),
        "sd": _num(_sqrt(Fraction(c_tt, (n * d) ** 2))),
        "min": _num(Fraction(ordered[0], d)),
        "max": _num(Fraction(ordered[-1], d)),
    }


def _distribution(totals: Sequence[int], d: int, max_score: Fraction) -> list[dict[str, int]]:
    width = 100 // BUCKETS
    counts = [0] * BUCKETS
    for t in totals:
        # bucket = floor(percent / width), percent = 100 * max(T, 0) / max_score
        b = int(Fraction(100 * max(t, 0), width * d) / max_score) if max_score > 0 else 0
        counts[min(b, BUCKETS - 1)] += 1
    return [{"from": i * width, "to": (i + 1) * width, "count": c} for i, c in enumerate(counts)]
