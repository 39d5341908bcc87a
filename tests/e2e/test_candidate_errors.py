"""Refusals by state and by value, framing errors, clock sync, periodic time, results access."""

from __future__ import annotations

import asyncio

import msgpack
import pytest

from tests.e2e.client import now_ms

pytestmark = pytest.mark.e2e

# make_exam cycles the types: x01 single (key "c"), x02 multiple (["a","d"]),
# x03 true_false (False), x04 numeric (42 +- 0.5), x05 text ("Blue"); options a..e.
BAD_VALUES = [
    ("x01", 3),  # a number for single choice
    ("x01", "z"),  # unknown option id
    ("x01", ["c"]),  # a list for single choice
    ("x02", "a"),  # not a list for multiple choice
    ("x02", ["a", "z"]),  # unknown option id in the list
    ("x03", "true"),  # a string for true/false
    ("x03", 1),  # a number is not a bool
    ("x04", "42"),  # a string for numeric
    ("x04", True),  # a bool is not a number
    ("x05", 42),  # a number for text
    ("x05", ["Blue"]),  # a list for text
]


def test_errors_by_state_and_value(make_node, put_exam, make_token, kit, arun, encoding):
    node = make_node(EXAMWIRE_TIME_PUSH_INTERVAL_MS="500")
    exam = kit.make_exam("errs", 5, duration_s=300)
    put_exam(node, exam)
    token = make_token("cand-errs")

    async def body():
        c = kit.client(node, "errs", token, encoding)
        await c.connect()
        await c.hello()
        r = await c.answer("x01", "c")
        assert r["t"] == "error" and r["code"] == "not_started", r
        assert isinstance(r.get("message"), str)

        before = now_ms()
        pong = await c.ping(ct=before - 12345)
        after = now_ms()
        assert pong["ct"] == before - 12345
        assert before - 1000 <= pong["st"] <= after + 1000, (before, pong, after)

        s1 = await c.start()
        assert s1["t"] == "ack", s1
        mark = c.mark()
        s2 = await c.start()
        assert s2["t"] == "ack" and s2["deadline"] == s1["deadline"], (s1, s2)

        r = await c.answer("nope", "c")
        assert r["t"] == "error" and r["code"] == "unknown_question", r
        r = await c.flag("nope", True)
        assert r["t"] == "error" and r["code"] == "unknown_question", r

        assert (await c.answer("x01", "c"))["t"] == "ack"
        bad = []
        for qid, value in BAD_VALUES:
            r = await c.answer(qid, value)
            if not (r["t"] == "error" and r["code"] == "bad_value"):
                bad.append((qid, value, r))

        # the periodic time push (every 500 ms on this node)
        ticks = [await c.wait_for("time", 2.0, since=mark) for _ in range(2)]
        for tick in ticks:
            assert tick["state"] == "active" and tick["deadline"] == s1["deadline"]
            assert abs(tick["remaining_ms"] - (tick["deadline"] - tick["server_time"])) < 1000
            assert abs(tick["server_time"] - now_ms()) < 3000
        assert ticks[1]["server_time"] > ticks[0]["server_time"]
        await c.close()

        # nothing changed: the refused values were not saved
        c2 = kit.client(node, "errs", token, encoding)
        await c2.connect()
        w2 = await c2.hello()
        assert {k: v for k, v in w2["answers"].items() if v is not None} == {"x01": "c"}, w2["answers"]
        await c2.close()
        return bad

    bad = arun(body())
    assert not bad, "values of the wrong type were not refused with bad_value: " + "; ".join(
        f"answer q={q} value={v!r} -> {r}" for q, v, r in bad)


def test_linear_navigation(make_node, put_exam, make_token, kit, arun, encoding):
    node = make_node()
    exam = kit.make_exam("lin", 4, navigation="linear", shuffle_questions=False)
    put_exam(node, exam)
    qs = {q["id"]: q for q in exam["questions"]}
    token = make_token("cand-lin")

    async def body():
        c = kit.client(node, "lin", token, encoding)
        await c.connect()
        w = await c.hello()
        assert w["exam"]["navigation"] == "linear"
        await c.start()
        order = [q["id"] for q in await c.collect_questions(4)]
        assert (await c.answer(order[0], kit.wrong(qs[order[0]])))["t"] == "ack"
        assert (await c.answer(order[0], kit.right(qs[order[0]])))["t"] == "ack", "free to change the open question"
        assert (await c.goto(1))["t"] == "ack"
        r = await c.goto(0)
        assert r["t"] == "error" and r["code"] == "navigation", r
        r = await c.answer(order[0], kit.wrong(qs[order[0]]))
        assert r["t"] == "error" and r["code"] == "navigation", r
        assert (await c.answer(order[1], kit.right(qs[order[1]])))["t"] == "ack"
        assert (await c.goto(2))["t"] == "ack"
        await c.close()

        # still closed after a reconnect
        c2 = kit.client(node, "lin", token, encoding)
        await c2.connect()
        w2 = await c2.hello()
        assert w2["index"] == 2
        r = await c2.answer(order[1], kit.wrong(qs[order[1]]))
        assert r["t"] == "error" and r["code"] == "navigation", r
        r = await c2.goto(1)
        assert r["t"] == "error" and r["code"] == "navigation", r
        assert (await c2.submit())["t"] == "ack"
        result = await c2.wait_for("result")
        assert result["score"] == 2
        await c2.close()

    arun(body())


