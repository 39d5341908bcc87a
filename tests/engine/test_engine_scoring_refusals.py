"""What a refusal of ``engine.scoring`` says, and that a question type the scorer does not know is refused.

``check_value`` sits between a candidate's frame and the attempt: whatever it
does not recognise must be refused (``bad_value``), never stored.
"""

from __future__ import annotations

import dataclasses

import pytest

from engine import Refused, check_value, parse_exam, score_question


def _question(**q):
    base = {"id": "q", "prompt": "p"}
    base.update(q)
    return parse_exam({"id": "x", "title": "t", "duration_s": 60, "questions": [base]}).questions[0]


def test_a_refusal_reads_as_its_code_and_message():
    with pytest.raises(Refused) as caught:
        check_value(_question(type="true_false", answer=True), "yes")
    refusal = caught.value
    assert (refusal.code, refusal.message) == ("bad_value", "expected true or false")
    assert str(refusal) == "bad_value: expected true or false"
    assert refusal.args == ("bad_value", "expected true or false")


def test_a_value_for_a_question_type_the_scorer_does_not_know_is_refused():
    """A definition parsed by a newer engine (a type added later) must not slip values through an older one."""
    known = _question(type="text", answer=["key"])
    unknown = dataclasses.replace(known, type="essay")
    for value in ("key", 1, True, ["key"]):
        with pytest.raises(Refused) as caught:
            check_value(unknown, value)
        assert caught.value.code == "bad_value" and caught.value.message == "unsupported question type"
    assert check_value(unknown, None) is None  # clearing an answer is always allowed
    # scoring such a question never credits it: it falls through to the single-choice rule and is wrong
    assert score_question(unknown, "key") == (False, 0)
