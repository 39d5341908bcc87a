"""The proctor feed across engine nodes: snapshot, updates within a second, presence, coalescing.

Derived from docs/protocol.md ("Proctor connection"); two real
engine nodes share one Redis; the proctor watches on node A, candidates work
on node B.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.e2e.client import ExamClient, attempt_url

ROW_FIELDS = {"attempt", "user", "name", "state", "connected", "answered", "total", "flagged", "index",
              "deadline", "remaining_ms", "events"}


def proctor_url(node: Any, exam_id: str) -> str:
    return f"{node.ws_url}/v1/exams/{exam_id}/proctor"


async def open_proctor(node: Any, exam_id: str, token: str, encoding: str = "json") -> tuple[ExamClient, dict, dict]:
    """A connected proctor: (client, welcome, snapshot)."""
    p = ExamClient(proctor_url(node, exam_id), token, encoding=encoding)
    await p.connect()
    welcome = await p.hello()
    snapshot = await p.wait_for("snapshot", 5)
    return p, welcome, snapshot


async def update_for(p: ExamClient, attempt: str, timeout: float = 1.0, since: int = 0, **want: Any) -> tuple[dict, float]:
    """The first ``update`` of ``attempt`` carrying every ``want`` field value; (update, seconds waited)."""
    t0 = time.monotonic()

    def match(m: dict) -> bool:
        return m.get("attempt") == attempt and all(k in m and m[k] == v for k, v in want.items())

    m = await p.wait_for("update", timeout, pred=match, since=since)
    return m, time.monotonic() - t0


def test_proctor_on_a_sees_candidates_on_b_within_a_second(make_node, put_exam, make_token, kit, arun, encoding):
    a, b = make_node(), make_node()
    exam = kit.make_exam("live1", 6, shuffle_questions=False)
    put_exam(a, exam)

    async def body() -> None:
        p, welcome, snapshot = await open_proctor(a, "live1", make_token("pro", "proctor", exams=["live1"]), encoding)
        assert welcome["exam"]["id"] == "live1" and welcome["exam"]["total"] == 6
        assert isinstance(welcome["server_time"], int)
        assert snapshot["attempts"] == []

        c = kit.client(b, "live1", make_token("cand-1", name="Ada Lovelace"))
        await c.connect()
        cw = await c.hello()
        aid = cw["attempt"]
        row, waited = await update_for(p, aid, connected=True)
        assert waited < 1.0
        assert ROW_FIELDS - {"attempt"} <= set(row), row
        assert (row["user"], row["name"], row["state"], row["answered"], row["total"]) == ("cand-1", "Ada Lovelace", "ready", 0, 6)

        await c.start()
        row, waited = await update_for(p, aid, state="active")
        assert isinstance(row["deadline"], int) and waited < 1.0

        q = exam["questions"]
        await c.answer(q[0]["id"], kit.right(q[0]))
        _, waited = await update_for(p, aid, answered=1)
        assert waited < 1.0
        await c.flag(q[1]["id"])
        await c.goto(2)
        row, waited = await update_for(p, aid, index=2)
        assert waited < 1.0

        await c.event("blur", {"note": "window lost focus"})
        row, waited = await update_for(p, aid)
        while "event" not in row:
            row, waited = await update_for(p, aid)
        assert row["event"]["kind"] == "blur" and row["event"]["detail"] == {"note": "window lost focus"}
        assert isinstance(row["event"]["at"], int) and row["events"] == 1

        await c.abort()  # a network drop, no close frame
        _, waited = await update_for(p, aid, timeout=2.0, connected=False)
        assert waited < 1.0

        # a second proctor, on node B, gets all of it in its snapshot
        p2, _, snap2 = await open_proctor(b, "live1", make_token("pro2", "admin"), encoding)
        (entry,) = snap2["attempts"]
        assert ROW_FIELDS <= set(entry)
        assert entry["attempt"] == aid and entry["connected"] is False
        assert (entry["answered"], entry["flagged"], entry["index"], entry["events"]) == (1, 1, 2, 1)
        await p2.close()
        await p.close()

    arun(body())


def test_updates_are_coalesced_per_attempt(make_node, put_exam, make_token, kit, arun):
    a, b = make_node(), make_node(EXAMWIRE_RATE_PER_S="500", EXAMWIRE_RATE_BURST="500")
    exam = kit.make_exam("live2", 40, shuffle_questions=False, types_=("single",))
    put_exam(a, exam)

    async def body() -> None:
        p, _, _ = await open_proctor(a, "live2", make_token("pro", "proctor"))
        c = kit.client(b, "live2", make_token("fast"))
        await c.connect()
        aid = (await c.hello())["attempt"]
        await c.start()
        await update_for(p, aid, state="active")
        mark = p.mark()
        t0 = time.monotonic()
        for q in exam["questions"]:  # 40 acknowledged answers, as fast as they go
            await c.answer(q["id"], "c")
        spent = time.monotonic() - t0
        await update_for(p, aid, since=mark, answered=40)
        updates = [m for m in p.pushes[mark:] if m.get("t") == "update" and m.get("attempt") == aid]
        # at most one update per 250 ms per attempt (plus the one in flight when the burst began)
        assert len(updates) <= spent / 0.25 + 2, (len(updates), spent)
        assert [u["answered"] for u in updates if "answered" in u] == sorted(u["answered"] for u in updates if "answered" in u)
        await p.close()
        await c.close()

    arun(body())


def test_candidate_on_a_dead_node_shows_disconnected(make_node, put_exam, make_token, kit, arun):
    fast = {"EXAMWIRE_PRESENCE_INTERVAL_MS": "300"}  # stale after 900 ms
    a, b = make_node(**fast), make_node(**fast)
    put_exam(a, kit.make_exam("live3", 4))

    async def body() -> None:
        p, _, _ = await open_proctor(a, "live3", make_token("pro", "proctor", exams=["live3"]))
        c = kit.client(b, "live3", make_token("doomed"))
        await c.connect()
        aid = (await c.hello())["attempt"]
        await update_for(p, aid, connected=True)
        await asyncio.sleep(1.5)  # heartbeats keep it connected past the staleness limit
        assert not [m for m in p.pushes if m.get("attempt") == aid and m.get("connected") is False]
        mark = p.mark()
        b.kill()  # no close event ever reaches Redis: only the missing heartbeats tell
        _, waited = await update_for(p, aid, timeout=5.0, since=mark, connected=False)
        assert waited < 3.0

        # the candidate resumes on node A: connected again
        c.url = attempt_url(a.ws_url, "live3")
        await c.connect()
        await c.hello()
        await update_for(p, aid, connected=True)
        await p.close()
        await c.close()

    arun(body())


def test_many_candidates_one_snapshot_row_each(make_node, put_exam, make_token, kit, arun):
    a, b = make_node(), make_node()
    put_exam(a, kit.make_exam("live4", 3))

    async def body() -> None:
        clients = [kit.client(a if i % 2 else b, "live4", make_token(f"u{i:02d}", name=f"User {i:02d}")) for i in range(20)]
        for c in clients:
            await c.connect()
            await c.hello()
        for c in clients[:10]:
            await c.start()
        p, _, snapshot = await open_proctor(a, "live4", make_token("pro", "proctor"))
        rows = {r["attempt"]: r for r in snapshot["attempts"]}
        assert set(rows) == {c.welcome["attempt"] for c in clients}
        assert sum(r["state"] == "active" for r in rows.values()) == 10
        assert all(r["connected"] for r in rows.values())
        await p.close()
        for c in clients:
            await c.close()

    arun(body())


def _raw_proctor(port: int, path: str, token: str):
    """A blocking WebSocket client that sends ``hello`` and then reads nothing (a tiny receive window)."""
    import json
    import os
    import socket
    import struct

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    payload = json.dumps({"t": "hello", "token": token, "v": 1}).encode()
    mask = os.urandom(4)
    sock.sendall(struct.pack("!BBH", 0x81, 0x80 | 126, len(payload)) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    return sock


def _read_to_end(sock, timeout: float) -> tuple[bytes, bool]:
    """Everything the server sent until it closed the connection; (data, closed)."""
    import socket
    import time

    data, end = b"", time.monotonic() + timeout
    sock.settimeout(0.5)
    while time.monotonic() < end:
        try:
            chunk = sock.recv(1 << 16)
        except socket.timeout:
            continue
        except OSError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def test_a_proctor_that_stops_reading_is_dropped_and_resumes_with_a_snapshot(make_node, put_exam, make_token, kit, arun):
    flood = {"EXAMWIRE_SEND_QUEUE": "4", "EXAMWIRE_RATE_PER_S": "5000", "EXAMWIRE_RATE_BURST": "5000",
             "EXAMWIRE_EVENT_RATE_PER_MIN": "60000", "EXAMWIRE_EVENT_BURST": "10000"}
    a = make_node(**flood)
    put_exam(a, kit.make_exam("live5", 3))
    token = make_token("pro", "proctor")
    detail = "x" * 900  # each event update carries ~1 KiB

    async def body() -> None:
        slow = _raw_proctor(a.port, "/v1/exams/live5/proctor", token)
        good, _, _ = await open_proctor(a, "live5", token)  # keeps reading throughout
        noisy = [kit.client(a, "live5", make_token(f"noisy{i}")) for i in range(4)]

        async def shout(c: ExamClient) -> int:
            # ~3 MB each, 12 MB in all: far more than the kernel buffers between the server and the slow proctor hold
            await c.connect()
            await c.hello()
            for _ in range(60):
                ids = [await c.send_request("event", kind="blur", detail=detail) for _ in range(50)]
                for rid in ids:
                    assert (await c.reply(rid))["t"] == "ack"
            return 3000

        sent = sum(await asyncio.gather(*(shout(c) for c in noisy)))
        for c in noisy:
            await update_for(good, c.welcome["attempt"], timeout=5.0, events=3000)

        data, closed = await asyncio.to_thread(_read_to_end, slow, 10.0)
        slow.close()
        assert closed, ("the server kept a proctor that does not read", len(data), data.count(b'"t":"update"'))
        assert data.count(b'"t":"update"') < sent / 2, (data.count(b'"t":"update"'), sent)
        assert not good.closed.is_set()

        again, _, snapshot = await open_proctor(a, "live5", token)
        assert [(r["events"], r["connected"]) for r in snapshot["attempts"]] == [(3000, True)] * 4
        for p in (again, good):
            await p.close()
        for c in noisy:
            await c.close()

    arun(body(), timeout=60)
