"""The Lua scripts, loaded from the ``.lua`` files beside this module.

Each file starts with a header naming its KEYS and ARGV; every key a script
touches is passed in KEYS. Scripts run by EVALSHA and are reloaded by redis-py
on NOSCRIPT (after a Redis restart or failover).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

LUA_DIR = Path(__file__).with_name("lua")


def source(name: str) -> str:
    return (LUA_DIR / f"{name}.lua").read_text()


class Script:
    """One registered script: ``await script(keys=[...], args=[...])`` runs it by EVALSHA.

    The direct path skips redis-py's ``AsyncScript.__call__`` (an
    ``isinstance`` check against a ``Protocol`` class on every call, a
    measurable share of the answer path); ``client=`` a pipeline goes through
    ``AsyncScript``, which registers the script with the pipeline.
    """

    __slots__ = ("_script", "_redis")

    def __init__(self, redis: Redis, text: str) -> None:
        self._redis = redis
        self._script: AsyncScript = redis.register_script(text)

    async def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = (), client: Any = None) -> Any:
        if client is not None:
            return await self._script(keys=keys, args=args, client=client)
        try:
            return await self._redis.evalsha(self._script.sha, len(keys), *keys, *args)
        except NoScriptError:  # Redis restarted or failed over: load it again
            self._script.sha = await self._redis.script_load(self._script.script)
            return await self._redis.evalsha(self._script.sha, len(keys), *keys, *args)


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

    @classmethod
    def register(cls, redis: Redis) -> "Scripts":
        return cls(**{name: Script(redis, source(name)) for name in cls.__dataclass_fields__})
