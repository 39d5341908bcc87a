"""Item analysis kept fresh by the worker (``examwire.analyse_stale`` on beat, ``examwire.analyse`` by name).

The node computes an analysis on demand when the stored one misses results;
here the node is not asked until the worker has done the work: the analyses
are read straight from the SQLite store, and the node must then serve the
stored document as it is.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from examwire.settings import Settings
from tasks.app import create_celery
from examwire.client import ExamClient, attempt_url
from testkit import SAMPLE_EXAM, SAMPLE_RIGHT_ANSWERS, SAMPLE_WRONG_ANSWERS, http_json, wait_until


def _stored_analysis(db: Path, exam_id: str, version: int = 1) -> dict[str, Any] | None:
    if not db.exists():
        return None
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute("SELECT doc FROM analyses WHERE exam = ? AND version = ?", (exam_id, version)).fetchone()
    except sqlite3.OperationalError:  # the worker has not created the tables yet
        return None
    finally:
        conn.close()
    return json.loads(row[0]) if row else None


def test_the_worker_analyses_what_misses_results_and_on_request(
    make_node, make_worker, put_exam, make_token, results_db, redis_url, secrets, store_rows, arun, tmp_path
):
    node = make_node(EXAMWIRE_SQLITE_PATH=str(results_db))
    worker = make_worker(EXAMWIRE_ANALYSIS_INTERVAL_S="1")
    put_exam(node, {**SAMPLE_EXAM, "id": "ana"})
    put_exam(node, {**SAMPLE_EXAM, "id": "unsat"})  # no result ever: nothing to analyse

    async def take(user: str, answers: dict[str, Any]) -> None:
        c = ExamClient(attempt_url(node.ws_url, "ana"), make_token(user, exams=["ana"]), reply_timeout=10)
        await c.connect()
        await c.hello()
        await c.start()
        for q, v in answers.items():
            assert (await c.answer(q, v))["t"] == "ack"
        await c.submit()
        await c.close()

    async def cohort(people: list[tuple[str, dict[str, Any]]]) -> None:
        await asyncio.gather(*(take(*p) for p in people))

    arun(cohort([("r1", SAMPLE_RIGHT_ANSWERS), ("r2", SAMPLE_RIGHT_ANSWERS), ("w1", SAMPLE_WRONG_ANSWERS)]))
    wait_until(lambda: len(store_rows(results_db)) == 3, 30, lambda: "3 stored results\n" + worker.log())
    first = wait_until(
        lambda: (doc := _stored_analysis(results_db, "ana")) and doc["results_count"] == 3 and doc, 20,
        lambda: "the periodic analysis of 3 results\n" + worker.log(),
    )
    assert first["n"] == 3 and _stored_analysis(results_db, "unsat") is None
    q1 = next(q for q in first["questions"] if q["id"] == "q1")
    assert q1["p_correct"] == pytest.approx(2 / 3, abs=1e-4)  # reported to 4 places

    # the node serves the stored document while it covers every result: not recomputed
    proctor = make_token("pro", "proctor", exams=["ana"])
    status, served = http_json("GET", f"{node.base_url}/v1/exams/ana/analysis", token=proctor)
    assert status == 200 and served == first

    # one more result: the stored analysis misses it, and the next periodic run refreshes it
    arun(cohort([("r3", SAMPLE_RIGHT_ANSWERS)]))
    second = wait_until(
        lambda: (doc := _stored_analysis(results_db, "ana")) and doc["results_count"] == 4 and doc, 20,
        lambda: "the refreshed analysis of 4 results\n" + worker.log(),
    )
    assert second["n"] == 4 and second["computed_at"] > first["computed_at"]

    # another service asks for one exam by task name (and version): recomputed although nothing is missing
    settings = Settings.from_env(
        {"EXAMWIRE_REDIS_URL": redis_url, "EXAMWIRE_JWT_SECRET": secrets.jwt_secret, "EXAMWIRE_SECRET": secrets.secret},
        data_dir=tmp_path / "client",
    )
    app = create_celery(settings)
    app.send_task("examwire.analyse", ["ana", 1])
    third = wait_until(
        lambda: (doc := _stored_analysis(results_db, "ana")) and doc["computed_at"] > second["computed_at"] and doc, 20,
        lambda: "examwire.analyse to recompute\n" + worker.log(),
    )
    assert third["n"] == 4 and third["results_count"] == 4
    assert "examwire.analyse[" in worker.log_path.read_text()

    # export by name refuses what is not an exam id: the id names a file
    with pytest.raises(Exception, match="is not an exam id"):
        app.send_task("examwire.export", ["../ana"]).get(timeout=30)
    assert not any(p.name.startswith("..") for p in tmp_path.rglob("*.csv"))
