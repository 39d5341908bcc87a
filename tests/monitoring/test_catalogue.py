"""The metric catalogue, the recorders, the settings, the metrics listeners and the shipped monitoring files.

Naming follows Prometheus's conventions and every label value is bounded;
what a node exposes is the catalogue, no more and no less; the worker's
multiprocess mode sums forked children; a node with metrics off serves none;
nginx as shipped refuses ``/metrics``; promtool accepts what ships and compose
validates with the monitoring profile.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from examwire.exporter import serve_metrics
from examwire.settings import Settings, SettingsError
from protocol import CloseCode, ErrorCode
from services import metrics as m
from testkit import REPO_ROOT, free_port, http_json, wait_until
from tests.conftest import require_tool

BASE = {"EXAMWIRE_REDIS_URL": "redis://127.0.0.1:1/0", "EXAMWIRE_JWT_SECRET": "j" * 32, "EXAMWIRE_SECRET": "s" * 32}


# ------------------------------------------------------------------ the catalogue


@pytest.mark.parametrize("spec", m.CATALOGUE, ids=lambda s: s.name)
def test_names_follow_prometheus_conventions(spec: m.Spec) -> None:
    assert spec.name.startswith("examwire_") and spec.name == spec.name.lower()
    assert spec.kind in ("counter", "gauge", "histogram") and spec.where in ("node", "worker", "both")
    assert spec.name.endswith("_total") == (spec.kind == "counter")
    if spec.kind == "histogram":
        assert spec.name.endswith(("_seconds", "_bytes")) and list(spec.buckets) == sorted(spec.buckets)
    for unit in ("_ms", "_milliseconds", "_kb", "_mb"):
        assert unit not in spec.name  # base units only
    assert set(spec.labels) <= set(m.LABEL_VALUES), "every label has a bounded set of values"
    assert not {"attempt", "user", "exam", "id", "node", "conn"} & set(spec.labels)
    assert spec.help.strip()


def test_ack_buckets_fit_half_a_millisecond_to_a_quarter_second() -> None:
    inside = [b for b in m.ACK_BUCKETS if 0.0005 <= b <= 0.25]
    assert m.ACK_BUCKETS[0] == 0.0005 and 0.25 in m.ACK_BUCKETS and len(inside) >= 10


def test_label_values_are_the_protocols() -> None:
    from protocol import candidate, proctor

    assert m.REQUEST_TYPES == set(candidate._PARSERS) | set(proctor._PARSERS)
    assert set(m.ERROR_CODES) == {c.value for c in ErrorCode}
    assert {str(int(c)) for c in CloseCode} <= set(m.CLOSE_CODES)
    assert set(m.ATTEMPT_STATES) == {s.value for s in __import__("engine").State}


def test_a_node_exposes_its_catalogue_and_nothing_else() -> None:
    rec = m.NodeMetrics()
    families = {f.name: f for f in text_string_to_metric_families(rec.render()[0].decode())}
    ours = {n for n in families if n.startswith("examwire_") and not n.endswith("_created")}  # client_python's own
    want = {s.name.removesuffix("_total") for s in m.CATALOGUE if s.where in ("node", "both")}
    assert ours == want
    for spec in m.CATALOGUE:
        if spec.where in ("node", "both"):
            assert families[spec.name.removesuffix("_total")].type == spec.kind, spec.name
    assert "process_cpu_seconds" in families  # per-node load
    assert rec.registry is not m.NodeMetrics().registry  # each app its own registry, never the global one


def test_the_base_records_nothing_and_has_every_method() -> None:
    """Callers never ask which recorder they hold: every recording method is on the base, as a no-op."""
    base = {n for n, f in inspect.getmembers(m.Metrics, inspect.isfunction) if not n.startswith("_")}
    for cls in (m.NodeMetrics, m.WorkerMetrics, m._Recorder):
        mine = {n for n, f in vars(cls).items() if inspect.isfunction(f) and not n.startswith("_")}
        assert mine <= base, cls
    off = m.Metrics()
    assert off.enabled is False and off.render()[0] == b""
    for name in base - {"render"}:
        params = inspect.signature(getattr(off, name)).parameters
        getattr(off, name)(*([0] * len([p for p in params.values() if p.default is p.empty])))


def test_hostile_values_never_become_labels() -> None:
    rec = m.NodeMetrics()
    rec.request("x" * 200, "applied")
    rec.request("answer", "weird", "not-a-code")
    rec.closed("candidate", 4999)
    rec.closed("candidate", None)
    rec.hello("candidate", "31337")
    text = rec.render()[0].decode()
    assert "x" * 20 not in text and "4999" not in text and "31337" not in text and "not-a-code" not in text
    assert 'examwire_requests_total{code="",outcome="applied",type="other"} 1.0' in text
    assert 'examwire_requests_total{code="internal",outcome="refused",type="answer"} 1.0' in text
    assert 'examwire_closes_total{code="other",role="candidate"} 2.0' in text


def test_shared_facts_become_gauges() -> None:
    from storage.health import Persistence, Shared

    rec = m.NodeMetrics()
    facts = Shared(Persistence(now_ms=100_000, outbox=3, pending=1, oldest_ms=40_000, dead=2, workers={"w": 97_500}),
                   scheduled=7, first_due_ms=95_000, used_memory=900, maxmemory=1000)  # fmt: skip
    rec.shared(facts)
    got = {s.name: s.value for f in text_string_to_metric_families(rec.render()[0].decode()) for s in f.samples}
    assert got["examwire_outbox_entries"] == 3 and got["examwire_outbox_pending"] == 1
    assert got["examwire_outbox_oldest_age_seconds"] == 60 and got["examwire_outbox_dead_letters"] == 2
    assert got["examwire_worker_heartbeat_age_seconds"] == 2.5 and got["examwire_sweeper_lag_seconds"] == 5
    assert got["examwire_attempts_scheduled"] == 7 and got["examwire_redis_up"] == 1
    assert got["examwire_redis_used_memory_bytes"] == 900 and got["examwire_redis_maxmemory_bytes"] == 1000
    rec.shared(Shared(Persistence(now_ms=1, outbox=0, pending=0, oldest_ms=None, dead=0), 0, None, None, None))
    rec.redis_down()
    got = {s.name: s.value for f in text_string_to_metric_families(rec.render()[0].decode()) for s in f.samples}
    assert got["examwire_worker_heartbeat_age_seconds"] == float("inf") and got["examwire_outbox_oldest_age_seconds"] == 0
    assert got["examwire_sweeper_lag_seconds"] == 0 and got["examwire_redis_up"] == 0


def test_read_shared_is_one_pipeline_of_the_real_facts(redis_url: str, arun) -> None:
    import time

    from redis.asyncio import Redis

    from storage import health, keys

    async def run() -> health.Shared:
        r = Redis.from_url(redis_url, decode_responses=True)
        try:
            now = int(time.time() * 1000)
            await r.zadd(keys.DEADLINES, {"a" * 32: now - 4000, "b" * 32: now + 60_000})
            await r.xadd(keys.OUTBOX, {"attempt": "c" * 32, "record": "{}"})
            return await health.read_shared(r)
        finally:
            await r.aclose()

    facts = arun(run())
    assert facts.scheduled == 2 and 3000 <= facts.sweeper_lag_ms <= 10_000 and facts.persistence.outbox == 1
    assert facts.used_memory and facts.used_memory > 0 and facts.maxmemory == 0


# ------------------------------------------------------------------ the worker's multiprocess mode


def test_the_worker_exporter_sums_forked_children(tmp_path: Path) -> None:
    """Multiprocess mode as ``examwire worker`` sets it up: children forked after the metrics exist each count, and the
    main process's exporter serves the sum (the prefork pool's case), including a child that has exited."""
    port = free_port()
    script = textwrap.dedent(f"""
        import os, sys, urllib.request
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = {str(tmp_path)!r}
        from services.metrics import WorkerMetrics, start_worker_exporter
        rec = WorkerMetrics()
        server = start_worker_exporter("127.0.0.1", {port}, {str(tmp_path)!r})
        for n in (3, 4):
            pid = os.fork()
            if pid == 0:
                rec.drained(n, 1)
                rec.store_write(0.01, n)
                rec.attempt_ended("expired")
                os._exit(0)
            os.waitpid(pid, 0)
        print(urllib.request.urlopen("http://127.0.0.1:{port}/metrics").read().decode())
        server.shutdown()
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"})  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = {s.name + json.dumps(s.labels, sort_keys=True): s.value for f in text_string_to_metric_families(out.stdout) for s in f.samples}
    assert got["examwire_worker_records_written_total{}"] == 7
    assert got["examwire_worker_records_retried_total{}"] == 2
    assert got["examwire_worker_store_write_seconds_count{}"] == 2
    assert got['examwire_attempts_ended_total{"state": "expired"}'] == 2
    assert len(list(tmp_path.glob("counter_*.db"))) == 3  # the main process and both children


