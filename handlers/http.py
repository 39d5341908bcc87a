"""HTTP endpoints: health, exam definitions, attempt results."""

from __future__ import annotations

import json
from typing import Any

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from engine import FINAL, ExamInvalid, State, number

from .auth import BadToken, Claims, bearer
from .candidate import EXAM_ID
from .context import Context

MAX_EXAM_BYTES = 8 * 1024 * 1024


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


async def readyz(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    try:
        await ctx.redis.ping()
    except (RedisError, OSError):
        return JSONResponse({"status": "unavailable", "redis": False}, status_code=503)
    return JSONResponse({"status": "ready", "redis": True, "node": ctx.settings.node_id})


async def put_exam(request: Request) -> Response:
    """``PUT /v1/exams/{exam_id}``: admin only; 400 lists every problem by JSON path."""
    ctx: Context = request.app.state.ctx
    claims = await _claims(request)
    if isinstance(claims, JSONResponse):
        return claims
    exam_id = request.path_params["exam_id"]
    if claims.role != "admin" or not claims.may_use(exam_id):
        return _error(403, "forbidden", "an admin token for this exam is required")
    if not EXAM_ID.match(exam_id):
        return _error(400, "invalid_exam", "invalid exam id", problems=["id: must match [A-Za-z0-9_.-]{1,64}"])
    body = await request.body()
    if len(body) > MAX_EXAM_BYTES:
        return _error(413, "too_large", f"exam definitions are limited to {MAX_EXAM_BYTES} bytes")
    try:
        doc = json.loads(body, parse_constant=_no_constant)
    except ValueError:
        return _error(400, "invalid_exam", "body is not JSON", problems=["$: not valid JSON"])
    try:
        exam, created = await ctx.exams.put(doc, exam_id=exam_id)
    except ExamInvalid as exc:
        return _error(400, "invalid_exam", f"{len(exc.problems)} problem(s)", problems=exc.problems)
    ctx.event("exam_put", exam=exam.id, version=exam.version, created=created, by=claims.sub)
    return JSONResponse({"id": exam.id, "version": exam.version, "created": created, "total": exam.total})


async def get_exam(request: Request) -> Response:
    """``GET /v1/exams/{exam_id}``: public facts of the current version (any valid token)."""
    ctx: Context = request.app.state.ctx
    claims = await _claims(request)
    if isinstance(claims, JSONResponse):
        return claims
    exam_id = request.path_params["exam_id"]
    if not claims.may_use(exam_id):
        return _error(403, "forbidden", "this token may not see this exam")
    exam = await ctx.exams.current(exam_id) if EXAM_ID.match(exam_id) else None
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
    """``GET /v1/attempts/{attempt}``: the candidate's own, or any of a proctor/admin's exams."""
    ctx: Context = request.app.state.ctx
    claims = await _claims(request)
    if isinstance(claims, JSONResponse):
        return claims
    aid = request.path_params["attempt"]
    snap = await ctx.attempts.load(aid) if _is_attempt_id(aid) else None
    if snap is None:
        return _error(404, "not_found", "no such attempt")
    a = snap.attempt
    allowed = claims.may_use(a.exam_id) and (claims.is_staff or claims.sub == a.user)
    if not allowed:  # indistinguishable from a missing attempt
        return _error(404, "not_found", "no such attempt")
    exam = await ctx.exams.get(a.exam_id, a.exam_version)
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
    }
    result = snap.result if a.state in FINAL else None
    if result is not None and show:
        body.update(score=result["score"], max_score=result["max_score"], percent=result["percent"], passed=result["passed"])
        body["questions"] = result["questions"]
    else:
        body["questions"] = [{"id": q, "value": v} for q, v in sorted(a.answers.items())]
    if a.state is State.READY:
        body["deadline"] = None
    return JSONResponse(body)


def _is_attempt_id(value: str) -> bool:
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)


def _no_constant(name: str) -> Any:
    raise ValueError(name)
