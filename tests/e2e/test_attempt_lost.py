"""Loss is detected, never silent (docs/protocol.md, Part 1, "Loss is detected, never silent").

Redis, the authority for live attempts, is restarted without persistence in
the middle of an exam: the attempt is gone. A candidate that resumes with
``hello.acked`` (the highest id it saw acknowledged) and the newest
``ticket`` is not handed a fresh attempt with the full time: the loss is
logged as an error (the node's JSON log lines), counted (``/readyz``'s
``attempts_lost``), told to the proctor (an ``attempt_lost`` event), the
attempt comes back with its original deadline, and the candidate's resend of
its acknowledged answers brings them all back. Without a ticket it is held
(paused) until a proctor resumes it. A client that sends neither field is
served exactly as before. Real redis-server, real engine nodes, real sockets.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import redis

from examwire.redis_server import EmbeddedRedis
from storage import keys
from tests.e2e.client import ConnectionClosedByServer, ExamClient, attempt_url
from tests.e2e.test_proctor_live import open_proctor
from testkit import wait_until

DURATION_S = 600


def newest_ticket(c: ExamClient) -> str | None:
    """The newest ticket the server gave this client: from ``time`` pushes, else the ``welcome``."""
    tickets = [m["ticket"] for m in c.pushes_of("time") if "ticket" in m]
    if tickets:
        return tickets[-1]
    return (c.welcome or {}).get("ticket")


def acked_ids(c: ExamClient) -> int:
    return max((i for i, r in c.replies.items() if r.get("t") == "ack"), default=0)


async def resume(url: str, c: ExamClient, tries: int = 20, **extra: Any) -> dict[str, Any]:
    """Connect and say hello again (a node that just saw Redis come back may close 1011 once: retry)."""
    for _ in range(tries):
        await c.connect(url)
        try:
            return await c.hello(timeout=10, **extra)
        except ConnectionClosedByServer as exc:
            if exc.code not in (1011, 1013):
                raise
            await asyncio.sleep(0.25)
    raise AssertionError("the node did not welcome the candidate again")


def lost_lines(node: Any) -> list[dict[str, Any]]:
    out = []
    for line in node.log_text().splitlines():
        if '"attempt_lost"' in line:
            doc = json.loads(line)
            if doc.get("event") == "attempt_lost":
                out.append(doc)
    return out


def exam_for(node, put_exam, make_token, kit, exam_id: str, questions: int, *, user: str):
    """An exam of ``questions`` in a fixed order on ``node``: its questions by id, ``user``'s token, the attempt's URL."""
    exam = kit.make_exam(exam_id, questions, shuffle_questions=False, duration_s=DURATION_S)
    put_exam(node, exam)
    return {x["id"]: x for x in exam["questions"]}, make_token(user, exams=[exam_id]), attempt_url(node.ws_url, exam_id)


async def answered(ws: str, token: str, kit: Any, q: dict[str, Any], *qids: str) -> ExamClient:
    """A candidate who started, had ``qids`` acknowledged (right answers) and closed; its ``welcome`` names the attempt."""
    c = ExamClient(ws, token, reply_timeout=10)
    await c.connect()
    await c.hello()
    await c.start()
    for qid in qids:
        assert (await c.answer(qid, kit.right(q[qid])))["t"] == "ack"
    await c.close()
    return c


def test_redis_restarted_without_persistence_the_loss_is_detected_reported_and_repaired(
    tmp_path, make_node, put_exam, make_token, kit, http_json, arun, keeper
):
    server = EmbeddedRedis(tmp_path / "redis", appendonly=False)  # and --save "": a restart keeps nothing
    url = server.start()
    try:
        node = make_node(EXAMWIRE_REDIS_URL=url, EXAMWIRE_SQLITE_PATH=str(tmp_path / "results.sqlite3"))
        q, token, ws = exam_for(node, put_exam, make_token, kit, "lost", 5, user="ann")

        async def scenario() -> dict[str, Any]:
            c = ExamClient(ws, token, reply_timeout=10)
            await c.connect()
            first = await c.hello()
            start = await c.start()
            await c.wait_for("time")
            answers = {qid: kit.right(q[qid]) for qid in ("x01", "x02", "x03")}
            for qid, value in answers.items():
                assert (await c.answer(qid, value))["t"] == "ack"
            acked, ticket = acked_ids(c), newest_ticket(c)
            started_at = time.time()

            await c.close()
            await asyncio.to_thread(server.stop)
            await keeper(server.start)  # empty: no AOF, no RDB
            await asyncio.to_thread(
                wait_until, lambda: http_json("GET", f"{node.base_url}/readyz")[0] == 200, 20, "the node ready again"
            )
            assert redis.Redis.from_url(url).dbsize() <= 3  # the attempt is gone (health keys may be back)

            proctor, _, snapshot = await open_proctor(node, "lost", make_token("pro", "proctor", exams=["lost"]))
            welcome = await resume(ws, c, acked=acked, ticket=ticket)
            event = await proctor.wait_for("update", 5, pred=lambda m: (m.get("event") or {}).get("kind") == "attempt_lost")

            resent = {qid: await c.answer(qid, value) for qid, value in answers.items()}  # fresh ids, normal rules
            status, record = await asyncio.to_thread(
                http_json, "GET", f"{node.base_url}/v1/attempts/{welcome['attempt']}", token=token
            )
            status_ready, ready = await asyncio.to_thread(http_json, "GET", f"{node.base_url}/readyz")
            await proctor.close()
            await c.close()
            return {"first": first, "start": start, "acked": acked, "ticket": ticket, "welcome": welcome,
                    "event": event, "resent": resent, "record": (status, record), "ready": (status_ready, ready),
                    "answers": answers, "elapsed": time.time() - started_at, "snapshot": snapshot}  # fmt: skip

        got = arun(scenario(), timeout=120)
    finally:
        server.stop()

    first, welcome = got["first"], got["welcome"]
    assert isinstance(first.get("ticket"), str) and isinstance(got["ticket"], str), first
    assert got["acked"] == 4  # start + three answers

    # not restarted with the full time: the same attempt, its original deadline, the acked ids used up
    assert welcome["attempt"] == first["attempt"] and welcome.get("lost") is True, welcome
    assert welcome["state"] == "active" and welcome["deadline"] == got["start"]["deadline"], (welcome, got["start"])
    assert welcome["remaining_ms"] <= DURATION_S * 1000 - got["elapsed"] * 1000 + 1000, welcome
    assert welcome["last_id"] == got["acked"] and welcome["answers"] == {} and welcome["flags"] == [], welcome
    assert isinstance(welcome.get("ticket"), str)

    # logged as an error, one JSON line, no token
    lines = lost_lines(node)
    assert len(lines) == 1, lines
    line = lines[0]
    assert line["level"] == "error" and line["attempt"] == first["attempt"] and line["exam"] == "lost", line
    assert (line["lost"], line["acked"], line["found"], line["clock"], line["ticket"]) == ("missing", 4, 0, "ticket", "valid"), line
    assert "token" not in line and "eyJ" not in json.dumps(line), line

    # counted
    status, ready = got["ready"]
    assert status == 200 and ready["attempts_lost"] == 1, ready

    # the proctor saw it
    event = got["event"]
    assert event["attempt"] == first["attempt"] and event["event"]["by"] == "server", event
    assert event["event"]["detail"]["lost"] == "missing" and event["event"]["detail"]["acked"] == 4, event

    # the resend brought every acknowledged answer back, each under the normal rules
    assert all(r["t"] == "ack" and not r.get("dup") and r["id"] > 4 for r in got["resent"].values()), got["resent"]
    status, record = got["record"]
    assert status == 200, record
    values = {x["id"]: x["value"] for x in record["questions"] if x.get("value") is not None}
    assert values == got["answers"], record
    assert record["deadline"] == got["start"]["deadline"], record


def test_without_a_ticket_the_lost_attempt_is_held_until_a_proctor_resumes_it(
    make_node, put_exam, make_token, kit, http_json, arun, redis_url
):
    node = make_node()
    q, token, ws = exam_for(node, put_exam, make_token, kit, "held", 3, user="bea")

    async def scenario() -> dict[str, Any]:
        c = ExamClient(ws, token, reply_timeout=10)
        await c.connect()
        await c.hello()
        await c.start()
        assert (await c.answer("x01", kit.right(q["x01"])))["t"] == "ack"
        await c.close()
        redis.Redis.from_url(redis_url).flushall()  # what a restart without persistence leaves

        proctor, _, _ = await open_proctor(node, "held", make_token("pro", "proctor", exams=["held"]))
        welcome = await resume(ws, c, acked=acked_ids(c))  # a client that keeps no ticket
        refused = await c.answer("x01", kit.right(q["x01"]))
        event = await proctor.wait_for("update", 5, pred=lambda m: (m.get("event") or {}).get("kind") == "attempt_lost")
        resumed = await proctor.request("resume", attempt=welcome["attempt"])
        await c.wait_for("state", 5, pred=lambda m: m.get("state") == "active")
        after = await c.answer("x01", kit.right(q["x01"]))
        await proctor.close()
        await c.close()
        return {"welcome": welcome, "refused": refused, "event": event, "resumed": resumed, "after": after}

    got = arun(scenario(), timeout=60)
    welcome = got["welcome"]
    assert welcome.get("lost") is True and welcome["state"] == "paused", welcome
    assert welcome["remaining_ms"] == DURATION_S * 1000, welcome  # frozen: the clock does not run
    assert got["refused"]["t"] == "error" and got["refused"]["code"] == "not_active", got["refused"]
    assert got["event"]["event"]["detail"]["clock"] == "held" and got["event"]["event"]["detail"]["ticket"] == "absent"
    assert got["resumed"]["t"] == "ack" and got["resumed"]["state"] == "active", got["resumed"]
    assert got["after"]["t"] == "ack", got["after"]
    assert [line["clock"] for line in lost_lines(node)] == ["held"]


def test_a_ticket_that_is_not_this_attempts_own_counts_as_none(make_node, put_exam, make_token, kit, arun, redis_url):
    """Another attempt's ticket (validly signed) or a changed one gives no clock: the lost attempt is held, not timed."""
    node = make_node()
    q, _, ws = exam_for(node, put_exam, make_token, kit, "forged", 2, user="ann")

    async def scenario() -> list[dict[str, Any]]:
        ann, bob, cy = [await answered(ws, make_token(u, exams=["forged"]), kit, q, "x01") for u in ("ann", "bob", "cy")]
        redis.Redis.from_url(redis_url).flushall()
        own = newest_ticket(cy)
        assert own is not None and newest_ticket(ann) is not None
        changed = own[:-1] + ("0" if own[-1] != "0" else "1")  # one character of its signature
        return [await resume(ws, bob, acked=acked_ids(bob), ticket=newest_ticket(ann)),
                await resume(ws, cy, acked=acked_ids(cy), ticket=changed)]  # fmt: skip

    welcomes = arun(scenario(), timeout=60)
    for welcome in welcomes:
        assert welcome.get("lost") is True and welcome["state"] == "paused", welcome  # held until a proctor acts
        assert welcome["remaining_ms"] == DURATION_S * 1000, welcome
    lines = lost_lines(node)
    assert sorted((x["user"], x["ticket"], x["clock"]) for x in lines) == [("bob", "invalid", "held"), ("cy", "invalid", "held")], lines