def test_worker_metrics_refuse_a_process_without_the_directory() -> None:
    with pytest.raises(RuntimeError, match="PROMETHEUS_MULTIPROC_DIR"):
        m.WorkerMetrics()


# ------------------------------------------------------------------ settings


def test_metrics_settings(tmp_path: Path) -> None:
    s = Settings.from_env(BASE, data_dir=tmp_path)
    assert (s.metrics, s.metrics_port, s.metrics_host, s.worker_metrics_port) == (True, 0, "127.0.0.1", 0)
    assert (s.metrics_refresh_ms, s.loop_lag_interval_ms) == (5000, 500)
    env = {**BASE, "EXAMWIRE_METRICS": "off", "EXAMWIRE_METRICS_PORT": "9100", "EXAMWIRE_METRICS_HOST": "0.0.0.0",
           "EXAMWIRE_WORKER_METRICS_PORT": "9101", "EXAMWIRE_METRICS_REFRESH_MS": "1000", "EXAMWIRE_LOOP_LAG_INTERVAL_MS": "50"}
    s = Settings.from_env(env, data_dir=tmp_path)
    assert (s.metrics, s.metrics_port, s.metrics_host, s.worker_metrics_port) == (False, 9100, "0.0.0.0", 9101)
    assert (s.metrics_refresh_ms, s.loop_lag_interval_ms) == (1000, 50)
    for name, raw in (("EXAMWIRE_METRICS_PORT", "70000"), ("EXAMWIRE_METRICS_REFRESH_MS", "10"), ("EXAMWIRE_METRICS", "maybe")):
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({**BASE, name: raw}, data_dir=tmp_path)


