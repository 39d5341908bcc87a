"""``ResultStore`` on MongoDB, through pymongo's asyncio client.

Collections (documents are keyed by these fields, under unique indexes; the
``_id`` is left to MongoDB and never read back):

* ``exams`` ``{exam, current}``: the current version of each exam;
* ``exam_versions`` ``{exam, version, definition, created_at}``: each
  version's canonical JSON text, never changed once inserted;
* ``results``: each record as a document of its own fields, one per
  ``attempt``;
* ``analyses`` ``{exam, version, doc}``: ``doc`` as JSON text (its keys
  include author-chosen option ids, which are not safe as field names).

Results and exam versions are written with the configured write concern
(default ``majority``): a write acknowledged survives a primary failover.
Connection failures, timeouts and write-concern failures raise
``StoreUnavailable``.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any, AsyncIterator, Mapping, Sequence

import bson
from bson.errors import InvalidDocument
from pymongo import ASCENDING, AsyncMongoClient, ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    WriteConcernError,
    WTimeoutError,
)
from pymongo.write_concern import WriteConcern

from .results import StoreUnavailable, canonical, check_limit, screen

#: Largest document MongoDB stores.
MAX_BSON_BYTES = 16 * 1024 * 1024

#: Server error codes that say "not now" rather than "never" (shutdown,
#: failover, time limits, write conflicts): a batch meeting one is retried.
TRANSIENT_CODES = frozenset({6, 7, 50, 89, 91, 112, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436})

DUPLICATE_KEY = 11000

INDEXES: tuple[tuple[str, list[tuple[str, int]], str, bool], ...] = (
    # (collection, keys, name, unique)
    ("results", [("attempt", ASCENDING)], "attempt", True),
    ("results", [("exam", ASCENDING), ("user", ASCENDING)], "exam_user", False),
    ("results", [("exam", ASCENDING), ("ended_at", ASCENDING), ("attempt", ASCENDING)], "exam_ended", False),
    ("exam_versions", [("exam", ASCENDING), ("version", ASCENDING)], "exam_version", True),
    ("exams", [("exam", ASCENDING)], "exam", True),
    ("analyses", [("exam", ASCENDING), ("version", ASCENDING)], "exam_version", True),
)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _transient(exc: OperationFailure) -> bool:
    return exc.code in TRANSIENT_CODES or exc.has_error_label("RetryableWriteError")


@contextlib.asynccontextmanager
async def _unavailable(what: str) -> AsyncIterator[None]:
    """Turn "the store cannot answer now" errors into ``StoreUnavailable``."""
    try:
        yield
    except (ConnectionFailure, ExecutionTimeout, WTimeoutError, WriteConcernError) as exc:
        raise StoreUnavailable(f"mongodb {what}: {exc}") from exc
    except BulkWriteError:
        raise
    except OperationFailure as exc:
        if _transient(exc):
            raise StoreUnavailable(f"mongodb {what}: {exc}") from exc
        raise


class MongoResults:
    """``ResultStore`` on a MongoDB database (the client is created by ``open``, bound to its event loop)."""

    def __init__(
        self,
        url: str,
        *,
        database: str = "examwire",
        write_concern: str | int = "majority",
        timeout_ms: int = 5000,
    ) -> None:
        self.url = url
        self.database = database
        self.write_concern = WriteConcern(w=write_concern)
        self.timeout_ms = timeout_ms
        self._client: AsyncMongoClient[dict[str, Any]] | None = None

    # -- plumbing ---------------------------------------------------------------------

    @property
    def _db(self) -> AsyncDatabase[dict[str, Any]]:
        if self._client is None:
            raise StoreUnavailable("mongodb: store is not open")
        return self._client[self.database]

    def _coll(self, name: str, *, durable: bool = False) -> AsyncCollection[dict[str, Any]]:
        """A collection; ``durable`` writes with the configured write concern."""
        return self._db.get_collection(name, write_concern=self.write_concern if durable else None)

    # -- lifecycle --------------------------------------------------------------------

    async def open(self) -> None:
        if self._client is None:
            self._client = AsyncMongoClient(
                self.url,
                serverSelectionTimeoutMS=self.timeout_ms,
                connectTimeoutMS=self.timeout_ms,
                # bounds every operation, so a server that accepts and then hangs cannot stall a drain
                timeoutMS=3 * self.timeout_ms,
                tz_aware=False,
            )
        async with _unavailable("open"):
            for collection, keys, name, unique in INDEXES:
                await self._coll(collection).create_index(keys, name=name, unique=unique)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def ping(self) -> None:
        async with _unavailable("ping"):
            await self._db.command("ping")

    # -- exams ------------------------------------------------------------------------

    async def put_exam(self, exam_id: str, doc: dict[str, Any]) -> tuple[int, bool]:
        text = canonical(doc)
        exams, versions = self._coll("exams"), self._coll("exam_versions", durable=True)
        async with _unavailable("put_exam"):
            while True:
                row = await exams.find_one({"exam": exam_id}, {"_id": 0, "current": 1})
                current = int(row["current"]) if row else 0
                if current:
                    stored = await versions.find_one({"exam": exam_id, "version": current}, {"_id": 0, "definition": 1})
                    if stored is not None and stored.get("definition") == text:
                        return current, False
                version = current + 1
                try:
                    await versions.insert_one({"exam": exam_id, "version": version, "definition": text, "created_at": _now_ms()})
                except DuplicateKeyError:
                    # Another writer stored this number: make it current for them (they may have
                    # died before doing so), then start again from the new current version.
                    await self._advance(exam_id, version)
                    continue
                await self._advance(exam_id, version)
                return version, True

    async def _advance(self, exam_id: str, version: int) -> None:
        """Make ``current`` at least ``version``."""
        exams = self._coll("exams", durable=True)
        try:
            await exams.update_one({"exam": exam_id}, {"$max": {"current": version}}, upsert=True)
        except DuplicateKeyError:  # two first upserts raced; the document exists now
            await exams.update_one({"exam": exam_id}, {"$max": {"current": version}}, upsert=True)

    async def exam_version(self, exam_id: str) -> int | None:
        async with _unavailable("exam_version"):
            row = await self._coll("exams").find_one({"exam": exam_id}, {"_id": 0, "current": 1})
        return int(row["current"]) if row else None

    async def get_exam(self, exam_id: str, version: int) -> dict[str, Any] | None:
        async with _unavailable("get_exam"):
            row = await self._coll("exam_versions").find_one({"exam": exam_id, "version": version}, {"_id": 0, "definition": 1})
        return json.loads(row["definition"]) if row else None

    async def exam_ids(self) -> list[str]:
        async with _unavailable("exam_ids"):
            rows = await self._coll("exams").find({}, {"_id": 0, "exam": 1}).to_list()
        return sorted(r["exam"] for r in rows)

    # -- results ----------------------------------------------------------------------

    async def put_results(self, records: Sequence[Mapping[str, Any]]) -> dict[str, str]:
        ok, rejected = screen(records)
        pending: list[tuple[str, ReplaceOne[dict[str, Any]]]] = []
        for attempt, (record, _) in ok.items():
            doc = dict(record)
            try:
                size = len(bson.encode(doc))
                if size > MAX_BSON_BYTES:
                    raise InvalidDocument(f"too large: {size} bytes as BSON, at most {MAX_BSON_BYTES}")
                pending.append((attempt, ReplaceOne({"attempt": attempt}, doc, upsert=True)))
            except (InvalidDocument, OverflowError, ValueError) as exc:
                rejected[attempt] = f"refused by the store: {exc}"
        results = self._coll("results", durable=True)
        retried = False
        while pending:
            try:
                async with _unavailable("put_results"):
                    await results.bulk_write([op for _, op in pending], ordered=False)
                break
            except BulkWriteError as exc:
                details = exc.details
                if details.get("writeConcernErrors"):
                    raise StoreUnavailable(f"mongodb put_results: {details['writeConcernErrors'][0].get('errmsg')}") from exc
                again: list[tuple[str, ReplaceOne[dict[str, Any]]]] = []
                for error in details.get("writeErrors", []):
                    attempt, op = pending[error["index"]]
                    code = error.get("code")
                    if code == DUPLICATE_KEY and not retried:  # two upserts of one attempt raced
                        again.append((attempt, op))
                    elif code == DUPLICATE_KEY or code in TRANSIENT_CODES:
                        raise StoreUnavailable(f"mongodb put_results: {error.get('errmsg')}") from exc
                    else:
                        rejected[attempt] = f"refused by the store: {error.get('errmsg')}"
                pending, retried = again, True
        return rejected

    async def get_result(self, attempt_id: str) -> dict[str, Any] | None:
        async with _unavailable("get_result"):
            return await self._coll("results").find_one({"attempt": attempt_id}, {"_id": 0})

    @staticmethod
    def _filter(exam_id: str, version: int | None) -> dict[str, Any]:
        query: dict[str, Any] = {"exam": exam_id}
        if version is not None:
            query["exam_version"] = version
        return query

    async def results(
        self, exam_id: str, *, version: int | None = None, after: tuple[int, str] | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        query = self._filter(exam_id, version)
        if after is not None:
            t, a = after
            query["$or"] = [{"ended_at": {"$gt": t}}, {"ended_at": t, "attempt": {"$gt": a}}]
        cursor = self._coll("results").find(query, {"_id": 0}).sort([("ended_at", ASCENDING), ("attempt", ASCENDING)])
        async with _unavailable("results"):
            return await cursor.limit(check_limit(limit)).to_list()

    async def count_results(self, exam_id: str, *, version: int | None = None) -> int:
        async with _unavailable("count_results"):
            return await self._coll("results").count_documents(self._filter(exam_id, version))

    # -- analyses ---------------------------------------------------------------------

    async def put_analysis(self, exam_id: str, version: int, doc: Mapping[str, Any]) -> None:
        text = json.dumps(dict(doc), separators=(",", ":"), ensure_ascii=False)  # key order kept (options in order)
        async with _unavailable("put_analysis"):
            await self._coll("analyses").replace_one(
                {"exam": exam_id, "version": version}, {"exam": exam_id, "version": version, "doc": text}, upsert=True
            )

    async def get_analysis(self, exam_id: str, version: int) -> dict[str, Any] | None:
        async with _unavailable("get_analysis"):
            row = await self._coll("analyses").find_one({"exam": exam_id, "version": version}, {"_id": 0, "doc": 1})
        return json.loads(row["doc"]) if row else None
