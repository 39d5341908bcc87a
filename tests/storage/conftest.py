"""Fixtures for the results-store contract suite: both stores, real engines, no mocks.

``results_store``       parametrised ``"sqlite"`` / ``"mongodb"``: a
                        ``StoreFactory`` on fresh, empty state for this test
                        (SQLite: a file in ``tmp_path``; MongoDB: a database
                        ``ewtest_<hex>``, dropped at teardown). Stores are made
                        inside the test's coroutine (``AsyncMongoClient`` binds
                        to the running loop): ``factory()`` is an unopened
                        store, ``async with factory.opened() as store`` an open
                        one closed on exit. Every store of one factory shares
                        the same data.
``make_results_store``  the same factory, by its other name.
``mongodb_url`` and ``on_stand_in`` come from ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest
from pymongo import MongoClient

from storage.mongo_results import MongoResults
from storage.results import ResultStore
from storage.sqlite_results import SqliteResults



class StoreFactory:
    """Unopened stores of one kind on one test's data (see the module docstring)."""

    def __init__(self, kind: str, make: Callable[..., ResultStore]) -> None:
        self.kind = kind
        self._make = make

    def __call__(self, **options: Any) -> ResultStore:
        """A new, unopened store; ``options`` go to its constructor (e.g. ``busy_timeout_ms``)."""
        return self._make(**options)

    @contextlib.asynccontextmanager
    async def opened(self, **options: Any) -> AsyncIterator[ResultStore]:
        store = self(**options)
        await store.open()
        try:
            yield store
        finally:
            await store.close()


@pytest.fixture(params=["sqlite", "mongodb"])
def results_store(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        path = tmp_path / "results" / "results.sqlite3"

        def make_sqlite(**options: Any) -> ResultStore:
            return SqliteResults(path, **options)

        yield StoreFactory("sqlite", make_sqlite)
        return

    url = request.getfixturevalue("mongodb_url")
    database = f"ewtest_{secrets.token_hex(6)}"

    def make_mongo(**options: Any) -> ResultStore:
        return MongoResults(url, **{"database": database, **options})

    yield StoreFactory("mongodb", make_mongo)
    client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=5000)
    try:
        client.drop_database(database)
    finally:
        client.close()


@pytest.fixture
def make_results_store(results_store: StoreFactory) -> StoreFactory:
    return results_store
