"""A production install (``pip install .``, nothing else) runs the whole product.

The engine, its embedded worker and beat, and every command start from the
production venv, and a finished attempt reaches ``results.sqlite3``: the path
a user of ``make serve``, the Docker image or compose takes.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sqlite3
import subprocess
import urllib.request
from pathlib import Path

from examwire.client import ExamClient, attempt_url
from testkit import SAMPLE_EXAM, SAMPLE_RIGHT_ANSWERS, free_port, http_json, wait_until

from .conftest import REPO_ROOT


def _ready(port: int) -> bool:
    try:
        return http_json("GET", f"http://127.0.0.1:{port}/readyz", timeout=2)[0] == 200
    except OSError:
        return False


def _rows(db: Path) -> list[tuple[str, str]]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT attempt, exam FROM results").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


async def _take_exam(port: int, token: str) -> str:
    """Start, answer every question right, submit; return the attempt id."""
    c = ExamClient(attempt_url(f"ws://127.0.0.1:{port}", SAMPLE_EXAM["id"]), token)
    await c.connect()
    try:
        welcome = await c.hello()
        assert (await c.start())["t"] == "ack"
        for qid, value in SAMPLE_RIGHT_ANSWERS.items():
            assert (await c.answer(qid, value))["t"] == "ack"
        assert (await c.submit())["t"] == "ack"
    finally:
        await c.close()
    return welcome["attempt"]


def test_benchmarks_import_without_the_test_extra(prod_venv) -> None:
    """loadtests run from a checkout with only the product's dependencies (no pytest)."""
    out = subprocess.run(
        [str(prod_venv.python), "-c", "import examwire.client, loadtests.bench, loadtests.proctor_latency, loadtests.ceiling_app, testkit"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr


def test_embedded_serve_persists_and_every_command_starts(prod_venv, prod_env, spawn, tmp_path) -> None:
    data = tmp_path / "data"
    env = prod_env(EXAMWIRE_DATA_DIR=str(data))
    examwire = str(prod_venv.bin / "examwire")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([examwire, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)

    port = free_port()
    node = spawn("serve", [examwire, "serve", "--port", str(port)], env)
    wait_until(lambda: _ready(port) or not node.alive(), 30, f"serve on {port}\n{node.log()}")
    assert node.alive(), node.log()
    # the pages and their ES modules ship with the package, sub-folders included
    for path in ("/exam/x", "/static/exam/main.js", "/static/exam/state.js", "/static/lib/wire.js", "/static/lib/msgpack.js"):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as page:
            assert page.status == 200 and page.read(), path

    exam_file = tmp_path / "sample.json"
    exam_file.write_text(json.dumps(SAMPLE_EXAM))
    imported = run("import", str(exam_file))
    assert imported.returncode == 0 and "version 1" in imported.stdout, imported.stderr
    minted = run("token", "--sub", "prod-ann", "--role", "candidate", "--exam", SAMPLE_EXAM["id"])
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()

    attempt = asyncio.run(_take_exam(port, token))
    db = data / "results.sqlite3"
    rows = wait_until(lambda: _rows(db), 30, f"the result in {db}\n{node.log()}")
    assert rows == [(attempt, SAMPLE_EXAM["id"])]

    exported = run("export", SAMPLE_EXAM["id"], "--out-dir", str(tmp_path / "exports"))
    assert exported.returncode == 0, exported.stderr
    with open(exported.stdout.strip(), newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["attempt"] for r in table] == [attempt]

    # a second worker and a standby beat on the embedded Redis: both start, and status sees them
    worker = spawn("worker", [examwire, "worker", "--loglevel", "INFO"], env)
    beat = spawn("beat", [examwire, "beat", "--loglevel", "INFO"], env)

    def both_workers() -> dict | None:
        out = run("status", "--json")
        report = json.loads(out.stdout) if out.stdout.startswith("{") else {}
        return report if len(report.get("workers", {}).get("answered_ping", [])) == 2 else None

    report = wait_until(both_workers, 60, f"two workers answering\n{worker.log()}")
    assert report["status"] == "ok" and report["redis"]["aof"] is True, report
    assert report["results_store"]["reachable"] is True and report["outbox"] == 0
    wait_until(lambda: "beat_standby" in beat.log(), 30, f"the second beat to stand by\n{beat.log()}")
    assert run("status").returncode == 0
    assert run("status", "--local", "worker").returncode == 0
    assert run("status", "--local", "beat").returncode == 0
    assert worker.alive() and beat.alive() and node.alive()
    assert "Traceback" not in worker.log() + beat.log(), worker.log() + beat.log()
