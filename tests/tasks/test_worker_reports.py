"""Results, CSV, item analysis and export over HTTP and Celery, on SQLite and on MongoDB.

The same scenario runs with each store behind the engine node and the
worker: candidates finish, the worker persists, staff read the results.
"""

from __future__ import annotations

import asyncio
import csv
import io
import secrets as _secrets
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from examwire.settings import Settings
from tasks.app import create_celery
from examwire.client import ExamClient, attempt_url
from testkit import SAMPLE_EXAM, SAMPLE_RIGHT_ANSWERS, SAMPLE_WRONG_ANSWERS, http_json, wait_until


#: (user, name, answers): 4 all right, 3 all wrong, 3 with only q1 right (q1 is worth 1 point).
CANDIDATES = (
    [(f"right{i}", f"Right {i}", SAMPLE_RIGHT_ANSWERS) for i in range(4)]
    + [(f"wrong{i}", f"Wrong {i}", SAMPLE_WRONG_ANSWERS) for i in range(3)]
    + [(f"half{i}", "=HYPERLINK(\"http://x\")" if i == 0 else f"Half {i}", {"q1": SAMPLE_RIGHT_ANSWERS["q1"]}) for i in range(3)]
)


@pytest.fixture(params=["sqlite", "mongodb"])
def store_env(request: pytest.FixtureRequest, results_db: Path):
    if request.param == "sqlite":
        yield {"EXAMWIRE_SQLITE_PATH": str(results_db)}
        return
    url = request.getfixturevalue("mongodb_url")
    database = f"ewtest_{_secrets.token_hex(6)}"
    yield {"EXAMWIRE_MONGODB_URL": url, "EXAMWIRE_MONGODB_DB": database, "EXAMWIRE_STORE_TIMEOUT_MS": "3000"}
    client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=5000)
    try:
        client.drop_database(database)
    finally:
        client.close()


def _all_results(node, token: str) -> list[dict[str, Any]]:
    out, after = [], ""
    while True:
        status, body = http_json("GET", f"{node.base_url}/v1/exams/rep/results?limit=4" + (f"&after={after}" if after else ""), token=token)
        assert status == 200, body
        out += body["results"]
        if not body["next"]:
            return out
        after = body["next"]


def test_results_csv_analysis_and_export(store_env, make_node, make_worker, put_exam, make_token, redis_url, secrets, arun, tmp_path):
    node = make_node(**store_env)
    worker_dir_env = {**store_env, "EXAMWIRE_ANALYSIS_INTERVAL_S": "1"}
    worker = make_worker(**worker_dir_env)
    put_exam(node, {**SAMPLE_EXAM, "id": "rep"})

    async def take(user: str, name: str, answers: dict[str, Any]) -> None:
        c = ExamClient(attempt_url(node.ws_url, "rep"), make_token(user, exams=["rep"], name=name))
        await c.connect()
        await c.hello()
        await c.start()
        for q, v in answers.items():
            assert (await c.answer(q, v))["t"] == "ack"
        await c.event("blur", {"note": "tab"})
        await c.submit()
        await c.close()

    async def everyone() -> None:
        await asyncio.gather(*(take(*cand) for cand in CANDIDATES))

    arun(everyone(), timeout=60)
    proctor = make_token("pro", "proctor", exams=["rep"])
    results = wait_until(lambda: len(r := _all_results(node, proctor)) == len(CANDIDATES) and r, 30, "results\n" + worker.log())
    assert len({r["attempt"] for r in results}) == len(CANDIDATES)
    assert [r["ended_at"] for r in results] == sorted(r["ended_at"] for r in results)
    by_user = {r["user"]: r for r in results}
    assert by_user["right0"]["score"] == 7 and by_user["half1"]["score"] == 1
    assert by_user["right0"]["events"][0]["kind"] == "blur"
    assert all("_id" not in r for r in results)

    # the candidate's own attempt, and nobody else's
    status, _ = http_json("GET", f"{node.base_url}/v1/exams/rep/results", token=make_token("right0", exams=["rep"]))
    assert status == 403
    status, _ = http_json("GET", f"{node.base_url}/v1/exams/rep/results", token=make_token("p2", "proctor", exams=["other"]))
    assert status == 403
    status, body = http_json("GET", f"{node.base_url}/v1/exams/rep/results?limit=0", token=proctor)
    assert status == 400 and body["error"] == "bad_request"

    # CSV, streamed; formula-looking text is defused
    req = urllib.request.Request(f"{node.base_url}/v1/exams/rep/results?format=csv", headers={"Authorization": f"Bearer {proctor}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(resp.read().decode())))
    assert len(rows) == len(CANDIDATES)
    assert {r["user"]: r["score"] for r in rows}["right1"] == "7"
    assert {r["user"]: r["q:q1"] for r in rows}["wrong0"] != "1"
    assert {r["user"]: r["name"] for r in rows}["half0"].startswith("'=")

    # item analysis: computed by the worker's periodic task, served by the node
    def analysed() -> dict[str, Any] | None:
        status, body = http_json("GET", f"{node.base_url}/v1/exams/rep/analysis", token=proctor)
        return body if status == 200 and body.get("n") == len(CANDIDATES) else None

    doc = wait_until(analysed, 20, "the analysis")
    q1 = next(q for q in doc["questions"] if q["id"] == "q1")
    assert q1["p_correct"] == 0.7  # 7 of 10 got q1 right
    assert doc["score"]["max"] == 7 and doc["score"]["min"] <= 0

    # export through Celery by task name, as another service would send it
    settings = Settings.from_env(
        {"EXAMWIRE_REDIS_URL": redis_url, "EXAMWIRE_JWT_SECRET": secrets.jwt_secret, "EXAMWIRE_SECRET": secrets.secret},
        data_dir=tmp_path,
    )
    app = create_celery(settings)
    path = app.send_task("examwire.export", ["rep"]).get(timeout=30)
    exported = Path(path).read_text().splitlines()
    assert len(exported) == 1 + len(CANDIDATES) and next(csv.reader(exported))[:3] == ["attempt", "user", "name"]
