"""``storage.results.check_record``: what no store may take is refused with a reason, before any store is asked."""

from __future__ import annotations

import pytest

from storage.results import RecordInvalid, check_record, screen


def _record(**extra):
    return {"attempt": "a" * 32, "exam": "e1", "exam_version": 1, "user": "ann", "ended_at": 1_000, **extra}


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (["attempt", "a"], "record is list, not a mapping"),
        ("a string", "record is str, not a mapping"),
        (_record(_id="x"), "_id is a reserved key"),
        (_record(name="\ud800 lone surrogate"), "not JSON-serialisable: "),
        (_record(score=float("nan")), "not JSON-serialisable: record.score: nan is not a JSON number"),
        (_record(detail={1: "int key"}), "not JSON-serialisable: record.detail: key 1 is not a string"),
        (_record(blob=b"bytes"), "not JSON-serialisable: record.blob: bytes is not JSON"),
        (_record(ended_at=2**63), "ended_at must be an integer"),
        (_record(exam_version=True), "exam_version must be an integer"),
    ],
)
def test_what_no_store_may_take_is_refused_with_its_reason(record, reason):
    with pytest.raises(RecordInvalid) as caught:
        check_record(record)
    assert str(caught.value).startswith(reason), str(caught.value)


def test_a_record_nested_beyond_recursion_is_refused_not_a_crash():
    deep: dict = {}
    node = deep
    for _ in range(100_000):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(RecordInvalid, match="nested too deeply|not JSON-serialisable"):
        check_record(_record(detail=deep))


def test_a_batch_keeps_the_good_records_and_names_the_bad_ones():
    ok, rejected = screen([_record(), "not a mapping", _record(attempt="b" * 32, _id=1)])
    assert list(ok) == ["a" * 32]
    assert rejected == {"#1": "record is str, not a mapping", "b" * 32: "_id is a reserved key"}
