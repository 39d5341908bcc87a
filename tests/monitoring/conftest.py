"""A real Prometheus (Debian's ``prometheus`` package, which .ci/run installs) for the monitoring tests.

``start_prometheus(tmp, config) -> Prometheus``: writes ``config`` (a dict, as
prometheus.yml) and any rule files beside it, starts ``prometheus`` on a free
127.0.0.1 port with its own data dir, waits for ``/-/ready`` and returns it;
``Prometheus.query(promql)`` runs an instant query over the HTTP API
(``/api/v1/query``), ``Prometheus.api(path)`` any other GET. Stopped (SIGTERM,
then SIGKILL) by the fixture's teardown.

``worker_with_exporter(...)`` is an ``examwire worker --beat`` whose exporter
listens on a port of its own (``EXAMWIRE_WORKER_METRICS_PORT``).

``scrape(url)`` reads one exporter's ``/metrics`` into ``{name + labels as
JSON: value}`` (``'examwire_connections{"role": "proctor"}'``), with
prometheus_client's own parser.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from prometheus_client.parser import text_string_to_metric_families

from testkit import free_port, http_json, node_env, tail, wait_until
from tests.conftest import require_tool
from tests.tasks.conftest import FAST, Worker

HOW = ".ci/run installs Debian's prometheus package (apt-get install prometheus), which has promtool too"


def worker_with_exporter(root: Path, *, redis_url: str, secrets: Any, db: Path, port: int, concurrency: int = 1) -> Worker:
    """A started ``examwire worker --beat`` (prefork, ``concurrency`` children) on ``redis_url``, writing to ``db``."""
    return Worker(
        [sys.executable, "-m", "examwire", "worker", "--beat", "--concurrency", str(concurrency), "--data-dir", str(root / "w"),
         "--loglevel", "INFO"],
        node_env(EXAMWIRE_REDIS_URL=redis_url, EXAMWIRE_JWT_SECRET=secrets.jwt_secret, EXAMWIRE_SECRET=secrets.secret,
                 EXAMWIRE_SQLITE_PATH=str(db), EXAMWIRE_WORKER_METRICS_PORT=str(port), **FAST),
        root / "worker.log",
    )  # fmt: skip


def scrape(url: str) -> dict[str, float]:
    status, text = http_json("GET", url)
    assert status == 200, (status, text)
    return {s.name + json.dumps(s.labels, sort_keys=True): s.value for f in text_string_to_metric_families(text) for s in f.samples}


class Prometheus:
    def __init__(self, exe: str, root: Path, config: dict[str, Any], rules: dict[str, Any]) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        for name, doc in rules.items():
            (root / name).write_text(yaml.safe_dump(doc, sort_keys=False))
        self.config_path = root / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = root / "prometheus.log"
        self._log = open(self.log_path, "ab")
        argv = [exe, f"--config.file={self.config_path}", f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"]  # fmt: skip
        self.proc = subprocess.Popen(argv, cwd=root, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        wait_until(self._ready, 30, lambda: f"prometheus /-/ready\n{tail(self.log_path)}")

    def _ready(self) -> bool:
        assert self.proc.poll() is None, f"prometheus exited {self.proc.returncode}\n{tail(self.log_path)}"
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>``; its ``data`` (asserting ``status: success``)."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as resp:
            doc = json.loads(resp.read())
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query: its vector (``[{"metric": {...}, "value": [t, "v"]}, ...]``); an error fails."""
        try:
            data = self.api("query", query=promql)
        except urllib.error.HTTPError as err:  # 400/422: the expression is wrong
            raise AssertionError(f"PromQL {promql!r}: HTTP {err.code} {err.read()[:500]!r}") from None
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def value(self, promql: str) -> float | None:
        """The single value of an instant query (None: empty vector)."""
        result = self.query(promql)
        assert len(result) <= 1, (promql, result)
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def promtool() -> str:
    return require_tool("promtool", HOW)


@pytest.fixture
def start_prometheus() -> Callable[..., Prometheus]:
    exe = require_tool("prometheus", HOW)
    started: list[Prometheus] = []

    def _start(root: Path, config: dict[str, Any], rules: dict[str, Any] | None = None) -> Prometheus:
        root.mkdir(parents=True, exist_ok=True)
        prom = Prometheus(exe, root, config, rules or {})
        started.append(prom)
        return prom

    yield _start
    for prom in started:
        prom.stop()
