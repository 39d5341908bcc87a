"""deploy/compose.sentinel.yaml and deploy/redis/sentinel.conf: Redis that survives its primary, as shipped.

The overlay is read the way compose reads it (``docker-compose -f compose.yaml
-f deploy/compose.sentinel.yaml config``, offline) and checked for what the
deployment needs: engines, workers and beat name exactly the sentinels it
runs, under the service name the sentinels monitor, wait for replicated acks
that one replica can still give when the other is lost, and the sentinels
decide faster than the engines stop retrying.

Then the shipped files run, with only what a private run on 127.0.0.1 needs
substituted (each substitution must match exactly, else the test names what
moved): the primary, the two replicas and the three sentinels from their
compose commands and the shipped sentinel.conf (as shipped: 2 s before a
failover starts), and an engine node with the overlay's Redis settings. A
candidate's answers are acknowledged, the primary is killed (``kill -9``),
the sentinels promote a replica, and the candidate goes on: every answer
acknowledged before the kill is there, and new ones are acknowledged.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import yaml

from examwire.client import Closed, ExamClient, attempt_url
from examwire.settings import Settings
from testkit import free_port, make_exam, wait_until
from testkit.redis_topology import CommandProcess, SentinelProcess, info
from tests.conftest import require_tool

from .conftest import REPO_ROOT

OVERLAY = REPO_ROOT / "deploy" / "compose.sentinel.yaml"
SENTINEL_CONF = REPO_ROOT / "deploy" / "redis" / "sentinel.conf"
ROLES = ("engine", "worker", "beat")


def merged() -> dict[str, Any]:
    exe = require_tool("docker-compose", ".ci/run installs Debian's docker-compose to validate compose files offline")
    env = {**os.environ, "EXAMWIRE_JWT_SECRET": "x" * 40, "EXAMWIRE_SECRET": "y" * 40}
    argv = [exe, "-f", str(REPO_ROOT / "compose.yaml"), "-f", str(OVERLAY), "config"]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def monitor(conf: str) -> tuple[str, str, int, int]:
    """``sentinel monitor <name> <host> <port> <quorum>`` of ``conf``."""
    (name, host, port, quorum), = re.findall(r"^sentinel monitor (\S+) (\S+) (\d+) (\d+)$", conf, re.M)
    return name, host, int(port), int(quorum)


def roles(services: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The sentinel services and the replica services, by what their commands run."""
    sentinels = sorted(s for s, v in services.items() if "redis-sentinel" in " ".join(v.get("command") or []))
    replicas = sorted(s for s, v in services.items() if "--replicaof" in (v.get("command") or []))
    return sentinels, replicas


def sub(argv: list[str], flag: str, old: list[str], new: list[str]) -> list[str]:
    """``argv`` with the values after ``flag`` (which must be ``old``) replaced by ``new``."""
    i = argv.index(flag)
    assert argv[i + 1 : i + 1 + len(old)] == old, (flag, argv, old)
    return [*argv[: i + 1], *new, *argv[i + 1 + len(old) :]]


def replace_line(text: str, old: str, new: str) -> str:
    assert re.search(rf"^{re.escape(old)}$", text, re.M), f"{old!r} is no longer a line of {SENTINEL_CONF.name}"
    return re.sub(rf"^{re.escape(old)}$", new, text, flags=re.M)


def test_the_overlay_is_valid_and_wires_every_process_to_the_sentinels() -> None:
    services = merged()["services"]
    conf = SENTINEL_CONF.read_text()
    (port,) = map(int, re.findall(r"^port (\d+)$", conf, re.M))
    name, host, primary_port, quorum = monitor(conf)
    (down_ms,) = map(int, re.findall(rf"^sentinel down-after-milliseconds {name} (\d+)$", conf, re.M))
    sentinels, replicas = roles(services)
    assert len(sentinels) == 3 and len(replicas) == 2, (sentinels, replicas)
    assert len(sentinels) // 2 < quorum <= len(sentinels)  # a majority decides; one sentinel lost still decides
    # the sentinels start from compose's `redis`, which the replicas follow; everyone is announced by service name
    assert host in services and "--replicaof" not in services[host]["command"]
    assert services[host]["command"][services[host]["command"].index("--replica-announce-ip") + 1] == host
    for r in replicas:
        cmd = services[r]["command"]
        assert sub(cmd, "--replicaof", [host, str(primary_port)], ["X", "Y"])  # (raises when it moved)
        assert cmd[cmd.index("--replica-announce-ip") + 1] == r
    for s in sentinels:
        sh = services[s]["command"]
        assert sh[:2] == ["sh", "-c"]
        run = shlex.split(sh[2].split("exec ", 1)[1])
        assert run[:2] == ["redis-sentinel", "/data/sentinel.conf"] and run[2:] == ["--sentinel", "announce-ip", s]
        assert f"{SENTINEL_CONF}:/etc/examwire/sentinel.conf:ro" in services[s]["volumes"]
    defaults = Settings.__dataclass_fields__
    assert down_ms < defaults["redis_retry_ms"].default  # a failover is a pause inside the nodes' retry budget
    for role in ROLES:
        env = services[role]["environment"]
        assert env["EXAMWIRE_REDIS_SENTINELS"].split(",") == [f"{s}:{port}" for s in sentinels], role
        assert env["EXAMWIRE_REDIS_SENTINEL_SERVICE"] == name
        assert 1 <= int(env["EXAMWIRE_REDIS_MIN_REPLICAS"]) < len(replicas)  # one replica may be lost
        assert set(sentinels) <= set(services[role]["depends_on"])
        settings = Settings.from_env(env)
        assert settings.redis_sentinels == tuple((s, port) for s in sentinels)


