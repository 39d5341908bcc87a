"""The candidate side of the protocol: one attempt per connection.

Every change goes engine first (the pure rules decide), then Redis (a
compare-and-set commit), then the wire (the ack): an ack is sent only after the
commit returned. When the commit finds the attempt changed under it (a
proctor, the sweeper, another node), the session reloads and recomputes.
"""

from __future__ import annotations

from typing import Any

import engine
from engine import FINAL, Exam, Layout, Refused, State
from engine.ids import is_exam_id
from protocol import (
    Ack,
    Batch,
    CloseCode,
    Disconnect,
    ErrorCode,
    Notice,
    Pong,
    RequestError,
    ResultMsg,
    StateChange,
    Time,
    Welcome,
    parse_request,
)
from protocol import candidate as wire
from services import commits, losses
from services.expiry import expire
from storage.attempts import Snapshot, attempt_id, claims_base, from_record

from .auth import Claims
from .ratelimit import Bucket
from . import connection
from .connection import Connection
from .context import Context


def result_message(result: dict[str, Any]) -> dict[str, Any]:
    return ResultMsg(result["score"], result["max_score"], result["percent"], result["passed"]).to_wire()


class CandidateSession:
    """One candidate's attempt of one exam, over one connection."""

    def __init__(self, ctx: Context, conn: Connection, exam_id: str) -> None:
        self.ctx = ctx
        self.conn = conn
        self.exam_id = exam_id
        self.snap: Snapshot | None = None
        self.exam: Exam | None = None
        self.layout: Layout | None = None
        self.sent_hi = 0  # candidate positions [0, sent_hi) were pushed ahead by prefetch
        self.archived = False  # served from the results store: final and read-only
        self.claim = 0  # the number of this connection's claim of the attempt (claim.lua), once made
        self.held = False  # counted in this node's presence
        self.lost = False  # the store had lost acknowledged work of the attempt (told in ``welcome.lost``)
        s = ctx.settings
        self.events = Bucket.full(s.event_rate_per_s, s.event_burst, 1e9, conn.loop_time())

    # -- opening ---------------------------------------------------------------------

    async def open(self, conn: Connection, claims: Claims) -> None:
        ctx = self.ctx
        if claims.role != "candidate" or not claims.may_use(self.exam_id):
            raise Disconnect(CloseCode.FORBIDDEN, "this token may not take this exam")
        if not is_exam_id(self.exam_id):
            raise Disconnect(CloseCode.NO_EXAM, "no such exam")
        aid = attempt_id(ctx.secret, self.exam_id, claims.sub)
        hello = conn.hello
        ev = losses.evidence(ctx.secret, aid, hello.acked if hello else None, hello.ticket if hello else None)
        loss: tuple[str, int, str] | None = None  # (kind, last_id found, how the clock was set)
        exam: Exam | None = None
        snap = await ctx.attempts.load(aid)
        if snap is None:
            # a persisted attempt whose Redis keys expired: the store has it; never start afresh
            record = await ctx.results.get_result(aid)  # StoreUnavailable closes 1013: retry later
            if record is not None:
                snap = from_record(record)
                self.archived = True
        if snap is None and ev.highest > 0:
            # Redis has no such attempt, the results store neither, and the client had acks: a loss
            restored = await losses.restore(ctx.core, attempt_id=aid, exam_id=self.exam_id, user=claims.sub,
                                            name=claims.name, ev=ev)  # fmt: skip
            if restored is None:
                raise Disconnect(CloseCode.NO_EXAM, "no such exam")
            exam, snap = restored.exam, restored.snap
            if snap is not None:
                loss = ("missing", 0, restored.clock)
            else:  # another connection put it back first: what it wrote is judged below
                snap = await ctx.attempts.load(aid)
                exam = None
                if snap is None:  # never a fresh attempt for a client that had acks
                    raise Disconnect(CloseCode.INTERNAL, "attempt vanished")
        if snap is None:
            exam = await ctx.exams.current(self.exam_id)
            if exam is None:
                raise Disconnect(CloseCode.NO_EXAM, "no such exam")
            seed = engine.derive_seed(ctx.secret, self.exam_id, claims.sub)
            fresh = engine.new_attempt(id=aid, exam=exam, user=claims.sub, name=claims.name, seed=seed, now=ctx.clock())
            await ctx.attempts.create(fresh, claims_from=claims_base(ctx.clock()))
            snap = await ctx.attempts.load(aid)
            assert snap is not None
        elif exam is None or exam.version != snap.attempt.exam_version:
            exam = await ctx.exams.get(self.exam_id, snap.attempt.exam_version)
            if exam is None:
                raise Disconnect(CloseCode.NO_EXAM, "this exam version no longer exists")
        self.exam, self.snap = exam, snap
        self.layout = engine.layout(exam, snap.attempt.seed)
        conn.log_fields.update(attempt=aid, exam=self.exam_id)

        if not self.archived:
            ctx.hub.add(aid, conn)  # before the claim: a newer claim's message cannot be missed
            claimed = await ctx.attempts.claim(aid, conn.conn_id)
            if claimed is not None:
                self.claim = claimed.claim
                if not ctx.hub.claimed(aid, conn, claimed.claim):  # a newer claim came first: the newest wins
                    raise Disconnect(CloseCode.SUPERSEDED, "another connection took over this attempt")
                # the older connection may have committed since the load: welcome's last_id and answers must include it
                if claimed.ver != snap.ver:
                    snap = self.snap = await ctx.attempts.load(aid) or snap
            ctx.presence.add(self.exam_id, aid)
            self.held = True
            now = ctx.clock()
            await ctx.live.present(self.exam_id, aid, now, snap.ver, engine.progress(snap.attempt, exam.total, now, snap.result),
                                   claim=self.claim)
            # as of the claim no other connection writes: a live attempt behind what the client saw acknowledged
            # lost writes (a failover, a restart that kept an older copy). A final one is not judged: a review
            # fetch after the end is acknowledged without being recorded.
            if loss is None and snap.attempt.state not in FINAL and ev.highest > snap.attempt.last_id:
                loss = ("behind", snap.attempt.last_id, "kept")
            if loss is not None:
                kind, found, how = loss
                self.lost = True
                snap = self.snap = await losses.report(ctx.core, snap, exam, ev, kind=kind, found=found, clock=how,
                                                       fields=dict(conn.log_fields))  # fmt: skip
        ctx.event("connect", encoding=conn.encoding.name.lower() if conn.encoding else None, **conn.log_fields)
        await self._expire_if_due()
        await self._welcome()
        conn.every(ctx.settings.time_push_interval_s, ("tick",))

    async def _welcome(self) -> None:
        a, exam, now = self.snap.attempt, self.exam, self.ctx.clock()  # type: ignore[union-attr]
        await self.conn.send(
            Welcome(
                attempt=a.id,
                exam={
                    "id": exam.id,
                    "title": exam.title,
                    "duration_ms": exam.duration_ms,
                    "total": exam.total,
                    "navigation": exam.navigation,
                    "version": exam.version,
                    "show_result": exam.show_result,
                },
                state=a.state.value,
                server_time=now,
                deadline=a.deadline(now),
                remaining_ms=a.remaining_ms(now),
                last_id=a.last_id,
                answers=dict(a.answers),
                flags=sorted(a.flags),
                index=a.index,
                ticket=self._ticket(now),
                lost=self.lost,
            ).to_wire()
        )
        if a.state in (State.ACTIVE, State.PAUSED):
            size = self.ctx.settings.batch_size
            await self._push_batch((a.index // size) * size)
            await self._prefetch(a.index)
        elif a.state in FINAL:
            await self._send_result()

    async def close(self) -> None:
        if self.snap is not None and not self.archived:
            ctx, aid = self.ctx, self.snap.attempt.id
            ctx.hub.remove(aid, self.conn)
            if self.held:  # a connection closed before it was counted must not uncount another one
                self.held = False
                ctx.presence.remove(self.exam_id, aid)
            # only the owner's close marks the attempt absent, and not once a newer connection (any node)
            # announced itself, even one that claimed after the release: absent.lua compares claim numbers
            if await ctx.attempts.release(aid, self.conn.conn_id):
                await ctx.live.absent(self.exam_id, aid, claim=self.claim)

    # -- requests --------------------------------------------------------------------

    async def request(self, message: dict[str, Any]) -> None:
        req = parse_request(message)
        if isinstance(req, wire.Ping):
            await self.conn.send(Pong(req.ct, self.ctx.clock()).to_wire())
        elif isinstance(req, wire.Answer):
            await self._apply(engine.Answer(req.id, req.q, req.value), req.id)
        elif isinstance(req, wire.Goto):
            await self._apply(engine.Goto(req.id, req.index), req.id)
        elif isinstance(req, wire.Flag):
            await self._apply(engine.Flag(req.id, req.q, req.on), req.id)
        elif isinstance(req, wire.Fetch):
            await self._fetch(req)
        elif isinstance(req, wire.Start):
            await self._apply(engine.Start(req.id), req.id)
        elif isinstance(req, wire.Submit):
            await self._apply(engine.Submit(req.id), req.id)
        elif isinstance(req, wire.Event):
            if not self.events.take(self.conn.loop_time()):
                raise RequestError(ErrorCode.RATE_LIMITED, "too many events; slow down", req.id)
            entry = {"kind": req.kind, "detail": req.detail, "at": self.ctx.clock()}
            await self._apply(engine.Event(req.id, req.kind), req.id, event=entry)
        else:  # a second hello
            raise RequestError(ErrorCode.BAD_REQUEST, "already authenticated")

    async def _fetch(self, req: wire.Fetch) -> None:
        exam = self.exam
        if req.start >= exam.total:  # type: ignore[union-attr]
            raise RequestError(ErrorCode.BAD_REQUEST, f"from must be below {exam.total}", req.id)  # type: ignore[union-attr]
        if await self._apply(engine.Fetch(req.id), req.id):
            await self._push_batch(req.start, req.count, prefetch=False)

    async def _apply(self, cmd: object, req_id: int, *, event: dict[str, Any] | None = None) -> bool:
        """Apply a candidate command and ack it; False when it was refused with ``time_up``."""
        try:
            done = await commits.apply(
                self.ctx.core, cmd, snap=self.snap, exam=self.exam, reload=self._reload, owner=self.conn.conn_id, event=event
            )
        except Refused as refused:
            err = RequestError(ErrorCode(refused.code), refused.message, req_id)
            if refused.code != "time_up":
                raise err from None
            await self.conn.send_error(err)
            await self._expire_if_due(loud=True)
            return False
        except commits.Superseded:
            raise Disconnect(CloseCode.SUPERSEDED, "another connection took over this attempt") from None
        except commits.Gone:
            raise Disconnect(CloseCode.INTERNAL, "attempt vanished") from None
        except commits.Busy:
            raise RequestError(ErrorCode.INTERNAL, "attempt busy; retry", req_id) from None
        out = done.outcome
        assert out is not None
        if out.duplicate:
            await self.conn.send(Ack(req_id, {"dup": True}).to_wire())
            return True
        self.snap = done.snap
        await self.conn.send(Ack(req_id, dict(out.reply)).to_wire())
        await self._after(cmd, out.ended, out.time_changed, done.now)
        return True

    async def _reload(self, stale: Snapshot) -> Snapshot:
        """After a lost race: reload, telling the candidate what changed under it."""
        await self.refresh()
        assert self.snap is not None
        return self.snap

    async def _after(self, cmd: object, ended: bool, time_changed: bool, now: int) -> None:
        """What follows an applied request's ack: clock, state and question pushes."""
        a = self.snap.attempt  # type: ignore[union-attr]
        if ended:
            await self.conn.send(StateChange(a.state.value, a.end_reason).to_wire())
            await self._send_result()
            return
        if time_changed:
            await self._send_time(now)
        if isinstance(cmd, engine.Start):
            if self.sent_hi == 0:
                await self._push_batch(0)
        elif isinstance(cmd, engine.Goto):
            await self._prefetch(cmd.index)
        elif isinstance(cmd, (engine.Answer, engine.Flag)):
            await self._prefetch(self.layout.position.get(cmd.q, 0))  # type: ignore[union-attr]

    # -- pushes ----------------------------------------------------------------------

    async def push(self, item: tuple[Any, ...]) -> None:
        kind = item[0]
        if kind == "superseded":
            raise Disconnect(CloseCode.SUPERSEDED, "another connection took over this attempt")
        if kind == "changed":
            if item[1] == 0 or item[1] > self.snap.ver:  # type: ignore[union-attr]
                await self.refresh()
        elif kind == "tick":
            await self._send_time(self.ctx.clock())
        elif kind == "notice":
            message = item[1]
            await self.conn.send(Notice(str(message.get("text", "")), str(message.get("from", ""))).to_wire())

    async def refresh(self) -> None:
        """Reload the attempt and tell the candidate what changed under it."""
        old = self.snap
        new = await self.ctx.attempts.load(old.attempt.id)  # type: ignore[union-attr]
        if new is None:
            if old is not None and old.attempt.state in FINAL:
                # persisted, and its keys expired while this connection stayed for review:
                # a final attempt never changes, so what the session holds is still true
                return
            raise Disconnect(CloseCode.INTERNAL, "attempt vanished")
        if new.owner and new.owner != self.conn.conn_id:
            raise Disconnect(CloseCode.SUPERSEDED, "another connection took over this attempt")
        self.snap = new
        a, b = old.attempt, new.attempt  # type: ignore[union-attr]
        now = self.ctx.clock()
        if a.state is not b.state:
            reason = b.end_reason if b.state in FINAL else ("paused" if b.state is State.PAUSED else "resumed")
            await self.conn.send(StateChange(b.state.value, reason).to_wire())
        if a.state is not b.state or a.deadline(now) != b.deadline(now) or a.extended_ms != b.extended_ms:
            await self._send_time(now)
        if b.state in FINAL and a.state not in FINAL:
            await self._send_result()
        elif b.state is State.ACTIVE and a.state is State.READY and self.sent_hi == 0:
            await self._push_batch(0)

    async def _refresh_quietly(self) -> None:
        snap = await self.ctx.attempts.load(self.snap.attempt.id)  # type: ignore[union-attr]
        if snap is not None:
            self.snap = snap

    async def _expire_if_due(self, *, loud: bool = False) -> None:
        """End the attempt now if its time (plus grace) is over, rather than wait for the sweeper.

        ``loud`` tells the candidate (``state``, ``time``, ``result``); otherwise
        only the session's snapshot is brought up to date.
        """
        a, now = self.snap.attempt, self.ctx.clock()  # type: ignore[union-attr]
        if a.state is State.ACTIVE and a.deadline(now) + self.ctx.settings.answer_grace_ms <= now:  # type: ignore[operator]
            await expire(self.ctx.core, a.id)
            if loud:
                await self.refresh()
            else:
                await self._refresh_quietly()

    async def _send_time(self, now: int) -> None:
        a = self.snap.attempt  # type: ignore[union-attr]
        await self.conn.send(Time(now, a.deadline(now), a.remaining_ms(now), a.state.value, self._ticket(now)).to_wire())

    def _ticket(self, now: int) -> str | None:
        """The attempt's clock, signed, for the client to send back in ``hello`` (none once final)."""
        if self.archived or self.snap is None:
            return None
        clock = engine.clock_of(self.snap.attempt, now)
        return None if clock is None else engine.seal(self.ctx.secret, clock)

    async def _send_result(self) -> None:
        if self.exam is not None and self.exam.show_result and self.snap is not None and self.snap.result:
            await self.conn.send(result_message(self.snap.result))

    async def _push_batch(self, start: int, count: int | None = None, *, prefetch: bool = True) -> None:
        exam = self.exam
        assert exam is not None and self.layout is not None
        count = count or self.ctx.settings.batch_size
        questions = engine.batch(exam, self.layout, start, count)
        if not questions:
            return
        await self.conn.send(Batch(start, questions, exam.total).to_wire())
        end = start + len(questions)
        if prefetch or start <= self.sent_hi:
            self.sent_hi = max(self.sent_hi, end)

    async def _prefetch(self, position: int) -> None:
        """Push the next batch once the candidate is in the second half of what it holds."""
        size = self.ctx.settings.batch_size
        total = self.exam.total  # type: ignore[union-attr]
        while self.sent_hi < total and position >= self.sent_hi - (size + 1) // 2:
            before = self.sent_hi
            await self._push_batch(self.sent_hi)
            if self.sent_hi == before:
                break


#: ``GET /v1/exams/{exam_id}/attempt`` (WebSocket)
endpoint = connection.endpoint(CandidateSession, role="candidate")
