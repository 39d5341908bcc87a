"""The Celery app factory: broker and backend on Redis (directly or through its sentinels), the tasks, and beat's schedule.

``create_celery(settings)`` builds a fresh app (no module-level app); the
``examwire worker`` and ``examwire beat`` commands run it. Workers write
heartbeats to Redis, and beat schedules only while it holds the beat lock
(``tasks/health.py``). Task names are
stable (``examwire.*``) so other services can send them by name.

Tasks:

* ``examwire.drain``: persist the outbox (beat: every ``drain_interval_ms``);
* ``examwire.sweep``: expire attempts past their deadline (beat: every
  ``worker_sweep_interval_ms``), a second line behind the engine nodes;
* ``examwire.analyse_stale``: refresh stale item analyses (beat: every
  ``analysis_interval_s``); ``examwire.analyse(exam_id, version=None)`` one exam;
* ``examwire.export(exam_id)``: write the results CSV into the data dir; returns its path.
"""

from __future__ import annotations

import time
from typing import Any

from celery import Celery

from services.metrics import Metrics
from storage.results import StoreUnavailable

from . import jobs
from .health import heartbeat_step, locked_scheduler
from .runtime import Resources, Runtime, WorkerSettings


def create_celery(settings: WorkerSettings, *, metrics: Metrics | None = None) -> Celery:
    """The Celery app of ``settings``; ``metrics`` records what its tasks do (``services.metrics.WorkerMetrics``)."""
    broker = settings.broker_url
    app = Celery("examwire", broker=broker, backend=broker, set_as_current=False)
    if settings.broker_options:  # behind sentinels: kombu's and Celery's ``sentinel://`` need the service name
        app.conf.broker_transport_options = dict(settings.broker_options)
        app.conf.result_backend_transport_options = dict(settings.broker_options)
    drain_s = settings.drain_interval_ms / 1000
    sweep_s = settings.worker_sweep_interval_ms / 1000
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_expires=3600,
        timezone="UTC",
        enable_utc=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_prefetch_multiplier=1,
        worker_send_task_events=False,
        # one beat per deployment: beat schedules only while it holds the Redis lock (tasks/health.py)
        beat_scheduler=locked_scheduler(settings),
        beat_max_loop_interval=max(1, settings.beat_lock_ttl_s // 3),
        beat_schedule={
            # a drain or sweep that waited past its interval is dropped: the next one does its work
            "drain-outbox": {"task": "examwire.drain", "schedule": drain_s, "options": {"expires": max(1.0, 2 * drain_s)}},
            "sweep-deadlines": {"task": "examwire.sweep", "schedule": sweep_s, "options": {"expires": max(1.0, 2 * sweep_s)}},
            "analyse-stale": {
                "task": "examwire.analyse_stale",
                "schedule": float(settings.analysis_interval_s),
                "options": {"expires": float(settings.analysis_interval_s)},
            },
        },
    )
    app.steps["worker"].add(heartbeat_step(settings))
    runtime = Runtime(settings, metrics)
    budget = max(1.0, min(30.0, 5 * drain_s))

    @app.task(name="examwire.drain")
    def drain() -> dict[str, int]:
        async def job(res: Resources) -> dict[str, int]:
            t0 = time.perf_counter()
            try:
                await res.ready()
                stats = await jobs.drain(res.core, res.outbox, budget_s=budget)
            except StoreUnavailable as exc:
                # entries stay pending; the next drain retries them after their backoff
                res.core.event("outbox_store_unavailable", error=str(exc)[:200])
                res.core.metrics.store_unavailable()
                return {"written": 0, "rejected": 0, "unavailable": 1}
            finally:
                res.core.metrics.drain_took(time.perf_counter() - t0)
            return {"written": stats.written, "rejected": stats.rejected, "unavailable": 0}

        return runtime.run(job)

    @app.task(name="examwire.sweep")
    def sweep() -> int:
        return runtime.run(lambda res: jobs.sweep(res.core))

    @app.task(name="examwire.analyse")
    def analyse(exam_id: str, version: int | None = None) -> dict[str, Any] | None:
        async def job(res: Resources) -> dict[str, Any] | None:
            await res.ready()
            return await jobs.analyse(res.core, exam_id, version)

        return runtime.run(job)

    @app.task(name="examwire.analyse_stale")
    def analyse_stale() -> list[str]:
        async def job(res: Resources) -> list[str]:
            await res.ready()
            return await jobs.analyse_stale(res.core)

        return runtime.run(job)

    @app.task(name="examwire.export", ignore_result=False)
    def export(exam_id: str) -> str:
        async def job(res: Resources) -> str:
            await res.ready()
            return await jobs.export(res.core, exam_id)

        return runtime.run(job)

    return app
