from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import (
    QuestionResult, Refused, Result, check_value, number, parse_exam, score_exam, score_question,
)

from .engine_testdata import FIVE_TYPES, build


def q_of(**q):
    base = {"id": "q", "prompt": "p"}
    base.update(q)
    return parse_exam({"id": "x", "title": "t", "duration_s": 60, "questions": [base]}).questions[0]


OPTS4 = [{"id": i, "text": i.upper()} for i in "abcd"]


# --- single / true_false ---------------------------------------------------

def test_single():
    q = q_of(type="single", options=OPTS4, answer="b", points=3, penalty=1)
    assert score_question(q, "b") == (True, 3)
    assert score_question(q, "a") == (False, -1)
    assert score_question(q, None) == (None, 0)


def test_true_false():
    q = q_of(type="true_false", answer=False, points=2, penalty=0.5)
    assert score_question(q, False) == (True, 2)
    assert score_question(q, True) == (False, Fraction(-1, 2))
    assert score_question(q, None) == (None, 0)
    assert score_question(q, 0) == (False, Fraction(-1, 2))  # 0 is not False


# --- multiple --------------------------------------------------------------

def test_multiple_all_or_nothing():
    q = q_of(type="multiple", options=OPTS4, answer=["a", "c"], points=2, penalty=1)
    assert score_question(q, ["c", "a"]) == (True, 2)
    assert score_question(q, ["a"]) == (False, -1)
    assert score_question(q, ["a", "c", "d"]) == (False, -1)
    assert score_question(q, []) == (None, 0)
    assert score_question(q, None) == (None, 0)


@pytest.mark.parametrize("chosen, correct, points", [
    (["a", "c"], True, Fraction(3)),
    (["a"], False, Fraction(3, 2)),
    (["a", "b"], False, Fraction(0)),
    (["a", "c", "b"], False, Fraction(3, 2)),
    (["b", "d"], False, Fraction(0)),       # floored at 0, never negative
    (["a", "b", "d"], False, Fraction(0)),
    (["b"], False, Fraction(0)),
    ([], None, Fraction(0)),
])
def test_multiple_partial(chosen, correct, points):
    # penalty is ignored in partial scoring
    q = q_of(type="multiple", scoring="partial", options=OPTS4, answer=["a", "c"], points=3, penalty=5)
    assert score_question(q, chosen) == (correct, points)


def test_multiple_partial_thirds():
    q = q_of(type="multiple", scoring="partial", options=OPTS4, answer=["a", "b", "c"], points=1)
    assert score_question(q, ["a"]) == (False, Fraction(1, 3))
    assert score_question(q, ["a", "b"]) == (False, Fraction(2, 3))
    assert score_question(q, ["a", "b", "d"]) == (False, Fraction(1, 3))


# --- numeric ---------------------------------------------------------------

@pytest.mark.parametrize("value, correct", [
    (3.14, True), (3.15, True), (3.13, True),        # exactly on the boundary: right
    (3.1500001, False), (3.1299999, False),
    (3, False), (4, False),
])
def test_numeric_tolerance_boundaries(value, correct):
    q = q_of(type="numeric", answer=3.14, tolerance=0.01, points=2, penalty=1)
    assert score_question(q, value) == ((True, 2) if correct else (False, -1))


def test_numeric_exact_without_tolerance():
    q = q_of(type="numeric", answer=0.3)
    assert score_question(q, 0.3) == (True, 1)
    assert score_question(q, 0.1 + 0.2) == (False, 0)  # 0.30000000000000004 is not 0.3
    qi = q_of(type="numeric", answer=7)
    assert score_question(qi, 7) == (True, 1)
    assert score_question(qi, 7.0) == (True, 1)
    assert score_question(qi, 7.000001) == (False, 0)
    assert score_question(qi, None) == (None, 0)


def test_numeric_integer_tolerance():
    q = q_of(type="numeric", answer=100, tolerance=5)
    assert score_question(q, 95)[0] is True
    assert score_question(q, 105)[0] is True
    assert score_question(q, 94)[0] is False
    assert score_question(q, 105.0001)[0] is False


# --- text ------------------------------------------------------------------

def test_text_trim_and_case():
    q = q_of(type="text", answer=["Paris", "Lutetia"], points=2, penalty=1)
    assert score_question(q, "Paris") == (True, 2)
    assert score_question(q, "  paris\n") == (True, 2)
    assert score_question(q, "PARIS") == (True, 2)
    assert score_question(q, "lutetia") == (True, 2)
    assert score_question(q, "Pa ris") == (False, -1)
    assert score_question(q, "London") == (False, -1)
    assert score_question(q, "   ") == (None, 0)
    assert score_question(q, "") == (None, 0)
    assert score_question(q, None) == (None, 0)


