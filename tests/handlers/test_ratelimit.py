"""Unit tests of ``handlers.ratelimit.Bucket`` (explicit clock, no sleeping)."""

from __future__ import annotations

from handlers.ratelimit import Bucket


def take_n(bucket: Bucket, n: int, now: float) -> list[bool | None]:
    return [bucket.take(now) for _ in range(n)]


def test_burst_then_refusals_then_disconnect() -> None:
    b = Bucket.full(rate=20, burst=40, debt=20, now=100.0)
    assert take_n(b, 40, 100.0) == [True] * 40
    assert take_n(b, 20, 100.0) == [False] * 20
    assert b.take(100.0) is None
    assert b.take(100.0) is None  # stays over the limit while the client keeps going


def test_bad_frame_budget_shape() -> None:
    """1/s, burst 10, debt 0: the 11th bad frame in quick succession disconnects."""
    b = Bucket.full(rate=1, burst=10, debt=0, now=0.0)
    assert take_n(b, 10, 0.0) == [True] * 10
    assert b.take(0.0) is None


def test_refill_over_time() -> None:
    b = Bucket.full(rate=10, burst=5, debt=5, now=0.0)
    assert take_n(b, 5, 0.0) == [True] * 5
    assert b.take(0.0) is False
    # 0.1 s refills one token, but the refusal left a debt of one: still refused
    assert b.take(0.1) is False
    # one second pays the debt back and refills up to the burst, never beyond
    assert take_n(b, 5, 1.5) == [True] * 5
    assert b.take(1.5) is False


def test_refill_never_exceeds_burst() -> None:
    b = Bucket.full(rate=100, burst=3, debt=2, now=0.0)
    assert take_n(b, 3, 1000.0) == [True] * 3
    assert b.take(1000.0) is False


def test_steady_rate_is_never_limited() -> None:
    b = Bucket.full(rate=20, burst=40, debt=20, now=0.0)
    now = 0.0
    for _ in range(1000):  # 10/s for 100 s
        assert b.take(now) is True
        now += 0.1
    # exactly at the rate, for long, is fine too
    b = Bucket.full(rate=20, burst=40, debt=20, now=0.0)
    now = 0.0
    for _ in range(1000):
        assert b.take(now) is True
        now += 0.05


def test_client_that_slows_down_recovers() -> None:
    b = Bucket.full(rate=20, burst=40, debt=20, now=0.0)
    assert take_n(b, 40, 0.0) == [True] * 40
    assert take_n(b, 10, 0.0) == [False] * 10  # half the debt used
    assert b.take(1.0) is True  # one second refills 20 tokens: the debt of 10 is paid back
    now = 1.0
    for _ in range(100):
        now += 0.1
        assert b.take(now) is True


def test_disconnect_threshold_with_refill_during_flood() -> None:
    """Flooding at 1000/s against 20/s: served ~burst, refused ~debt, then None."""
    b = Bucket.full(rate=20, burst=40, debt=20, now=0.0)
    results = []
    now = 0.0
    while True:
        r = b.take(now)
        results.append(r)
        if r is None:
            break
        now += 0.001
        assert len(results) < 1000
    served, refused = results.count(True), results.count(False)
    assert 40 <= served <= 42
    assert 20 <= refused <= 22
    assert results.index(False) == served and results[-1] is None
