"""HTTP endpoints: health, exam definitions, attempts, results and their analysis.

Errors are JSON ``{"error": code, "message": ...}``; a results store that
cannot be reached is 503 ``store_unavailable`` (the engine keeps serving
attempts: nothing on the answer path touches the store).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from engine import FINAL, ExamInvalid, State, number
from engine.ids import EXAM_ID_RULE, is_attempt_id, is_exam_id
from services.reports import analysis, csv_chunks
from storage import health
from storage.attempts import from_record
from storage.results import StoreUnavailable

from .auth import BadToken, Claims, bearer
from .context import Context

#: ``/readyz`` answers within about this long, whatever Redis or the store do.
READY_CHECK_S = 3.0


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status)


async def _claims(request: Request) -> Claims | JSONResponse:
    ctx: Context = request.app.state.ctx
    try:
        return await ctx.auth.verify(bearer(request.headers))
    except BadToken as exc:
        return _error(401, "unauthorized", str(exc))


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    """``GET /metrics``: the node's Prometheus metrics (text exposition). Not for the public: the shipped nginx denies it."""
    ctx: Context = request.app.state.ctx
    body, content_type = ctx.core.metrics.render()
    return Response(body, media_type=content_type)


async def readyz(request: Request) -> Response:
    """Ready while Redis answers; says whether finished attempts are reaching the results store.

    ``persistence`` is ``"degraded"`` when no worker has beaten for
    ``worker_stale_s``, the oldest outbox entry is older than
    ``outbox_stale_s``, or an embedded child keeps dying. The node still
    serves candidates then (answers are safe in Redis), so the status stays
    200 unless ``readyz_fail_degraded`` is set.
    """
    ctx: Context = request.app.state.ctx
    s = ctx.settings
    try:
        async with asyncio.timeout(READY_CHECK_S):
            facts = await health.read(ctx.redis)  # one round trip: it answers, or Redis is unavailable
    except (RedisError, OSError, TimeoutError):
        return JSONResponse({"status": "unavailable", "redis": False, "node": s.node_id}, status_code=503)
    try:
        async with asyncio.timeout(READY_CHECK_S):
            await ctx.results.ping()
        store = True
    except (StoreUnavailable, TimeoutError):
        store = False  # attempts are still served; results wait in the outbox
    problems = facts.problems(worker_stale_ms=s.worker_stale_s * 1000, outbox_stale_ms=s.outbox_stale_s * 1000)
    body: dict[str, Any] = {"status": "ready", "redis": True, "store": store, "node": s.node_id}
    children = getattr(request.app.state, "children", None)
    if children is not None:
        body["children"] = children.status()
        problems += [f"embedded {name} keeps exiting" for name in children.failing()]
    body.update(persistence="degraded" if problems else "ok", problems=problems, **facts.to_json())
    if problems and s.readyz_fail_degraded:
        body["status"] = "unavailable"
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)


async def put_exam(request: Request) -> Response:
    """``PUT /v1/exams/{exam_id}``: admin only; 400 lists every problem by JSON path."""
    ctx: Context = request.app.state.ctx
    claims = await _claims(request)
    if isinstance(claims, JSONResponse):
        return claims
    exam_id = request.path_params["exam_id"]
    if claims.role != "admin" or not claims.may_use(exam_id):
        return _error(403, "forbidden", "an admin token for this exam is required")
    if not is_exam_id(exam_id):
        return _error(400, "invalid_exam", "invalid exam id", problems=[f"id: must be {EXAM_ID_RULE}"])
    body = await _body(request, ctx.settings.max_exam_bytes)
    if body is None:
        return _error(413, "too_large", f"exam definitions are limited to {ctx.settings.max_exam_bytes} bytes")
    try:
        doc = json.loads(body, parse_constant=_no_constant)
    except ValueError:
        return _error(400, "invalid_exam", "body is not JSON", problems=["$: not valid JSON"])
    try:
        exam, created = await ctx.exams.put(doc, exam_id=exam_id)
    except ExamInvalid as exc:
        return _error(400, "invalid_exam", f"{len(exc.problems)} problem(s)", problems=exc.problems)
    except StoreUnavailable:
        return _unavailable()
    ctx.event("exam_put", exam=exam.id, version=exam.version, created=created, by=claims.sub)
    return JSONResponse({"id": exam.id, "version": exam.version, "created": created, "total": exam.total})


