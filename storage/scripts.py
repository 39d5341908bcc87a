"""The Lua scripts, loaded from the ``.lua`` files beside this module.

Each file starts with a header naming its KEYS and ARGV; every key a script
touches is passed in KEYS. Scripts run by EVALSHA; a NOSCRIPT reply (Redis
restarted, or failed over to a replica, and lost its script cache) loads the
script again and runs it once more (``Script.__call__``; a pipeline's
``client=`` path loads its scripts itself, through redis-py).

Every script may be sent twice: the client resends a request whose
connection was lost (``services.core.BoundedRetry``), and the first copy
may have run. Why each one is safe to run again is in docs/architecture.md,
"Failure modes".

``durable`` calls (``RedisAttempts.commit``, ``claim`` and ``confirm``) wait,
with Redis's ``WAIT`` on the same connection, until the write reached
``replicas`` replicas, or raise ``NotReplicated``.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any, Callable, Sequence

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

LUA_DIR = Path(__file__).with_name("lua")
#: Key counts as the wire has them (redis-py passes bytes through; an int it formats and encodes per call).
_NUMKEYS = tuple(str(n).encode() for n in range(16))


def source(name: str) -> str:
    return (LUA_DIR / f"{name}.lua").read_text()


class NotReplicated(RedisError):
    """Fewer replicas than required confirmed a write within the wait (``WAIT``).

    The write is on the primary and may or may not survive its failure, so
    nothing may be acknowledged; the client retries (with the same request
    id: the repeat is acknowledged once a later ``WAIT`` confirms it).
    """

    def __init__(self, wanted: int, got: int) -> None:
        super().__init__(f"{got} of {wanted} replicas confirmed the write in time")
        self.wanted = wanted
        self.got = got


_Entry = tuple[tuple[Any, ...], "asyncio.Future[Any]", bool]


class Batcher:
    """Auto-pipelining: the EVALSHAs issued in one event-loop tick go to Redis as one pipeline.

    Each caller still awaits its own reply (or its own error); callers never
    wait for each other beyond the tick. Many connections answering at once
    then cost one pool checkout, one write and one read loop per batch instead
    of per command. A batch that fails as a whole (connection lost) fails each
    of its callers with that error, as a lone command would.

    With ``replicas`` above 0, a batch holding a ``durable`` call ends with
    ``WAIT replicas wait_ms`` in the same pipeline, on the same connection
    (``WAIT`` counts only that connection's writes, and every write before
    them: replication is one ordered stream). The durable callers get their
    replies only when enough replicas confirmed, else ``NotReplicated``; one
    ``WAIT`` serves the whole batch.
    """

    def __init__(self, redis: Redis, *, replicas: int = 0, wait_ms: int = 1000) -> None:
        self._redis = redis
        self.replicas = replicas
        self._wait_ms = wait_ms
        self._queue: list[_Entry] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def call(self, *command: Any, durable: bool = False) -> "asyncio.Future[Any]":
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        if not self._queue:
            loop.call_soon(self._flush)
        self._queue.append((command, fut, durable))
        return fut

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._sent, batch))

    def _sent(self, batch: list[_Entry], task: "asyncio.Task[None]") -> None:
        """A send is over: callers it left without an outcome (it was cancelled, even before it ran) are cancelled."""
        self._tasks.discard(task)
        for _, fut, _ in batch:
            if not fut.done():
                fut.cancel()

    async def _send(self, batch: list[_Entry]) -> None:
        wait = self.replicas > 0 and any(durable for _, _, durable in batch)
        try:
            if len(batch) == 1 and not wait:
                (command, fut, _), = batch
                replies: list[Any] = [await self._redis.execute_command(*command)]
            else:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for command, _, _ in batch:
                        pipe.execute_command(*command)
                    if wait:
                        pipe.execute_command(b"WAIT", self.replicas, self._wait_ms)
                    replies = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # the whole batch failed: every caller gets the error (a cancel: see _sent)
            for _, fut, _ in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        unconfirmed: Exception | None = None
        if wait:
            acked = replies.pop()
            if isinstance(acked, Exception):
                unconfirmed = acked
            elif int(acked) < self.replicas:
                unconfirmed = NotReplicated(self.replicas, int(acked))
        for (_, fut, durable), reply in zip(batch, replies):
            if fut.done():
                continue
            if isinstance(reply, Exception):
                fut.set_exception(reply)
            elif durable and unconfirmed is not None:
                fut.set_exception(unconfirmed)
            else:
                fut.set_result(reply)


class Script:
    """One registered script: ``await script(keys=[...], args=[...])`` runs it by EVALSHA.

    The direct path skips redis-py's ``AsyncScript.__call__`` (an
    ``isinstance`` check against a ``Protocol`` class on every call, a
    measurable share of the answer path); ``client=`` a pipeline goes through
    ``AsyncScript``, which registers the script with the pipeline.
    """

    __slots__ = ("name", "_script", "_redis", "_batcher", "_sha", "_observe")

    def __init__(self, redis: Redis, text: str, batcher: Batcher, *, name: str = "",
                 observe: Callable[[str, float], None] | None = None) -> None:
        self.name = name
        self._redis = redis
        self._script: AsyncScript = redis.register_script(text)
        self._batcher = batcher
        self._sha = self._script.sha.encode()
        self._observe = observe  # (name, seconds from call to reply) of every direct call that got a reply

    async def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = (), client: Any = None, *,
                       durable: bool = False) -> Any:
        """Run the script; ``durable``: return only once ``WAIT`` confirmed it on the replicas (``Batcher``)."""
        if client is not None:
            return await self._script(keys=keys, args=args, client=client)
        n = _NUMKEYS[len(keys)] if len(keys) < len(_NUMKEYS) else len(keys)
        t0 = perf_counter()
        try:
            reply = await self._batcher.call(b"EVALSHA", self._sha, n, *keys, *args, durable=durable)
        except NoScriptError:  # Redis restarted or failed over and lost its script cache: load it again
            self._script.sha = await self._redis.script_load(self._script.script)
            self._sha = self._script.sha.encode()
            reply = await self._batcher.call(b"EVALSHA", self._sha, n, *keys, *args, durable=durable)
        if self._observe is not None:
            self._observe(self.name, perf_counter() - t0)
        return reply


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
    #: what the scripts are sent through; ``batcher.call`` sends a plain command the same way
    batcher: Batcher

    @classmethod
    def register(cls, redis: Redis, *, replicas: int = 0, wait_ms: int = 1000,
                 observe: Callable[[str, float], None] | None = None) -> "Scripts":
        """Every script of ``lua/``, sent through one ``Batcher`` (``replicas``, ``wait_ms``: its ``WAIT``).

        ``observe(name, seconds)``, when given, gets the latency of every call
        (the batcher's tick and ``WAIT`` included): the node's and worker's metrics.
        """
        batcher = Batcher(redis, replicas=replicas, wait_ms=wait_ms)
        names = [name for name in cls.__dataclass_fields__ if name != "batcher"]
        return cls(**{name: Script(redis, source(name), batcher, name=name, observe=observe) for name in names},
                   batcher=batcher)
