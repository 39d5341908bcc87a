"""The proctor side of the protocol: watch every attempt of one exam, and act on them.

A proctor connection joins its node's ``Watch`` of the exam (see
``handlers/live.py``): ``welcome``, ``snapshot``, then coalesced ``update``s.
Actions go engine first, then one compare-and-set commit that records the
action with the attempt, publishes the change to the candidate's node
(wherever it is) and the attempt's new summary to every proctor watching.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from starlette.websockets import WebSocket

import engine
from engine import FINAL, Refused, State
from engine.ids import is_exam_id
from protocol import Ack, CloseCode, Disconnect, ErrorCode, Pong, RequestError
from protocol import proctor as wire
from protocol.candidate import Ping
from storage import keys
from storage.attempts import Commit, Snapshot

from .auth import Claims
from .connection import Connection
from .context import Context
from .live import Watch

_COMMIT_TRIES = 8
#: Attempts acted on at once by an ``all: true`` request.
_BULK_CONCURRENCY = 32


async def endpoint(ws: WebSocket) -> None:
    """``GET /v1/exams/{exam_id}/proctor`` (WebSocket)."""
    ctx: Context = ws.app.state.ctx
    conn = Connection(ctx, ws)
    await conn.run(ProctorSession(ctx, conn, ws.path_params["exam_id"]))


class ProctorSession:
    def __init__(self, ctx: Context, conn: Connection, exam_id: str) -> None:
        self.ctx = ctx
        self.conn = conn
        self.exam_id = exam_id
        self.claims: Claims | None = None
        self.watch: Watch | None = None

    async def open(self, conn: Connection, claims: Claims) -> None:
        ctx = self.ctx
        if not claims.is_staff or not claims.may_use(self.exam_id):
            raise Disconnect(CloseCode.FORBIDDEN, "this token may not proctor this exam")
        if not is_exam_id(self.exam_id):
            raise Disconnect(CloseCode.NO_EXAM, "no such exam")
        exam = await ctx.exams.current(self.exam_id)
        if exam is None:
            raise Disconnect(CloseCode.NO_EXAM, "no such exam")
        self.claims = claims
        conn.log_fields.update(exam=self.exam_id, role=claims.role)
        self.watch = await ctx.watches.join(ctx, self.exam_id, conn)
        ctx.event("proctor_connect", **conn.log_fields)
        await conn.send(
            wire.ProctorWelcome(
                exam={
                    "id": exam.id,
                    "title": exam.title,
                    "duration_ms": exam.duration_ms,
                    "total": exam.total,
                    "navigation": exam.navigation,
                    "version": exam.version,
                },
                server_time=ctx.clock(),
            ).to_wire()
        )
        await conn.send(wire.Snapshot(self.watch.snapshot()).to_wire())

    async def close(self) -> None:
        if self.watch is not None:
            self.ctx.watches.leave(self.exam_id, self.conn)

    async def push(self, item: tuple[Any, ...]) -> None:
        if item[0] == "updates":
            for message in item[1]:
                await self.conn.send(message)

    # -- requests --------------------------------------------------------------------

    async def request(self, message: dict[str, Any]) -> None:
        req = wire.parse_proctor_request(message)
        if isinstance(req, Ping):
            await self.conn.send(Pong(req.ct, self.ctx.clock()).to_wire())
            return
        if isinstance(req, wire.Hello):
            raise RequestError(ErrorCode.BAD_REQUEST, "already authenticated")
        by = self._by()
        if isinstance(req, wire.Extend):
            make: Callable[[], object] = lambda: engine.Extend(req.seconds * 1000, by["by"])
            action = {"action": "extend", "seconds": req.seconds}
        elif isinstance(req, wire.Pause):
            make, action = (lambda: engine.Pause(by["by"])), {"action": "pause"}
        elif isinstance(req, wire.Resume):
            make, action = (lambda: engine.Resume(by["by"])), {"action": "resume"}
        elif isinstance(req, wire.Terminate):
            make = lambda: engine.Terminate(req.reason, by["by"])
            action = {"action": "terminate", "reason": req.reason}
        else:
            assert isinstance(req, wire.Message)
            await self._message(req, by)
            return
        if req.attempt is None:  # type: ignore[union-attr]
            await self.conn.send(Ack(req.id, await self._bulk(make, {**action, **by})).to_wire())
            return
        reply = await self._act(req.attempt, make, {**action, **by}, req.id)  # type: ignore[union-attr]
        await self.conn.send(Ack(req.id, reply).to_wire())

    def _by(self) -> dict[str, Any]:
        c = self.claims
        assert c is not None
        return {"by": c.sub, "by_name": c.name, "role": c.role}

    async def _act(self, aid: str, make: Callable[[], object], action: dict[str, Any], rid: int) -> dict[str, Any]:
        """Apply one action to one attempt of this exam; the ack's fields, or ``RequestError``."""
        ctx, grace = self.ctx, self.ctx.settings.answer_grace_ms
        for _ in range(_COMMIT_TRIES):
            snap = await ctx.attempts.load(aid)
            if snap is None or snap.attempt.exam_id != self.exam_id:
                raise RequestError(ErrorCode.NOT_FOUND, "no such attempt in this exam", rid)
            exam = await ctx.exams.get(self.exam_id, snap.attempt.exam_version)
            if exam is None:
                raise RequestError(ErrorCode.NOT_FOUND, "this attempt's exam version no longer exists", rid)
            now = ctx.clock()
            try:
                out = engine.apply(snap.attempt, exam, make(), now=now, grace_ms=grace)
            except Refused as refused:
                raise RequestError(ErrorCode(refused.code), refused.message, rid) from None
            new = out.attempt
            if out.time_changed and new.state is State.ACTIVE:
                await ctx.redis.zadd(keys.DEADLINES, {new.id: new.deadline(now) + grace})
            result = new.result.to_wire() if out.ended and new.result is not None else None
            committed = await ctx.attempts.commit(
                snap,
                new,
                notify=True,
                result=result,
                live=engine.progress(new, exam.total, now, result),
                action={**action, "at": now},
            )
            if isinstance(committed, Snapshot):
                if out.ended:
                    await ctx.redis.zrem(keys.DEADLINES, new.id)
                ctx.event(action["action"], attempt=aid, **self.conn.log_fields)
                return {
                    "attempt": aid,
                    "state": new.state.value,
                    "deadline": new.deadline(now),
                    "remaining_ms": new.remaining_ms(now),
                }
            if committed is Commit.MISSING:
                raise RequestError(ErrorCode.NOT_FOUND, "no such attempt in this exam", rid)
        raise RequestError(ErrorCode.INTERNAL, "attempt busy; retry", rid)

    async def _bulk(self, make: Callable[[], object], action: dict[str, Any]) -> dict[str, Any]:
        """Apply an action to every attempt of the exam where it is allowed."""
        ids = await self.ctx.live.roster(self.exam_id)
        gate = asyncio.Semaphore(_BULK_CONCURRENCY)
        bulk = {**action, "bulk": True}

        async def one(aid: str) -> bool:
            async with gate:
                try:
                    await self._act(aid, make, bulk, 0)
                    return True
                except RequestError:
                    return False

        done = await asyncio.gather(*(one(aid) for aid in ids))
        applied = sum(done)
        return {"applied": applied, "skipped": len(done) - applied}

    async def _message(self, req: wire.Message, by: dict[str, Any]) -> None:
        """Record the message with the attempt and push it to the candidate's connection, wherever it is."""
        ctx = self.ctx
        for _ in range(_COMMIT_TRIES):
            snap = await ctx.attempts.load(req.attempt)
            if snap is None or snap.attempt.exam_id != self.exam_id:
                raise RequestError(ErrorCode.NOT_FOUND, "no such attempt in this exam", req.id)
            if snap.attempt.state in FINAL:
                raise RequestError(ErrorCode.NOT_ACTIVE, "the attempt has ended", req.id)
            now = ctx.clock()
            assert self.claims is not None
            notice = {"a": req.attempt, "k": "notice", "text": req.text, "from": self.claims.signature}
            committed = await ctx.attempts.commit(
                snap, snap.attempt, control=notice, action={"action": "message", "text": req.text, **by, "at": now}
            )
            if isinstance(committed, Snapshot):
                seen = await ctx.live.last_seen(self.exam_id, req.attempt)
                connected = seen is not None and seen >= now - ctx.settings.presence_stale_ms
                ctx.event("message", attempt=req.attempt, **self.conn.log_fields)
                await self.conn.send(Ack(req.id, {"attempt": req.attempt, "connected": connected}).to_wire())
                return
            if committed is Commit.MISSING:
                raise RequestError(ErrorCode.NOT_FOUND, "no such attempt in this exam", req.id)
        raise RequestError(ErrorCode.INTERNAL, "attempt busy; retry", req.id)
