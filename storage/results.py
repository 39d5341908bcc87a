"""The durable results store: exam versions, one record per finished attempt, analyses.

Redis holds live attempts; this store keeps what must outlive them. Two
implementations share one contract: ``SqliteResults`` (embedded, a file in the
data dir) and ``MongoResults`` (a MongoDB deployment).

* Exam versions are immutable and numbered 1, 2, 3… per exam; ``put_exam``
  stores a new version only when the canonical JSON of the definition differs
  from the current one, and never gives the same number twice, whatever the
  concurrency.
* A result record is a JSON-ready dict with at least ``attempt``, ``exam``,
  ``exam_version``, ``user`` and ``ended_at`` (see ``check_record``); it is
  upserted by ``attempt``, so writing it again (an outbox entry delivered twice)
  leaves one copy, and it reads back equal to what was put.
* A failure of the store as a whole raises ``StoreUnavailable``: nothing was
  written that the caller must account for, and the same call can be retried.
  A record the store will never take is returned as rejected instead.
"""

from __future__ import annotations

import json
import math
from typing import Any, AsyncIterator, Mapping, Protocol, Sequence

#: Largest record accepted, as UTF-8 JSON.
MAX_RECORD_BYTES = 4 * 1024 * 1024

_INT64 = (-(2**63), 2**63 - 1)


class StoreUnavailable(Exception):
    """The store cannot be reached, timed out, or is locked: nothing was written; retry later."""


class RecordInvalid(ValueError):
    """A record the store will never accept; the message says why."""


