"""Fixtures for the end-to-end candidate tests (real nodes, real Redis, real sockets).

Everything here is derived from the contract (docs/protocol.md, Part 2), not from the server code:

``encoding``   parametrized ``"json"`` / ``"msgpack"``.
``kit``        a namespace of helpers: ``make_exam``, ``right``/``wrong`` values,
               ``expected`` (the hand scoring of docs/protocol.md), ``check_question``,
               ``client`` (an ``ExamClient`` for a node), ``get_attempt``,
               ``wait_final``.
"""

from __future__ import annotations

import math
import time
import types
from typing import Any, Callable

import pytest

from tests.e2e.client import ExamClient, attempt_url
from testkit import make_exam

#: Fields that must never appear in a delivered question (answer key, scoring data).
SECRET_FIELDS = {"answer", "tolerance", "penalty", "scoring", "case_sensitive"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(params=["json", "msgpack"])
def encoding(request: pytest.FixtureRequest) -> str:
    return request.param




def right(q: dict[str, Any]) -> Any:
    """A fully right value for question ``q`` of an exam definition."""
    kind, key = q["type"], q["answer"]
    if kind == "text":
        return key[0]
    return key


def wrong(q: dict[str, Any]) -> Any:
    """A wrong (but well-typed) value for question ``q`` of an exam definition."""
    kind, key = q["type"], q["answer"]
    ids = [o["id"] for o in q.get("options", [])]
    if kind == "single":
        return next(i for i in ids if i != key)
    if kind == "multiple":
        return [next(i for i in ids if i not in key)]
    if kind == "true_false":
        return not key
    if kind == "numeric":
        return key + 1000
    return "definitely not " + str(key[0])


def question_points(q: dict[str, Any], value: Any) -> tuple[float, bool | None]:
    """docs/protocol.md scoring of one question: ``(points, correct)``; ``correct`` is
    None when unanswered and, for partial credit strictly between 0 and full, None too."""
    points = q.get("points", 1)
    penalty = q.get("penalty", 0)
    if value is None:
        return 0, None
    kind, key = q["type"], q["answer"]
    if kind == "multiple" and q.get("scoring", "all_or_nothing") == "partial":
        share = points / len(key)
        chosen = set(value)
        got = sum(share for o in chosen if o in key) - sum(share for o in chosen if o not in key)
        got = max(0.0, got)
        if math.isclose(got, points):
            return points, True
        return got, (False if got == 0 else None)
    if kind == "single" or kind == "true_false":
        ok = value == key
    elif kind == "multiple":
        ok = set(value) == set(key) and len(value) == len(set(value))
    elif kind == "numeric":
        ok = abs(value - key) <= q.get("tolerance", 0)
    elif kind == "text":
        keys = key if isinstance(key, list) else [key]
        given = value.strip()
        if q.get("case_sensitive", False):
            ok = any(given == k.strip() for k in keys)
        else:
            ok = any(given.lower() == k.strip().lower() for k in keys)
    else:  # pragma: no cover
        raise AssertionError(kind)
    return (points, True) if ok else (-penalty, False)


def expected(exam: dict[str, Any], answers: dict[str, Any]) -> dict[str, Any]:
    """Hand scoring of a whole attempt: score (never below 0), max_score, percent, passed, per-question."""
    per = {}
    for q in exam["questions"]:
        per[q["id"]] = question_points(q, answers.get(q["id"]))
    max_score = sum(q.get("points", 1) for q in exam["questions"])
    score = max(0.0, sum(p for p, _ in per.values()))
    percent = 100 * score / max_score
    return {
        "score": score,
        "max_score": max_score,
        "percent": percent,
        "passed": percent >= exam["pass_percent"],
        "questions": per,
    }


def check_question(q: dict[str, Any], exam: dict[str, Any]) -> None:
    """A delivered question has the documented fields, matches its definition and leaks no key."""
    for field in ("index", "id", "type", "prompt", "options", "points"):
        assert field in q, f"delivered question lacks {field!r}: {q}"
    assert not (SECRET_FIELDS & set(q)), f"delivered question leaks {SECRET_FIELDS & set(q)}: {q}"
    for opt in q["options"]:
        assert not (SECRET_FIELDS & set(opt)), f"option leaks scoring data: {opt}"
        assert set(opt) >= {"id", "text"}, opt
    src = {d["id"]: d for d in exam["questions"]}[q["id"]]
    assert q["type"] == src["type"]
    assert q["prompt"] == src["prompt"]
    assert q["points"] == src.get("points", 1)
    assert sorted(o["id"] for o in q["options"]) == sorted(o["id"] for o in src.get("options", []))
    texts = {o["id"]: o["text"] for o in src.get("options", [])}
    assert all(o["text"] == texts[o["id"]] for o in q["options"])


def assert_result_matches(result: dict[str, Any], exp: dict[str, Any]) -> None:
    """A ``result`` push / attempt record has the hand-computed score."""
    assert result["score"] == pytest.approx(exp["score"], abs=1e-6), (result, exp)
    assert result["max_score"] == pytest.approx(exp["max_score"]), (result, exp)
    assert result["percent"] == pytest.approx(exp["percent"], abs=1e-3), (result, exp)
    assert result["passed"] is exp["passed"], (result, exp)


def assert_questions_match(record: dict[str, Any], exp: dict[str, Any], answers: dict[str, Any]) -> None:
    """Per-question value / correct / points of an attempt record match the hand scoring."""
    by_id = {q["id"]: q for q in record["questions"]}
    assert set(by_id) == set(exp["questions"]), record["questions"]
    for qid, (points, correct) in exp["questions"].items():
        got = by_id[qid]
        assert got["points"] == pytest.approx(points, abs=1e-6), (qid, got, points)
        if correct is None and qid not in answers:
            assert got.get("correct") in (None, False), (qid, got)
        elif correct is not None:
            assert got["correct"] is correct, (qid, got, correct)
        assert got.get("value") == answers.get(qid), (qid, got, answers.get(qid))


def new_client(node: Any, exam_id: str, token: str, encoding: str = "json", **kw: Any) -> ExamClient:
    return ExamClient(attempt_url(node.ws_url, exam_id), token, encoding=encoding, **kw)


@pytest.fixture
def kit(http_json: Callable[..., Any], make_token: Callable[..., str]) -> types.SimpleNamespace:
    def get_attempt(node: Any, attempt: str, token: str | None) -> tuple[int, Any]:
        return http_json("GET", f"{node.base_url}/v1/attempts/{attempt}", token=token)

    def wait_final(node: Any, attempt: str, token: str, timeout: float = 6.0, poll: float = 0.05) -> tuple[dict[str, Any], float]:
        """Poll GET /v1/attempts/{attempt} until its state is final; return (record, time.time() when seen)."""
        end = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < end:
            status, body = get_attempt(node, attempt, token)
            last = (status, body)
            if status == 200 and body.get("state") in ("submitted", "expired", "terminated"):
                return body, time.time()
            time.sleep(poll)
        raise AssertionError(f"attempt {attempt} not final within {timeout} s; last answer: {last}")

    return types.SimpleNamespace(
        make_exam=make_exam,
        right=right,
        wrong=wrong,
        expected=expected,
        check_question=check_question,
        assert_result_matches=assert_result_matches,
        assert_questions_match=assert_questions_match,
        client=new_client,
        get_attempt=get_attempt,
        wait_final=wait_final,
        admin_token=lambda: make_token("e2e-admin", "admin"),
    )
