"""Stopping tasks for sure: cancel, wait, and cancel again what is still running.

One ``cancel()`` is not always enough on Python 3.11. ``asyncio.wait_for``
swallows a cancellation that arrives after the awaitable it wraps has
finished but before the waiting task has resumed: it returns the result and
the task carries on as if it had never been cancelled (CPython gh-86296,
fixed in 3.12 by rebuilding ``wait_for`` on ``asyncio.timeout``). redis-py
writes every command through ``asyncio.wait_for`` (under its default
``socket_timeout``), so any task that talks to Redis can lose a cancellation
that way; a ``while True`` loop stopped with one ``cancel()`` then runs for
ever, and whoever awaits it, for ever too. ``stop_tasks`` cancels again every
task still running after a short wait, and gives up after a bound instead of
waiting for ever.

Code of our own that needs a timeout uses ``asyncio.timeout``, which does not
have this hole.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Iterable

log = logging.getLogger("examwire.stopping")

#: How long a cancelled task may take to finish before it is cancelled again.
RECANCEL_S = 0.2


async def stop_tasks(tasks: Iterable[asyncio.Future[Any]], *, timeout: float = 5.0, what: str = "tasks") -> list[asyncio.Future[Any]]:
    """Cancel ``tasks`` and wait until all have finished, re-cancelling stragglers every ``RECANCEL_S``.

    Gives up after ``timeout`` seconds and returns the tasks still running
    (logged with where they are), never waits longer. A cancellation of the
    caller does not cut this short (that would leave the tasks running
    unwatched): the stopping goes on, bounded as always, and the
    cancellation is raised at the end. Exceptions of the stopped tasks are
    retrieved (and dropped), as ``gather(..., return_exceptions=True)`` does.
    """
    everything = list(tasks)
    pending = {t for t in everything if not t.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    interrupted = False
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - loop.time()
        if left <= 0:
            break
        try:
            _, pending = await asyncio.wait(pending, timeout=min(RECANCEL_S, left))
        except asyncio.CancelledError:
            interrupted = True
            pending = {t for t in pending if not t.done()}
    for task in everything:
        if task.done() and not task.cancelled():
            task.exception()
    if pending:
        log.error(json.dumps({"event": "tasks_not_stopped", "what": what, "after_s": timeout, "tasks": [_where(t) for t in pending]}))
    if interrupted:
        raise asyncio.CancelledError
    return list(pending)


def _where(task: asyncio.Future[Any]) -> str:
    if not isinstance(task, asyncio.Task):
        return repr(task)
    frames = task.get_stack()
    at = f" at {frames[-1].f_code.co_filename}:{frames[-1].f_lineno}" if frames else ""
    return f"{task.get_name()}{at}"