def test_a_store_behind_the_client_is_reported_and_the_acked_ids_stay_used(make_node, put_exam, make_token, kit, arun, redis_url):
    """A failover that missed the last writes: the attempt is there, with less than the client saw acknowledged."""
    node = make_node()
    q, token, ws = exam_for(node, put_exam, make_token, kit, "behind", 3, user="cy")

    async def scenario() -> dict[str, Any]:
        c = await answered(ws, token, kit, q, "x01", "x02")
        # the copy Redis kept missed the second answer
        r = redis.Redis.from_url(redis_url)
        aid = c.welcome["attempt"]
        r.hset(keys.attempt(aid), "last_id", 2)
        r.hdel(keys.answers(aid), "x02")
        welcome = await resume(ws, c, acked=3, ticket=newest_ticket(c))
        replay = await c.request("answer", id=3, q="x02", value=kit.right(q["x02"]))  # an acknowledged id: never again
        again = await c.answer("x02", kit.right(q["x02"]))
        await c.close()
        return {"welcome": welcome, "replay": replay, "again": again}

    got = arun(scenario(), timeout=60)
    welcome = got["welcome"]
    assert welcome.get("lost") is True and welcome["last_id"] == 3 and set(welcome["answers"]) == {"x01"}, welcome
    assert welcome["state"] == "active"
    assert got["replay"] == {"t": "ack", "id": 3, "dup": True}, got["replay"]
    assert got["again"]["t"] == "ack" and got["again"]["id"] > 3 and not got["again"].get("dup")
    [line] = lost_lines(node)
    assert (line["lost"], line["acked"], line["found"], line["clock"]) == ("behind", 3, 2, "kept"), line


