"""Reports on persisted results: item analysis and CSV export.

Shared by the HTTP endpoints (``handlers/http.py``) and the Celery tasks
(``tasks/jobs.py``); everything reads the results store, nothing reads Redis.
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Mapping

import engine
from engine import Exam
from storage.results import PAGE, all_results

from .context import Context


CSV_COLUMNS = (
    "attempt", "user", "name", "exam_version", "state", "end_reason", "started_at", "ended_at",
    "duration_s", "score", "max_score", "percent", "passed", "answered", "flagged", "events",
)  # fmt: skip


async def analysis(ctx: Context, exam_id: str, version: int | None = None, *, refresh: bool = False) -> dict[str, Any] | None:
    """The item analysis of one exam version (default: the current one); None when the exam is unknown.

    A stored analysis is returned while it covers every result of that
    version; otherwise (or with ``refresh``) it is computed again and stored.
    """
    store = ctx.results
    version = version or await store.exam_version(exam_id)
    if version is None:
        return None
    exam = await ctx.exams.get(exam_id, version)
    if exam is None:
        return None
    count = await store.count_results(exam_id, version=version)
    if not refresh:
        stored = await store.get_analysis(exam_id, version)
        if stored is not None and stored.get("results_count") == count:
            return stored
    records = [r async for r in all_results(store, exam_id, version=version)]
    doc = await asyncio.to_thread(engine.analyse, exam, records)
    doc["results_count"] = len(records)
    doc["computed_at"] = ctx.clock()
    await store.put_analysis(exam_id, version, doc)
    return doc


def _iso(ms: Any) -> str:
    if not isinstance(ms, int):
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _cell(value: Any) -> Any:
    """A CSV cell; text that a spreadsheet would run as a formula is quoted with a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def csv_header(exam: Exam | None) -> list[str]:
    """The fixed columns, then one ``q:<id>`` column (points earned) per question of ``exam``."""
    return [*CSV_COLUMNS, *(f"q:{q.id}" for q in (exam.questions if exam else ()))]


def csv_row(record: Mapping[str, Any], exam: Exam | None) -> list[Any]:
    started, ended = record.get("started_at"), record.get("ended_at")
    duration = (ended - started - (record.get("paused_ms") or 0)) / 1000 if isinstance(started, int) and isinstance(ended, int) else None
    questions = record.get("questions") or []
    points = {q.get("id"): q.get("points") for q in questions if isinstance(q, dict)}
    answered = sum(1 for q in questions if isinstance(q, dict) and q.get("value") not in (None, [], ""))
    row = [
        record.get("attempt"), record.get("user"), record.get("name"), record.get("exam_version"),
        record.get("state"), record.get("end_reason"), _iso(started), _iso(ended), duration,
        record.get("score"), record.get("max_score"), record.get("percent"), record.get("passed"),
        answered, len(record.get("flags") or []), len(record.get("events") or []),
    ]  # fmt: skip
    if exam is not None:
        row += [points.get(q.id) if record.get("exam_version") == exam.version else None for q in exam.questions]
    return [_cell(v) for v in row]


async def csv_chunks(ctx: Context, exam_id: str, *, version: int | None = None) -> AsyncIterator[str]:
    """The results of an exam as CSV text, a page of rows per chunk (for streaming).

    Per-question columns follow ``version`` (default: the current version);
    rows of other versions leave them empty.
    """
    v = version or await ctx.results.exam_version(exam_id)
    exam = await ctx.exams.get(exam_id, v) if v else None
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(csv_header(exam))
    n = 0
    async for record in all_results(ctx.results, exam_id, version=version):
        writer.writerow(csv_row(record, exam))
        n += 1
        if n % PAGE == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()