def test_text_key_is_trimmed_too():
    q = q_of(type="text", answer="  Straße ")
    assert score_question(q, "STRASSE")[0] is True  # casefold: ß -> ss
    assert score_question(q, "straße")[0] is True


def test_text_case_sensitive():
    q = q_of(type="text", answer=["Paris"], case_sensitive=True)
    assert score_question(q, " Paris ")[0] is True
    assert score_question(q, "paris")[0] is False
    assert score_question(q, "PARIS")[0] is False


def test_text_nfc():
    composed, decomposed = "Caf\u00e9", "Cafe\u0301"
    q = q_of(type="text", answer=[composed], case_sensitive=True)
    assert score_question(q, decomposed)[0] is True
    q2 = q_of(type="text", answer=[decomposed])
    assert score_question(q2, "CAF\u00c9")[0] is True


# --- check_value -------------------------------------------------------------

def refused(q, v):
    with pytest.raises(Refused) as ei:
        check_value(q, v)
    assert ei.value.code == "bad_value"
    assert ei.value.message


def test_check_value_none_always_allowed(exam5):
    for q in exam5.questions:
        assert check_value(q, None) is None


def test_check_value_per_type(exam5):
    q1, q2, q3, q4, q5 = exam5.questions
    assert check_value(q1, "a") == "a"
    for bad in ("e", 1, ["a"], True, {"a": 1}):
        refused(q1, bad)

    assert check_value(q2, ["c", "a"]) == ["a", "c"]  # normalized to option order
    assert check_value(q2, []) == []
    for bad in ("a", ["a", "a"], ["z"], [1], [None], {"a"}, True):
        refused(q2, bad)

    assert check_value(q3, True) is True
    assert check_value(q3, False) is False
    for bad in (1, 0, "true", [True]):
        refused(q3, bad)

    assert check_value(q4, 3) == 3
    assert check_value(q4, -2.5) == -2.5
    assert check_value(q4, 10**15) == 10**15
    for bad in (True, "3", float("nan"), float("inf"), -float("inf"), 10**15 + 1, 1e16, [1]):
        refused(q4, bad)

    assert check_value(q5, "x" * 2000) == "x" * 2000
    assert check_value(q5, "") == ""
    for bad in ("x" * 2001, 5, ["Paris"], False):
        refused(q5, bad)


# --- exam totals -------------------------------------------------------------

def test_score_exam_full_marks(exam5):
    answers = {"q1": "b", "q2": ["a", "c"], "q3": True, "q4": 3.15, "q5": " paris "}
    r = score_exam(exam5, answers)
    assert r.score == r.max_score == 6
    assert r.percent == 100 and r.passed
    assert [x.id for x in r.questions] == ["q1", "q2", "q3", "q4", "q5"]
    assert all(x.correct for x in r.questions)
    assert r.questions[4] == QuestionResult("q5", " paris ", True, Fraction(1))


def test_score_exam_unanswered_and_unknown_ids(exam5):
    r = score_exam(exam5, {"nope": "b"})
    assert r.score == 0 and r.percent == 0 and not r.passed
    assert all(x.correct is None and x.points == 0 and x.value is None for x in r.questions)


def test_exam_total_floored_at_zero():
    exam = build(questions=[
        {"id": "a", "type": "true_false", "prompt": "p", "answer": True, "penalty": 3},
        {"id": "b", "type": "true_false", "prompt": "p", "answer": True, "points": 2},
    ])
    r = score_exam(exam, {"a": False, "b": True})
    assert r.questions[0].points == -3 and r.questions[1].points == 2
    assert r.score == 0 and r.percent == 0
    r2 = score_exam(exam, {"a": False})
    assert r2.score == 0


def test_penalty_reduces_total():
    exam = build(questions=[
        {"id": "a", "type": "true_false", "prompt": "p", "answer": True, "penalty": 0.25},
        {"id": "b", "type": "true_false", "prompt": "p", "answer": True, "points": 3},
    ])
    r = score_exam(exam, {"a": False, "b": True})
    assert r.score == Fraction(11, 4)
    assert r.percent == Fraction(275, 4)


