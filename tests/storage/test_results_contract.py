"""The ``ResultStore`` contract, run against every store (``results_store``: sqlite, mongodb)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import Any

import pytest

from storage.mongo_results import MongoResults
from storage.results import MAX_RECORD_BYTES, StoreUnavailable, canonical
from tests.storage.conftest import StoreFactory
from testkit import free_port


def run(coro: Any, timeout: float = 60) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def record(attempt: str, *, exam: str = "e1", version: Any = 1, ended_at: Any = 1_000, **extra: Any) -> dict[str, Any]:
    """A result record of ``attempt`` (by ``user-<attempt>``); ``extra`` adds or overrides fields."""
    return {"attempt": attempt, "exam": exam, "exam_version": version, "user": f"user-{attempt}", "ended_at": ended_at, **extra}


def same(got: Any, want: Any) -> bool:
    """Equal, and equal as JSON (so True is not 1 and 1.0 is not 1)."""
    return got == want and canonical(got) == canonical(want)


NESTED = record(
    "nested",
    ended_at=1_700_000_000_123,
    name="Zoë Ångström 日本語 🚀",
    state="ended",
    end_reason=None,
    score=4.5,
    max_score=7,
    percent=64.28571428571429,
    passed=True,
    flags=[],
    seed=2**53 + 1,
    questions=[
        {"id": "q1", "value": "b", "points": 1, "correct": True, "detail": {"tiny": 1e-9, "neg": -2.5, "none": None}},
        {"id": "q2", "value": ["a", "c"], "points": 0.5, "correct": False, "options": [[1, 2], [], [None, False]]},
        {"id": "q3", "value": None, "points": 0, "correct": False, "detail": {}},
        {"id": "q4", "value": 3.14, "points": 1.0, "text": "\"quoted\"\n\ttabbed \\ back", "nested": {"a": {"b": {"c": [0.1]}}}},
    ],
    events=[{"t": 1, "k": "answer", "v": "{\"q\":\"q1\"}"}, {"t": 2, "k": "flag", "v": None}],
)


# -- lifecycle -------------------------------------------------------------------------


def test_open_is_idempotent(results_store: StoreFactory):
    async def go():
        store = results_store()
        await store.open()
        await store.open()
        try:
            await store.ping()
            assert await store.put_results([record("a1")]) == {}
        finally:
            await store.close()
        async with results_store.opened() as again:  # reopening existing tables and indexes
            assert await again.count_results("e1") == 1

    run(go())


# -- exams -----------------------------------------------------------------------------


def test_put_exam_numbers_versions_by_canonical_content(results_store: StoreFactory):
    async def go():
        async with results_store.opened() as store:
            doc = {"id": "e1", "title": "First", "questions": [{"id": "q1", "points": 1}]}
            assert await store.put_exam("e1", doc) == (1, True)
            assert await store.put_exam("e1", doc) == (1, False)
            reordered = {"questions": [{"points": 1, "id": "q1"}], "title": "First", "id": "e1"}
            assert await store.put_exam("e1", reordered) == (1, False)
            changed = {**doc, "title": "Second"}
            assert await store.put_exam("e1", changed) == (2, True)
            assert await store.put_exam("e1", changed) == (2, False)
            assert await store.put_exam("e1", doc) == (3, True)  # going back is a new version too
            assert await store.exam_version("e1") == 3
            assert same(await store.get_exam("e1", 1), doc)
            assert same(await store.get_exam("e1", 2), changed)
            assert same(await store.get_exam("e1", 3), doc)

    run(go())


def test_get_exam_round_trips_and_unknowns_are_none(results_store: StoreFactory):
    async def go():
        async with results_store.opened() as store:
            doc = {"id": "ü", "title": "Prüfung 試験", "n": 2.5, "flag": True, "none": None, "list": [1, [2, {"x": "y"}]]}
            assert await store.put_exam("ü", doc) == (1, True)
            assert same(await store.get_exam("ü", 1), doc)
            assert await store.get_exam("ü", 2) is None
            assert await store.get_exam("nope", 1) is None
            assert await store.exam_version("nope") is None

    run(go())


def test_exam_ids_sorted(results_store: StoreFactory):
    async def go():
        async with results_store.opened() as store:
            assert await store.exam_ids() == []
            for exam_id in ("b", "a", "c", "B"):
                await store.put_exam(exam_id, {"id": exam_id})
            await store.put_exam("a", {"id": "a", "changed": True})
            assert await store.exam_ids() == ["B", "a", "b", "c"]

    run(go())


def test_concurrent_put_exam_gives_distinct_versions(results_store: StoreFactory):
    async def go():
        async with results_store.opened() as one, results_store.opened() as two:
            stores = [one, two]
            docs = [{"id": "race", "n": i} for i in range(5)]
            out = await asyncio.gather(*(stores[i % 2].put_exam("race", d) for i, d in enumerate(docs)))
            assert all(created for _, created in out)
            assert sorted(v for v, _ in out) == [1, 2, 3, 4, 5]
            for (version, _), doc in zip(out, docs):
                assert same(await one.get_exam("race", version), doc)
            assert await two.exam_version("race") == 5

    run(go())


# -- results ---------------------------------------------------------------------------


def test_put_results_is_idempotent_and_round_trips(results_store: StoreFactory):
    async def go():
        async with results_store.opened() as store:
            assert await store.put_results([NESTED]) == {}
            assert await store.put_results([NESTED]) == {}
            assert await store.count_results("e1") == 1
            got = await store.get_result("nested")
            assert same(got, NESTED)
            assert [same(r, NESTED) for r in await store.results("e1")] == [True]
            assert await store.get_result("missing") is None

    run(go())


def test_put_results_replaces_an_attempt(results_store: StoreFactory):
    async def go():
        async with results_store.opened() as store:
            first = record("a1", ended_at=5_000, score=1, state="ended")
            await store.put_results([first, record("a2", ended_at=6_000)])
            second = record("a1", ended_at=7_000, score=2, extra={"late": True})
            assert await store.put_results([second]) == {}
            assert same(await store.get_result("a1"), second)
            assert await store.count_results("e1") == 2
            assert [r["attempt"] for r in await store.results("e1")] == ["a2", "a1"]
            # in one batch, the last record of an attempt is what stays
            assert await store.put_results([record("a3", score=1), record("a3", score=3)]) == {}
            assert (await store.get_result("a3"))["score"] == 3

    run(go())


def test_results_order_and_keyset_pagination(results_store: StoreFactory):
    async def go():
        async with results_store.opened() as store:
            times = {"k": 300, "c": 100, "h": 200, "a": 200, "z": 100, "m": 200, "b": 100, "y": 50}
            batch = [record(a, ended_at=t) for a, t in times.items()]
            batch += [record(f"other-{a}", exam="e2", ended_at=t) for a, t in times.items()]
            assert await store.put_results(batch) == {}
            want = sorted(times, key=lambda a: (times[a], a))
            assert [r["attempt"] for r in await store.results("e1")] == want

            pages: list[list[str]] = []
            after = None
            while True:
                page = await store.results("e1", after=after, limit=3)
                pages.append([r["attempt"] for r in page])
                if len(page) < 3:
                    break
                after = (page[-1]["ended_at"], page[-1]["attempt"])
            assert pages == [want[0:3], want[3:6], want[6:8]]
            assert [r["attempt"] for r in await store.results("e1", after=(200, "h"), limit=2)] == ["m", "k"]
            assert await store.results("e1", after=(300, "k")) == []
            assert await store.results("nope") == []
            with pytest.raises(ValueError):
                await store.results("e1", limit=0)

    run(go())


def test_version_filter_and_count(results_store: StoreFactory):
    async def go():
        async with results_store.opened() as store:
            batch = [record(f"v1-{i}", version=1, ended_at=i) for i in range(3)]
            batch += [record(f"v2-{i}", version=2, ended_at=10 + i) for i in range(4)]
            batch += [record("other", exam="e2", version=2)]
            assert await store.put_results(batch) == {}
            assert await store.count_results("e1") == 7
            assert await store.count_results("e1", version=1) == 3
            assert await store.count_results("e1", version=2) == 4
            assert await store.count_results("e1", version=3) == 0
            assert await store.count_results("nope") == 0
            assert [r["attempt"] for r in await store.results("e1", version=2)] == [f"v2-{i}" for i in range(4)]
            page = await store.results("e1", version=1, after=(0, "v1-0"), limit=1)
            assert [r["attempt"] for r in page] == ["v1-1"]

    run(go())


def test_bad_records_are_rejected_and_the_rest_written(results_store: StoreFactory):
    async def go():
        async with results_store.opened() as store:
            no_attempt = record("x")
            del no_attempt["attempt"]
            batch = [
                record("good-1"),
                no_attempt,
                record("bad-time", ended_at="yesterday"),
                record("bool-time", ended_at=True),
                {**record("no-user"), "user": None},
                record("bad-version", version="1"),
                record("not-json", extra={1, 2}),
                record("nan", score=float("nan")),
                record("int-key", questions=[{1: "a"}]),
                record("too-big", blob="x" * (MAX_RECORD_BYTES + 1)),
                record("good-2", ended_at=2_000),
            ]
            rejected = await store.put_results(batch)
            assert set(rejected) == {
                "#1", "bad-time", "bool-time", "no-user", "bad-version", "not-json", "nan", "int-key", "too-big",
            }  # fmt: skip
            assert all(isinstance(reason, str) and reason for reason in rejected.values())
            assert "too large" in rejected["too-big"]
            assert [r["attempt"] for r in await store.results("e1")] == ["good-1", "good-2"]
            assert await store.get_result("bad-time") is None
            again = await store.put_results([record("bad-time", ended_at="yesterday")])
            assert again == {"bad-time": rejected["bad-time"]}
            assert await store.put_results([]) == {}

    run(go())


# -- analyses --------------------------------------------------------------------------


def test_put_analysis_replaces(results_store: StoreFactory):
    async def go():
        async with results_store.opened() as store:
            assert await store.get_analysis("e1", 1) is None
            options = {"b": 2, "a": 1, "a.b": 0, "$x": 0}  # author-chosen ids, in option order
            first = {"n": 3, "kr20": None, "questions": [{"id": "q1", "facility": 0.5, "options": options}]}
            await store.put_analysis("e1", 1, first)
            assert same(await store.get_analysis("e1", 1), first)
            assert list((await store.get_analysis("e1", 1))["questions"][0]["options"]) == ["b", "a", "a.b", "$x"]
            second = {"n": 4, "kr20": 0.7}
            await store.put_analysis("e1", 1, second)
            assert same(await store.get_analysis("e1", 1), second)
            assert await store.get_analysis("e1", 2) is None

    run(go())


# -- unavailability --------------------------------------------------------------------


@pytest.mark.parametrize("results_store", ["sqlite"], indirect=True)
def test_sqlite_locked_is_unavailable_then_recovers(results_store: StoreFactory):

    async def go():
        async with results_store.opened(busy_timeout_ms=100) as store:
            path = store.path  # type: ignore[attr-defined]
            other = sqlite3.connect(path, isolation_level=None)
            try:
                other.execute("BEGIN EXCLUSIVE")
                with pytest.raises(StoreUnavailable):
                    await store.put_results([record("a1")])
                with pytest.raises(StoreUnavailable):
                    await store.put_exam("e1", {"id": "e1"})
                other.execute("COMMIT")
            finally:
                other.close()
            assert await store.put_results([record("a1")]) == {}
            assert await store.put_exam("e1", {"id": "e1"}) == (1, True)
            assert await store.count_results("e1") == 1

    run(go())


@pytest.mark.parametrize("results_store", ["mongodb"], indirect=True)
def test_mongodb_unreachable_is_unavailable(results_store: StoreFactory):

    async def go():
        url = f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"  # nothing listens there
        store = MongoResults(url, database="ewtest_closed", timeout_ms=300)
        try:
            with pytest.raises(StoreUnavailable):
                await store.open()
            with pytest.raises(StoreUnavailable):
                await store.ping()
            with pytest.raises(StoreUnavailable):
                await store.put_results([record("a1")])
            with pytest.raises(StoreUnavailable):
                await store.put_exam("e1", {"id": "e1"})
            # a batch of only bad records needs no store
            assert await store.put_results([record("bad", ended_at=None)]) == {"bad": "ended_at must be an integer, got None"}
        finally:
            await store.close()

    run(go())


def test_closed_store_is_unavailable(results_store: StoreFactory):
    async def go():
        store = results_store()
        with pytest.raises(StoreUnavailable):
            await store.ping()
        await store.open()
        await store.close()
        await store.close()
        with pytest.raises(StoreUnavailable):
            await store.put_results([record("a1")])

    run(go())


def test_records_survive_a_new_store_instance(results_store: StoreFactory):
    async def go():
        async with results_store.opened() as store:
            await store.put_results([NESTED])
            await store.put_exam("e1", {"id": "e1"})
        async with results_store.opened() as again:
            assert same(await again.get_result("nested"), NESTED)
            assert await again.exam_version("e1") == 1
            assert json.loads(canonical(await again.get_exam("e1", 1))) == {"id": "e1"}

    run(go())