def test_clients_that_send_neither_field_are_served_as_before(make_node, put_exam, make_token, kit, arun, redis_url, http_json):
    """No evidence, no loss: after a wipe a contract-only client gets what it always got, and nothing is reported."""
    node = make_node()
    q, token, ws = exam_for(node, put_exam, make_token, kit, "plain", 2, user="dee")

    async def scenario() -> dict[str, Any]:
        c = ExamClient(ws, token, reply_timeout=10)
        await c.connect()
        first = await c.hello()
        await c.start()
        await c.answer("x01", kit.right(q["x01"]))
        await c.close()
        redis.Redis.from_url(redis_url).flushall()
        again = await resume(ws, c)
        await c.close()
        return {"first": first, "again": again}

    got = arun(scenario(), timeout=60)
    assert got["first"]["state"] == "ready" and got["first"]["last_id"] == 0
    again = got["again"]
    assert again["state"] == "ready" and again["last_id"] == 0 and "lost" not in again, again
    assert lost_lines(node) == []
    status, ready = http_json("GET", f"{node.base_url}/readyz")
    assert ready["attempts_lost"] == 0, ready


def test_after_a_wipe_the_newest_connection_still_wins_over_one_left_open_from_before(
    make_node, put_exam, make_token, kit, arun, redis_url
):
    """Claim numbers of an attempt created again must be above those of its connections from before the loss.

    A node remembers the newest claim number it saw per attempt while it holds
    a connection of it; numbers that started again from 1 would make the new
    connection look older than the one left open, and close it (4409).
    """
    node = make_node()
    q, token, ws = exam_for(node, put_exam, make_token, kit, "wins", 2, user="eve")

    async def scenario() -> dict[str, Any]:
        first, old = ExamClient(ws, token, reply_timeout=10), ExamClient(ws, token, reply_timeout=10)
        await first.connect()
        await first.hello()
        await first.start()
        await old.connect()
        await old.hello()  # the second claim supersedes the first: the node has seen claim number 2
        await first.wait_closed()
        redis.Redis.from_url(redis_url).flushall()  # while `old` stays open

        new = ExamClient(ws, token, reply_timeout=10)
        welcome = await resume(ws, new, acked=1, ticket=newest_ticket(first))
        answer = await new.answer("x01", kit.right(q["x01"]))
        try:  # the old connection may not write any more: closed as superseded when it tries
            stale: Any = await old.answer("x02", kit.right(q["x02"]))
        except ConnectionClosedByServer as exc:
            stale = exc.code
        closed = await old.wait_closed()
        await new.close()
        return {"welcome": welcome, "answer": answer, "stale": stale, "closed": closed}

    got = arun(scenario(), timeout=60)
    assert got["welcome"]["t"] == "welcome" and got["welcome"].get("lost") is True, got
    assert got["answer"]["t"] == "ack", got
    assert got["stale"] == 4409 and got["closed"][0] == 4409, got