# ------------------------------------------------------------------ the listeners


def test_the_metrics_port_listener(arun) -> None:
    async def run() -> None:
        port = free_port()
        server = await serve_metrics("127.0.0.1", port, lambda: (b"examwire_x 1\n", "text/plain; version=0.0.4"),
                                     max_header_bytes=1024, header_timeout_s=0.5, send_timeout_s=1)  # fmt: skip

        async def ask(raw: bytes) -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(raw)
            answer = await reader.read()
            writer.close()
            return answer

        try:
            ok = await ask(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            assert ok.startswith(b"HTTP/1.1 200 OK") and ok.endswith(b"\r\n\r\nexamwire_x 1\n")
            assert (await ask(b"HEAD /metrics?x=1 HTTP/1.1\r\n\r\n")).endswith(b"Connection: close\r\n\r\n")
            assert (await ask(b"GET / HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 404")
            assert await ask(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 4000 + b"\r\n\r\n") == b""  # head too large
            assert await ask(b"GET /metr") == b""  # never finished: closed after the header timeout
        finally:
            server.close()

    arun(run())


def test_metrics_off_serves_none_and_a_busy_port_is_logged(make_node) -> None:
    off = make_node(EXAMWIRE_METRICS="false")
    assert http_json("GET", f"{off.base_url}/metrics")[0] == 404
    taken = make_node(EXAMWIRE_METRICS_PORT=str(off.port))  # its metrics port is another node's main port
    assert http_json("GET", f"{taken.base_url}/healthz")[0] == 200  # it serves regardless
    assert '"metrics_listen_failed"' in taken.log_text()


def test_nginx_as_shipped_refuses_metrics(make_node, tmp_path: Path) -> None:
    from tests.deploy import topology

    require_tool("nginx", ".ci/run installs Debian's nginx", path=topology.NGINX_PATH)
    node = make_node()
    assert http_json("GET", f"{node.base_url}/metrics")[0] == 200
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(topology.nginx_config((REPO_ROOT / "deploy" / "nginx.conf").read_text(), listen_port=port,
                                          engine_host="engine", engine_port="8000", nodes=[node.port], prefix=tmp_path))  # fmt: skip
    pid = f"pid {tmp_path / 'nginx.pid'};"
    log = open(tmp_path / "nginx.log", "ab")
    proc = subprocess.Popen(topology.nginx_argv(conf, tmp_path, "-g", f"daemon off; {pid}"), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _status(f"http://127.0.0.1:{port}/healthz") == 200, 10, "nginx in front of the node")
        for path in ("/metrics", "/metrics/", "/metrics?x=1"):
            assert _status(f"http://127.0.0.1:{port}{path}") == 403, path
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def _status(url: str) -> int | None:
    try:
        return http_json("GET", url, timeout=2)[0]
    except OSError:
        return None


# ------------------------------------------------------------------ the shipped files


def test_promtool_accepts_what_ships(promtool: str) -> None:
    for argv in (["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"]):
        out = subprocess.run([promtool, *argv], cwd=REPO_ROOT / "deploy" / "prometheus", capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_has_a_runbook_and_a_severity() -> None:
    doc = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    names = {r["alert"] for r in rules}
    assert {"ExamwireResultsNotPersisting", "ExamwireNoWorkerHeartbeat", "ExamwireEngineNodeDown", "ExamwireAckLatencyHigh",
            "ExamwireEventLoopLag", "ExamwireRedisUnreachable", "ExamwireRedisMemoryNearLimit"} <= names
    for r in rules:
        assert r["labels"]["severity"] in ("critical", "warning") and r["annotations"]["runbook"].strip(), r["alert"]
    readme = (REPO_ROOT / "README.md").read_text().split("\n## Operating Examwire\n", 1)[1].split("\n## ", 1)[0]
    assert all(f"`{n}`" in readme for n in names), "README's Operating Examwire explains every alert"
    (ack,) = [r for r in rules if r["alert"] == "ExamwireAckLatencyHigh"]
    assert "0.99" in ack["expr"] and "> 0.1" in ack["expr"] and ack["for"] == "5m"


def test_compose_monitoring_profile(tmp_path: Path) -> None:
    exe = require_tool("docker-compose", ".ci/run installs Debian's docker-compose to validate compose.yaml offline")
    env = {**os.environ, "EXAMWIRE_JWT_SECRET": "x" * 40, "EXAMWIRE_SECRET": "y" * 40}
    for extra in ([], ["--profile", "monitoring"]):
        out = subprocess.run([exe, "-f", str(REPO_ROOT / "compose.yaml"), *extra, "config", "-q"], env=env,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert out.returncode == 0, out.stderr
    services = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    assert services["worker"]["environment"]["EXAMWIRE_WORKER_METRICS_PORT"] == "9101"
    prom = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    ports = {j["job_name"]: j["dns_sd_configs"][0]["port"] for j in prom["scrape_configs"] if "dns_sd_configs" in j}
    assert ports == {"examwire-engine": 8000, "examwire-worker": 9101}
    assert "8000" in services["engine"]["expose"] and "9101" in services["worker"]["expose"]


def test_the_dashboard_and_its_provisioning_agree() -> None:
    dash = json.loads((REPO_ROOT / "deploy" / "grafana" / "examwire.json").read_text())
    source = yaml.safe_load((REPO_ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (ds,) = source["datasources"]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    assert {p["datasource"]["uid"] for p in panels} == {ds["uid"]}
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    titles = " | ".join(p["title"] for p in panels).lower()
    for want in ("live candidates", "answers / s", "answer→ack latency", "closes by code", "outbox: oldest entry age",
                 "sweeper lag", "per node"):
        assert want in titles, want
    provider = yaml.safe_load((REPO_ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "examwire.yml").read_text())
    compose = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())["services"]["grafana"]["volumes"]
    mounted = {v.split(":")[1] for v in compose}
    assert provider["providers"][0]["options"]["path"] + "/examwire.json" in mounted
