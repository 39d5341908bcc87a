"""Linear exams: answering a later question moves the candidate there, and what lies before it is closed.

No ``goto`` is ever sent here: the position moves with the answers (and flags)
alone, survives a reconnect (``welcome.index``, the batch pushed after it) and
drives prefetch. Real parts: redis-server, an ``examwire serve`` node, the
independent client.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def test_answers_without_goto_cannot_go_back(make_node, put_exam, make_token, kit, arun, encoding):
    node = make_node(EXAMWIRE_BATCH_SIZE="10")
    exam = kit.make_exam("linpos", 12, navigation="linear", shuffle_questions=True)
    put_exam(node, exam)
    qs = {q["id"]: q for q in exam["questions"]}
    token = make_token("cand-linpos")

    async def body():
        c = kit.client(node, "linpos", token, encoding)
        await c.connect()
        w = await c.hello()
        assert w["exam"]["navigation"] == "linear" and w["index"] == 0
        assert (await c.start())["t"] == "ack"
        first = await c.wait_for("batch", pred=lambda b: b["from"] == 0)
        order = [q["id"] for q in first["questions"]]  # the candidate's positions 0..9

        # the probe's order: positions 5, 0, 3, 0, 5, 1, 5
        mark = c.mark()
        outcome = []
        for pos in (5, 0, 3, 0, 5, 1, 5):
            qid = order[pos]
            r = await c.answer(qid, kit.right(qs[qid]))
            outcome.append("ack" if r["t"] == "ack" else r["code"])
        assert outcome == ["ack", "navigation", "navigation", "navigation", "ack", "navigation", "ack"], outcome
        # position 5 is in the second half of the ten held: the rest arrived unasked
        nxt = await c.wait_for("batch", 3.0, pred=lambda b: b["from"] == 10, since=mark)
        assert [q["index"] for q in nxt["questions"]] == [10, 11]
        # a flag behind the position is closed too; one ahead moves the position
        r = await c.flag(order[4])
        assert r["t"] == "error" and r["code"] == "navigation", r
        assert (await c.flag(order[7]))["t"] == "ack"
        r = await c.goto(6)
        assert r["t"] == "error" and r["code"] == "navigation", r
        r = await c.answer(order[6], kit.right(qs[order[6]]))
        assert r["t"] == "error" and r["code"] == "navigation", r
        await c.close()

        # the position is the attempt's: a reconnect starts there, and it is still closed behind
        c2 = kit.client(node, "linpos", token, encoding)
        await c2.connect()
        w2 = await c2.hello()
        assert w2["index"] == 7, w2
        assert set(w2["answers"]) == {order[5]} and w2["flags"] == [order[7]], w2
        held = await c2.wait_for("batch")
        assert held["from"] <= 7 < held["from"] + len(held["questions"]), held
        r = await c2.answer(order[5], kit.wrong(qs[order[5]]))
        assert r["t"] == "error" and r["code"] == "navigation", r
        assert (await c2.answer(order[7], kit.right(qs[order[7]])))["t"] == "ack"
        assert (await c2.submit())["t"] == "ack"
        result = await c2.wait_for("result")
        assert result["score"] == 2, result
        await c2.close()

    arun(body())


def test_a_flag_ahead_brings_the_next_batch(make_node, put_exam, make_token, kit, arun):
    """Prefetch follows the question flagged as it follows the one answered (any navigation)."""
    node = make_node(EXAMWIRE_BATCH_SIZE="10")
    put_exam(node, kit.make_exam("flagpre", 15, shuffle_questions=False))
    token = make_token("cand-flagpre")

    async def body():
        c = kit.client(node, "flagpre", token)
        await c.connect()
        await c.hello()
        assert (await c.start())["t"] == "ack"
        first = await c.wait_for("batch", pred=lambda b: b["from"] == 0)
        mark = c.mark()
        assert (await c.flag(first["questions"][6]["id"]))["t"] == "ack"
        nxt = await c.wait_for("batch", 3.0, pred=lambda b: b["from"] == 10, since=mark)
        assert [q["index"] for q in nxt["questions"]] == [10, 11, 12, 13, 14]
        await c.close()

    arun(body())
