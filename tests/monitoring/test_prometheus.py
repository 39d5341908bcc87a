"""A real Prometheus scrapes two engine nodes and a prefork worker; the shipped rules and dashboard run against it.

Real parts only: redis-server, two ``examwire serve`` nodes (one serving
``/metrics`` on its own port, ``EXAMWIRE_METRICS_PORT``, the other on its
main port), an ``examwire worker --concurrency 2`` (prefork: its exporter sums
both pool children, multiprocess mode), candidates over WebSockets, and
Debian's ``prometheus`` scraping all three every second.

What is checked, over Prometheus's HTTP API:

* after candidates answer, the counts PromQL returns are the requests they
  made (applied, duplicate, refused by code, per node), the answer→ack
  histogram holds every ack, and the worker's written-records counter sums
  what its two children wrote;
* every PromQL expression of deploy/prometheus/alerts.yml and of
  deploy/grafana/examwire.json evaluates without error, and every metric it
  names has series (a typo'd name fails);
* a rule fires for real: with the worker stopped while attempts end,
  ``ExamwireResultsNotPersisting`` goes pending, then firing (the shipped rule
  with its 60 s threshold and 1 m ``for`` shortened to 2 s each; nothing
  else of it changed).
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import re
import time
from pathlib import Path
from typing import Any

import yaml

from examwire.client import ExamClient, attempt_url
from testkit import REPO_ROOT, SAMPLE_EXAM, SAMPLE_RIGHT_ANSWERS, free_port, wait_until

from .conftest import worker_with_exporter

PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "examwire.json"
EXAM_ID = "metrics"
PER_NODE = 3  # candidates on each node
ANSWERS = ["q1", "q2", "q3", "q4"]  # applied answers per candidate; each also resends one (duplicate) and refuses one
FAST_METRICS = {"EXAMWIRE_METRICS_REFRESH_MS": "200", "EXAMWIRE_LOOP_LAG_INTERVAL_MS": "100"}


def shipped_rules() -> dict[str, Any]:
    return yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())


def rules_for_test() -> dict[str, Any]:
    """The shipped rules, with only "results not persisting"'s threshold and ``for:`` shortened (asserted to be there)."""
    doc = copy.deepcopy(shipped_rules())
    (rule,) = [r for g in doc["groups"] for r in g["rules"] if r["alert"] == "ExamwireResultsNotPersisting"]
    assert "max(examwire_outbox_oldest_age_seconds) > 60" in rule["expr"] and rule["for"] == "1m", rule
    rule["expr"] = rule["expr"].replace("> 60", "> 2")
    rule["for"] = "2s"
    return doc


def expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every alert rule and every dashboard target; Grafana's variables made concrete."""
    out = [(f"alert {r['alert']}", r["expr"]) for g in shipped_rules()["groups"] for r in g["rules"]]
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            out.append((f"panel {panel['title']!r}", target["expr"].replace("$__rate_interval", "1m")))
    return out


NAME = re.compile(r"\b((?:examwire|process)_[a-z0-9_]+|up)\b(?!\s*\()")


