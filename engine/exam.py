"""Exam definitions: validation of the JSON document and the immutable model.

Contract (see docs/protocol.md, "Exam definition"):

* :func:`parse_exam` takes an already *decoded* JSON document and either
  returns an :class:`Exam` or raises :class:`ExamInvalid` listing every
  problem found, each as ``"<json path>: <message>"``.  Paths name top-level
  keys bare (``title``), list items with brackets (``questions[3]``) and nested
  keys with dots (``questions[3].options[1].text``); ``$`` is the document.
* Numbers are exact :class:`~fractions.Fraction` values: ``Fraction(x)`` for
  ints, ``Fraction(str(x))`` for floats (so ``0.1`` is exactly 1/10).
  Booleans are never numbers; NaN and infinities are rejected.
* The model is frozen.  ``Question.public`` is the precomputed wire view of a
  question without its key or scoring data; treat it as read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType
from typing import Mapping

from .ids import EXAM_ID_RULE, is_exam_id
from .numbers import exact

__all__ = [
    "ExamInvalid",
    "Option",
    "Question",
    "Exam",
    "parse_exam",
    "number",
    "QUESTION_TYPES",
    "CHOICE_TYPES",
]

QUESTION_TYPES = ("single", "multiple", "true_false", "numeric", "text")
CHOICE_TYPES = frozenset({"single", "multiple"})
SCORINGS = ("all_or_nothing", "partial")
NAVIGATIONS = ("free", "linear")

MAX_DURATION_S = 604_800
MAX_QUESTIONS = 1000
MAX_POINTS = 1_000_000
MIN_OPTIONS, MAX_OPTIONS = 2, 50

class ExamInvalid(Exception):
    """An exam document is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(self.problems)

    def __str__(self) -> str:
        return "\n".join(self.problems)


def number(x: Fraction) -> int | float:
    """Wire form of an exact number: ``int`` when integral, else a float
    rounded to 4 decimal places."""
    if x.denominator == 1:
        return int(x.numerator)
    return round(float(x), 4)


@dataclass(frozen=True, slots=True)
class Option:
    id: str
    text: str


@dataclass(frozen=True, slots=True)
class Question:
    """One question with its key.

    ``answer`` by type: single -> option id (str); multiple -> frozenset of
    option ids; true_false -> bool; numeric -> Fraction; text -> tuple of
    accepted keys (as written; normalized only when scoring).
    ``options`` is empty for non-choice types.  ``public`` is computed from the
    other fields when not given.
    """

    id: str
    type: str
    prompt: str
    points: Fraction
    penalty: Fraction
    options: tuple[Option, ...]
    answer: object
    scoring: str = "all_or_nothing"
    tolerance: Fraction = Fraction(0)
    case_sensitive: bool = False
    public: dict = field(default=None, compare=False, hash=False, repr=False)  # type: ignore[assignment]
    #: the ids of ``options``, for validating values (computed)
    option_ids: frozenset[str] = field(default=frozenset(), init=False, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "option_ids", frozenset(o.id for o in self.options))
        if self.public is None:
            object.__setattr__(self, "public", {
                "id": self.id,
                "type": self.type,
                "prompt": self.prompt,
                "options": [{"id": o.id, "text": o.text} for o in self.options],
                "points": number(self.points),
            })


