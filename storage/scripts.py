"""The Lua scripts, loaded from the ``.lua`` files beside this module.

Each file starts with a header naming its KEYS and ARGV; every key a script
touches is passed in KEYS. Scripts run by EVALSHA and are reloaded by redis-py
on NOSCRIPT (after a Redis restart or failover).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

LUA_DIR = Path(__file__).with_name("lua")


def source(name: str) -> str:
    return (LUA_DIR / f"{name}.lua").read_text()


@dataclass(frozen=True, slots=True)
class Scripts:
    create: AsyncScript
    load: AsyncScript
    claim: AsyncScript
    release: AsyncScript
    commit: AsyncScript
    unschedule: AsyncScript
    cache_exam: AsyncScript
    persisted: AsyncScript
    present: AsyncScript
    absent: AsyncScript
    beat: AsyncScript
    reap: AsyncScript

    @classmethod
    def register(cls, redis: Redis) -> "Scripts":
        return cls(**{name: redis.register_script(source(name)) for name in cls.__dataclass_fields__})
