"""``python -m loadtests.probe`` against a real engine node: it takes the exam like a Locust candidate
(hello, start, goto + answer at its pace, submit, start over) and reports what it measured. No timing is
asserted: this machine is shared and busy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import testkit
from loadtests import probe


def test_the_probe_answers_submits_and_starts_over(
    make_node: Callable[..., Any], put_exam: Callable[..., Any], secrets: Any, tmp_path: Path
) -> None:
    node = make_node()
    put_exam(node, testkit.make_exam("probe-e2e", 12))
    secret_file = tmp_path / "jwt-secret"
    secret_file.write_text(secrets.jwt_secret + "\n")
    out = tmp_path / "probe.json"
    rc = probe.main([
        "--host", node.base_url, "--exam", "probe-e2e", "--jwt-secret-file", str(secret_file),
        "--connections", "2", "--interval", "0.25", "--duration", "3", "--answers-per-attempt", "4",
        "--json", str(out),
    ])  # fmt: skip
    res = json.loads(out.read_text())
    assert rc == 0 and res["errors"] == 0, res["first_errors"]
    a, g = res["answer_ack_ms"], res["goto_ack_ms"]
    assert a["n"] >= 8 and g["n"] >= 4  # each answer but an attempt's first comes with a goto
    assert 0 < a["p50"] <= a["p90"] <= a["p99"] and 0 < g["p50"] <= g["p99"]
    assert res["attempts"] >= 3  # 4 answers per attempt, then a submit and a new identity
    assert res["connections"] == 2 and 0 <= res["probe_cpu_fraction"] and res["probe_loop_lag_ms"]["p50"] is not None