@dataclass(frozen=True, slots=True)
class Exam:
    """A validated exam.  ``max_score`` (sum of points) and ``by_id``
    (question id -> index in ``questions``) are derived when not given."""

    id: str
    version: int
    title: str
    duration_ms: int
    navigation: str
    shuffle_questions: bool
    shuffle_options: bool
    show_result: bool
    pass_percent: Fraction
    questions: tuple[Question, ...]
    max_score: Fraction = None  # type: ignore[assignment]
    by_id: Mapping[str, int] = field(default=None, compare=False, hash=False, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.max_score is None:
            object.__setattr__(self, "max_score", sum((q.points for q in self.questions), Fraction(0)))
        if self.by_id is None:
            object.__setattr__(self, "by_id", MappingProxyType({q.id: i for i, q in enumerate(self.questions)}))

    @property
    def total(self) -> int:
        return len(self.questions)


# --------------------------------------------------------------------------
# Validation

_TOP_KEYS = frozenset({
    "id", "title", "duration_s", "navigation", "shuffle_questions",
    "shuffle_options", "show_result", "pass_percent", "questions",
})
_Q_COMMON = frozenset({"id", "type", "prompt", "points", "penalty", "answer"})
_Q_ONLY = {  # field -> the only question type(s) that may carry it
    "options": ("single", "multiple"),
    "scoring": ("multiple",),
    "tolerance": ("numeric",),
    "case_sensitive": ("text",),
}
_OPTION_KEYS = frozenset({"id", "text"})

_MISSING = object()


def _at(path: str, key: str) -> str:
    return key if path in ("", "$") else f"{path}.{key}"


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _broken_text(doc: object) -> list[str]:
    """The paths of strings in ``doc`` that are not valid text: a JSON ``\\ud800`` escape decodes to a lone
    surrogate, which no encoder further on (UTF-8, MessagePack, the stores) takes. A bad key is named by its parent."""
    found: list[str] = []
    stack: list[tuple[object, str]] = [(doc, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                if isinstance(k, str) and not _encodable(k):
                    found.append(f"{path or '$'} (a key)")
                    continue
                stack.append((v, _at(path, str(k))))
        elif isinstance(node, list):
            stack.extend((v, f"{path or '$'}[{i}]") for i, v in enumerate(node))
        elif isinstance(node, str) and not _encodable(node):
            found.append(path or "$")
    return sorted(found)


class _Checker:
    """Collects problems while reading fields of one JSON object."""

    __slots__ = ("problems",)

    def __init__(self) -> None:
        self.problems: list[str] = []

    def bad(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def unknown(self, obj: dict, path: str, allowed: frozenset[str]) -> None:
        for k in obj:
            if k not in allowed:
                self.bad(_at(path, str(k)), "unknown field")

    def string(self, obj: dict, path: str, key: str, max_len: int, *, required: bool = True,
               default: object = None) -> object:
        p = _at(path, key)
        v = obj.get(key, _MISSING)
        if v is _MISSING:
            if required:
                self.bad(p, "required")
            return default
        if not isinstance(v, str):
            self.bad(p, "must be a string")
            return default
        if not v:
            self.bad(p, "must not be empty")
            return default
        if len(v) > max_len:
            self.bad(p, f"must be at most {max_len} characters")
            return default
        return v

    def boolean(self, obj: dict, path: str, key: str, default: bool) -> bool:
        v = obj.get(key, _MISSING)
        if v is _MISSING:
            return default
        if not isinstance(v, bool):
            self.bad(_at(path, key), "must be a boolean")
            return default
        return v

    def choice(self, obj: dict, path: str, key: str, allowed: tuple[str, ...], default: str) -> str:
        v = obj.get(key, _MISSING)
        if v is _MISSING:
            return default
        if not isinstance(v, str) or v not in allowed:
            self.bad(_at(path, key), "must be one of " + ", ".join(f'"{a}"' for a in allowed))
            return default
        return v

    def fraction(self, obj: dict, path: str, key: str, default: Fraction, *, lo: Fraction,
                 lo_open: bool = False, hi: Fraction | None = None) -> Fraction:
        v = obj.get(key, _MISSING)
        if v is _MISSING:
            return default
        p = _at(path, key)
        f = exact(v)
        if f is None:
            self.bad(p, "must be a finite number")
            return default
        if f < lo or (lo_open and f == lo):
            self.bad(p, f"must be {'greater than' if lo_open else 'at least'} {number(lo)}")
            return default
        if hi is not None and f > hi:
            self.bad(p, f"must be at most {number(hi)}")
            return default
        return f


def parse_exam(doc: object, *, exam_id: str | None = None, version: int = 0) -> Exam:
    """Validate a decoded JSON exam document and build the :class:`Exam`.

    ``exam_id`` (e.g. from the URL) is used when the document has no ``id``;
    if both are present they must be equal.  Raises :class:`ExamInvalid`
    with every problem found.
    """
    c = _Checker()
    if not isinstance(doc, dict):
        raise ExamInvalid(["$: must be an object"])
    broken = _broken_text(doc)
    if broken:  # reported alone: a problem quoting such text could not be encoded either
        raise ExamInvalid([f"{path}: must be valid text (no lone surrogates)" for path in broken])
    c.unknown(doc, "", _TOP_KEYS)

    # id
    eid: str | None = None
    raw_id = doc.get("id", _MISSING)
    if raw_id is _MISSING:
        if exam_id is None:
            c.bad("id", "required")
        else:
            raw_id = exam_id
    if raw_id is not _MISSING:
        if not is_exam_id(raw_id):
            c.bad("id", f"must be {EXAM_ID_RULE}")
        elif exam_id is not None and raw_id != exam_id:
            c.bad("id", f'"{raw_id}" does not match the exam id "{exam_id}"')
        else:
            eid = raw_id

    title = c.string(doc, "", "title", 300)

    duration_ms = None
    d = doc.get("duration_s", _MISSING)
    if d is _MISSING:
        c.bad("duration_s", "required")
    elif isinstance(d, bool) or not isinstance(d, int) or d <= 0:
        c.bad("duration_s", "must be a positive integer")
    elif d > MAX_DURATION_S:
        c.bad("duration_s", f"must be at most {MAX_DURATION_S}")
    else:
        duration_ms = d * 1000

    navigation = c.choice(doc, "", "navigation", NAVIGATIONS, "free")
    shuffle_questions = c.boolean(doc, "", "shuffle_questions", False)
    shuffle_options = c.boolean(doc, "", "shuffle_options", False)
    show_result = c.boolean(doc, "", "show_result", True)
    pass_percent = c.fraction(doc, "", "pass_percent", Fraction(50), lo=Fraction(0), hi=Fraction(100))

    questions: list[Question | None] = []
    qs = doc.get("questions", _MISSING)
    if qs is _MISSING:
        c.bad("questions", "required")
    elif not isinstance(qs, list):
        c.bad("questions", "must be a list")
    elif not qs:
        c.bad("questions", "must not be empty")
    else:
        if len(qs) > MAX_QUESTIONS:
            c.bad("questions", f"must have at most {MAX_QUESTIONS} questions")
        seen: set[str] = set()
        for i, q in enumerate(qs):
            path = f"questions[{i}]"
            questions.append(_parse_question(c, q, path, seen))

    if c.problems:
        raise ExamInvalid(c.problems)
    return Exam(
        id=eid,  # type: ignore[arg-type]
        version=version,
        title=title,  # type: ignore[arg-type]
        duration_ms=duration_ms,  # type: ignore[arg-type]
        navigation=navigation,
        shuffle_questions=shuffle_questions,
        shuffle_options=shuffle_options,
        show_result=show_result,
        pass_percent=pass_percent,
        questions=tuple(questions),  # type: ignore[arg-type]
    )


def _parse_question(c: _Checker, q: object, path: str, seen: set[str]) -> Question | None:
    if not isinstance(q, dict):
        c.bad(path, "must be an object")
        return None
    before = len(c.problems)

    qid = c.string(q, path, "id", 128)
    if isinstance(qid, str):
        if qid in seen:
            c.bad(_at(path, "id"), f'duplicate question id "{qid}"')
        seen.add(qid)

    qtype = q.get("type", _MISSING)
    if qtype is _MISSING:
        c.bad(_at(path, "type"), "required")
        qtype = None
    elif not isinstance(qtype, str) or qtype not in QUESTION_TYPES:
        c.bad(_at(path, "type"), "must be one of " + ", ".join(f'"{t}"' for t in QUESTION_TYPES))
        qtype = None

    allowed = set(_Q_COMMON)
    for key, types in _Q_ONLY.items():
        if qtype is None or qtype in types:
            allowed.add(key)
        elif key in q:
            c.bad(_at(path, key), f'not allowed for type "{qtype}"')
            allowed.add(key)  # reported already; not also "unknown field"
    c.unknown(q, path, frozenset(allowed))

    prompt = c.string(q, path, "prompt", 20_000)
    points = c.fraction(q, path, "points", Fraction(1), lo=Fraction(0), lo_open=True, hi=Fraction(MAX_POINTS))
    penalty = c.fraction(q, path, "penalty", Fraction(0), lo=Fraction(0))

    options: tuple[Option, ...] = ()
    option_ids: set[str] | None = None  # None: unknown, don't check answer references
    if qtype in CHOICE_TYPES:
        options, option_ids = _parse_options(c, q, path)

    scoring = "all_or_nothing"
    tolerance = Fraction(0)
    case_sensitive = False
    if qtype == "multiple":
        scoring = c.choice(q, path, "scoring", SCORINGS, "all_or_nothing")
    elif qtype == "numeric":
        tolerance = c.fraction(q, path, "tolerance", Fraction(0), lo=Fraction(0))
    elif qtype == "text":
        case_sensitive = c.boolean(q, path, "case_sensitive", False)

    answer = None
    if qtype is not None:
        answer = _parse_answer(c, q, path, qtype, option_ids)

    if len(c.problems) > before:
        return None
    return Question(
        id=qid, type=qtype, prompt=prompt, points=points, penalty=penalty,  # type: ignore[arg-type]
        options=options, answer=answer, scoring=scoring, tolerance=tolerance,
        case_sensitive=case_sensitive,
    )


def _parse_options(c: _Checker, q: dict, path: str) -> tuple[tuple[Option, ...], set[str] | None]:
    p = _at(path, "options")
    raw = q.get("options", _MISSING)
    if raw is _MISSING:
        c.bad(p, "required")
        return (), None
    if not isinstance(raw, list):
        c.bad(p, "must be a list")
        return (), None
    if not MIN_OPTIONS <= len(raw) <= MAX_OPTIONS:
        c.bad(p, f"must have {MIN_OPTIONS} to {MAX_OPTIONS} options")
    ids: set[str] = set()
    out: list[Option] = []
    for j, o in enumerate(raw):
        op = f"{p}[{j}]"
        if not isinstance(o, dict):
            c.bad(op, "must be an object")
            continue
        c.unknown(o, op, _OPTION_KEYS)
        oid = c.string(o, op, "id", 64)
        text = c.string(o, op, "text", 5000)
        if isinstance(oid, str):
            if oid in ids:
                c.bad(_at(op, "id"), f'duplicate option id "{oid}"')
            ids.add(oid)
        if isinstance(oid, str) and isinstance(text, str):
            out.append(Option(oid, text))
    return tuple(out), ids


def _parse_answer(c: _Checker, q: dict, path: str, qtype: str, option_ids: set[str] | None) -> object:
    p = _at(path, "answer")
    a = q.get("answer", _MISSING)
    if a is _MISSING:
        c.bad(p, "required")
        return None
    if qtype == "single":
        if not isinstance(a, str):
            c.bad(p, "must be an option id (string)")
        elif option_ids is not None and a not in option_ids:
            c.bad(p, f'option "{a}" does not exist')
        return a
    if qtype == "multiple":
        if not isinstance(a, list) or not a:
            c.bad(p, "must be a non-empty list of option ids")
            return None
        chosen: set[str] = set()
        for k, v in enumerate(a):
            ap = f"{p}[{k}]"
            if not isinstance(v, str):
                c.bad(ap, "must be an option id (string)")
            elif v in chosen:
                c.bad(ap, f'duplicate option id "{v}"')
            elif option_ids is not None and v not in option_ids:
                c.bad(ap, f'option "{v}" does not exist')
            if isinstance(v, str):
                chosen.add(v)
        return frozenset(chosen)
    if qtype == "true_false":
        if not isinstance(a, bool):
            c.bad(p, "must be a boolean")
        return a
    if qtype == "numeric":
        f = exact(a)
        if f is None:
            c.bad(p, "must be a finite number")
        return f
    # text
    keys = [a] if isinstance(a, str) else a
    if not isinstance(keys, list) or not keys:
        c.bad(p, "must be a string or a non-empty list of strings")
        return None
    for k, v in enumerate(keys):
        ap = p if isinstance(a, str) else f"{p}[{k}]"
        if not isinstance(v, str):
            c.bad(ap, "must be a string")
        elif not v.strip():
            c.bad(ap, "must not be blank")
    return tuple(keys)
