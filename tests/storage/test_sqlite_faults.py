"""The SQLite results store on files it must not use: refused as unavailable, and nothing of them changed.

``EXAMWIRE_SQLITE_PATH`` may point at the wrong file: another application's
database, something that is not a database at all, or a place where WAL
cannot work. The store says ``StoreUnavailable`` (the node retries, /readyz
reports ``store: false``) instead of writing into it or crashing.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from storage.results import StoreUnavailable
from storage.sqlite_results import SqliteResults


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_another_applications_database_is_refused_and_left_as_it_was(tmp_path: Path):
    path = tmp_path / "theirs.sqlite3"
    theirs = sqlite3.connect(path)
    theirs.execute("CREATE TABLE results (id INTEGER PRIMARY KEY, grade TEXT)")  # a `results` table, not ours
    theirs.execute("INSERT INTO results (grade) VALUES ('A')")
    theirs.commit()
    theirs.close()

    async def go() -> str:
        store = SqliteResults(path, busy_timeout_ms=200)
        try:
            with pytest.raises(StoreUnavailable) as caught:
                await store.open()
            # what needs our schema stays unavailable, and writes nothing into their file
            with pytest.raises(StoreUnavailable):
                await store.get_result("0" * 32)
            with pytest.raises(StoreUnavailable):
                await store.put_exam("e1", {"id": "e1"})
            return str(caught.value)
        finally:
            await store.close()

    message = run(go())
    assert str(path) in message and "exam" in message, message  # SQLite names the column it lacks
    check = sqlite3.connect(path)
    try:  # our schema was rolled back as a whole: none of our tables is left behind
        tables = {row[0] for row in check.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {"results"}, tables
        assert check.execute("SELECT grade FROM results").fetchall() == [("A",)]
    finally:
        check.close()


def test_a_file_that_is_not_a_database_is_unavailable(tmp_path: Path):
    path = tmp_path / "results.sqlite3"
    path.write_bytes(b"this is a text file, not SQLite\n" * 200)

    async def go() -> None:
        store = SqliteResults(path)
        try:
            with pytest.raises(StoreUnavailable, match="not a database"):
                await store.open()
            # no connection was kept: every call is "unavailable" until an open succeeds
            with pytest.raises(StoreUnavailable, match="store is not open"):
                await store.ping()
        finally:
            await store.close()

    run(go())
    assert path.read_bytes().startswith(b"this is a text file")


def test_a_place_where_wal_cannot_work_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An in-memory database answers ``memory`` to ``journal_mode = WAL``: the store needs WAL (readers never blocked)."""
    monkeypatch.chdir(tmp_path)

    async def go() -> None:
        store = SqliteResults(Path(":memory:"))
        try:
            with pytest.raises(StoreUnavailable, match="journal_mode is memory, not wal"):
                await store.open()
        finally:
            await store.close()

    run(go())
