"""Question delivery: first batch, prefetch ahead of the candidate, stable per-candidate shuffles."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def test_prefetch_next_batch_arrives_unasked(make_node, put_exam, make_token, kit, arun, encoding):
    """25 questions, batch size 10: moving into the second half of what the client
    holds brings the next batch without any ``fetch``."""
    node = make_node(EXAMWIRE_BATCH_SIZE="10")
    exam = kit.make_exam("prefetch", 25)
    put_exam(node, exam)
    token = make_token("cand-prefetch")

    async def body():
        c = kit.client(node, "prefetch", token, encoding)
        await c.connect()
        w = await c.hello()
        assert w["exam"]["total"] == 25
        assert (await c.start())["t"] == "ack"
        first = await c.wait_for("batch", pred=lambda b: b["from"] == 0)
        assert first["total"] == 25
        assert [q["index"] for q in first["questions"]] == list(range(10)), "first batch should hold batch-size questions"
        for q in first["questions"]:
            kit.check_question(q, exam)

        # walk to the second half of the ten held questions (no fetch anywhere)
        for i in range(1, 7):
            assert (await c.goto(i))["t"] == "ack"
        nxt = await c.wait_for("batch", 3.0, pred=lambda b: b["from"] == 10)
        assert [q["index"] for q in nxt["questions"]] == list(range(10, 20))
        assert all(i in c.questions for i in range(20))

        for i in range(7, 16):
            assert (await c.goto(i))["t"] == "ack"
        last = await c.wait_for("batch", 3.0, pred=lambda b: b["from"] == 20)
        assert [q["index"] for q in last["questions"]] == list(range(20, 25))
        for q in list(nxt["questions"]) + list(last["questions"]):
            kit.check_question(q, exam)

        assert {m["t"] for m in c.sent} == {"start", "goto"}, "the client never asked with fetch"
        ids = [c.questions[i]["id"] for i in range(25)]
        assert sorted(ids) == sorted(q["id"] for q in exam["questions"]), "every question exactly once"
        await c.close()

    arun(body())


def _order(questions):
    return [(q["id"], [o["id"] for o in q["options"]]) for q in questions]


def test_shuffle_stable_per_candidate_and_differs_between_candidates(make_node, put_exam, make_token, kit, arun, encoding):
    a = make_node()
    b = make_node()
    exam = kit.make_exam("shuffle", 14, types_=("single", "multiple"))
    put_exam(a, exam)
    alice, bob = make_token("cand-alice"), make_token("cand-bob")

    async def order_of(node, token, *, start):
        c = kit.client(node, "shuffle", token, encoding)
        await c.connect()
        w = await c.hello()
        if start:
            assert (await c.start())["t"] == "ack"
        qs = await c.collect_questions(w["exam"]["total"])
        assert [q["index"] for q in qs] == list(range(14))
        await c.close()
        return _order(qs)

    async def body():
        first = await order_of(a, alice, start=True)
        assert sorted(q for q, _ in first) == sorted(q["id"] for q in exam["questions"])
        same_node = await order_of(a, alice, start=False)
        other_node = await order_of(b, alice, start=False)
        assert same_node == first, "same candidate, reconnect on the same node: order changed"
        assert other_node == first, "same candidate, reconnect on another node: order changed"

        bobs = await order_of(b, bob, start=True)
        assert [q for q, _ in bobs] != [q for q, _ in first], "two candidates got the same question order (1 in 14!)"
        assert bobs != first
        bobs_again = await order_of(a, bob, start=False)
        assert bobs_again == bobs
        # the shuffle really shuffles (14 questions in definition order is 1 in 14!)
        assert [q for q, _ in first] != [q["id"] for q in exam["questions"]]

    arun(body())
