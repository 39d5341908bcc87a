"""Drops, resumes, exactly-once delivery and supersede, across two engine nodes."""

from __future__ import annotations

import asyncio
import time

import pytest
import websockets

pytestmark = pytest.mark.e2e


def _values(welcome):
    """The welcome's saved answers without cleared (null) entries."""
    return {k: v for k, v in welcome["answers"].items() if v is not None}


def _check_resend(welcome, resent, replies):
    """Every resent request is acked; exactly those with id <= last_id are ``dup``."""
    last_id = welcome["last_id"]
    for msg, reply in zip(resent, replies):
        assert reply["t"] == "ack", (msg, reply)
        assert reply["id"] == msg["id"]
        if msg["id"] <= last_id:
            assert reply.get("dup") is True, f"id {msg['id']} <= last_id {last_id} was not acked as dup: {reply}"
        else:
            assert not reply.get("dup"), f"id {msg['id']} > last_id {last_id} was acked as dup: {reply}"


@pytest.mark.parametrize("how", ["drop_socket", "kill_node"])
def test_drop_mid_exam_unacked_resent_on_other_node(make_node, put_exam, make_token, kit, arun, encoding, how):
    a = make_node()
    b = make_node()
    exam = kit.make_exam("drop", 10)
    put_exam(a, exam)
    qs = {q["id"]: q for q in exam["questions"]}
    token = make_token("cand-drop")
    final = {qid: kit.right(q) for qid, q in qs.items()}
    final["x08"] = kit.wrong(qs["x08"])
    final.pop("x10")
    exp = kit.expected(exam, final)
    assert exp["score"] == 8

    async def body():
        c = kit.client(a, "drop", token, encoding)
        await c.connect()
        w = await c.hello()
        attempt = w["attempt"]
        assert (await c.start())["t"] == "ack"
        for qid in ("x01", "x02", "x03"):
            r = await c.answer(qid, final[qid])
            assert r["t"] == "ack" and not r.get("dup"), r
        # x04 is applied but its ack "gets lost": the client still holds it as unacked
        r = await c.answer("x04", final["x04"])
        assert r["t"] == "ack"
        lost = next(m for m in c.sent if m["id"] == r["id"])
        c.pending[lost["id"]] = lost
        # x05..x07 go out and the connection dies before any ack is read
        in_flight = []
        for qid in ("x05", "x06", "x07"):
            in_flight.append(await c.send_request("answer", q=qid, value=final[qid]))
        if how == "drop_socket":
            await c.abort()
        else:
            a.kill()
            await c.abort()
        # x08, x09 are typed while offline: queued, never sent
        c.queue_request("answer", q="x08", value=final["x08"])
        c.queue_request("answer", q="x09", value=final["x09"])
        resent = [c.pending[i] for i in sorted(c.pending)]
        assert [m["q"] for m in resent] == ["x04", "x05", "x06", "x07", "x08", "x09"]
        assert [m["id"] for m in resent] == sorted(m["id"] for m in resent)

        w2, replies = await c.resume(kit.client(b, "drop", token).url)
        assert w2["attempt"] == attempt and w2["state"] == "active"
        assert w2["last_id"] >= lost["id"], "the applied x04 is missing from last_id"
        assert w2["last_id"] < resent[-2]["id"], "never-sent requests counted as applied"
        saved = _values(w2)
        for m in resent:
            if m["id"] <= w2["last_id"]:
                assert saved.get(m["q"]) == m["value"], f"{m} counted in last_id but not in answers {saved}"
            else:
                assert m["q"] not in saved, f"{m} above last_id {w2['last_id']} but already in answers {saved}"
        for qid in ("x01", "x02", "x03"):
            assert saved[qid] == final[qid]
        _check_resend(w2, resent, replies)
        assert replies[0].get("dup") is True  # x04
        assert not c.pending

        s = await c.submit()
        assert s["t"] == "ack" and not s.get("dup"), s
        result = await c.wait_for("result")
        kit.assert_result_matches(result, exp)
        await c.close()
        return attempt

    attempt = arun(body())
    record, _ = kit.wait_final(b, attempt, token)
    kit.assert_result_matches(record, exp)
    kit.assert_questions_match(record, exp, final)


