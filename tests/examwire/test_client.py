"""``examwire.client`` against real engine nodes (real Redis, real uvicorn processes).

Both encodings and both ways of reading (a background reader, and the
load generators' read-when-waiting fast path): requests matched to their
``ack``/``error``, pushes, resume with pending requests resent under their
original ids (on another node), the proctor's snapshot and updates, close codes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from examwire.client import Closed, ExamClient, ProctorClient, attempt_url, proctor_url
from testkit import make_exam

EXAM = "cli"


@pytest.fixture
def node(make_node: Any, put_exam: Any) -> Any:
    n = make_node()
    put_exam(n, make_exam(EXAM, 12, shuffle_questions=False, shuffle_options=False, types_=("single",)))
    return n


@pytest.mark.parametrize("background", [True, False], ids=["background", "fast-path"])
@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_a_candidate_takes_the_exam(node: Any, make_token: Any, arun: Any, encoding: str, background: bool) -> None:
    async def scenario() -> None:
        c = ExamClient(attempt_url(node.ws_url, EXAM), make_token("ada", exams=[EXAM]), encoding=encoding,
                       background=background, reply_timeout=None if not background else 10)
        await c.connect()
        kinds, read = set(), c._frame
        c._frame = lambda frame: (kinds.add(type(frame)), read(frame))  # type: ignore[method-assign]
        welcome = await c.hello()
        assert welcome["t"] == "welcome" and welcome["state"] == "ready" and welcome["last_id"] == 0
        assert c.welcome is welcome and c.next_id == 1

        ack = await c.start()
        assert ack == {"t": "ack", "id": 1, "deadline": ack["deadline"]} and c.pending == {}
        batch = await c.wait_for("batch")
        assert batch["from"] == 0 and sorted(c.questions) == list(range(len(batch["questions"])))
        assert [m["state"] for m in c.pushes if m["t"] == "time"] == ["active"]

        refused = await c.answer("nope", "c")
        assert refused["t"] == "error" and refused["id"] == 2 and refused["code"] == "unknown_question"
        assert (await c.answer("x01", "c")) == {"t": "ack", "id": 3}
        pong = await c.ping(ct=12345)
        assert pong["ct"] == 12345 and pong["st"] > 0

        # requests sent together, answered in order, each matched by its id
        ids = [await c.send_request("answer", q=f"x0{i}", value="c") for i in (2, 3, 4)]
        assert ids == [4, 5, 6] and sorted(c.pending) == ids
        assert [(await c.reply(i))["id"] for i in reversed(ids)] == ids[::-1]

        since = c.mark()
        assert (await c.submit())["t"] == "ack"
        state = await c.wait_for("state", since=since)
        result = await c.wait_for("result", since=since)
        assert state["state"] == "submitted" and result["score"] == 4 and result["max_score"] == 12
        with pytest.raises(TimeoutError):
            await c.wait_for("notice", 0.3)
        await c.close()
        assert c.closed.is_set() and c.close_code == 1000
        assert kinds == {bytes if encoding == "msgpack" else str}  # answered in the hello's frame type

    arun(scenario())


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_resume_resends_pending_requests_under_their_ids(make_node: Any, put_exam: Any, make_token: Any, arun: Any,
                                                         encoding: str) -> None:
    a, b = make_node(), make_node()
    put_exam(a, make_exam(EXAM, 12, shuffle_questions=False, shuffle_options=False, types_=("single",)))

    async def scenario() -> None:
        c = ExamClient(attempt_url(a.ws_url, EXAM), make_token("bob", exams=[EXAM]), encoding=encoding)
        await c.connect()
        await c.hello()
        await c.start()
        applied = await c.answer("x01", "c")
        # the loss evidence it will resume with: the highest id acknowledged, the newest ticket
        assert c.acked == 2 and isinstance(c.ticket, str) and c.ticket == [m for m in c.pushes if m["t"] == "time"][-1]["ticket"]
        c.pending[2] = {"t": "answer", "id": 2, "q": "x01", "value": "c"}  # its ack "lost", as after a drop
        await c.abort()
        assert c.closed.is_set() and c.close_code == 1006
        with pytest.raises(Closed):
            await c.answer("x02", "c")  # not connected: it stays pending (id 3)
        queued = [c.queue_request("answer", q=q, value="c") for q in ("x03", "x04")]  # the offline queue
        assert applied["id"] == 2 and queued == [4, 5] and sorted(c.pending) == [2, 3, 4, 5]

        welcome, replies = await c.resume(attempt_url(b.ws_url, EXAM))  # another node
        assert welcome["last_id"] == 2 and welcome["answers"] == {"x01": "c"}
        assert [(r["t"], r["id"], r.get("dup", False)) for r in replies] == [
            ("ack", 2, True), ("ack", 3, False), ("ack", 4, False), ("ack", 5, False)]
        assert c.pending == {} and c.next_id == 6 and c.acked == 5
        assert (await c.answer("x05", "c"))["id"] == 6
        await c.close()

        # a fresh client of the same candidate learns last_id from the welcome
        d = ExamClient(attempt_url(a.ws_url, EXAM), make_token("bob", exams=[EXAM]), encoding=encoding)
        await d.connect()
        # never welcomed: a hello with evidence asked for carries none (it would be another client's word)
        assert d.evidence() == {}
        assert (await d.hello(evidence=True))["answers"] == {f"x0{i}": "c" for i in range(1, 6)} and d.next_id == 7
        assert d.acked == 6 and d.evidence()["acked"] == 6  # the welcome's last_id
        await d.close()

    arun(scenario())


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_a_proctor_sees_snapshot_and_updates_and_acts(node: Any, make_token: Any, arun: Any, encoding: str) -> None:
    async def scenario() -> None:
        c = ExamClient(attempt_url(node.ws_url, EXAM), make_token("cy", exams=[EXAM], name="Cy"), encoding=encoding)
        await c.connect()
        aid = (await c.hello())["attempt"]
        p = ProctorClient(proctor_url(node.ws_url, EXAM), make_token("pat", "proctor", name="Pat"), encoding=encoding)
        await p.connect()
        welcome = await p.hello()
        assert welcome["exam"]["id"] == EXAM and p.snapshot is not None
        assert p.rows[aid]["state"] == "ready" and p.rows[aid]["name"] == "Cy"
        assert (await p.wait_for("snapshot")) is p.snapshot  # the snapshot is a push too

        await c.start()
        await c.answer("x01", "c")
        await p.wait_for("update", pred=lambda m: m["attempt"] == aid and m.get("answered") == 1)
        assert p.rows[aid]["state"] == "active" and p.rows[aid]["answered"] == 1 and p.rows[aid]["connected"] is True

        since = c.mark()
        ack = await p.request("pause", attempt=aid)
        assert ack["t"] == "ack" and ack["state"] == "paused" and ack["id"] == 1
        assert (await c.wait_for("state", since=since))["state"] == "paused"
        ack = await p.request("message", attempt=aid, text="Stay seated")
        assert ack["id"] == 2 and ack["connected"] is True
        assert (await c.wait_for("notice", since=since)) == {"t": "notice", "text": "Stay seated", "from": "Pat"}
        refused = await p.request("resume", attempt="nobody")
        assert refused["t"] == "error" and refused["code"] == "not_found"

        # a proctor reconnects to a fresh snapshot; nothing it had pending is resent
        p.queue_request("terminate", attempt=aid, reason="never sent")
        await p.reconnect()
        assert p.pending == {} and p.rows[aid]["state"] == "paused"
        await asyncio.gather(p.close(), c.close())

    arun(scenario())


def test_close_codes_are_recorded(node: Any, make_token: Any, arun: Any) -> None:
    async def scenario() -> None:
        url = attempt_url(node.ws_url, EXAM)
        bad = ExamClient(url, "not-a-token")
        await bad.connect()
        with pytest.raises(Closed) as refused:
            await bad.hello()
        assert refused.value.code == bad.close_code == 4401

        staff = ProctorClient(proctor_url(node.ws_url, EXAM), make_token("dee", "candidate"), background=False)
        await staff.connect()
        with pytest.raises(Closed):
            await staff.hello()
        assert staff.close_code == 4403

        nowhere = ProctorClient(proctor_url(node.ws_url, "no-such-exam"), make_token("pat", "proctor"))
        await nowhere.connect()
        with pytest.raises(Closed):
            await nowhere.hello()
        assert nowhere.close_code == 4404

        # the newest connection wins: the older one is closed with 4409
        first = ExamClient(url, make_token("eve", exams=[EXAM]), background=False, reply_timeout=None)
        await first.connect()
        await first.hello()
        second = ExamClient(url, make_token("eve", exams=[EXAM]))
        await second.connect()
        await second.hello()
        assert await first.wait_closed() == (4409, first.close_reason)
        with pytest.raises(Closed) as late:
            await first.start()
        assert late.value.code == 4409
        await second.close()

    arun(scenario())


def test_the_load_generators_mode_keeps_only_awaited_pushes(node: Any, make_token: Any, arun: Any) -> None:
    """``background=False, keep=False``: no reader task, no timer, pushes handed to ``on_push`` and dropped."""

    async def scenario() -> None:
        seen: list[str] = []
        c = ExamClient(attempt_url(node.ws_url, EXAM), make_token("fay", exams=[EXAM]), encoding="msgpack",
                       background=False, keep=False, reply_timeout=None, on_push=lambda m: seen.append(m["t"]))
        await c.connect()
        await c.hello()
        assert c._reader is None
        await c.start()  # ack, then time and batch
        assert (await c.wait_for("batch"))["from"] == 0
        assert c.pushes == [] and c.questions == {} and seen == ["time", "batch"]
        for i in range(1, 10):
            assert (await c.answer(f"x{i:02d}", "c"))["t"] == "ack"
        assert c.pushes == [] and "batch" in seen[2:]  # the prefetched batch went by
        await c.close()

    arun(scenario())
