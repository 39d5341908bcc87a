"""The background jobs as coroutines over the services' ``Core``: no Celery here.

Each job takes ids, re-reads state, and is idempotent, so Celery may run it
twice, late, or on any worker. Expiry, analyses and exports are the services
the engine nodes use too (``services.expiry``, ``services.reports``).
"""

from __future__ import annotations

from typing import Any

from services import reports
from services.core import Core
from services.expiry import sweep
from services.reports import UnknownExam, analyse_stale, export
from storage.outbox import DrainStats, Outbox

__all__ = ["drain", "sweep", "analyse", "analyse_stale", "export", "UnknownExam"]


async def drain(core: Core, outbox: Outbox, *, budget_s: float) -> DrainStats:
    """Persist due outbox entries (see ``storage.outbox``); raises ``StoreUnavailable``."""
    stats = await outbox.drain(budget_s=budget_s)
    core.metrics.drained(stats.written, stats.retried)
    if stats.written or stats.rejected:
        core.event("outbox_drained", written=stats.written, rejected=stats.rejected, retried=stats.retried)
    return stats


async def analyse(core: Core, exam_id: str, version: int | None = None) -> dict[str, Any] | None:
    """Recompute and store the item analysis of one exam version (default: current)."""
    return await reports.analysis(core, exam_id, version, refresh=True)