def test_bad_frames_keep_the_connection(make_node, put_exam, make_token, kit, arun, encoding):
    node = make_node()
    exam = kit.make_exam("frames", 2)
    put_exam(node, exam)
    token = make_token("cand-frames")

    async def body():
        c = kit.client(node, "frames", token, encoding)
        await c.connect()
        await c.hello()
        await c.start()
        garbage = b"\xc1\xc1\xc1" if encoding == "msgpack" else "{not json"
        not_a_map = msgpack.packb([1, 2, 3]) if encoding == "msgpack" else "[1, 2, 3]"
        no_type = c.encode({"q": "x01", "value": "c"})
        for frame in (garbage, not_a_map, no_type):
            mark = c.mark()
            await c.send_raw(None, frame=frame)
            err = await c.wait_for("error", 3, since=mark)
            assert err["code"] == "bad_frame", (frame, err)
        # a map with a non-string t, carrying an id: refused (bad_frame), by id when echoed
        await c.send_raw({"t": 7, "id": 60})
        await asyncio.sleep(0.3)
        errs = [m for m in c.received[-3:] if m.get("t") == "error"]
        assert errs and errs[-1]["code"] == "bad_frame", c.received[-3:]
        r = await c.request("teleport")
        assert r["t"] == "error" and r["code"] == "unknown_type", r
        r = await c.request("answer", value="c")  # no q
        assert r["t"] == "error" and r["code"] == "bad_request", r
        r = await c.request("goto", index="first")  # ill-typed index
        assert r["t"] == "error" and r["code"] == "bad_request", r
        # still open and working
        assert (await c.answer("x01", "c"))["t"] == "ack"
        assert (await c.ping())["t"] == "pong"
        assert not c.closed.is_set()
        await c.close()

    arun(body())


def test_fetch_ack_counts_in_last_id(make_node, put_exam, make_token, kit, arun, encoding):
    """``fetch`` is acked, so it was applied; welcome's ``last_id`` is "the highest id
    the server has applied" and must include it."""
    node = make_node()
    exam = kit.make_exam("fetchid", 3)
    put_exam(node, exam)
    token = make_token("cand-fetchid")

    async def body():
        c = kit.client(node, "fetchid", token, encoding)
        await c.connect()
        await c.hello()
        assert (await c.start())["t"] == "ack"  # id 1
        assert (await c.answer("x01", "c"))["t"] == "ack"  # id 2
        f = await c.fetch(0, 3)  # id 3
        assert f["t"] == "ack" and f["id"] == 3, f
        await c.close()
        c2 = kit.client(node, "fetchid", token, encoding)
        await c2.connect()
        w = await c2.hello()
        await c2.close()
        return w["last_id"]

    last_id = arun(body())
    assert last_id == 3, f"fetch id 3 was acked but welcome.last_id is {last_id}"


def test_attempt_record_access(make_node, put_exam, make_token, kit, arun):
    node = make_node()
    exam = kit.make_exam("rec", 2)
    put_exam(node, exam)
    put_exam(node, kit.make_exam("rec-other", 1))
    alice = make_token("cand-rec-alice")

    async def body():
        c = kit.client(node, "rec", alice)
        await c.connect()
        w = await c.hello()
        await c.start()
        await c.answer("x01", "c")
        await c.submit()
        await c.wait_for("result")
        await c.close()
        return w["attempt"]

    attempt = arun(body())
    status, record = kit.get_attempt(node, attempt, alice)
    assert status == 200 and record["attempt"] == attempt and record["score"] == 1

    status, body = kit.get_attempt(node, attempt, make_token("cand-rec-bob"))
    assert status in (403, 404), (status, body)
    assert "score" not in (body if isinstance(body, dict) else {}), body
    status, body = kit.get_attempt(node, attempt, make_token("proc-rec", "proctor", exams=["rec"]))
    assert status == 200 and body["attempt"] == attempt and body["score"] == 1, (status, body)
    status, body = kit.get_attempt(node, attempt, make_token("proc-other", "proctor", exams=["rec-other"]))
    assert status in (403, 404), (status, body)
    status, body = kit.get_attempt(node, attempt, make_token("adm-rec", "admin"))
    assert status == 200 and body["attempt"] == attempt, (status, body)
    status, body = kit.get_attempt(node, attempt, None)
    assert status == 401, (status, body)
    status, body = kit.get_attempt(node, attempt, make_token("cand-rec-alice", ttl=-60))
    assert status == 401, (status, body)
    status, body = kit.get_attempt(node, attempt, "not.a.jwt")
    assert status == 401, (status, body)