def test_the_shipped_sentinels_fail_over_and_a_candidate_goes_on(tmp_path: Path, make_node, put_exam, make_token, arun) -> None:
    require_tool("redis-sentinel", "apt-get install redis-sentinel; .ci/run does")
    services = merged()["services"]
    conf = SENTINEL_CONF.read_text()
    name, host, primary_port, quorum = monitor(conf)
    sentinels, replicas = roles(services)
    ports = {s: free_port() for s in [host, *replicas]}

    def server(service: str) -> CommandProcess:
        argv = services[service]["command"]
        argv = sub(argv, "--replica-announce-ip", [service], ["127.0.0.1"])
        if "--replicaof" in argv:
            argv = sub(argv, "--replicaof", [host, str(primary_port)], ["127.0.0.1", str(ports[host])])
        data = tmp_path / service
        data.mkdir()
        argv = [*argv, "--port", str(ports[service]), "--bind", "127.0.0.1", "--dir", str(data)]
        return CommandProcess(tmp_path, argv, ports[service])

    def sentinel(service: str) -> SentinelProcess:
        port = free_port()
        text = replace_line(conf, "port 26379", f"port {port}")
        text = replace_line(text, "dir /data", f"dir {tmp_path}")
        text = replace_line(text, f"sentinel monitor {name} {host} {primary_port} {quorum}",
                            f"sentinel monitor {name} 127.0.0.1 {ports[host]} {quorum}")  # fmt: skip
        run = shlex.split(services[service]["command"][2].split("exec ", 1)[1])
        args = sub(run[2:], "announce-ip", [service], ["127.0.0.1"])
        return SentinelProcess(tmp_path, port, primary_port=ports[host], conf=text, args=tuple(args))

    procs: list[Any] = []
    try:
        primary = server(host).start()
        procs.append(primary)
        procs += [server(r).start() for r in replicas]
        primary.wait_replicas(len(replicas), timeout=20)
        watchers = [sentinel(s).start() for s in sentinels]
        procs += watchers
        wait_until(lambda: all(w.knows(replicas=2, sentinels=2) for w in watchers), 30,
                   lambda: "every sentinel seeing both replicas and the other two sentinels")  # fmt: skip

        env = dict(services["engine"]["environment"])
        node = make_node(EXAMWIRE_REDIS_URL=None, EXAMWIRE_REDIS_SENTINEL_SERVICE=env["EXAMWIRE_REDIS_SENTINEL_SERVICE"],
                         EXAMWIRE_REDIS_SENTINELS=",".join(f"127.0.0.1:{w.port}" for w in watchers),
                         EXAMWIRE_REDIS_MIN_REPLICAS=env["EXAMWIRE_REDIS_MIN_REPLICAS"])  # fmt: skip
        exam = make_exam("ha", 8, shuffle_questions=False, types_=("single",))
        put_exam(node, exam)
        qids = [q["id"] for q in exam["questions"]]

        promoted = {ports[r] for r in replicas}

        def fail_over() -> int:
            primary.kill()  # kill -9
            wait_until(lambda: len({w.primary() for w in watchers}) == 1 and watchers[0].primary() in promoted, 30,
                       lambda: f"the sentinels agreeing on a promoted replica: {[w.primary() for w in watchers]}")  # fmt: skip
            new = watchers[0].primary()
            wait_until(lambda: int(info(new).get("connected_slaves", 0)) >= 1, 30, "the other replica following the new primary")
            return new

        async def run() -> dict[str, Any]:
            c = ExamClient(attempt_url(node.ws_url, "ha"), make_token("steady", exams=["ha"]), reply_timeout=30)
            await c.connect()
            await c.hello()
            await c.start()
            for q in qids[:4]:
                assert (await c.answer(q, "c"))["t"] == "ack"
            await asyncio.to_thread(fail_over)
            for _ in range(20):  # the connection may have closed meanwhile (1011/1013 say: retry): resume
                try:
                    if c.closed.is_set():
                        await c.resume()
                    for q in qids[4:]:
                        if q not in (c.welcome or {}).get("answers", {}):
                            reply = await c.answer(q, "c")
                            assert reply["t"] == "ack", reply
                    break
                except Closed:
                    await asyncio.sleep(0.5)
            await c.close()
            check = ExamClient(attempt_url(node.ws_url, "ha"), make_token("steady", exams=["ha"]), reply_timeout=30)
            await check.connect()
            welcome = await check.hello()
            await check.close()
            return welcome

        welcome = arun(run(), timeout=120)
        assert sorted(welcome["answers"]) == sorted(qids)  # the four acknowledged before the kill, and the four after
        assert welcome["last_id"] >= 1 + len(qids)
    finally:
        for p in reversed(procs):
            p.kill()
