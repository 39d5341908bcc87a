"""The server clock: grace, time_up, expiry with and without a connection."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.e2e.client import now_ms

pytestmark = pytest.mark.e2e

GRACE_MS = 300


async def _sleep_until(epoch_ms: float) -> None:
    delay = (epoch_ms - now_ms()) / 1000
    if delay > 0:
        await asyncio.sleep(delay)


def test_time_up_after_deadline_and_grace(make_node, put_exam, make_token, kit, arun, encoding):
    node = make_node(EXAMWIRE_ANSWER_GRACE_MS=str(GRACE_MS))
    exam = kit.make_exam("tup", 4, duration_s=1)
    put_exam(node, exam)
    qs = {q["id"]: q for q in exam["questions"]}
    token = make_token("cand-tup")
    exp = kit.expected(exam, {"x01": kit.right(qs["x01"])})

    async def body():
        c = kit.client(node, "tup", token, encoding)
        await c.connect()
        w = await c.hello()
        assert w["exam"]["duration_ms"] == 1000
        started = await c.start()
        deadline = started["deadline"]
        assert abs(deadline - (now_ms() + 1000)) < 1000
        r = await c.answer("x01", kit.right(qs["x01"]))
        assert r["t"] == "ack", r

        await _sleep_until(deadline + GRACE_MS + 150)
        sent_at = now_ms()
        late = await c.answer("x02", kit.right(qs["x02"]))
        assert late["t"] == "error", late

        st = await c.wait_for("state", 3, pred=lambda m: m["state"] == "expired")
        assert st["state"] == "expired"
        kit.assert_result_matches(await c.wait_for("result", 3), exp)
        await c.close()
        return w["attempt"], late, sent_at - deadline

    attempt, late, late_by = arun(body())
    record, _ = kit.wait_final(node, attempt, token)
    assert record["state"] == "expired"
    kit.assert_result_matches(record, exp)
    values = {q["id"]: q["value"] for q in record["questions"]}
    assert values["x02"] is None, "a refused late answer was saved"
    # docs/protocol.md, Time: "An answer arriving after deadline plus a small grace ... is refused with time_up."
    assert late["code"] == "time_up", f"answer sent {late_by} ms after the deadline (grace {GRACE_MS} ms) got {late}"


def test_answer_within_grace_is_accepted(make_node, put_exam, make_token, kit, arun):
    """Grace exists for answers in flight at the deadline: one arriving 150 ms after
    the deadline, with a 1000 ms grace, is saved and scored."""
    node = make_node(EXAMWIRE_ANSWER_GRACE_MS="1000")
    exam = kit.make_exam("grace", 3, duration_s=1)
    put_exam(node, exam)
    qs = {q["id"]: q for q in exam["questions"]}
    token = make_token("cand-grace")
    exp = kit.expected(exam, {"x01": kit.right(qs["x01"])})

    async def body():
        c = kit.client(node, "grace", token)
        await c.connect()
        w = await c.hello()
        deadline = (await c.start())["deadline"]
        await _sleep_until(deadline + 150)
        r = await c.answer("x01", kit.right(qs["x01"]))
        assert r["t"] == "ack", f"answer {now_ms() - deadline} ms after the deadline, within the 1000 ms grace: {r}"
        await c.close()
        return w["attempt"]

    attempt = arun(body())
    record, _ = kit.wait_final(node, attempt, token)
    assert record["state"] == "expired"
    kit.assert_result_matches(record, exp)


def test_expiry_while_disconnected_scores_saved_answers(make_node, put_exam, make_token, kit, arun, encoding):
    node = make_node(EXAMWIRE_ANSWER_GRACE_MS=str(GRACE_MS))
    exam = kit.make_exam("away", 6, duration_s=2)
    put_exam(node, exam)
    qs = {q["id"]: q for q in exam["questions"]}
    token = make_token("cand-away")
    saved = {"x01": kit.right(qs["x01"]), "x02": kit.right(qs["x02"]), "x03": kit.right(qs["x03"]), "x04": kit.wrong(qs["x04"])}
    exp = kit.expected(exam, saved)
    assert exp["score"] == 3

    async def body():
        c = kit.client(node, "away", token, encoding)
        await c.connect()
        w = await c.hello()
        deadline = (await c.start())["deadline"]
        for qid, value in saved.items():
            assert (await c.answer(qid, value))["t"] == "ack"
        await c.close()
        return w["attempt"], deadline

    attempt, deadline = arun(body())
    status, record = kit.get_attempt(node, attempt, token)
    assert status == 200 and record["state"] == "active", record
    time.sleep(max(0.0, (deadline - now_ms()) / 1000))
    record, seen = kit.wait_final(node, attempt, token, timeout=6)
    lag_ms = seen * 1000 - (deadline + GRACE_MS)
    assert record["state"] == "expired", record
    assert lag_ms < 3000, f"expired {lag_ms:.0f} ms after deadline + grace"
    kit.assert_result_matches(record, exp)
    kit.assert_questions_match(record, exp, saved)
    assert record["ended_at"] >= deadline

    async def later():
        c = kit.client(node, "away", token, encoding)
        await c.connect()
        w = await c.hello()
        assert w["state"] == "expired"
        assert w["remaining_ms"] == 0
        kit.assert_result_matches(await c.wait_for("result", 3), exp)
        r = await c.answer("x05", kit.right(qs["x05"]))
        assert r["t"] == "error" and r["code"] in ("not_active", "time_up"), r
        await c.close()

    arun(later())
