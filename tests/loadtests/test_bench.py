"""``python -m loadtests.bench --quick`` runs end to end and writes well-formed results (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SECTIONS = {"batch", "throughput", "rates", "rush", "sessions", "expiry", "proctor", "replicas", "metrics"}


def test_quick_bench_writes_json_and_markdown(tmp_path: Path) -> None:
    out = tmp_path / "bench-results.json"
    proc = subprocess.run([sys.executable, "-m", "loadtests.bench", "--quick", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert SECTIONS <= set(res) and res["size"] == "quick"
    assert res["batch"]["questions"] == 65 and res["batch"]["p50"] > 0
    tp = res["throughput"]
    assert tp["ceiling_per_s"] > 0 and tp["engine_answers_per_s"] > 0 and 0 < tp["ratio"]
    assert all(v > 0 for v in tp["ceilings_per_s"].values()) and set(tp["ceilings_per_s"]) == {
        "echo_bare", "echo_evalsha", "echo_evalsha_batched"}
    assert tp["connection_layer_per_s"] > 0 and len(tp["ratio_per_round"]) == tp["rounds"] == res["sizes"]["rounds"]
    assert all(r["answers"] > 0 and r["errors"] == 0 for r in res["rates"])
    assert res["rush"]["failures"] == 0 and res["rush"]["candidates"] == res["sizes"]["rush"]
    assert [s["sessions"] for s in res["sessions"]] == res["sizes"]["sessions"]
    assert all(s["failures"] == 0 and s["kib_per_session"] > 0 for s in res["sessions"])
    assert res["expiry"]["missing"] == 0 and res["expiry"]["expired"] == res["sizes"]["expiry"]
    assert res["proctor"]["unmatched"] == 0 and res["proctor"]["matched"] > 0
    mx = res["metrics"]  # metrics on and off side by side, alternating rounds
    assert all(v > 0 for v in mx["answers_per_s"].values()) and len(mx["ratio_per_round"]) == mx["rounds"]
    assert mx["bound"] == 0.03 and "within_bound" in mx
    rp = res["replicas"]  # MIN_REPLICAS 0 and 1 side by side, with a real replica
    assert rp["replicas"] == 1 and all(v > 0 for v in rp["answers_per_s"].values()) and rp["ratio"] > 0
    assert all(r["errors"] == 0 and r["p50"] > 0 for r in rp["rate"].values())
    md = out.with_suffix(".md").read_text()
    assert md.startswith("# Examwire bench (quick)") and "| measure | result | goal |" in md
    assert "of the ceiling" in md and "`MIN_REPLICAS` 0 vs 1" in md
