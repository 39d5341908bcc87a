"""The app factory: routes, and a lifespan that builds every shared resource.

Nothing is built at import time: ``create_app(settings)`` returns a Starlette
app whose lifespan connects to Redis, registers the Lua scripts, starts the
control-channel subscriber and the deadline sweeper, and tears them down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, AsyncIterator, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.routing import Mount, Route, WebSocketRoute

from handlers import candidate, http, proctor, web
from handlers.auth import Authenticator
from handlers.context import Context
from handlers.hub import Hub
from handlers.live import Presence, Watches
from handlers.stopping import stop_tasks
from services.core import build_core
from services.expiry import sweeper
from services.metrics import Metrics, NodeMetrics, refresh_shared, watch_loop_lag
from storage.results import StoreUnavailable

from .exporter import serve_metrics
from .settings import Settings

log = logging.getLogger("examwire")


def build_context(settings: Settings, **overrides: Any) -> Context:
    """Every shared resource of one node; ``overrides`` replace ``Core`` fields (e.g. ``clock``) or pass ``results``."""
    core = build_core(settings, **overrides)
    return Context(
        settings=settings,
        core=core,
        hub=Hub(core.redis),
        auth=Authenticator(
            algorithms=settings.jwt_algorithms,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            secret=settings.jwt_secret if settings.jwks_url is None else None,
            jwks_url=settings.jwks_url,
            max_lifetime_s=settings.max_token_lifetime_s,
        ),
        presence=Presence(core, settings),
        watches=Watches(core, settings),
    )


async def open_results(ctx: Context) -> None:
    """Open the results store, retrying while it is unavailable: the engine serves attempts meanwhile."""
    delay = 0.5
    while True:
        try:
            await ctx.results.open()
            return
        except StoreUnavailable as exc:
            log.warning(json.dumps({"event": "results_store_unavailable", "error": str(exc)[:200], "retry_s": delay}))
            await asyncio.sleep(delay)
            delay = min(30.0, delay * 2)


class Children(Protocol):
    """What ``/readyz`` reads of the processes an embedded node supervises (``examwire.supervisor``)."""

    def status(self) -> dict[str, Any]: ...

    def failing(self) -> list[str]: ...


def create_app(settings: Settings, *, children: Children | None = None) -> Starlette:
    """The app of one node; ``children``: the supervisor of its embedded Redis and worker, if any."""
    if settings.redis_url is None:
        raise ValueError("settings.redis_url must be set (embedded mode fills it in before building the app)")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # the node's metrics, in a registry of this app's own (services.metrics); metrics off: a recorder of nothing
        ctx = build_context(settings, metrics=NodeMetrics() if settings.metrics else Metrics())
        redis, hub = ctx.redis, ctx.hub
        app.state.ctx = ctx
        app.state.children = children
        reachable = await _reachable(redis)
        tasks = [
            asyncio.create_task(watch_redis(ctx, reachable), name="redis-watch"),
            asyncio.create_task(hub.run(), name="hub"),
            asyncio.create_task(sweeper(ctx.core), name="sweeper"),
            asyncio.create_task(open_results(ctx), name="results"),
            asyncio.create_task(ctx.presence.run(), name="presence"),
            asyncio.create_task(ctx.watches.run(), name="watches"),
        ]
        listener = await _metrics_tasks(ctx, settings, tasks)
        # give the store a moment so the first requests find its tables; the node serves attempts regardless
        await asyncio.wait({tasks[3]}, timeout=settings.store_timeout_ms / 1000 + 1)
        if reachable:  # else /healthz answers at once and /readyz says 503 until Redis is back
            try:
                async with asyncio.timeout(10):  # not wait_for: it can lose a cancellation (handlers.stopping)
                    await hub.subscribed.wait()
            except TimeoutError:
                log.warning('{"event":"control_channel_slow"}')
        ctx.event("node_started", redis=settings.redis_where)
        try:
            yield
        finally:
            # not cancel() + gather(): on Python 3.11 a task can lose its one cancellation inside
            # redis-py's asyncio.wait_for and loop on for ever (see handlers.stopping).
            # Connections still running once uvicorn's graceful bound is over (it cancelled them once, without
            # waiting): stopped first, so that their sessions are released while Redis and the hub are up
            await stop_tasks(list(ctx.connections), timeout=2.0, what="connections")
            await stop_tasks(tasks, timeout=3.0, what="node background tasks")
            if listener is not None:
                listener.close()
            await ctx.core.aclose()
            ctx.event("node_stopped")

    routes = [
        Route("/healthz", http.healthz),
        Route("/readyz", http.readyz),
        Route("/", web.landing_page, methods=["GET"]),
        Route("/exam/{exam_id}", web.exam_page, methods=["GET"]),
        Route("/proctor", web.proctor_page, methods=["GET"]),
        Mount("/static", app=web.static, name="static"),
        Route("/v1/exams", http.list_exams, methods=["GET"]),
        Route("/v1/exams/{exam_id}", http.put_exam, methods=["PUT"]),
        Route("/v1/exams/{exam_id}", http.get_exam, methods=["GET"]),
        Route("/v1/exams/{exam_id}/results", http.get_results, methods=["GET"]),
        Route("/v1/exams/{exam_id}/analysis", http.get_analysis, methods=["GET"]),
        Route("/v1/attempts/{attempt}", http.get_attempt, methods=["GET"]),
        WebSocketRoute("/v1/exams/{exam_id}/attempt", candidate.endpoint),
        WebSocketRoute("/v1/exams/{exam_id}/proctor", proctor.endpoint),
    ]
    if settings.metrics and not settings.metrics_port:  # else on a port of their own, or none
        routes.append(Route("/metrics", http.metrics, methods=["GET"]))
    return Starlette(routes=routes, lifespan=lifespan)


async def _metrics_tasks(ctx: Context, settings: Settings, tasks: list[asyncio.Task[Any]]) -> asyncio.Server | None:
    """With metrics on: the shared gauges' refresh and the loop-lag probe join ``tasks``; the metrics port's listener."""
    metrics = ctx.core.metrics
    if not metrics.enabled:
        return None
    tasks.append(asyncio.create_task(refresh_shared(ctx.redis, metrics, settings.metrics_refresh_ms / 1000), name="metrics-shared"))
    tasks.append(asyncio.create_task(watch_loop_lag(metrics, settings.loop_lag_interval_ms / 1000), name="loop-lag"))
    if not settings.metrics_port:
        return None
    try:
        return await serve_metrics(settings.metrics_host, settings.metrics_port, metrics.render,
                                   max_header_bytes=settings.max_header_bytes, header_timeout_s=settings.header_timeout_s,
                                   send_timeout_s=settings.send_timeout_s)  # fmt: skip
    except OSError as exc:  # the node serves candidates regardless; Prometheus will see this target down
        log.error(json.dumps({"event": "metrics_listen_failed", "host": settings.metrics_host, "port": settings.metrics_port,
                              "error": exc.strerror or str(exc)}))  # fmt: skip
        return None


REDIS_CHECK_S = 2.0
#: ``redis_unreachable`` is logged at most this often while Redis stays unreachable.
REDIS_LOG_EVERY_S = 5.0


async def _reachable(redis: Redis) -> bool:
    try:
        async with asyncio.timeout(REDIS_CHECK_S):
            await redis.ping()
        return True
    except (RedisError, OSError, TimeoutError):
        return False


async def watch_redis(ctx: Context, reachable: bool) -> None:
    """The one voice about Redis being unreachable: a line naming the URL every few seconds, then one when it is back.

    The loops that retry on their own (sweeper, control channel, presence,
    watches) stay quiet about connection errors, so an unreachable Redis is
    not a flood of their failures.
    """
    url = ctx.settings.redis_where
    down_since: float | None = None
    last_said = 0.0
    loop = asyncio.get_running_loop()
    while True:
        if not reachable:
            now = loop.time()
            if down_since is None:
                down_since = now
            if now - last_said >= REDIS_LOG_EVERY_S:
                last_said = now
                log.error(json.dumps({"event": "redis_unreachable", "url": url, "down_s": round(now - down_since, 1),
                                      "message": f"cannot reach Redis at {url}; retrying"}))  # fmt: skip
        elif down_since is not None:
            log.warning(json.dumps({"event": "redis_reachable", "url": url, "down_s": round(loop.time() - down_since, 1)}))
            down_since, last_said = None, 0.0
        await asyncio.sleep(REDIS_CHECK_S if reachable else 1.0)
        reachable = await _reachable(ctx.redis)
