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
import unicodedata
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
    Raises ``UnknownExam`` for an id that breaks the exam id rule or a version
    that is not a positive integer: they reach the stores' queries and keys
    (a task's arguments are JSON from anyone who can reach the broker).
    """
    _check_exam_id(exam_id)
    if version is not None and (type(version) is not int or not 1 <= version <= 2**31):
        raise UnknownExam(f"{version!r} is not an exam version (a positive integer)")
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


#: What makes a spreadsheet read a cell as a formula (OWASP, "CSV Injection"), once leading
#: blanks are skipped and the text is NFKC-normalised (a full-width ``＝`` is an ``=`` then).
_FORMULA_START = frozenset("=+-@\0")
#: A cell that starts with one of these, even before anything else, is escaped too (OWASP).
_RAW_START = frozenset("\t\r\n")
#: Where some reader may start a new cell inside what is written as one: the field separators
#: of the locales (``,`` and ``;``) and ``|``, tab and line breaks, and the quote characters.
_SEPARATORS = frozenset(",;|\t\r\n\"'")


def _blank(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch) == "Cf"  # spaces, and invisible format characters


def _formula_at(text: str, start: int, end: int) -> bool:
    """True when a spreadsheet could read ``text[start:end]``, as the start of a cell, as a formula."""
    if start >= end:
        return False
    if text[start] in _RAW_START:
        return True
    i = start
    while i < end and _blank(text[i]):
        i += 1
    if i == end:
        return False
    head = unicodedata.normalize("NFKC", text[i : min(end, i + 8)]).lstrip()
    return head[:1] in _FORMULA_START


def _defused(text: str) -> str:
    """``text`` with an apostrophe before its start, and after each separator in it, wherever a formula could begin.

    The apostrophe makes a spreadsheet show what follows as text; the cells are
    also written quoted, so a reader that splits on ``;`` or ``|`` keeps them whole.
    """
    bounds = [0] + [i + 1 for i, ch in enumerate(text) if ch in _SEPARATORS] + [len(text) + 1]
    if len(bounds) == 2:  # no separator: the common case
        return "'" + text if _formula_at(text, 0, len(text)) else text
    out: list[str] = []
    for start, nxt in zip(bounds, bounds[1:]):
        end = nxt - 1 if nxt <= len(text) else len(text)  # the segment, without the separator that ends it
        if _formula_at(text, start, end) or (start == 0 and text[:1] in _RAW_START):
            out.append("'")
        out.append(text[start:nxt])
    return "".join(out)


def _cell(value: Any) -> Any:
    """One CSV cell: numbers as they are; any other value as text, with every place a formula could start defused.

    Following OWASP's CSV injection guidance: a cell whose first character,
    after blanks and NFKC normalisation, is ``= + - @`` (or NUL), or whose very
    first character is a tab, CR or LF, gets a leading apostrophe; so does
    every such start after a separator inside the cell (``,`` ``;`` ``|``, tab,
    line breaks, quotes), where a reader in another locale may begin a cell.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return value
    return _defused(value if isinstance(value, str) else str(value))


def csv_header(exam: Exam | None) -> list[str]:
    """The fixed columns, then one ``q:<id>`` column (points earned) per question of ``exam`` (ids are any text: defused)."""
    return [*CSV_COLUMNS, *(_cell(f"q:{q.id}") for q in (exam.questions if exam else ()))]


def event_count(record: Mapping[str, Any]) -> int:
    """Every event of the attempt: the record keeps only the newest events, and their number."""
    count = record.get("event_count")
    return count if isinstance(count, int) and not isinstance(count, bool) else len(record.get("events") or [])


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
        answered, len(record.get("flags") or []), event_count(record),
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
    writer = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_NONNUMERIC)  # every text cell quoted (OWASP)
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
        if not is_exam_id(exam_id):
            continue  # stored before the rule was what it is: out of reach of every door anyway
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


def _check_exam_id(exam_id: Any) -> None:
    """The one exam id rule (``engine.ids``), for every service an id reaches from outside."""
    if not is_exam_id(exam_id):
        raise UnknownExam(f"{exam_id!r} is not an exam id ({EXAM_ID_RULE})")


async def export(core: Core, exam_id: str, directory: Path | None = None) -> str:
    """Write every result of ``exam_id`` as CSV to ``<data dir>/exports/<exam>.csv`` (atomically); return the path.

    Raises ``UnknownExam`` for an id that breaks the exam id rule (it names the
    file: no path may come from it) or an exam the store does not know.
    """
    _check_exam_id(exam_id)
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
