"""Review after the attempt left Redis: ``fetch`` still answers, and ``welcome.last_id`` never goes back.

A finished attempt is persisted by the worker and its Redis keys expire
(``EXAMWIRE_PERSISTED_TTL_S``); a candidate who comes back is served from the
results store. The contract says ``fetch`` works after the end and that
``last_id`` is the highest id applied, so a reconnect must never see it lower
than before. Real parts: redis-server, an ``examwire serve`` node, an
``examwire worker``, SQLite, WebSockets, the independent client.
"""

from __future__ import annotations

import pytest
import redis as redis_sync

from storage import keys
from testkit import make_exam, wait_until
from tests.e2e.client import ExamClient

from .conftest import store_rows


URL = "{}/v1/exams/review/attempt"


def _archive(aid, make_worker, results_db, redis_url):
    """Let a worker persist the finished attempt, then wait until its Redis keys have expired."""
    worker = make_worker(EXAMWIRE_PERSISTED_TTL_S="1")
    wait_until(lambda: aid in [row[0] for row in store_rows(results_db)], 30, lambda: "the stored result\n" + worker.log())
    r = redis_sync.Redis.from_url(redis_url)
    try:
        wait_until(lambda: not r.exists(keys.attempt(aid)), 20, "the attempt's Redis keys to expire")
    finally:
        r.close()


async def _connect(url: str, token: str, encoding: str, seen: list[int]) -> tuple[ExamClient, dict]:
    c = ExamClient(url, token, encoding=encoding, reply_timeout=10)
    await c.connect()
    w = await c.hello()
    seen.append(w["last_id"])
    return c, w


async def _fetch_all(c: ExamClient) -> None:
    mark = c.mark()
    r = await c.fetch(0, 4)
    assert r["t"] == "ack", r
    batch = await c.wait_for("batch", 5, since=mark)
    assert batch["from"] == 0 and [q["id"] for q in batch["questions"]] == ["x01", "x02", "x03", "x04"], batch
    assert all("answer" not in q for q in batch["questions"])


async def _finish(c: ExamClient) -> None:
    assert (await c.start())["t"] == "ack"
    assert (await c.answer("x01", "c"))["t"] == "ack"
    assert (await c.submit())["t"] == "ack"
    await c.wait_for("result")


@pytest.fixture
def review_node(make_node, put_exam, results_db):
    node = make_node(EXAMWIRE_SQLITE_PATH=str(results_db))
    put_exam(node, make_exam("review", 4, shuffle_questions=False))
    return node


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_fetch_and_every_request_on_an_archived_attempt(review_node, make_worker, make_token, results_db, redis_url, arun, encoding):
    """Served from the results store, the session answers fetch (ack, then the batch) and refuses the
    rest as on any final attempt, with no Redis write and without closing the connection; a proctor's
    action on it is refused as on any final attempt (``not_active``), not as an unknown one."""
    token = make_token(f"cand-review-{encoding}", exams=["review"])
    url = URL.format(review_node.ws_url)
    seen: list[int] = []

    async def take() -> str:
        c, w = await _connect(url, token, encoding, seen)
        await _finish(c)
        await c.close()
        return w["attempt"]

    aid = arun(take())
    _archive(aid, make_worker, results_db, redis_url)

    async def review() -> None:
        c, w = await _connect(url, token, encoding, seen)  # served from the results store now
        assert w["attempt"] == aid and w["state"] == "submitted" and w["answers"] == {"x01": "c"}, w
        await c.wait_for("result")
        await _fetch_all(c)
        await _fetch_all(c)
        for t, fields in (("answer", {"q": "x02", "value": ["a", "d"]}), ("flag", {"q": "x02", "on": True}),
                          ("goto", {"index": 1}), ("start", {}), ("event", {"kind": "blur"}), ("submit", {})):
            reply = await c.request(t, **fields)
            assert reply["t"] == "error" and reply["code"] == "not_active", (t, reply)
        assert (await c.ping())["t"] == "pong"
        assert not c.closed.is_set(), (c.close_code, c.close_reason)
        await c.close()

        # a proctor sees it (from the store) and is told it has ended, as before it left Redis
        p = ExamClient(f"{review_node.ws_url}/v1/exams/review/proctor", proctor, encoding=encoding, reply_timeout=10)
        await p.connect()
        await p.hello()
        rows = (await p.wait_for("snapshot", 10))["attempts"]
        assert [row["state"] for row in rows if row["attempt"] == aid] == ["submitted"], rows
        for t, fields in (("extend", {"seconds": 60}), ("pause", {}), ("resume", {}),
                          ("terminate", {"reason": "late"}), ("message", {"text": "hello"})):
            reply = await p.request(t, attempt=aid, **fields)
            assert reply["t"] == "error" and reply["code"] == "not_active", (t, reply)
        reply = await p.request("extend", attempt="0" * 32, seconds=60)
        assert reply["t"] == "error" and reply["code"] == "not_found", reply
        await p.close()

    proctor = make_token("pro-review", "proctor", exams=["review"])
    arun(review())
    assert seen[1] == 3, seen  # start, answer, submit


def test_last_id_never_goes_back_when_the_attempt_leaves_redis(review_node, make_worker, make_token, results_db, redis_url, arun):
    """A fetch after the end (while the attempt is still in Redis) must not make a later welcome,
    served from the persisted record, report a lower ``last_id`` than an earlier one."""
    token = make_token("cand-review-last", exams=["review"])
    url = URL.format(review_node.ws_url)
    seen: list[int] = []  # welcome.last_id, connection after connection

    async def take() -> str:
        c, w = await _connect(url, token, "json", seen)
        await _finish(c)
        await _fetch_all(c)  # review after the end, the attempt still in Redis
        await c.close()
        c, w = await _connect(url, token, "json", seen)  # the same attempt, still live in Redis
        assert w["state"] == "submitted"
        await c.close()
        return w["attempt"]

    aid = arun(take())
    _archive(aid, make_worker, results_db, redis_url)

    async def again() -> None:
        c, _ = await _connect(url, token, "json", seen)  # from the results store
        await c.close()

    arun(again())
    assert seen == sorted(seen), f"welcome.last_id went back: {seen}"