def test_repeated_id_is_dup_and_not_reapplied(make_node, put_exam, make_token, kit, arun, encoding):
    node = make_node()
    exam = kit.make_exam("once", 1, types_=("single",))  # key "c"
    put_exam(node, exam)
    token = make_token("cand-once")

    async def body():
        c = kit.client(node, "once", token, encoding)
        await c.connect()
        await c.hello()
        assert (await c.start(id=1))["t"] == "ack"
        for i in (2, 3, 4):
            assert (await c.goto(0, id=i))["t"] == "ack"
        r5 = await c.answer("x01", "a", id=5)
        assert r5["t"] == "ack" and not r5.get("dup"), r5
        r6 = await c.answer("x01", "b", id=6)
        assert r6["t"] == "ack" and not r6.get("dup"), r6
        again = await c.answer("x01", "c", id=5)
        assert again == {**again, "t": "ack", "id": 5, "dup": True}, again
        # a gap in ids is fine; a lower id never seen before is still a repeat (id <= last_id)
        r10 = await c.answer("x01", "d", id=10)
        assert r10["t"] == "ack" and not r10.get("dup"), r10
        r8 = await c.answer("x01", "e", id=8)
        assert r8["t"] == "ack" and r8.get("dup") is True, r8
        await c.close()

        c2 = kit.client(node, "once", token, encoding)
        await c2.connect()
        w = await c2.hello()
        assert w["last_id"] == 10
        assert w["answers"] == {"x01": "d"}, "a repeated id changed the saved answer"
        r6b = await c2.answer("x01", "b", id=6)
        assert r6b["t"] == "ack" and r6b.get("dup") is True, r6b
        s = await c2.submit()
        assert s["id"] == 11 and s["t"] == "ack", s
        result = await c2.wait_for("result")
        assert result["score"] == 0  # "d" is wrong, the key is "c"
        await c2.close()
        return w["attempt"]

    attempt = arun(body())
    status, record = kit.get_attempt(node, attempt, token)
    assert status == 200
    assert record["questions"] == [{**record["questions"][0], "id": "x01", "value": "d", "correct": False, "points": 0}]


def test_supersede_across_nodes(make_node, put_exam, make_token, kit, arun, encoding):
    a = make_node()
    b = make_node()
    exam = kit.make_exam("super", 5, shuffle_questions=False)
    put_exam(a, exam)
    qs = {q["id"]: q for q in exam["questions"]}
    token = make_token("cand-super")

    async def body():
        ca = kit.client(a, "super", token, encoding)
        await ca.connect()
        w = await ca.hello()
        assert (await ca.start())["t"] == "ack"
        assert (await ca.answer("x01", kit.right(qs["x01"])))["t"] == "ack"

        cb = kit.client(b, "super", token, encoding)
        await cb.connect()
        wb = await cb.hello()
        assert wb["attempt"] == w["attempt"] and wb["state"] == "active"
        assert wb["last_id"] == 2 and _values(wb) == {"x01": kit.right(qs["x01"])}

        # the old tab keeps typing after the new one took over
        late_id = None
        try:
            late_id = await ca.send_request("answer", q="x02", value=kit.wrong(qs["x02"]))
        except websockets.ConnectionClosed:
            pass
        code, reason = await ca.wait_closed(5)
        assert code == 4409, (code, reason)
        if late_id is not None:
            assert ca.replies.get(late_id, {}).get("t") != "ack", f"superseded connection acked {ca.replies[late_id]}"

        # B works, and its next id (last_id + 1) is new, so the late request was not applied
        r = await cb.answer("x03", kit.right(qs["x03"]))
        assert r["t"] == "ack" and r["id"] == 3 and not r.get("dup"), r
        assert (await cb.ping())["t"] == "pong"
        assert (await cb.submit())["t"] == "ack"
        result = await cb.wait_for("result")
        assert result["score"] == 2
        assert not cb.closed.is_set(), (cb.close_code, cb.close_reason)
        await cb.close()
        return w["attempt"]

    attempt = arun(body())
    record, _ = kit.wait_final(b, attempt, token)
    values = {q["id"]: q["value"] for q in record["questions"]}
    assert values["x02"] is None, f"superseded connection's answer was applied: {values}"
    assert values["x01"] == kit.right(qs["x01"]) and values["x03"] == kit.right(qs["x03"])


