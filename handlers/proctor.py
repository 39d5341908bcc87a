"""The proctor side of the protocol: watch every attempt of one exam, and act on them.

A proctor connection joins its node's ``Watch`` of the exam (see
``handlers/live.py``): ``welcome``, ``snapshot``, then coalesced ``update``s.
A node watches at most ``max_watched_exams`` exams: a proctor of one more is
closed with 1013 (try again later, or on another node) before its welcome.
Actions go engine first, then one compare-and-set commit that records the
action with the attempt, publishes the change to the candidate's node
(wherever it is) and the attempt's new summary to every proctor watching.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import engine
from engine import FINAL, Refused
from engine.ids import is_attempt_id, is_exam_id
from protocol import Ack, CloseCode, Disconnect, ErrorCode, Pong, RequestError
from protocol import proctor as wire
from protocol.candidate import Ping
from services import commits
from storage.attempts import Snapshot

from .auth import Claims
from . import connection
from .connection import Connection
from .context import Context
from .live import Watch, WatchLimit

#: Attempts acted on at once by an ``all: true`` request.
_BULK_CONCURRENCY = 32


class ProctorSession:
    """One proctor watching and acting on every attempt of one exam, over one connection."""

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
        try:
            self.watch = await ctx.watches.join(self.exam_id, conn)
        except WatchLimit as full:
            ctx.event("refused", reason="watched_exams", limit=full.limit, **conn.log_fields)
            raise Disconnect(
                CloseCode.TRY_AGAIN, f"this node is watching its limit of {full.limit} exams; retry later or on another node"
            ) from None
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
        target = getattr(req, "attempt", None)
        if target is not None and not is_attempt_id(target):  # it names Redis keys: the one attempt id rule
            raise RequestError(ErrorCode.NOT_FOUND, "no such attempt in this exam", req.id)
        by = self._by()
        cmd: object
        if isinstance(req, wire.Extend):
            cmd, action = engine.Extend(req.seconds * 1000, by["by"]), {"action": "extend", "seconds": req.seconds}
        elif isinstance(req, wire.Pause):
            cmd, action = engine.Pause(by["by"]), {"action": "pause"}
        elif isinstance(req, wire.Resume):
            cmd, action = engine.Resume(by["by"]), {"action": "resume"}
        elif isinstance(req, wire.Terminate):
            cmd, action = engine.Terminate(req.reason, by["by"]), {"action": "terminate", "reason": req.reason}
        else:
            assert isinstance(req, wire.Message)
            await self._message(req, by)
            return
        if req.attempt is None:  # type: ignore[union-attr]
            await self.conn.send(Ack(req.id, await self._bulk(cmd, {**action, **by})).to_wire())
            return
        reply = await self._act(req.attempt, cmd, {**action, **by}, req.id)  # type: ignore[union-attr]
        await self.conn.send(Ack(req.id, reply).to_wire())

    def _by(self) -> dict[str, Any]:
        c = self.claims
        assert c is not None
        return {"by": c.sub, "by_name": c.name, "role": c.role}

    def _in_exam(self, rid: int) -> Callable[[Snapshot], None]:
        def check(snap: Snapshot) -> None:
            if snap.attempt.exam_id != self.exam_id:
                raise RequestError(ErrorCode.NOT_FOUND, "no such attempt in this exam", rid)

        return check

    async def _act(self, aid: str, cmd: object, action: dict[str, Any], rid: int) -> dict[str, Any]:
        """Apply one action to one attempt of this exam; the ack's fields, or ``RequestError``."""
        try:
            done = await commits.apply(self.ctx.core, cmd, attempt_id=aid, check=self._in_exam(rid), notify=True, action=action)
        except Refused as refused:
            raise RequestError(ErrorCode(refused.code), refused.message, rid) from None
        except commits.Gone:
            err = await self._gone(aid, rid)
            raise err from None
        except commits.ExamGone:
            raise RequestError(ErrorCode.NOT_FOUND, "this attempt's exam version no longer exists", rid) from None
        except commits.Busy:
            raise RequestError(ErrorCode.INTERNAL, "attempt busy; retry", rid) from None
        new, now = done.snap.attempt, done.now
        self.ctx.event(action["action"], attempt=aid, **self.conn.log_fields)
        return {"attempt": aid, "state": new.state.value, "deadline": new.deadline(now), "remaining_ms": new.remaining_ms(now)}

    async def _gone(self, aid: str, rid: int) -> RequestError:
        """The refusal for an attempt that is not in Redis.

        One persisted and expired from Redis is still in the exam's snapshot:
        it has ended (``not_active``), as it was before its keys expired. Any
        other is ``not_found``. A bulk action (``rid`` 0) skips the
        attempt either way and does not look.
        """
        record = await self.ctx.results.get_result(aid) if rid else None
        if record is not None and record.get("exam") == self.exam_id:
            return RequestError(ErrorCode.NOT_ACTIVE, "the attempt has ended", rid)
        return RequestError(ErrorCode.NOT_FOUND, "no such attempt in this exam", rid)

    async def _bulk(self, cmd: object, action: dict[str, Any]) -> dict[str, Any]:
        """Apply an action to every attempt of the exam where it is allowed."""
        ids = await self.ctx.live.roster(self.exam_id)
        gate = asyncio.Semaphore(_BULK_CONCURRENCY)
        bulk = {**action, "bulk": True}

        async def one(aid: str) -> bool:
            async with gate:
                try:
                    await self._act(aid, cmd, bulk, 0)
                    return True
                except RequestError:
                    return False

        done = await asyncio.gather(*(one(aid) for aid in ids))
        applied = sum(done)
        return {"applied": applied, "skipped": len(done) - applied}

    async def _message(self, req: wire.Message, by: dict[str, Any]) -> None:
        """Record the message with the attempt and push it to the candidate's connection, wherever it is."""
        ctx, in_exam = self.ctx, self._in_exam(req.id)

        def check(snap: Snapshot) -> None:
            in_exam(snap)
            if snap.attempt.state in FINAL:
                raise RequestError(ErrorCode.NOT_ACTIVE, "the attempt has ended", req.id)

        assert self.claims is not None
        notice = {"a": req.attempt, "k": "notice", "text": req.text, "from": self.claims.signature}
        try:
            done = await commits.apply(
                ctx.core, None, attempt_id=req.attempt, check=check, control=notice, action={"action": "message", "text": req.text, **by}
            )
        except commits.Gone:
            err = await self._gone(req.attempt, req.id)
            raise err from None
        except commits.ExamGone:
            raise RequestError(ErrorCode.NOT_FOUND, "no such attempt in this exam", req.id) from None
        except commits.Busy:
            raise RequestError(ErrorCode.INTERNAL, "attempt busy; retry", req.id) from None
        seen = await ctx.live.last_seen(self.exam_id, req.attempt)
        connected = seen is not None and seen >= done.now - ctx.settings.presence_stale_ms
        ctx.event("message", attempt=req.attempt, **self.conn.log_fields)
        await self.conn.send(Ack(req.id, {"attempt": req.attempt, "connected": connected}).to_wire())


#: ``GET /v1/exams/{exam_id}/proctor`` (WebSocket)
endpoint = connection.endpoint(ProctorSession, role="proctor")
