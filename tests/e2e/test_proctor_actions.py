"""Proctor actions across nodes: extend, pause/resume, terminate, message, bulk, refusals.

The proctor is on node A, the candidate on node B: every action must reach the
candidate's connection at once (``time``, ``state``, ``notice``), show in the
proctor feed, and be recorded (who, what, when) with the attempt.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.e2e.client import ConnectionClosedByServer, ExamClient
from tests.e2e.test_proctor_live import open_proctor, proctor_url, update_for


async def started(kit: Any, node: Any, exam_id: str, token: str) -> tuple[ExamClient, str, dict]:
    c = kit.client(node, exam_id, token)
    await c.connect()
    aid = (await c.hello())["attempt"]
    ack = await c.start()
    time_push = await c.wait_for("time")
    assert time_push["deadline"] == ack["deadline"]
    return c, aid, time_push


def test_extend_from_a_moves_the_deadline_of_a_candidate_on_b(make_node, put_exam, make_token, kit, arun, http_json):
    a, b = make_node(), make_node()
    put_exam(a, kit.make_exam("act1", 4))
    staff = make_token("pro-1", "proctor", exams=["act1"], name="Pat Proctor")

    async def body() -> None:
        p, _, _ = await open_proctor(a, "act1", staff)
        c, aid, before = await started(kit, b, "act1", make_token("cand"))
        mark = c.mark()
        ack = await p.request("extend", attempt=aid, seconds=120)
        assert ack["t"] == "ack" and ack["attempt"] == aid, ack
        assert ack["deadline"] == before["deadline"] + 120_000
        pushed = await c.wait_for("time", 1.0, since=mark)
        assert pushed["deadline"] == before["deadline"] + 120_000 and pushed["state"] == "active"
        row, _ = await update_for(p, aid, deadline=before["deadline"] + 120_000)
        assert row["remaining_ms"] > 600_000

        status, record = http_json("GET", f"{a.base_url}/v1/attempts/{aid}", token=staff)
        assert status == 200 and record["deadline"] == before["deadline"] + 120_000
        (action,) = record["actions"]
        assert action["action"] == "extend" and action["seconds"] == 120
        assert action["by"] == "pro-1" and action["by_name"] == "Pat Proctor" and isinstance(action["at"], int)
        await p.close()
        await c.close()

    arun(body())


def test_pause_refuses_answers_and_freezes_time_resume_moves_deadline(make_node, put_exam, make_token, kit, arun):
    a, b = make_node(), make_node()
    exam = kit.make_exam("act2", 4, shuffle_questions=False)
    put_exam(a, exam)
    q = exam["questions"]

    async def body() -> None:
        p, _, _ = await open_proctor(a, "act2", make_token("pro", "proctor"))
        c, aid, before = await started(kit, b, "act2", make_token("cand"))
        mark = c.mark()
        ack = await p.request("pause", attempt=aid)
        assert ack["t"] == "ack" and ack["state"] == "paused", ack
        state = await c.wait_for("state", 1.0, since=mark)
        assert state == {"t": "state", "state": "paused", "reason": "paused"}
        frozen = (await c.wait_for("time", 1.0, since=mark))["remaining_ms"]
        await update_for(p, aid, state="paused")

        refused = await c.answer(q[0]["id"], kit.right(q[0]))
        assert refused["t"] == "error" and refused["code"] == "not_active"
        again = await p.request("pause", attempt=aid)
        assert again["t"] == "error" and again["code"] == "not_active"

        await asyncio.sleep(1.2)
        # the clock is frozen: a reconnect sees the same remaining time
        await c.close()
        await c.connect()
        w = await c.hello()
        assert w["state"] == "paused" and w["remaining_ms"] == frozen

        mark = c.mark()
        resumed = await p.request("resume", attempt=aid)
        assert resumed["t"] == "ack" and resumed["state"] == "active"
        state = await c.wait_for("state", 1.0, since=mark)
        assert state["state"] == "active" and state["reason"] == "resumed"
        after = await c.wait_for("time", 1.0, since=mark)
        assert after["deadline"] - before["deadline"] >= 1200  # moved by the time spent paused
        assert abs(after["remaining_ms"] - frozen) < 300
        ok = await c.answer(q[0]["id"], kit.right(q[0]))
        assert ok["t"] == "ack"
        await p.close()
        await c.close()

    arun(body())


def test_terminate_ends_the_attempt_and_the_result_says_so(make_node, put_exam, make_token, kit, arun, http_json):
    a, b = make_node(), make_node()
    exam = kit.make_exam("act3", 3, shuffle_questions=False)
    put_exam(a, exam)
    staff = make_token("pro", "proctor", exams=["act3"])

    async def body() -> None:
        p, _, _ = await open_proctor(a, "act3", staff)
        c, aid, _ = await started(kit, b, "act3", make_token("cheater"))
        q = exam["questions"]
        assert (await c.answer(q[0]["id"], kit.right(q[0])))["t"] == "ack"
        mark = c.mark()
        ack = await p.request("terminate", attempt=aid, reason="phone on the desk")
        assert ack["t"] == "ack" and ack["state"] == "terminated"
        state = await c.wait_for("state", 1.0, since=mark)
        assert state == {"t": "state", "state": "terminated", "reason": "phone on the desk"}
        result = await c.wait_for("result", 1.0, since=mark)
        assert result["score"] == 1 and result["max_score"] == 3
        refused = await c.answer(q[1]["id"], kit.right(q[1]))
        assert refused["t"] == "error" and refused["code"] == "not_active"
        row, _ = await update_for(p, aid, state="terminated")
        assert row["reason"] == "phone on the desk" and row["score"] == 1

        status, record = http_json("GET", f"{a.base_url}/v1/attempts/{aid}", token=staff)
        assert status == 200
        assert (record["state"], record["end_reason"], record["score"]) == ("terminated", "phone on the desk", 1)
        assert [x["action"] for x in record["actions"]] == ["terminate"]
        assert record["actions"][0]["reason"] == "phone on the desk"
        again = await p.request("extend", attempt=aid, seconds=60)
        assert again["t"] == "error" and again["code"] == "not_active"
        await p.close()
        await c.close()

    arun(body())


def test_message_reaches_the_candidate_wherever_it_is(make_node, put_exam, make_token, kit, arun, http_json):
    a, b = make_node(), make_node()
    put_exam(a, kit.make_exam("act4", 3))
    staff = make_token("pro", "proctor", name="Room 4 proctor")

    async def body() -> None:
        p, _, _ = await open_proctor(a, "act4", staff)
        c, aid, _ = await started(kit, b, "act4", make_token("cand"))
        mark = c.mark()
        ack = await p.request("message", attempt=aid, text="Ten minutes left — check your flagged questions.")
        assert ack["t"] == "ack" and ack["connected"] is True
        notice = await c.wait_for("notice", 1.0, since=mark)
        assert notice == {"t": "notice", "text": "Ten minutes left — check your flagged questions.", "from": "Room 4 proctor"}
        # the candidate's own work is unaffected by the message's version bump
        assert (await c.goto(1))["t"] == "ack"
        status, record = http_json("GET", f"{a.base_url}/v1/attempts/{aid}", token=staff)
        assert [x["action"] for x in record["actions"]] == ["message"]
        await c.close()
        await update_for(p, aid, connected=False)
        ack = await p.request("message", attempt=aid, text="are you there?")
        assert ack["t"] == "ack" and ack["connected"] is False
        await p.close()
        # a proctor token without a name claim signs as "Proctor", not as its sub
        nameless, _, _ = await open_proctor(a, "act4", make_token("p1", "proctor"))
        await c.connect()
        await c.hello()
        mark = c.mark()
        assert (await nameless.request("message", attempt=aid, text="hello"))["t"] == "ack"
        notice = await c.wait_for("notice", 2.0, since=mark)
        assert notice["from"] == "Proctor"
        await nameless.close()
        await c.close()

    arun(body())


def test_bulk_extend_and_pause_everyone(make_node, put_exam, make_token, kit, arun):
    a, b = make_node(), make_node()
    put_exam(a, kit.make_exam("act5", 3))

    async def body() -> None:
        p, _, _ = await open_proctor(a, "act5", make_token("pro", "proctor"))
        runners = [await started(kit, a if i % 2 else b, "act5", make_token(f"c{i}")) for i in range(4)]
        idle = kit.client(b, "act5", make_token("not-started"))
        await idle.connect()
        await idle.hello()
        await runners[3][0].submit()
        ack = await p.request("extend", all=True, seconds=300)
        assert ack["t"] == "ack" and (ack["applied"], ack["skipped"]) == (4, 1), ack  # the submitted one is skipped
        for c, aid, before in runners[:3]:
            pushed = await c.wait_for("time", 1.0, pred=lambda m, d=before["deadline"]: m["deadline"] == d + 300_000)
            assert pushed["state"] == "active"
        ack = await p.request("pause", all=True)
        assert (ack["applied"], ack["skipped"]) == (3, 2), ack  # not the ready one, not the submitted one
        for c, _, _ in runners[:3]:
            await c.wait_for("state", 1.0, pred=lambda m: m["state"] == "paused")
        ack = await p.request("resume", all=True)
        assert (ack["applied"], ack["skipped"]) == (3, 2), ack
        await p.close()
        for c, _, _ in runners:
            await c.close()
        await idle.close()

    arun(body())


def test_refusals_and_bad_requests(make_node, put_exam, make_token, kit, arun):
    a = make_node()
    put_exam(a, kit.make_exam("act6", 3))
    put_exam(a, kit.make_exam("act7", 3))

    async def refused(exam_id: str, token: str) -> int | None:
        p = ExamClient(proctor_url(a, exam_id), token)
        await p.connect()
        with pytest.raises(ConnectionClosedByServer):
            await p.hello()
        code, _ = await p.wait_closed()
        return code

    async def body() -> None:
        assert await refused("act6", make_token("cand")) == 4403  # a candidate token
        assert await refused("act6", make_token("pro", "proctor", exams=["act7"])) == 4403  # another exam's proctor
        assert await refused("nope", make_token("pro", "proctor")) == 4404
        assert await refused("act6", make_token("pro", "proctor", ttl=-60)) == 4401

        p, _, _ = await open_proctor(a, "act6", make_token("pro", "proctor", exams=["act6"]))
        other, oid, _ = await started(kit, a, "act7", make_token("elsewhere"))
        reply = await p.request("pause", attempt=oid)  # an attempt of another exam
        assert reply["t"] == "error" and reply["code"] == "not_found"
        reply = await p.request("extend", attempt="0" * 32, seconds=60)
        assert reply["code"] == "not_found"
        reply = await p.request("extend", attempt=oid, seconds=0)
        assert reply["code"] == "bad_request"
        reply = await p.request("extend", attempt=oid, all=True, seconds=5)
        assert reply["code"] == "bad_request"
        reply = await p.request("start")
        assert reply["code"] == "unknown_type"
        pong = await p.ping(12345)
        assert pong["ct"] == 12345 and isinstance(pong["st"], int)
        await p.close()
        await other.close()

    arun(body())


def test_candidate_events_are_rate_limited(make_node, put_exam, make_token, kit, arun):
    a = make_node(EXAMWIRE_EVENT_BURST="5")
    put_exam(a, kit.make_exam("act8", 3))

    async def body() -> None:
        p, _, _ = await open_proctor(a, "act8", make_token("pro", "proctor"))
        c, aid, _ = await started(kit, a, "act8", make_token("fidget"))
        replies = [await c.event("blur") for _ in range(8)]
        assert [r["t"] for r in replies[:5]] == ["ack"] * 5
        assert {r.get("code") for r in replies[5:]} == {"rate_limited"}
        await update_for(p, aid, events=5)
        await asyncio.sleep(0.6)
        seen = [m for m in p.pushes if m.get("attempt") == aid and "event" in m]
        assert len(seen) == 5 and all(m["event"]["kind"] == "blur" for m in seen)
        await p.close()
        await c.close()

    arun(body())