async def _body(request: Request, limit: int) -> bytes | None:
    """The request body, or None past ``limit`` bytes: read no further than that, whatever the client sends."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def list_exams(request: Request) -> Response:
    """``GET /v1/exams``: the exams a proctor/admin token may watch, current versions (by id)."""
    ctx: Context = request.app.state.ctx
    claims = await _claims(request)
    if isinstance(claims, JSONResponse):
        return claims
    if not claims.is_staff:
        return _error(403, "forbidden", "a proctor or admin token is required")
    try:
        ids = sorted(claims.exams) if claims.exams is not None else await ctx.results.exam_ids()
        exams = [await ctx.exams.current(i) for i in ids if is_exam_id(i)]
    except StoreUnavailable:
        return _unavailable()
    return JSONResponse(
        {
            "exams": [
                {
                    "id": e.id,
                    "title": e.title,
                    "version": e.version,
                    "total": e.total,
                    "duration_ms": e.duration_ms,
                    "navigation": e.navigation,
                }
                for e in exams
                if e is not None
            ]
        }
    )


async def get_exam(request: Request) -> Response:
    """``GET /v1/exams/{exam_id}``: public facts of the current version (any valid token)."""
    ctx: Context = request.app.state.ctx
    claims = await _claims(request)
    if isinstance(claims, JSONResponse):
        return claims
    exam_id = request.path_params["exam_id"]
    if not claims.may_use(exam_id):
        return _error(403, "forbidden", "this token may not see this exam")
    try:
        exam = await ctx.exams.current(exam_id) if is_exam_id(exam_id) else None
    except StoreUnavailable:
        return _unavailable()
    if exam is None:
        return _error(404, "not_found", "no such exam")
    return JSONResponse(
        {
            "id": exam.id,
            "version": exam.version,
            "title": exam.title,
            "duration_ms": exam.duration_ms,
            "total": exam.total,
            "navigation": exam.navigation,
            "max_score": number(exam.max_score),
        }
    )


async def get_attempt(request: Request) -> Response:
    """``GET /v1/attempts/{attempt}``: the candidate's own, or any of a proctor/admin's exams.

    Read from Redis while the attempt is live there, from the results store
    once it has been persisted and its Redis keys have expired.
    """
    ctx: Context = request.app.state.ctx
    claims = await _claims(request)
    if isinstance(claims, JSONResponse):
        return claims
    aid = request.path_params["attempt"]
    if not is_attempt_id(aid):
        return _error(404, "not_found", "no such attempt")
    snap = await ctx.attempts.load(aid)
    record: dict[str, Any] | None = None
    try:
        if snap is None:
            record = await ctx.results.get_result(aid)
            if record is None:
                return _error(404, "not_found", "no such attempt")
            snap = from_record(record)
        a = snap.attempt
        if not _may_see(claims, a.exam_id, a.user):  # indistinguishable from a missing attempt
            return _error(404, "not_found", "no such attempt")
        exam = await ctx.exams.get(a.exam_id, a.exam_version)
    except StoreUnavailable:
        return _unavailable()
    show = claims.is_staff or (exam is not None and exam.show_result)
    now = ctx.clock()
    body: dict[str, Any] = {
        "attempt": a.id,
        "exam": a.exam_id,
        "exam_version": a.exam_version,
        "user": a.user,
        "name": a.name,
        "state": a.state.value,
        "started_at": a.started_at,
        "ended_at": a.ended_at,
        "end_reason": a.end_reason,
        "deadline": a.deadline(now),
        "remaining_ms": a.remaining_ms(now),
        "seed": a.seed,
        "score": None,
        "max_score": None,
        "percent": None,
        "passed": None,
        "persisted": bool(snap.fields.get("persisted")),
    }
    result = snap.result if a.state in FINAL else None
    if result is not None and show:
        body.update(score=result["score"], max_score=result["max_score"], percent=result["percent"], passed=result["passed"])
        body["questions"] = result["questions"]
    else:
        body["questions"] = [{"id": q, "value": v} for q, v in sorted(a.answers.items())]
    if a.state is State.READY:
        body["deadline"] = None
    if claims.is_staff:  # who did what to this attempt, and when
        body["actions"] = record.get("actions") or [] if record is not None else await ctx.attempts.actions(aid)
    return JSONResponse(body)


def _may_see(claims: Claims, exam_id: str, user: str) -> bool:
    return claims.may_use(exam_id) and (claims.is_staff or claims.sub == user)


async def _staff(request: Request) -> tuple[Context, str] | JSONResponse:
    """The context and exam id of a staff request on ``/v1/exams/{exam_id}/…``, or the error response."""
    ctx: Context = request.app.state.ctx
    claims = await _claims(request)
    if isinstance(claims, JSONResponse):
        return claims
    exam_id = request.path_params["exam_id"]
    if not claims.is_staff or not claims.may_use(exam_id):
        return _error(403, "forbidden", "a proctor or admin token for this exam is required")
    if not is_exam_id(exam_id):
        return _error(404, "not_found", "no such exam")
    return ctx, exam_id


def _int_param(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}")
    return int(raw)


async def get_results(request: Request) -> Response:
    """``GET /v1/exams/{exam_id}/results``: persisted results, proctor/admin only.

    JSON pages in (ended_at, attempt) order: ``?limit=`` (1-5000, default
    1000), ``?after=`` (the ``next`` cursor of the previous page),
    ``?version=``. ``?format=csv`` streams every result as CSV instead.
    """
    staff = await _staff(request)
    if isinstance(staff, JSONResponse):
        return staff
    ctx, exam_id = staff
    try:
        limit = _int_param(request, "limit", 1000, 1, 5000)
        version = _int_param(request, "version", None, 1, 2**31)
        after = _cursor(request.query_params.get("after"))
    except ValueError as exc:
        return _error(400, "bad_request", str(exc))
    fmt = request.query_params.get("format", "json")
    if fmt not in ("json", "csv"):
        return _error(400, "bad_request", "format must be json or csv")
    try:
        if await ctx.results.exam_version(exam_id) is None:  # as GET /v1/exams/{id}: an unknown exam is 404
            return _error(404, "not_found", "no such exam")
        if fmt == "csv":
            await ctx.results.ping()
            return StreamingResponse(
                csv_chunks(ctx.core, exam_id, version=version),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{exam_id}-results.csv"'},
            )
        page = await ctx.results.results(exam_id, version=version, after=after, limit=limit)  # type: ignore[arg-type]
    except StoreUnavailable:
        return _unavailable()
    nxt = f"{page[-1]['ended_at']}:{page[-1]['attempt']}" if len(page) == limit else None
    return JSONResponse({"exam": exam_id, "results": page, "next": nxt})


def _cursor(raw: str | None) -> tuple[int, str] | None:
    if not raw:
        return None
    ended, _, attempt = raw.partition(":")
    if not ended.isdigit() or not is_attempt_id(attempt):
        raise ValueError("after must be the next cursor of a previous page")
    return int(ended), attempt


async def get_analysis(request: Request) -> Response:
    """``GET /v1/exams/{exam_id}/analysis``: item analysis of a version (``?version=``, default current), staff only.

    Served from the store while it covers every result; recomputed otherwise
    (or with ``?refresh=1``).
    """
    staff = await _staff(request)
    if isinstance(staff, JSONResponse):
        return staff
    ctx, exam_id = staff
    try:
        version = _int_param(request, "version", None, 1, 2**31)
    except ValueError as exc:
        return _error(400, "bad_request", str(exc))
    try:
        doc = await analysis(ctx.core, exam_id, version, refresh=request.query_params.get("refresh") in ("1", "true"))
    except StoreUnavailable:
        return _unavailable()
    if doc is None:
        return _error(404, "not_found", "no such exam or version")
    return JSONResponse(doc)


def _unavailable() -> JSONResponse:
    return _error(503, "store_unavailable", "the results store is unavailable; retry shortly")


def _no_constant(name: str) -> Any:
    raise ValueError(name)