def canonical(doc: Any) -> str:
    """The one JSON text of ``doc``: sorted keys, no spaces, unescaped Unicode."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _json_problem(value: Any, path: str) -> str | None:
    """Why ``value`` is not plain JSON (str keys; finite numbers), or None."""
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path}: {value!r} is not a JSON number"
    if isinstance(value, list):
        for i, item in enumerate(value):
            if (problem := _json_problem(item, f"{path}[{i}]")) is not None:
                return problem
        return None
    if isinstance(value, dict):
        for k, item in value.items():
            if not isinstance(k, str):
                return f"{path}: key {k!r} is not a string"
            if (problem := _json_problem(item, f"{path}.{k}")) is not None:
                return problem
        return None
    return f"{path}: {type(value).__name__} is not JSON"


def check_record(record: Any) -> str:
    """The record as UTF-8-safe compact JSON text; raises ``RecordInvalid`` if no store may take it.

    Required: ``attempt``, ``exam``, ``user`` non-empty strings;
    ``exam_version`` an int >= 1 and ``ended_at`` an int (epoch ms), both
    64-bit; no ``_id`` key (reserved by MongoDB); every value plain JSON (dicts
    with string keys, lists, strings, finite numbers, booleans, None); at most
    ``MAX_RECORD_BYTES`` encoded.
    """
    if not isinstance(record, Mapping):
        raise RecordInvalid(f"record is {type(record).__name__}, not a mapping")
    for name in ("attempt", "exam", "user"):
        value = record.get(name)
        if not isinstance(value, str) or not value:
            raise RecordInvalid(f"{name} must be a non-empty string, got {value!r:.80}")
    for name, low in (("exam_version", 1), ("ended_at", _INT64[0])):
        value = record.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= _INT64[1]:
            raise RecordInvalid(f"{name} must be an integer, got {value!r:.80}")
    if "_id" in record:
        raise RecordInvalid("_id is a reserved key")
    try:
        problem = _json_problem(dict(record), "record")
    except RecursionError:
        problem = "record: nested too deeply"
    if problem is not None:
        raise RecordInvalid(f"not JSON-serialisable: {problem:.200}")
    try:
        text = json.dumps(dict(record), separators=(",", ":"), ensure_ascii=False)
        size = len(text.encode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeEncodeError: a lone surrogate
        raise RecordInvalid(f"not JSON-serialisable: {exc!s:.200}") from None
    if size > MAX_RECORD_BYTES:
        raise RecordInvalid(f"too large: {size} bytes encoded, at most {MAX_RECORD_BYTES}")
    return text


def screen(records: Sequence[Mapping[str, Any]]) -> tuple[dict[str, tuple[Mapping[str, Any], str]], dict[str, str]]:
    """Split a batch into ``({attempt: (record, json text)}, {attempt: reason})``.

    Only the last record of an attempt in the batch counts (it is what two
    writes in order would leave). A rejected record without a usable
    ``attempt`` is keyed ``#<index in the batch>``.
    """
    ok: dict[str, tuple[Mapping[str, Any], str]] = {}
    rejected: dict[str, str] = {}
    for i, record in enumerate(records):
        attempt = record.get("attempt") if isinstance(record, Mapping) else None
        key = attempt if isinstance(attempt, str) and attempt else f"#{i}"
        try:
            text = check_record(record)
        except RecordInvalid as exc:
            ok.pop(key, None)
            rejected[key] = str(exc)
            continue
        rejected.pop(key, None)
        ok[key] = (record, text)
    return ok, rejected


class ResultStore(Protocol):
    """Where exam versions, final results and analyses are kept for good.

    Every method raises ``StoreUnavailable`` when the store cannot answer.
    """

    async def open(self) -> None:
        """Connect and create tables / collections and indexes; idempotent."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Return when the store is usable; raises ``StoreUnavailable`` otherwise."""
        ...

    async def put_exam(self, exam_id: str, doc: dict[str, Any]) -> tuple[int, bool]:
        """Store ``doc`` as a new version unless it equals the current one (by ``canonical``).

        Returns ``(version, created)``. Concurrent callers with different
        documents each get a distinct version.
        """
        ...

    async def exam_version(self, exam_id: str) -> int | None:
        """The current (highest) version, or None for an unknown exam."""
        ...

    async def get_exam(self, exam_id: str, version: int) -> dict[str, Any] | None: ...

    async def exam_ids(self) -> list[str]:
        """Every exam with a stored version, sorted."""
        ...

    async def put_results(self, records: Sequence[Mapping[str, Any]]) -> dict[str, str]:
        """Upsert every record by its ``attempt``; return ``{attempt: reason}`` of those rejected for good.

        Rejected: a record failing ``check_record`` (keyed as ``screen``
        says) or refused by the store for that record alone. Every other
        record is written. Raises ``StoreUnavailable`` when the batch could not
        be written; the caller retries all of it (writes are idempotent).
        """
        ...

    async def get_result(self, attempt_id: str) -> dict[str, Any] | None:
        """The record as it was put, or None."""
        ...

    async def results(
        self, exam_id: str, *, version: int | None = None, after: tuple[int, str] | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` (>= 1) records of an exam (one version, or all) in (ended_at, attempt) order.

        ``after`` is the (ended_at, attempt) of the last record of the
        previous page; only records strictly after it are returned.
        """
        ...

    async def count_results(self, exam_id: str, *, version: int | None = None) -> int: ...

    async def put_analysis(self, exam_id: str, version: int, doc: Mapping[str, Any]) -> None:
        """Store the analysis of one exam version, replacing any previous one."""
        ...

    async def get_analysis(self, exam_id: str, version: int) -> dict[str, Any] | None: ...


def check_limit(limit: int) -> int:
    """``limit`` if it is a positive int; raises ValueError otherwise (0 would mean 'all' to MongoDB)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    return limit


PAGE = 500


async def all_results(store: ResultStore, exam_id: str, *, version: int | None = None) -> AsyncIterator[dict[str, Any]]:
    """Every result of an exam (one version, or all), in (ended_at, attempt) order, a page at a time."""
    after: tuple[int, str] | None = None
    while True:
        page = await store.results(exam_id, version=version, after=after, limit=PAGE)
        for record in page:
            yield record
        if len(page) < PAGE:
            return
        after = (page[-1]["ended_at"], page[-1]["attempt"])
