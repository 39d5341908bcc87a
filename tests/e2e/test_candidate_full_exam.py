"""A whole exam of all five question types, scored by hand from docs/protocol.md."""

from __future__ import annotations

import time

import pytest

from testkit import SAMPLE_MAX_SCORE

pytestmark = pytest.mark.e2e

# What the candidate ends up with, and why (see testkit.exams for the keys):
#   q1 single   "a"            wrong, penalty 0.5          -> -0.5
#   q2 multiple ["a","c","d"]  partial: +1 +1 -1           ->  1 (of 2)
#   q3 tf       False, then True (last saved value wins)   ->  1
#   q4 numeric  3.135          within tolerance 0.01       ->  1
#   q5 text     "  paris "     trimmed, case-insensitive   ->  1
#   q6 multiple ["b","d"], then null (cleared)             ->  0 (unanswered)
#   score 3.5 of 7 = 50 %  -> passed (pass_percent 50)
FINAL = {"q1": "a", "q2": ["a", "c", "d"], "q3": True, "q4": 3.135, "q5": "  paris "}
STEPS = [
    ("q1", "a"),
    ("q2", ["a", "c", "d"]),
    ("q3", False),
    ("q4", 3.135),
    ("q5", "  paris "),
    ("q6", ["b", "d"]),
    ("q3", True),
    ("q6", None),
]


def test_whole_exam_all_types(make_node, put_exam, make_token, sample_exam, kit, arun, encoding):
    node = make_node()
    put_exam(node, sample_exam)
    token = make_token("cand-full", name="Full Candidate", exams=["sample"])
    exp = kit.expected(sample_exam, FINAL)
    assert exp["score"] == pytest.approx(3.5) and exp["max_score"] == SAMPLE_MAX_SCORE and exp["passed"] is True

    async def body():
        c = kit.client(node, "sample", token, encoding)
        await c.connect()
        w = await c.hello()
        assert w["t"] == "welcome"
        assert w["state"] == "ready"
        assert w["deadline"] is None
        assert w["last_id"] == 0
        assert w["answers"] == {} and w["flags"] == [] and w["index"] == 0
        assert w["exam"]["id"] == "sample" and w["exam"]["title"] == sample_exam["title"]
        assert w["exam"]["duration_ms"] == 600_000 and w["exam"]["total"] == 6
        assert w["exam"]["navigation"] == "free"
        assert w["remaining_ms"] == 600_000
        assert abs(w["server_time"] - time.time() * 1000) < 5_000
        attempt = w["attempt"]

        started = await c.start()
        assert started["t"] == "ack" and started["id"] == 1, started
        deadline = started["deadline"]
        assert isinstance(deadline, int)
        assert abs(deadline - (w["server_time"] + 600_000)) < 5_000

        tick = await c.wait_for("time")  # "time ... on start"
        assert tick["deadline"] == deadline and tick["state"] == "active"
        assert abs(tick["remaining_ms"] - (tick["deadline"] - tick["server_time"])) < 1_000

        batch = await c.wait_for("batch")
        assert batch["from"] == 0 and batch["total"] == 6
        qs = batch["questions"]
        assert [q["index"] for q in qs] == list(range(6))
        assert sorted(q["id"] for q in qs) == ["q1", "q2", "q3", "q4", "q5", "q6"]
        for q in qs:
            kit.check_question(q, sample_exam)
        order = [q["id"] for q in qs]

        # answer in the candidate's own order, looking at each question first
        position = {qid: i for i, qid in enumerate(order)}
        for qid, value in STEPS:
            g = await c.goto(position[qid])
            assert g["t"] == "ack", g
            a = await c.answer(qid, value)
            assert a["t"] == "ack" and not a.get("dup"), (qid, value, a)

        mark = c.mark()
        fetched = await c.fetch(0, 6)
        assert fetched["t"] == "ack", fetched
        again = await c.wait_for("batch", since=mark)
        assert again["from"] == 0 and [q["id"] for q in again["questions"]] == order
        assert again["questions"] == qs

        for qid, on in (("q1", True), ("q2", True), ("q2", False)):
            f = await c.flag(qid, on)
            assert f["t"] == "ack", f
        g = await c.goto(2)
        assert g["t"] == "ack", g
        e = await c.event("blur", {"note": "e2e"})
        assert e["t"] == "ack", e
        last_id = e["id"]
        await c.close()

        # the attempt as another tab / a reload sees it
        c2 = kit.client(node, "sample", token, encoding)
        await c2.connect()
        w2 = await c2.hello()
        assert w2["attempt"] == attempt and w2["state"] == "active"
        assert w2["deadline"] == deadline
        assert w2["last_id"] == last_id
        saved = {k: v for k, v in w2["answers"].items() if v is not None}
        assert saved == FINAL
        assert w2["flags"] == ["q1"]
        assert w2["index"] == 2
        assert 0 < w2["remaining_ms"] <= 600_000

        s = await c2.submit()
        assert s["t"] == "ack" and s["id"] == last_id + 1, s
        st = await c2.wait_for("state")
        assert st["state"] == "submitted", st
        result = await c2.wait_for("result")
        kit.assert_result_matches(result, exp)
        await c2.close()
        assert c.frame_kinds == c2.frame_kinds == ({"text"} if encoding == "json" else {"binary"})
        return attempt

    attempt = arun(body())

    status, record = kit.get_attempt(node, attempt, token)
    assert status == 200, record
    assert record["attempt"] == attempt and record["exam"] == "sample" and record["user"] == "cand-full"
    assert record["state"] == "submitted"
    assert isinstance(record["started_at"], int) and isinstance(record["ended_at"], int)
    assert record["started_at"] <= record["ended_at"]
    kit.assert_result_matches(record, exp)
    kit.assert_questions_match(record, exp, FINAL)
