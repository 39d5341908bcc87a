"""Per-connection abuse budgets: a token bucket with a bounded debt."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Bucket:
    """``rate`` tokens per second up to ``burst``; each message takes one.

    ``take`` answers ``True`` (serve it), ``False`` (refuse it: ``rate_limited``)
    or ``None`` (the client kept going after ``debt`` refusals: disconnect).
    Refusals run up a debt that the refill pays back, so a client that slows
    down recovers.
    """

    rate: float
    burst: float
    debt: float
    tokens: float
    at: float

    @classmethod
    def full(cls, rate: float, burst: float, debt: float, now: float) -> "Bucket":
        return cls(rate, burst, debt, burst, now)

    def take(self, now: float) -> bool | None:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        self.tokens -= 1.0
        if self.tokens >= 0.0:
            return True
        if self.tokens < -self.debt:
            return None
        return False
