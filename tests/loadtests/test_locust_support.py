"""The Locust harness's pure helpers (``loadtests/locust_support.py``): pacing, answer phase, and the
self-health verdict that says when the harness's own figures are unreliable. No Locust, no gevent, no
sockets: the clocks are injected, so nothing here depends on how busy the machine is."""

from __future__ import annotations

import random
from typing import Any

import pytest

from loadtests import locust_support as ls


class Clocks:
    """Injected clocks for ``HealthMonitor``: wall/perf time, the process's CPU time, the machine's
    ``(busy, total)`` jiffies and the run-queue wait, all advanced by hand."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.cpu = 0.0
        self.busy = 0.0
        self.total = 0.0
        self.runq = 0.0

    def advance(self, seconds: float, *, cpu: float = 0.0, machine_busy: float = 0.0, runq: float = 0.0) -> None:
        self.t += seconds
        self.cpu += cpu * seconds
        self.total += 200.0 * seconds  # two cores, 100 jiffies a second each
        self.busy += machine_busy * 200.0 * seconds
        self.runq += runq * seconds

    def monitor(self, **kw: Any) -> ls.HealthMonitor:
        return ls.HealthMonitor(
            clock=lambda: self.t,
            cpu_clock=lambda: self.cpu,
            wall_clock=lambda: self.t,
            machine_clock=lambda: (self.busy, self.total),
            run_queue_clock=lambda: self.runq,
            **kw,
        )


def test_a_quiet_window_is_reliable() -> None:
    c = Clocks()
    m = c.monitor(cpu_warn=0.75, lag_warn_ms=10, window_s=5)
    for _ in range(250):
        m.sample_lag(0.0003)
    assert not m.due()
    c.advance(5.0, cpu=0.10, machine_busy=0.2)
    assert m.due()
    w = m.close()
    assert w is not None and w.reliable and w.reasons == []
    assert w.cpu == pytest.approx(0.10) and w.machine_busy == pytest.approx(0.2) and w.run_queue == 0.0
    assert w.lag_p50_ms == pytest.approx(0.3) and w.samples == 250
    s = m.summary()
    assert s["windows"] == 1 and s["unreliable_windows"] == 0
    reliable, line = ls.health_verdict(s)
    assert reliable and "0 of 1 5-s windows over the limits" in line


def test_a_cpu_bound_window_is_flagged_and_blamed_on_the_process() -> None:
    c = Clocks()
    m = c.monitor(cpu_warn=0.75, lag_warn_ms=10, window_s=5)
    for _ in range(100):
        m.sample_lag(0.001)
    c.advance(5.0, cpu=0.92, machine_busy=0.6)
    w = m.close()
    assert w is not None and not w.reliable
    assert w.reasons == ["CPU 92% of a core (limit 75%)"]
    assert "--processes" in ls.advice(w, cpu_warn=0.75)


def test_lag_p99_over_the_limit_is_flagged_and_the_cause_named() -> None:
    c = Clocks()
    m = c.monitor(cpu_warn=0.75, lag_warn_ms=10, window_s=5)
    for _ in range(97):
        m.sample_lag(0.0005)
    for _ in range(3):
        m.sample_lag(0.040)  # 3 % of the samples 40 ms late: p99 is 40 ms
    c.advance(5.0, cpu=0.10, machine_busy=0.7, runq=0.05)  # kept off a core 250 ms of the 5 s
    w = m.close()
    assert w is not None and w.lag_p99_ms == pytest.approx(40.0)
    assert w.reasons == ["scheduling lag p99 40.0 ms (limit 10 ms)"]
    assert "waiting for a core 250 ms" in ls.advice(w, cpu_warn=0.75)

    # the same lag with long collector pauses and no run-queue wait: the collector is named
    for _ in range(100):
        m.sample_lag(0.030)
    m.note_gc(2.0)
    m.note_gc(28.0)
    c.advance(5.0, cpu=0.10, machine_busy=0.2)
    w2 = m.close()
    assert w2 is not None and w2.gc_ms == pytest.approx(30.0) and w2.gc_max_ms == pytest.approx(28.0)
    assert "garbage-collector" in ls.advice(w2, cpu_warn=0.75)

    # neither: a stall
    for _ in range(100):
        m.sample_lag(0.030)
    c.advance(5.0, cpu=0.05, machine_busy=0.1)
    w3 = m.close()
    assert w3 is not None and "stalled" in ls.advice(w3, cpu_warn=0.75)

    s = m.summary()
    assert (s["windows"], s["unreliable_windows"], s["lag_windows"], s["cpu_windows"]) == (3, 3, 3, 0)
    assert s["unreliable_seconds"] == pytest.approx(15.0) and s["gc_max_ms"] == pytest.approx(28.0)
    assert s["run_queue_ms"] == pytest.approx(250.0)
    reliable, line = ls.health_verdict(s)
    assert not reliable and "3 of 3 5-s windows over the limits (CPU 75%, lag p99 10 ms)" in line


def test_thresholds_of_zero_turn_the_checks_off() -> None:
    assert ls.assess(5.0, 999.0, cpu_warn=0, lag_warn_ms=0) == []
    assert ls.assess(0.80, None, cpu_warn=0.75, lag_warn_ms=10) == ["CPU 80% of a core (limit 75%)"]
    assert ls.assess(0.10, 10.0, cpu_warn=0.75, lag_warn_ms=10) == ["scheduling lag p99 10.0 ms (limit 10 ms)"]


def test_a_too_short_window_is_not_judged() -> None:
    c = Clocks()
    m = c.monitor(window_s=5)
    m.sample_lag(0.5)
    c.advance(0.2, cpu=1.0)
    assert m.close(min_seconds=1.0) is None
    assert m.windows == [] and m.summary()["windows"] == 0


def test_percentile_is_nearest_rank() -> None:
    xs = [float(i) for i in range(1, 101)]
    assert ls.percentile(xs, 50) == 50.0 and ls.percentile(xs, 99) == 99.0 and ls.percentile(xs, 100) == 100.0
    assert ls.percentile([7.0], 99) == 7.0 and ls.percentile([], 50) is None


def test_latency_samples_are_exact_and_bounded() -> None:
    ls_ = ls.LatencySamples(("answer→ack",), cap=1000, rng=random.Random(1))
    for i in range(5000):
        ls_.add("answer→ack", 1.0 + (i % 100) / 100)
    ls_.add("connect", 99.0)  # not a tracked name: ignored
    s = ls_.summary()["answer→ack"]
    assert s["n"] == 5000 and len(ls_.samples["answer→ack"]) == 1000
    assert 1.3 <= s["p50"] <= 1.7 and 1.9 <= s["p99"] <= 1.99


def test_pacing_and_phase() -> None:
    assert ls.pacing_wait(None, 2.0, 10.0) == 0.0
    assert ls.pacing_wait(10.0, 2.0, 10.5) == pytest.approx(1.5)
    assert ls.pacing_wait(10.0, 2.0, 13.0) == 0.0  # the step overran: no wait
    rng = random.Random(7)
    phases = [ls.phase_offset("random", sync_start=False, interval=10.0, rng=rng) for _ in range(1000)]
    assert all(0.0 <= p < 10.0 for p in phases)
    assert 4.0 < sum(phases) / len(phases) < 6.0 and max(phases) - min(phases) > 9.0  # spread over the interval
    assert ls.phase_offset("auto", sync_start=False, interval=10.0, rng=random.Random(1)) > 0.0
    assert ls.phase_offset("auto", sync_start=True, interval=10.0) == 0.0  # the synchronized start stays in step
    assert ls.phase_offset("aligned", sync_start=False, interval=10.0) == 0.0
    with pytest.raises(ValueError):
        ls.phase_offset("sometimes", sync_start=False, interval=1.0)
