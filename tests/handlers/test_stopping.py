"""``handlers.stopping.stop_tasks``: tasks stop for sure, within a bound, whatever they do with a cancellation.

Real asyncio tasks on a real loop; the "stubborn" ones do what a task does
when ``asyncio.wait_for`` loses its cancellation (Python 3.11, gh-86296):
carry on as if never cancelled.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from handlers.stopping import RECANCEL_S, stop_tasks


async def _loses_cancellations(times: int, state: dict) -> None:
    """Loop on, swallowing the first ``times`` cancellations (``times < 0``: all of them, until told to end)."""
    lost = 0
    while not state.get("end"):
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            if 0 <= times <= lost:
                raise
            lost += 1
            state["lost"] = lost
    state["ended"] = True


def _not_stopped(caplog: pytest.LogCaptureFixture) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if "tasks_not_stopped" in r.getMessage()]


def test_a_task_that_loses_its_cancellations_is_cancelled_again_until_it_ends(caplog):
    async def main() -> tuple[list, dict, float]:
        state: dict = {}
        task = asyncio.create_task(_loses_cancellations(3, state))
        await asyncio.sleep(0.02)
        started = time.monotonic()
        left = await stop_tasks([task], timeout=5.0)
        return left, state, time.monotonic() - started

    left, state, took = asyncio.run(main())
    assert left == [] and state["lost"] == 3
    assert took < 5 * RECANCEL_S + 1  # re-cancelled every RECANCEL_S, not after the whole bound
    assert _not_stopped(caplog) == []


def test_one_that_never_ends_is_given_up_after_the_bound_and_logged_with_where_it_is(caplog):
    caplog.set_level(logging.ERROR, logger="examwire.stopping")

    async def main() -> tuple[list, list, float]:
        state: dict = {}
        stubborn = asyncio.create_task(_loses_cancellations(-1, state), name="stubborn-loop")
        polite = asyncio.create_task(asyncio.sleep(3600))
        failing = asyncio.create_task(_fails_when_cancelled())
        await asyncio.sleep(0.02)
        started = time.monotonic()
        left = await stop_tasks([stubborn, polite, failing], timeout=0.5, what="test loops")
        took = time.monotonic() - started
        outcome = [polite.cancelled(), failing.done(), stubborn.done()]
        state["end"] = True  # let it go now
        await asyncio.wait_for(stubborn, 2)
        return left, outcome, took

    left, outcome, took = asyncio.run(main())
    assert len(left) == 1 and left[0].get_name() == "stubborn-loop"
    assert outcome == [True, True, False]
    assert 0.5 <= took < 1.5
    (logged,) = _not_stopped(caplog)
    assert logged["what"] == "test loops" and logged["after_s"] == 0.5
    (where,) = logged["tasks"]
    assert where.startswith("stubborn-loop at ") and "test_stopping.py:" in where, where


async def _fails_when_cancelled() -> None:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        raise RuntimeError("cleanup failed") from None


def test_the_exception_of_a_stopped_task_is_retrieved_not_reported_as_lost():
    """As ``gather(..., return_exceptions=True)``: no "exception was never retrieved" at garbage collection."""
    reported: list = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: reported.append(context))
        task = asyncio.create_task(_fails_when_cancelled())
        await asyncio.sleep(0.01)
        assert await stop_tasks([task], timeout=2) == []
        assert isinstance(task.exception(), RuntimeError)
        del task

    asyncio.run(main())
    assert reported == []


def test_a_cancelled_caller_still_stops_the_tasks_then_is_cancelled():
    """Cutting ``stop_tasks`` short would leave the tasks running unwatched."""

    async def main() -> tuple[bool, dict, bool]:
        state: dict = {}
        task = asyncio.create_task(_loses_cancellations(2, state))
        await asyncio.sleep(0.02)
        stopper = asyncio.create_task(stop_tasks([task], timeout=5.0))
        await asyncio.sleep(0)  # it has cancelled the task once and waits
        stopper.cancel()
        try:
            await stopper
        except asyncio.CancelledError:
            cancelled = True
        else:
            cancelled = False
        return cancelled, state, task.done()

    cancelled, state, done = asyncio.run(main())
    assert cancelled and done and state["lost"] == 2


def test_a_future_that_will_not_be_cancelled_is_named_by_its_repr(caplog):
    """Anything awaitable may be handed in, not only tasks: what is left is still named in the log."""
    caplog.set_level(logging.ERROR, logger="examwire.stopping")

    class Unstoppable(asyncio.Future):
        def cancel(self, msg=None) -> bool:
            return False

    async def main() -> list:
        fut = Unstoppable()
        done = asyncio.get_running_loop().create_future()
        done.set_result(1)
        left = await stop_tasks([fut, done], timeout=0.3)
        fut.set_result(None)
        return left

    left = asyncio.run(main())
    assert len(left) == 1 and isinstance(left[0], asyncio.Future)
    (logged,) = _not_stopped(caplog)
    assert logged["tasks"] == ["<Unstoppable pending>"]
