"""``ResultStore`` in one SQLite file: the embedded store, when no MongoDB is configured.

One connection per ``SqliteResults``, used only from its own worker thread,
so the event loop never waits on the disk. The file is in WAL mode, so the
engine and a Celery worker may use it at once (writers queue behind each
other for up to ``busy_timeout_ms``); ``synchronous=FULL`` makes every
acknowledged write durable. A record is kept whole as JSON text in ``doc``,
with the fields that are queried copied into columns.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

from .results import StoreUnavailable, canonical, check_limit, screen

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS exams (
    exam TEXT PRIMARY KEY,
    current INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS exam_versions (
    exam TEXT NOT NULL,
    version INTEGER NOT NULL,
    definition TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (exam, version)
);
CREATE TABLE IF NOT EXISTS results (
    attempt TEXT PRIMARY KEY,
    exam TEXT NOT NULL,
    exam_version INTEGER NOT NULL,
    user TEXT NOT NULL,
    ended_at INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_exam_user ON results (exam, user);
CREATE INDEX IF NOT EXISTS results_exam_ended ON results (exam, ended_at, attempt);
CREATE TABLE IF NOT EXISTS analyses (
    exam TEXT NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (exam, version)
);
"""

UPSERT_RESULT = """
INSERT INTO results (attempt, exam, exam_version, user, ended_at, doc) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (attempt) DO UPDATE SET
    exam = excluded.exam, exam_version = excluded.exam_version, user = excluded.user,
    ended_at = excluded.ended_at, doc = excluded.doc
"""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SqliteResults:
    """``ResultStore`` on a SQLite file (created, with its directory, on ``open``)."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 5000) -> None:
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    # -- plumbing ---------------------------------------------------------------------

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the worker thread; SQLite failures become ``StoreUnavailable``."""
        if self._executor is None:
            raise StoreUnavailable(f"{self.path}: store is not open")

        def call() -> T:
            if self._conn is None:
                raise StoreUnavailable(f"{self.path}: store is not open")
            try:
                return fn(self._conn)
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(f"{self.path}: {exc}") from exc
            except sqlite3.DatabaseError as exc:
                if type(exc) is sqlite3.DatabaseError:  # not a database, malformed image
                    raise StoreUnavailable(f"{self.path}: {exc}") from exc
                raise

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    @staticmethod
    def _transaction(conn: sqlite3.Connection, body: Callable[[sqlite3.Connection], T]) -> T:
        """``body`` inside ``BEGIN IMMEDIATE`` … ``COMMIT`` (the write lock taken up front)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            out = body(conn)
            conn.execute("COMMIT")
            return out
        except BaseException:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # SQLite rolled back already, or the connection is gone
            raise

    def _connect(self) -> None:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None)
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise sqlite3.OperationalError(f"journal_mode is {mode}, not wal")
                conn.execute("PRAGMA synchronous = FULL")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        self._transaction(self._conn, lambda c: [c.execute(s) for s in SCHEMA.split(";") if s.strip()])

    # -- lifecycle --------------------------------------------------------------------

    async def open(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-results")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._connect)
        except (sqlite3.DatabaseError, OSError) as exc:  # locked, cannot open, not a database
            raise StoreUnavailable(f"{self.path}: {exc}") from exc

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return

        def shut() -> None:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

        try:
            await asyncio.get_running_loop().run_in_executor(executor, shut)
        finally:
            executor.shutdown(wait=True)

    async def ping(self) -> None:
        await self._run(lambda c: c.execute("SELECT 1 FROM results LIMIT 1").fetchall())

    # -- exams ------------------------------------------------------------------------

    async def put_exam(self, exam_id: str, doc: dict[str, Any]) -> tuple[int, bool]:
        text = canonical(doc)

        def body(c: sqlite3.Connection) -> tuple[int, bool]:
            row = c.execute("SELECT current FROM exams WHERE exam = ?", (exam_id,)).fetchone()
            current = row[0] if row else 0
            if current:
                same = c.execute(
                    "SELECT 1 FROM exam_versions WHERE exam = ? AND version = ? AND definition = ?", (exam_id, current, text)
                ).fetchone()
                if same:
                    return current, False
            version = current + 1
            c.execute(
                "INSERT INTO exam_versions (exam, version, definition, created_at) VALUES (?, ?, ?, ?)",
                (exam_id, version, text, _now_ms()),
            )
            c.execute(
                "INSERT INTO exams (exam, current) VALUES (?, ?) ON CONFLICT (exam) DO UPDATE SET current = excluded.current",
                (exam_id, version),
            )
            return version, True

        return await self._run(lambda c: self._transaction(c, body))

    async def exam_version(self, exam_id: str) -> int | None:
        row = await self._run(lambda c: c.execute("SELECT current FROM exams WHERE exam = ?", (exam_id,)).fetchone())
        return int(row[0]) if row else None

    async def get_exam(self, exam_id: str, version: int) -> dict[str, Any] | None:
        row = await self._run(
            lambda c: c.execute(
                "SELECT definition FROM exam_versions WHERE exam = ? AND version = ?", (exam_id, version)
            ).fetchone()
        )
        return json.loads(row[0]) if row else None

    async def exam_ids(self) -> list[str]:
        rows = await self._run(lambda c: c.execute("SELECT exam FROM exams ORDER BY exam").fetchall())
        return sorted(r[0] for r in rows)

    # -- results ----------------------------------------------------------------------

    async def put_results(self, records: Sequence[Mapping[str, Any]]) -> dict[str, str]:
        ok, rejected = screen(records)
        if not ok:
            return rejected

        def body(c: sqlite3.Connection) -> None:
            for attempt, (record, text) in ok.items():
                row = (attempt, record["exam"], record["exam_version"], record["user"], record["ended_at"], text)
                try:
                    c.execute(UPSERT_RESULT, row)
                except (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError, OverflowError, ValueError) as exc:
                    rejected[attempt] = f"refused by the store: {exc}"

        await self._run(lambda c: self._transaction(c, body))
        return rejected

    async def get_result(self, attempt_id: str) -> dict[str, Any] | None:
        row = await self._run(lambda c: c.execute("SELECT doc FROM results WHERE attempt = ?", (attempt_id,)).fetchone())
        return json.loads(row[0]) if row else None

    @staticmethod
    def _where(exam_id: str, version: int | None) -> tuple[str, list[Any]]:
        sql, args = "exam = ?", [exam_id]
        if version is not None:
            sql += " AND exam_version = ?"
            args.append(version)
        return sql, args

    async def results(
        self, exam_id: str, *, version: int | None = None, after: tuple[int, str] | None = None, limit: int = 500
    ) -> list[dict[str, Any]]:
        where, args = self._where(exam_id, version)
        if after is not None:
            where += " AND (ended_at, attempt) > (?, ?)"
            args += [after[0], after[1]]
        sql = f"SELECT doc FROM results WHERE {where} ORDER BY ended_at, attempt LIMIT ?"
        args.append(check_limit(limit))
        rows = await self._run(lambda c: c.execute(sql, args).fetchall())
        return [json.loads(r[0]) for r in rows]

    async def count_results(self, exam_id: str, *, version: int | None = None) -> int:
        where, args = self._where(exam_id, version)
        row = await self._run(lambda c: c.execute(f"SELECT count(*) FROM results WHERE {where}", args).fetchone())
        return int(row[0])

    # -- analyses ---------------------------------------------------------------------

    async def put_analysis(self, exam_id: str, version: int, doc: Mapping[str, Any]) -> None:
        text = json.dumps(dict(doc), separators=(",", ":"), ensure_ascii=False)  # key order kept (options in order)
        await self._run(
            lambda c: c.execute(
                "INSERT INTO analyses (exam, version, doc) VALUES (?, ?, ?) "
                "ON CONFLICT (exam, version) DO UPDATE SET doc = excluded.doc",
                (exam_id, version, text),
            )
        )

    async def get_analysis(self, exam_id: str, version: int) -> dict[str, Any] | None:
        row = await self._run(
            lambda c: c.execute("SELECT doc FROM analyses WHERE exam = ? AND version = ?", (exam_id, version)).fetchone()
        )
        return json.loads(row[0]) if row else None
