"""Reports on persisted results: item analysis and CSV exports.

Shared by the HTTP endpoints (``handlers/http.py``), the Celery tasks
(``tasks/jobs.py``) and the command line; everything reads the results store,
nothing reads Redis.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Mapping

import engine
from engine import Exam
from engine.ids import EXAM_ID_RULE, is_exam_id
from storage.results import PAGE, all_results

from .core import Core


CSV_COLUMNS = (
    "attempt", "user", "name", "exam_version", "state", "end_reason", "started_at", "ended_at",
    "duration_s", "score", "max_score", "percent", "passed", "answered", "flagged", "events",
)  # fmt: skip


async def analysis(core: Core, exam_id: str, version: int | None = None, *, refresh: bool = False) -> dict[str, Any] | None:
    """The item analysis of one exam version (default: the current one); None when the exam is unknown.

    A stored analysis is returned while it covers every result of that
    version; otherwise (or with ``refresh``) it is computed again and stored.
    """
    store = core.results
    version = version or await store.exam_version(exam_id)
    if version is None:
        return None
    exam = await core.exams.get(exam_id, version)
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
    doc["computed_at"] = core.clock()
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


async def csv_chunks(core: Core, exam_id: str, *, version: int | None = None) -> AsyncIterator[str]:
    """The results of an exam as CSV text, a page of rows per chunk (for streaming).

    Per-question columns follow ``version`` (default: the current version);
    rows of other versions leave them empty.
    """
    v = version or await core.results.exam_version(exam_id)
    exam = await core.exams.get(exam_id, v) if v else None
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(csv_header(exam))
    n = 0
    async for record in all_results(core.results, exam_id, version=version):
        writer.writerow(csv_row(record, exam))
        n += 1
        if n % PAGE == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


async def analyse_stale(core: Core) -> list[str]:
    """Refresh every current exam version's analysis that does not cover all its results; the exams refreshed."""
    done = []
    for exam_id in await core.results.exam_ids():
        version = await core.results.exam_version(exam_id)
        count = 0 if version is None else await core.results.count_results(exam_id, version=version)
        if count == 0:
            continue
        stored = await core.results.get_analysis(exam_id, version)  # type: ignore[arg-type]
        if stored is None or stored.get("results_count") != count:
            await analysis(core, exam_id, version, refresh=True)
            done.append(exam_id)
    return done


class UnknownExam(LookupError):
    """The exam id is not valid, or no such exam is in the results store."""


async def export(core: Core, exam_id: str, directory: Path | None = None) -> str:
    """Write every result of ``exam_id`` as CSV to ``<data dir>/exports/<exam>.csv`` (atomically); return the path.

    Raises ``UnknownExam`` for an id that breaks the exam id rule (it names the
    file: no path may come from it) or an exam the store does not know.
    """
    if not is_exam_id(exam_id):
        raise UnknownExam(f"{exam_id!r} is not an exam id ({EXAM_ID_RULE})")
    if await core.results.exam_version(exam_id) is None:
        raise UnknownExam(f"no exam {exam_id!r} in the results store")
    out_dir = directory or core.settings.data_dir / "exports"
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{exam_id}.csv"
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{exam_id}.", suffix=".csv")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            async for chunk in csv_chunks(core, exam_id):
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(target)
