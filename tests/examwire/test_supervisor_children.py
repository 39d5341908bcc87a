"""``examwire.supervisor`` with real child processes: what it does when a child cannot even be started.

The node's own tests (``test_supervision.py``) kill real Redis and worker
children; here the children are small real commands, so the supervisor's
start failures can be produced on purpose.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import stat
import sys
from pathlib import Path

import pytest

from examwire.redis_server import EmbeddedRedis
from examwire.supervisor import ProcessChild, RedisChild, Supervisor, describe_exit
from testkit import wait_until


def _script(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _events(caplog: pytest.LogCaptureFixture, name: str) -> list[dict]:
    out = []
    for record in caplog.records:
        try:
            doc = json.loads(record.getMessage())
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("event") == name:
            out.append(doc)
    return out


def test_a_child_that_can_no_longer_be_started_is_logged_retried_and_marked_failing(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="examwire.supervisor")
    # it removes itself as it exits: the binary is gone when the restart comes (an upgrade half done)
    script = _script(tmp_path / "flaky", 'echo about to fail; rm -- "$0"; exit 3')
    child = ProcessChild("flaky", [str(script)], dict(os.environ), out=io.StringIO())
    sup = Supervisor([child], restart_limit=2, stop_timeout=5)
    sup.start()
    try:
        exited = wait_until(lambda: _events(caplog, "child_exited"), 10, "the first exit")
        assert exited[0]["child"] == "flaky" and exited[0]["status"] == 3 and exited[0]["tail"] == ["about to fail"]
        assert not script.exists()
        failed = wait_until(lambda: _events(caplog, "child_start_failed"), 10, "a failed restart")
        assert failed[0]["child"] == "flaky" and failed[0]["restart_in_s"] == 2.0, failed
        state = sup.status()["flaky"]
        assert state["state"] == "failing" and state["pid"] is None, state
        assert state["last_exit"].startswith("could not start: ") and "flaky" in state["last_exit"], state
        assert sup.failing() == ["flaky"]
    finally:
        sup.close(timeout=10)


def test_a_child_that_cannot_start_stops_the_ones_started_before_it(tmp_path):
    first = ProcessChild("sleeper", ["sleep", "60"], dict(os.environ), out=io.StringIO())
    second = ProcessChild("missing", [str(tmp_path / "no-such-binary")], dict(os.environ), out=io.StringIO())
    sup = Supervisor([first, second], stop_timeout=5)
    with pytest.raises(FileNotFoundError):
        sup.start()
    assert first.poll() is not None  # stopped again, not left running
    assert second.poll() is None and second.pid() is None  # never started
    assert sup.pids() == []


def test_output_is_kept_even_when_it_cannot_be_copied_and_stop_before_start_is_harmless(tmp_path):
    closed = io.StringIO()
    closed.close()  # the node's stderr went away
    child = ProcessChild("talker", [sys.executable, "-c", "print('one'); print('two')"], dict(os.environ), out=closed)
    child.stop(1)  # never started: nothing to do
    child.start()
    wait_until(lambda: child.poll() is not None, 10, "the child to exit")
    child.stop(1)
    assert child.tail() == ["one", "two"]
    assert child.poll() == 0


def test_an_embedded_redis_child_that_never_ran_has_no_pid_and_no_output(tmp_path):
    child = RedisChild(EmbeddedRedis(tmp_path))
    assert (child.poll(), child.pid(), child.tail()) == (None, None, [])


def test_exits_are_described_for_people():
    assert describe_exit(0) == "exit status 0"
    assert describe_exit(3) == "exit status 3"
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(-200) == "killed by signal 200"  # no such signal name