def names_in(expr: str) -> set[str]:
    """The metric names an expression reads (label names and functions are not: they are not ``examwire_``/``process_``)."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    return set(NAME.findall(without_strings)) - {"by", "le"}


async def take_exam(ws_url: str, token: str, *, finish: bool = True) -> None:
    c = ExamClient(attempt_url(ws_url, EXAM_ID), token, reply_timeout=15)
    await c.connect()
    try:
        await c.hello()
        assert (await c.start())["t"] == "ack"
        acks = [await c.answer(q, SAMPLE_RIGHT_ANSWERS[q]) for q in ANSWERS]
        assert all(a["t"] == "ack" for a in acks), acks
        again = await c.request("answer", id=acks[0]["id"], q="q1", value=SAMPLE_RIGHT_ANSWERS["q1"])  # a resend
        assert again["t"] == "ack" and again.get("dup") is True, again
        refused = await c.answer("nope", "b")
        assert refused["t"] == "error" and refused["code"] == "unknown_question", refused
        if finish:
            assert (await c.submit())["t"] == "ack"
    finally:
        await c.close()


def test_prometheus_scrapes_nodes_and_worker_and_the_rules_hold(
    make_node, put_exam, make_token, redis_url, secrets, tmp_path: Path, start_prometheus, arun
) -> None:
    t0 = time.monotonic()
    results_db = tmp_path / "results.sqlite3"
    side_port = free_port()
    node_a = make_node(EXAMWIRE_SQLITE_PATH=str(results_db), **FAST_METRICS)
    node_b = make_node(EXAMWIRE_SQLITE_PATH=str(results_db), EXAMWIRE_METRICS_PORT=str(side_port), **FAST_METRICS)
    put_exam(node_a, {**SAMPLE_EXAM, "id": EXAM_ID})
    worker_port = free_port()
    worker = worker_with_exporter(tmp_path, redis_url=redis_url, secrets=secrets, db=results_db, port=worker_port, concurrency=2)
    try:
        engines = [f"127.0.0.1:{node_a.port}", f"127.0.0.1:{side_port}"]
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
            "rule_files": ["alerts.yml"],
            # the shipped job names (rules and dashboard select on them), with the test's addresses
            "scrape_configs": [
                {"job_name": "examwire-engine", "static_configs": [{"targets": engines}]},
                {"job_name": "examwire-worker", "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}]},
            ],
        }
        prom = start_prometheus(tmp_path / "prometheus", config, {"alerts.yml": rules_for_test()})
        wait_until(lambda: prom.value('count(up{job=~"examwire-.*"} == 1)') == 3, 30,
                   lambda: f"all three targets up: {prom.query('up')}\n{worker.log()}")  # fmt: skip
        # node B's main port does not serve /metrics: it has a port of its own
        from testkit import http_json

        assert http_json("GET", f"{node_b.base_url}/metrics")[0] == 404

        # -- candidates answer, on both nodes; then the counts, per node and in total
        async def wave(n: int, prefix: str, finish: bool = True) -> None:
            await asyncio.gather(*(
                take_exam(node.ws_url, make_token(f"{prefix}-{i}-{k}", exams=[EXAM_ID]), finish=finish)
                for k, node in enumerate((node_a, node_b)) for i in range(n)
            ))  # fmt: skip

        arun(wave(PER_NODE, "cand"), timeout=60)
        n = 2 * PER_NODE
        answers = len(ANSWERS)
        expect = {
            'sum(examwire_requests_total{type="answer",outcome="applied"})': n * answers,
            'sum(examwire_requests_total{type="answer",outcome="duplicate"})': n,
            'sum(examwire_requests_total{type="answer",outcome="refused",code="unknown_question"})': n,
            'sum(examwire_requests_total{type="start",outcome="applied"})': n,
            'sum(examwire_requests_total{type="submit",outcome="applied"})': n,
            "sum(examwire_answer_ack_seconds_count)": n * (answers + 1),
            'sum(examwire_hellos_total{role="candidate",result="ok"})': n,
            'sum(examwire_closes_total{role="candidate"})': n,
            "sum(examwire_attempts_started_total)": n,
            'sum(examwire_attempts_ended_total{state="submitted"})': n,
            "sum(examwire_worker_records_written_total)": n,  # both pool children's files, summed by the exporter
            'count(sum by (instance) (examwire_requests_total{type="answer",outcome="applied"}) == 4 * 3)': 2,
        }

        def counts() -> dict[str, float | None]:
            return {q: prom.value(q) for q in expect}

        wait_until(lambda: counts() == expect, 20, lambda: f"the counts: {counts()} != {expect}")
        p99 = prom.value("histogram_quantile(0.99, sum by (le) (rate(examwire_answer_ack_seconds_bucket[1m])))")
        assert p99 is not None and math.isfinite(p99) and 0 < p99 < 2.5, p99
        assert prom.value('sum(examwire_answer_ack_seconds_bucket{le="+Inf"})') == n * (answers + 1)
        assert prom.value("max(examwire_worker_heartbeat_age_seconds)") < 10  # the worker beats
        assert prom.value("sum(rate(examwire_event_loop_lag_seconds_count[1m]))") > 0  # both loops are probed
        assert prom.value('sum(examwire_worker_drain_seconds_count{job="examwire-worker"})') > 0

        # -- every expression the shipped rules and dashboard run: no error, and every metric it names exists
        problems = []
        for where, expr in expressions():
            prom.query(expr)  # raises on a PromQL error
            for name in sorted(names_in(expr)):
                if not prom.query(f'count({{__name__="{name}"}})'):
                    problems.append(f"{where}: no series named {name} (in {expr})")
        assert problems == []
        rules = prom.api("rules")["groups"]
        assert {r["name"] for g in rules for r in g["rules"]} >= {"ExamwireResultsNotPersisting", "ExamwireRedisUnreachable"}
        assert all(r["health"] == "ok" for g in rules for r in g["rules"]), rules

        # -- a rule fires for real: no worker, attempts end, the outbox ages
        assert _alert(prom, "ExamwireResultsNotPersisting") is None
        worker.stop()
        arun(wave(1, "late"), timeout=30)
        stopped = time.monotonic()
        seen: set[str] = set()

        def firing() -> bool:
            alert = _alert(prom, "ExamwireResultsNotPersisting")
            if alert is not None:
                seen.add(alert["state"])
            return alert is not None and alert["state"] == "firing"

        # threshold 2 s + for 2 s, plus a refresh, a scrape and an evaluation or two
        wait_until(firing, 15, lambda: f"ExamwireResultsNotPersisting firing; alerts: {prom.api('alerts')}")
        assert "pending" in seen or time.monotonic() - stopped > 2  # it went through its `for:` window
        assert prom.value("max(examwire_outbox_entries)") == 2
        assert _alert(prom, "ExamwireNoWorkerHeartbeat") is not None  # stopped cleanly: its heartbeat is gone (+Inf)
    finally:
        worker.stop()
    assert time.monotonic() - t0 < 90


def _alert(prom: Any, name: str) -> dict[str, Any] | None:
    found = [a for a in prom.api("alerts")["alerts"] if a["labels"].get("alertname") == name]
    return found[0] if found else None
