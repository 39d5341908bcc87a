"""The Lua scripts, loaded from the ``.lua`` files beside this module.

Each file starts with a header naming its KEYS and ARGV; every key a script
touches is passed in KEYS. Scripts run by EVALSHA and are reloaded by redis-py
on NOSCRIPT (after a Redis restart or failover).
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

LUA_DIR = Path(__file__).with_name("lua")
#: Key counts as the wire has them (redis-py passes bytes through; an int it formats and encodes per call).
_NUMKEYS = tuple(str(n).encode() for n in range(16))


def source(name: str) -> str:
    return (LUA_DIR / f"{name}.lua").read_text()


class Batcher:
    """Auto-pipelining: the EVALSHAs issued in one event-loop tick go to Redis as one pipeline.

    Each caller still awaits its own reply (or its own error); callers never
    wait for each other beyond the tick. Many connections answering at once
    then cost one pool checkout, one write and one read loop per batch instead
    of per command. A batch that fails as a whole (connection lost) fails each
    of its callers with that error, as a lone command would.
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._queue: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def call(self, *command: Any) -> "asyncio.Future[Any]":
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        if not self._queue:
            loop.call_soon(self._flush)
        self._queue.append((command, fut))
        return fut

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._sent, batch))

    def _sent(self, batch: list[tuple[tuple[Any, ...], "asyncio.Future[Any]"]], task: "asyncio.Task[None]") -> None:
        """A send is over: callers it left without an outcome (it was cancelled, even before it ran) are cancelled."""
        self._tasks.discard(task)
        for _, fut in batch:
            if not fut.done():
                fut.cancel()

    async def _send(self, batch: list[tuple[tuple[Any, ...], "asyncio.Future[Any]"]]) -> None:
        try:
            if len(batch) == 1:
                (command, fut), = batch
                replies: list[Any] = [await self._redis.execute_command(*command)]
            else:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for command, _ in batch:
                        pipe.execute_command(*command)
                    replies = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # the whole batch failed: every caller gets the error (a cancel: see _sent)
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, fut), reply in zip(batch, replies):
            if fut.done():
                continue
            if isinstance(reply, Exception):
                fut.set_exception(reply)
            else:
                fut.set_result(reply)


class Script:
    """One registered script: ``await script(keys=[...], args=[...])`` runs it by EVALSHA.

    The direct path skips redis-py's ``AsyncScript.__call__`` (an
    ``isinstance`` check against a ``Protocol`` class on every call, a
    measurable share of the answer path); ``client=`` a pipeline goes through
    ``AsyncScript``, which registers the script with the pipeline.
    """

    __slots__ = ("_script", "_redis", "_batcher", "_sha")

    def __init__(self, redis: Redis, text: str, batcher: Batcher) -> None:
        self._redis = redis
        self._script: AsyncScript = redis.register_script(text)
        self._batcher = batcher
        self._sha = self._script.sha.encode()

    async def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = (), client: Any = None) -> Any:
        if client is not None:
            return await self._script(keys=keys, args=args, client=client)
        n = _NUMKEYS[len(keys)] if len(keys) < len(_NUMKEYS) else len(keys)
        try:
            return await self._batcher.call(b"EVALSHA", self._sha, n, *keys, *args)
        except NoScriptError:  # Redis restarted or failed over: load it again
            self._script.sha = await self._redis.script_load(self._script.script)
            self._sha = self._script.sha.encode()
            return await self._batcher.call(b"EVALSHA", self._sha, n, *keys, *args)


@dataclass(frozen=True, slots=True)
class Scripts:
    create: Script
    load: Script
    claim: Script
    release: Script
    commit: Script
    unschedule: Script
    cache_exam: Script
    persisted: Script
    present: Script
    absent: Script
    beat: Script
    reap: Script
    requeue_dead: Script

    @classmethod
    def register(cls, redis: Redis) -> "Scripts":
        batcher = Batcher(redis)
        return cls(**{name: Script(redis, source(name), batcher) for name in cls.__dataclass_fields__})
