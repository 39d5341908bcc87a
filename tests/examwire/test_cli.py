"""The command line on embedded defaults: real processes, no EXAMWIRE_REDIS_URL."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sqlite3
import subprocess
import sys
import time

import jwt

from examwire.client import ExamClient, attempt_url
from testkit import SAMPLE_EXAM, clean_env, free_port, http_json, run_examwire




def test_import_lists_every_problem_by_path(tmp_path):
    bad = json.loads(json.dumps(SAMPLE_EXAM))
    bad["duration_s"] = 0
    q = next(q for q in bad["questions"] if q["type"] == "single")
    q["answer"] = "zz"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    out = run_examwire("import", str(path), env=clean_env(EXAMWIRE_DATA_DIR=str(tmp_path / "data")))
    assert out.returncode == 1
    assert "duration_s:" in out.stderr
    index = bad["questions"].index(q)
    assert f'questions[{index}].answer: option "zz" does not exist' in out.stderr


def test_import_then_token_then_serve_embedded(tmp_path):
    env = clean_env(EXAMWIRE_DATA_DIR=str(tmp_path / "data"))
    path = tmp_path / "exam.json"
    path.write_text(json.dumps(SAMPLE_EXAM))
    first = run_examwire("import", str(path), env=env)
    assert first.returncode == 0, first.stderr
    assert "version 1" in first.stdout
    again = run_examwire("import", str(path), env=env)
    assert "unchanged" in again.stdout and "version 1" in again.stdout

    token = run_examwire("token", "--sub", "ann", "--role", "candidate", "--exam", SAMPLE_EXAM["id"], env=env).stdout.strip()
    secret = (tmp_path / "data" / "jwt-secret").read_text().strip()
    claims = jwt.decode(token, secret, algorithms=["HS256"], audience="examwire")
    assert claims["sub"] == "ann" and claims["exams"] == [SAMPLE_EXAM["id"]]

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "examwire", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_ready(port)

        async def take_it() -> tuple[dict, dict, dict]:
            c = ExamClient(attempt_url(f"ws://127.0.0.1:{port}", SAMPLE_EXAM["id"]), token)
            await c.connect()
            try:
                welcome = await c.hello()
                early = await c.submit()
                await c.start()
                return welcome, early, await c.submit()
            finally:
                await c.close()

        welcome, early, done = asyncio.run(take_it())
        assert welcome["t"] == "welcome" and welcome["state"] == "ready"
        assert early["code"] == "not_started"
        assert done["t"] == "ack"
        # the embedded worker persisted the finished attempt to SQLite in the data dir, on its own
        status, body = {}, {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status, body = http_json("GET", f"http://127.0.0.1:{port}/v1/attempts/{welcome['attempt']}", token=token)
            if status == 200 and body.get("persisted"):
                break
            time.sleep(0.2)
        assert status == 200 and body["persisted"] is True and body["state"] == "submitted", (status, body)
        db = sqlite3.connect(tmp_path / "data" / "results.sqlite3")
        assert db.execute("SELECT attempt FROM results").fetchall() == [(welcome["attempt"],)]
        db.close()
    finally:
        proc.send_signal(signal.SIGTERM)  # as `docker stop` or systemd would
        proc.wait(timeout=30)
    # the worker went with the engine
    gone = subprocess.run(["pgrep", "-f", f"examwire worker --beat --data-dir {tmp_path / 'data'}"], capture_output=True)
    assert gone.returncode == 1, gone.stdout
    # the private Redis was stopped with the engine, and its socket is gone
    assert not (tmp_path / "data" / "redis.sock").exists()
    # AOF kept the exam: a second import needs no new version
    assert "unchanged" in run_examwire("import", str(path), env=env).stdout


def test_serve_demo_prints_working_tokens(tmp_path):
    env = clean_env(EXAMWIRE_DATA_DIR=str(tmp_path / "data"))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "examwire", "serve", "--demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(line.startswith("proctor dashboard:") for line in lines):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
        # the links appear only once the node listens: the first request after them is answered
        assert http_json("GET", f"http://127.0.0.1:{port}/healthz", timeout=2)[0] == 200
        tokens = dict(re.match(r"(candidate|proctor) token:\s+(\S+)", line).groups() for line in lines if " token:" in line)
        assert set(tokens) == {"candidate", "proctor"}, lines
        _wait_ready(port)
        status, exam = http_json("GET", f"http://127.0.0.1:{port}/v1/exams/demo", token=tokens["candidate"])
        assert status == 200 and exam["total"] == 65
        (link,) = [line.split(": ", 1)[1] for line in lines if line.startswith("proctor dashboard:")]
        page, _, fragment = link.partition("#")
        assert page == f"http://127.0.0.1:{port}/proctor" and "?" not in page  # the token never rides in the query
        assert fragment == f"token={tokens['proctor']}&exam=demo"
        (take,) = [line.split(": ", 1)[1] for line in lines if line.startswith("take the exam:")]
        assert take == f"http://127.0.0.1:{port}/exam/demo#token={tokens['candidate']}"
        status, listed = http_json("GET", f"http://127.0.0.1:{port}/v1/exams", token=tokens["proctor"])
        assert status == 200 and [e["id"] for e in listed["exams"]] == ["demo"]

        async def start() -> list[dict]:
            c = ExamClient(attempt_url(f"ws://127.0.0.1:{port}", "demo"), tokens["candidate"])
            await c.connect()
            try:
                got = [await c.hello(), await c.start()]
                await c.wait_for("batch")
                return got + c.pushes[:2]
            finally:
                await c.close()

        welcome, ack, time_msg, batch = asyncio.run(start())
        assert welcome["exam"]["total"] == 65
        assert ack["t"] == "ack" and time_msg["t"] == "time" and batch["t"] == "batch"
        assert {q["type"] for q in batch["questions"]} <= {"single", "multiple", "true_false", "numeric", "text"}
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)


def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            status, _ = http_json("GET", f"http://127.0.0.1:{port}/readyz", timeout=1)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"engine on port {port} never became ready")