def test_resume_after_submit(make_node, put_exam, make_token, kit, arun, encoding):
    a = make_node()
    b = make_node()
    exam = kit.make_exam("after", 3)
    put_exam(a, exam)
    qs = {q["id"]: q for q in exam["questions"]}
    token = make_token("cand-after")
    exp = kit.expected(exam, {"x01": kit.right(qs["x01"])})

    async def body():
        c = kit.client(a, "after", token, encoding)
        await c.connect()
        await c.hello()
        await c.start()
        assert (await c.answer("x01", kit.right(qs["x01"])))["t"] == "ack"
        assert (await c.submit())["t"] == "ack"
        kit.assert_result_matches(await c.wait_for("result"), exp)
        await c.close()

        for node in (a, b):
            c2 = kit.client(node, "after", token, encoding)
            await c2.connect()
            w = await c2.hello()
            assert w["state"] == "submitted", w
            assert w["last_id"] == 3
            assert _values(w) == {"x01": kit.right(qs["x01"])}
            kit.assert_result_matches(await c2.wait_for("result", 3), exp)
            r = await c2.answer("x02", kit.right(qs["x02"]))
            assert r["t"] == "error" and r["code"] == "not_active", r
            r = await c2.flag("x02", True)
            assert r["t"] == "error" and r["code"] == "not_active", r
            r = await c2.submit()  # a new id (last_id + 1): whatever the answer, not a "repeat"
            assert not r.get("dup"), r
            await c2.close()

    arun(body())


def test_alternating_nodes_completes_with_right_score(make_node, put_exam, make_token, kit, arun, encoding):
    a = make_node()
    b = make_node()
    exam = kit.make_exam("alt", 10)
    put_exam(a, exam)
    qs = {q["id"]: q for q in exam["questions"]}
    token = make_token("cand-alt")
    # session -> answers given in it (x02 is changed on another node; x05 cleared; x07 wrong)
    sessions = [
        [("x01", kit.right(qs["x01"])), ("x02", kit.wrong(qs["x02"]))],
        [("x03", kit.right(qs["x03"])), ("x04", kit.right(qs["x04"]))],
        [("x02", kit.right(qs["x02"])), ("x05", kit.right(qs["x05"]))],
        [("x06", kit.right(qs["x06"])), ("x07", kit.wrong(qs["x07"]))],
        [("x05", None), ("x08", kit.right(qs["x08"]))],
        [("x09", kit.right(qs["x09"]))],
    ]
    final: dict = {}
    for s in sessions:
        for qid, v in s:
            final[qid] = v
    final = {k: v for k, v in final.items() if v is not None}
    exp = kit.expected(exam, final)
    assert exp["score"] == 7

    async def body():
        c = kit.client(a, "alt", token, encoding)
        await c.connect()
        w = await c.hello()
        attempt = w["attempt"]
        assert (await c.start())["t"] == "ack"
        saved: dict = {}
        order = None
        for n, session in enumerate(sessions):
            node = (a, b)[n % 2]
            if n:
                w, replies = await c.resume(kit.client(node, "alt", token).url)
                assert replies == []
                assert w["attempt"] == attempt and w["state"] == "active"
                assert w["last_id"] == c.next_id - 1
                assert _values(w) == saved, f"session {n} on {node}: welcome answers {w['answers']} != {saved}"
            qs_now = await c.collect_questions(10)
            if order is None:
                order = [q["id"] for q in qs_now]
            assert [q["id"] for q in qs_now] == order
            for qid, value in session:
                assert (await c.goto(order.index(qid)))["t"] == "ack"
                r = await c.answer(qid, value)
                assert r["t"] == "ack" and not r.get("dup"), r
                if value is None:
                    saved.pop(qid, None)
                else:
                    saved[qid] = value
            if n % 3 == 2:
                await c.abort()
            else:
                await c.close()
        w, _ = await c.resume(kit.client(b, "alt", token).url)
        assert _values(w) == final
        assert (await c.submit())["t"] == "ack"
        kit.assert_result_matches(await c.wait_for("result"), exp)
        await c.close()
        return attempt

    attempt = arun(body())
    for node in (a, b):
        record, _ = kit.wait_final(node, attempt, token)
        kit.assert_result_matches(record, exp)
        kit.assert_questions_match(record, exp, final)


