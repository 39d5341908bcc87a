"""The background jobs as coroutines over a node ``Context``: no Celery here.

Each job takes ids, re-reads state, and is idempotent, so Celery may run it
twice, late, or on any worker.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from engine.ids import EXAM_ID_RULE, is_exam_id
from handlers.context import Context
from handlers.expiry import SWEEP_BATCH, sweep_once
from handlers.reports import analysis, csv_chunks
from storage.outbox import DrainStats, Outbox


async def drain(ctx: Context, outbox: Outbox, *, budget_s: float) -> DrainStats:
    """Persist due outbox entries (see ``storage.outbox``); raises ``StoreUnavailable``."""
    stats = await outbox.drain(budget_s=budget_s)
    if stats.written or stats.rejected:
        ctx.event("outbox_drained", written=stats.written, rejected=stats.rejected, retried=stats.retried)
    return stats


async def sweep(ctx: Context, *, rounds: int = 50) -> int:
    """End every attempt past deadline + grace (behind the engine nodes' own sweepers); return how many were due."""
    total = 0
    for _ in range(rounds):
        n = await sweep_once(ctx)
        total += n
        if n < SWEEP_BATCH:
            break
    return total


async def analyse(ctx: Context, exam_id: str, version: int | None = None) -> dict[str, Any] | None:
    """Recompute and store the item analysis of one exam version (default: current)."""
    return await analysis(ctx, exam_id, version, refresh=True)


async def analyse_stale(ctx: Context) -> list[str]:
    """Refresh every current exam version's analysis that does not cover all its results."""
    done = []
    for exam_id in await ctx.results.exam_ids():
        version = await ctx.results.exam_version(exam_id)
        count = 0 if version is None else await ctx.results.count_results(exam_id, version=version)
        if count == 0:
            continue
        stored = await ctx.results.get_analysis(exam_id, version)  # type: ignore[arg-type]
        if stored is None or stored.get("results_count") != count:
            await analysis(ctx, exam_id, version, refresh=True)
            done.append(exam_id)
    return done


class UnknownExam(LookupError):
    """The exam id is not valid, or no such exam is in the results store."""


async def export(ctx: Context, exam_id: str, directory: Path | None = None) -> str:
    """Write every result of ``exam_id`` as CSV to ``<data dir>/exports/<exam>.csv`` (atomically); return the path.

    Raises ``UnknownExam`` for an id that breaks the exam id rule (it names the
    file: no path may come from it) or an exam the store does not know.
    """
    if not is_exam_id(exam_id):
        raise UnknownExam(f"{exam_id!r} is not an exam id ({EXAM_ID_RULE})")
    if await ctx.results.exam_version(exam_id) is None:
        raise UnknownExam(f"no exam {exam_id!r} in the results store")
    out_dir = directory or ctx.settings.data_dir / "exports"
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{exam_id}.csv"
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{exam_id}.", suffix=".csv")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            async for chunk in csv_chunks(ctx, exam_id):
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(target)
