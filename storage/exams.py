"""Exam definitions: versioned JSON documents, and each node's parsed cache.

A definition is stored as canonical JSON under a version number; changing an
exam stores a new version and makes it current, while attempts keep the
version they were created with. Putting an identical definition again keeps
the current version.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from redis.asyncio import Redis

from engine import Exam, parse_exam

from . import keys
from .scripts import Scripts


def canonical(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class ExamStore(Protocol):
    """Where exam definitions live."""

    async def put(self, exam_id: str, doc: dict[str, Any]) -> tuple[int, bool]:
        """Store ``doc`` (already validated); return (version, whether it is new)."""
        ...

    async def current_version(self, exam_id: str) -> int | None: ...

    async def get(self, exam_id: str, version: int) -> dict[str, Any] | None: ...


class RedisExams:
    """``ExamStore`` in the session Redis: one hash per exam."""

    def __init__(self, redis: Redis, scripts: Scripts) -> None:
        self._redis = redis
        self._s = scripts

    async def put(self, exam_id: str, doc: dict[str, Any]) -> tuple[int, bool]:
        version, created = await self._s.put_exam(keys=[keys.exam(exam_id)], args=[canonical(doc)])
        return int(version), bool(created)

    async def current_version(self, exam_id: str) -> int | None:
        raw = await self._redis.hget(keys.exam(exam_id), "current")
        return int(raw) if raw else None

    async def get(self, exam_id: str, version: int) -> dict[str, Any] | None:
        raw = await self._redis.hget(keys.exam(exam_id), f"v:{version}")
        return json.loads(raw) if raw else None


class ExamCache:
    """Parsed exams by (id, version), in this node's memory, in front of an ``ExamStore``.

    A version never changes once stored, so entries never go stale; the
    current version is asked of the store each time.
    """

    def __init__(self, store: ExamStore, *, limit: int = 512) -> None:
        self.store = store
        self._parsed: dict[tuple[str, int], Exam] = {}
        self._limit = limit

    async def get(self, exam_id: str, version: int) -> Exam | None:
        exam = self._parsed.get((exam_id, version))
        if exam is not None:
            return exam
        doc = await self.store.get(exam_id, version)
        if doc is None:
            return None
        exam = parse_exam(doc, exam_id=exam_id, version=version)
        if len(self._parsed) >= self._limit:
            self._parsed.pop(next(iter(self._parsed)))
        self._parsed[(exam_id, version)] = exam
        return exam

    async def current(self, exam_id: str) -> Exam | None:
        version = await self.store.current_version(exam_id)
        return None if version is None else await self.get(exam_id, version)

    async def put(self, doc: Any, *, exam_id: str | None = None) -> tuple[Exam, bool]:
        """Validate and store a definition; raises ``engine.ExamInvalid`` listing every problem."""
        exam = parse_exam(doc, exam_id=exam_id)
        if isinstance(doc, dict) and "id" not in doc:
            doc = {"id": exam.id, **doc}
        version, created = await self.store.put(exam.id, doc)
        return await self.get(exam.id, version), created  # type: ignore[return-value]
