"""The first hour with Examwire, as a newcomer meets it: the demo, the commands' refusals, the logs.

Real processes only: ``python -m examwire`` in embedded mode on a fresh data dir.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import signal
import subprocess
import sys
from pathlib import Path

import jwt

from examwire import logs
from examwire.client import ExamClient, attempt_url
from testkit import SAMPLE_EXAM, clean_env, free_port, run_examwire, wait_until
from tests.conftest import require_tool
from tests.conftest import REPO_ROOT




class Demo:
    """``examwire serve --demo`` with its standard output and standard error kept apart."""

    def __init__(self, data_dir: Path, tmp: Path, name: str) -> None:
        self.port = free_port()
        self.out_path, self.err_path = tmp / f"{name}.out", tmp / f"{name}.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "examwire", "serve", "--demo", "--port", str(self.port)],
                env=clean_env(EXAMWIRE_DATA_DIR=str(data_dir)), cwd=REPO_ROOT, stdout=out, stderr=err,
            )  # fmt: skip
        try:
            wait_until(lambda: "examwire: listening on" in self.out() or self.proc.poll() is not None, 30, self.err)
            assert self.proc.poll() is None, self.err()
        except BaseException:  # never leave a node behind a failed start
            self.proc.kill()
            self.proc.wait()
            raise
        self.links = dict(line.split(": ", 1) for line in self.out().splitlines() if ": " in line)

    def out(self) -> str:
        return self.out_path.read_text(errors="replace")

    def err(self) -> str:
        return self.err_path.read_text(errors="replace")

    def token(self) -> str:
        return self.links["take the exam"].partition("#token=")[2]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)


async def _hello_and(port: int, token: str, *then: str) -> dict:
    c = ExamClient(attempt_url(f"ws://127.0.0.1:{port}", "demo"), token)
    await c.connect()
    try:
        welcome = await c.hello()
        for t in then:
            m = await c.request(t)
            assert m["t"] == "ack", m
        return welcome
    finally:
        await c.close()


def test_every_demo_start_gives_a_candidate_who_can_take_the_exam(tmp_path) -> None:
    data = tmp_path / "data"
    first = Demo(data, tmp_path, "first")
    try:
        welcome = asyncio.run(_hello_and(first.port, first.token(), "start", "submit"))
        assert welcome["state"] == "ready"
    finally:
        first.stop()
    second = Demo(data, tmp_path, "second")  # the same data dir, as a second `make serve` has
    try:
        assert second.token() != first.token()
        subs = {jwt.decode(t, options={"verify_signature": False})["sub"] for t in (first.token(), second.token())}
        assert len(subs) == 2
        welcome = asyncio.run(_hello_and(second.port, second.token()))
        assert welcome["state"] == "ready", welcome  # not the attempt the first link already submitted
    finally:
        second.stop()


def test_every_log_line_is_one_json_object_in_one_style(tmp_path) -> None:
    demo = Demo(tmp_path / "data", tmp_path, "demo")
    try:
        asyncio.run(_hello_and(demo.port, demo.token(), "start", "submit"))
        # the embedded worker stores it: its lines are in the node's output too
        wait_until(lambda: '"outbox_drained"' in demo.err(), 30, lambda: "the worker's drain\n" + demo.err())
    finally:
        demo.stop()
    lines = [line for line in demo.err().splitlines() if line.strip()]
    assert lines
    for line in lines:
        doc = json.loads(line)  # every line: one JSON object
        assert isinstance(doc, dict) and {"ts", "level", "event", "logger"} <= set(doc), line
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", doc["ts"]), line
    loggers = {json.loads(line)["logger"] for line in lines}
    assert "examwire" in loggers and "examwire.beat" in loggers, loggers  # the node, and the worker's beat
    assert not any("celery@" in line or "-------------- " in line for line in lines)  # no banner
    # what a person reads is on standard output: the links, and where it listens
    assert "take the exam: " in demo.out() and "examwire: listening on" in demo.out()


def test_export_refuses_an_unknown_exam_and_a_bad_id(tmp_path) -> None:
    env = clean_env(EXAMWIRE_DATA_DIR=str(tmp_path / "data"))
    exam = tmp_path / "exam.json"
    exam.write_text(json.dumps(SAMPLE_EXAM))
    assert run_examwire("import", str(exam), env=env).returncode == 0
    out_dir = tmp_path / "exports"
    known = run_examwire("export", SAMPLE_EXAM["id"], "--out-dir", str(out_dir), env=env)
    assert known.returncode == 0 and Path(known.stdout.strip()).exists()

    unknown = run_examwire("export", "nope", "--out-dir", str(out_dir), env=env)
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert unknown.stderr.strip().splitlines() == ["examwire: no exam 'nope' in the results store"]
    assert not (out_dir / "nope.csv").exists()
    for bad in ("../x", "a/b", "", "x" * 65, "{tag}"):
        refused = run_examwire("export", bad, "--out-dir", str(out_dir), env=env)
        assert refused.returncode == 2 and refused.stdout == "", (bad, refused)
        assert len(refused.stderr.strip().splitlines()) == 1 and "is not an exam id" in refused.stderr, (bad, refused.stderr)
    assert not (tmp_path / "x.csv").exists()


def test_exam_import_reads_standard_input(tmp_path) -> None:
    env = clean_env(EXAMWIRE_DATA_DIR=str(tmp_path / "data"))
    done = run_examwire("import", "-", env=env, stdin=json.dumps(SAMPLE_EXAM))
    assert done.returncode == 0 and "version 1" in done.stdout, done.stderr


def test_token_refuses_what_no_engine_would_accept(tmp_path) -> None:
    env = clean_env(EXAMWIRE_DATA_DIR=str(tmp_path / "data"))
    for args, why in (
        (["--ttl", "0"], "--ttl must be a positive number of seconds"),
        (["--ttl", "-5"], "--ttl must be a positive number of seconds"),
        (["--exam", "../x"], "is not an exam id"),
    ):
        done = run_examwire("token", "--sub", "ann", "--role", "candidate", *args, env=env)
        assert done.returncode == 2 and done.stdout == "" and why in done.stderr, (args, done)
    for sub in ("", "   "):
        done = run_examwire("token", "--sub", sub, "--role", "candidate", env=env)
        assert done.returncode == 2 and done.stdout == "" and "--sub must not be empty" in done.stderr
    assert not (tmp_path / "data").exists()  # nothing was created for a refused token

    # a data dir with no secrets: the token is printed, with a warning that names the cause
    first = run_examwire("token", "--sub", "ann", "--role", "candidate", env=env)
    assert first.returncode == 0 and first.stdout.count(".") == 2
    assert "warning" in first.stderr and "had no secrets" in first.stderr and "--data-dir" in first.stderr
    again = run_examwire("token", "--sub", "ann", "--role", "candidate", env=env)
    assert again.returncode == 0 and again.stderr == ""


def test_make_serve_takes_a_port_and_a_host() -> None:
    make = require_tool("make", ".ci/run installs it")
    # --no-print-directory: under `make test` this make is a sub-make, which would print "Entering directory" lines
    dry = subprocess.run([make, "-n", "--no-print-directory", "serve", "PORT=8123", "HOST=0.0.0.0"], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[-1].endswith("/examwire serve --demo --host 0.0.0.0 --port 8123"), dry.stdout


def _logged(emit) -> list[dict]:
    """What ``emit(logger)`` logs, through the JSON formatter, as decoded lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonLines())
    log = logging.getLogger("examwire.test-lines")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        emit(log)
    finally:
        log.removeHandler(handler)
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_log_line_keeps_every_field_whatever_its_name() -> None:
    """Fields named like the formatter's own arguments (``created``, ``level``...) never break a line."""

    def emit(log: logging.Logger) -> None:
        log.warning(json.dumps({"event": "exam_put", "created": True, "fields": 1, "level": "x", "message": "m"}))
        log.error("plain %s", "text")

    first, second = _logged(emit)
    assert first["event"] == "exam_put" and first["created"] is True and first["fields"] == 1 and first["message"] == "m"
    assert first["level"] == "warning" and first["logger"] == "examwire.test-lines"
    assert second["event"] == "log" and second["message"] == "plain text" and second["level"] == "error"


def test_a_malformed_redis_url_is_one_line_not_a_traceback(tmp_path) -> None:
    env = {**clean_env(EXAMWIRE_DATA_DIR=str(tmp_path / "data")), "EXAMWIRE_REDIS_URL": "localhost:6379", "EXAMWIRE_JWT_SECRET": "x" * 40, "EXAMWIRE_SECRET": "y"}
    done = subprocess.run([sys.executable, "-m", "examwire", "serve", "--port", str(free_port())], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 2, done
    assert done.stderr.strip().splitlines() == ["examwire: EXAMWIRE_REDIS_URL must start with redis://, rediss:// or unix://, got 'localhost:6379'"]


def test_an_event_with_fields_on_the_record_is_one_line_of_them() -> None:
    """``Context.event`` passes its fields on the record; they come out as the line's fields, unparsed."""
    (doc,) = _logged(lambda log: log.info("connect", extra={"fields": {"event": "connect", "node": "n1", "created": 3, "when": Path("/x")}}))
    assert doc["event"] == "connect" and doc["node"] == "n1" and doc["created"] == 3 and doc["when"] == "/x"
    assert doc["level"] == "info" and doc["logger"] == "examwire.test-lines" and "message" not in doc
