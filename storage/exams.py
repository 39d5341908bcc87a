"""Exam definitions: versioned in the results store, cached in Redis and in memory.

The results store (``ResultStore.put_exam``) is the authority: it numbers
versions, and a version never changes once stored. Changing an exam stores a
new version and makes it current; running attempts keep the version they
were created with; putting an identical definition again keeps the current
version. Engine nodes read through three layers: this node's memory (parsed
``Exam`` objects), then the Redis hash ``keys.exam(id)`` (shared by nodes and
workers, refilled from the store on a miss), then the store.
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from engine import Exam, parse_exam

from . import keys
from .results import ResultStore, canonical
from .scripts import Scripts


class ExamCache:
    """Parsed exams by (id, version) in front of Redis and the results store.

    A version never changes once stored, so cached entries never go stale;
    the current version number is read from Redis each time (the store when
    Redis does not know it), so every node sees a new version at once.
    """

    def __init__(self, redis: Redis, scripts: Scripts, store: ResultStore, *, limit: int = 512) -> None:
        self._redis = redis
        self._s = scripts
        self.store = store
        self._parsed: dict[tuple[str, int], Exam] = {}
        self._limit = limit

    async def get(self, exam_id: str, version: int) -> Exam | None:
        """Version ``version`` of an exam, or None; raises ``StoreUnavailable`` on a miss the store cannot answer."""
        exam = self._parsed.get((exam_id, version))
        if exam is not None:
            return exam
        raw = await self._redis.hget(keys.exam(exam_id), f"v:{version}")
        if raw is not None:
            doc = json.loads(raw)
        else:
            doc = await self.store.get_exam(exam_id, version)
            if doc is None:
                return None
            # not necessarily the current version (an attempt keeps the one it started on): "current" is left alone
            await self._redis.hset(keys.exam(exam_id), f"v:{version}", canonical(doc))
        exam = parse_exam(doc, exam_id=exam_id, version=version)
        if len(self._parsed) >= self._limit:
            self._parsed.pop(next(iter(self._parsed)))
        self._parsed[(exam_id, version)] = exam
        return exam

    async def current_version(self, exam_id: str) -> int | None:
        raw = await self._redis.hget(keys.exam(exam_id), "current")
        if raw:
            return int(raw)
        version = await self.store.exam_version(exam_id)
        if version is not None:
            doc = await self.store.get_exam(exam_id, version)
            if doc is not None:
                await self._cache(exam_id, version, doc)
        return version

    async def current(self, exam_id: str) -> Exam | None:
        version = await self.current_version(exam_id)
        return None if version is None else await self.get(exam_id, version)

    async def put(self, doc: Any, *, exam_id: str | None = None) -> tuple[Exam, bool]:
        """Validate and store a definition; return it parsed and whether it is a new version.

        Raises ``engine.ExamInvalid`` listing every problem, or
        ``StoreUnavailable``.
        """
        exam = parse_exam(doc, exam_id=exam_id)
        if isinstance(doc, dict) and "id" not in doc:
            doc = {"id": exam.id, **doc}
        version, created = await self.store.put_exam(exam.id, doc)
        await self._cache(exam.id, version, doc)
        return await self.get(exam.id, version), created  # type: ignore[return-value]

    async def _cache(self, exam_id: str, version: int, doc: Any) -> None:
        """Cache the store's current version: it may raise ``current`` (never lower it)."""
        await self._s.cache_exam(keys=[keys.exam(exam_id)], args=[version, canonical(doc)])