def test_a_client_that_drops_mid_request_is_no_server_error(make_node, put_exam, make_token, kit, arun):
    """A TCP reset while the server answers is the client leaving: logged as a drop, never as an internal error."""
    node = make_node()
    exam = kit.make_exam("drops", 10, shuffle_questions=False)
    put_exam(node, exam)
    token = make_token("dropper")

    async def body() -> None:
        c = kit.client(node, "drops", token)
        for round_ in range(15):
            await c.connect()
            await c.hello()
            if round_ == 0:
                await c.start()
            for q in exam["questions"]:  # requests in flight when the socket dies
                await c.send_request("answer", q=q["id"], value=kit.right(q))
            await c.abort()
        await c.connect()
        welcome = await c.hello()
        assert welcome["state"] == "active"
        await c.close()

    arun(body(), timeout=60)
    time.sleep(0.5)
    log = node.log_text()
    assert "internal error" not in log and "Traceback" not in log, log[-3000:]
    assert '"code": 1011' not in log


def test_welcome_last_id_counts_what_the_older_connection_committed_meanwhile(make_node, put_exam, make_token, kit, arun):
    """A takeover racing the older connection's last answer: ``welcome.last_id`` and ``answers`` include it when applied.

    The newer connection's hello lands while the older one's answer is being
    committed; whichever wins, a resend of that id on the newer connection is
    ``dup`` exactly when its id is <= the welcome's ``last_id``.
    """
    node = make_node()
    exam = kit.make_exam("race", 5, shuffle_questions=False)
    put_exam(node, exam)
    qs = [q for q in exam["questions"]]
    token = make_token("cand-race")

    async def body():
        old = kit.client(node, "race", token)
        await old.connect()
        await old.hello()
        assert (await old.start(id=1))["t"] == "ack"
        rid = 1
        for round_ in range(40):
            new = kit.client(node, "race", token)
            await new.connect()
            rid += 1
            q = qs[round_ % len(qs)]
            value = kit.right(q) if round_ % 2 else kit.wrong(q)
            hello = asyncio.ensure_future(new.hello())
            await asyncio.sleep((round_ % 10) * 0.0002)  # sweep the window: the hello's load, then its claim
            try:
                await old.send_request("answer", id=rid, q=q["id"], value=value)
            except websockets.ConnectionClosed:
                pass  # the newer connection already took over: the answer never left
            w = await hello
            reply = await new.answer(q["id"], value, id=rid)
            assert reply["t"] == "ack", reply
            if rid <= w["last_id"]:
                assert reply.get("dup") is True, f"round {round_}: id {rid} <= last_id {w['last_id']}: {reply}"
                assert w["answers"].get(q["id"]) == value, f"round {round_}: applied id {rid} missing from answers"
            else:
                assert not reply.get("dup"), f"round {round_}: id {rid} > last_id {w['last_id']} acked as dup: {reply}"
            await old.abort()
            old = new
        await old.close()

    arun(body())