def test_pass_percent_exact_comparison():
    qs = [{"id": f"q{i}", "type": "true_false", "prompt": "p", "answer": True} for i in range(3)]
    exam = build(questions=qs, pass_percent=66.67)
    r = score_exam(exam, {"q0": True, "q1": True})
    # 200/3 = 66.666...; float rounding to 66.67 would wrongly pass
    assert r.percent == Fraction(200, 3) and not r.passed
    exam2 = build(questions=qs, pass_percent=50)
    r2 = score_exam(exam2, {"q0": True})
    assert r2.percent == Fraction(100, 3) and not r2.passed
    qs4 = [{"id": f"q{i}", "type": "true_false", "prompt": "p", "answer": True} for i in range(4)]
    exam3 = build(questions=qs4, pass_percent=50)
    assert score_exam(exam3, {"q0": True, "q1": True}).passed  # exactly at the threshold


def test_to_wire(exam5):
    answers = {"q1": "a", "q2": ["a"], "q3": True}
    r = score_exam(exam5, answers)
    w = r.to_wire()
    assert w == {
        "score": 1.5, "max_score": 6, "percent": 25, "passed": False,
        "questions": [
            {"id": "q1", "value": "a", "correct": False, "points": -0.5},
            {"id": "q2", "value": ["a"], "correct": False, "points": 1},
            {"id": "q3", "value": True, "correct": True, "points": 1},
            {"id": "q4", "value": None, "correct": None, "points": 0},
            {"id": "q5", "value": None, "correct": None, "points": 0},
        ],
    }
    assert isinstance(w["max_score"], int) and isinstance(w["percent"], int)
    w["questions"][1]["value"].append("zz")
    assert answers["q2"] == ["a"]  # wire copy does not alias stored values


def test_number():
    assert number(Fraction(4)) == 4 and isinstance(number(Fraction(4)), int)
    assert number(Fraction(-3)) == -3
    assert number(Fraction(1, 3)) == 0.3333
    assert number(Fraction(200, 3)) == 66.6667
    assert number(Fraction(1, 2)) == 0.5 and isinstance(number(Fraction(1, 2)), float)


def test_result_is_frozen(exam5):
    r = score_exam(exam5, {})
    assert isinstance(r, Result)
    with pytest.raises(AttributeError):
        r.score = Fraction(1)  # type: ignore[misc]


# --- property: scores stay within [0, max_score] ------------------------------

VARIANTS = [
    build(),
    build(questions=[dict(q, penalty=2) for q in FIVE_TYPES["questions"]]),
    build(questions=[dict(q, scoring="all_or_nothing", penalty=1) if q["type"] == "multiple" else q
                     for q in FIVE_TYPES["questions"]]),
]

any_value = st.one_of(
    st.none(), st.booleans(), st.integers(-10**16, 10**16),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["a", "b", "c", "d", "e", "Paris", " paris ", "3.14"]),
    st.lists(st.sampled_from(["a", "b", "c", "d", "zz"]), max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(variant=st.sampled_from(range(len(VARIANTS))),
       answers=st.dictionaries(st.sampled_from(["q1", "q2", "q3", "q4", "q5", "qx"]), any_value))
def test_score_within_bounds(variant, answers):
    exam = VARIANTS[variant]
    r = score_exam(exam, answers)
    assert 0 <= r.score <= r.max_score
    assert 0 <= r.percent <= 100
    assert r.passed == (r.percent >= exam.pass_percent)
    for q, qr in zip(exam.questions, r.questions):
        assert -q.penalty <= qr.points <= q.points
        if qr.correct is True:
            assert qr.points == q.points


@settings(max_examples=200, deadline=None)
@given(q_index=st.integers(0, 4), value=any_value)
def test_check_value_accepts_or_refuses(exam5, q_index, value):
    q = exam5.questions[q_index]
    try:
        v = check_value(q, value)
    except Refused as e:
        assert e.code == "bad_value"
    else:
        score_question(q, v)  # a checked value always scores
        assert check_value(q, v) == v  # normalization is idempotent


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([1, 2, 0.5, 0.25, 3, 1.5]), st.sampled_from([0, 1, 0.5, 0.125]),
                          st.sampled_from([True, False, None])), min_size=1, max_size=12))
def test_score_exam_is_the_exact_sum_of_its_questions(rows):
    """The total is exactly the sum of the per-question points (floored at zero), whole and fractional alike."""
    exam = build(questions=[{"id": f"q{i}", "type": "true_false", "prompt": "p", "answer": True, "points": pts,
                             "penalty": pen} for i, (pts, pen, _) in enumerate(rows)])
    answers = {f"q{i}": v for i, (_, _, v) in enumerate(rows) if v is not None}
    r = score_exam(exam, answers)
    exact = sum((x.points for x in r.questions), Fraction(0))
    assert r.score == max(Fraction(0), exact) and isinstance(r.score, Fraction)
    assert [x.points for x in r.questions] == [score_question(q, answers.get(q.id))[1] for q in exam.questions]
