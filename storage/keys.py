"""Every Redis key and channel name Examwire uses, in one place.

Attempt keys share the hash tag ``{<attempt id>}`` so that every script that
touches one attempt runs on one Redis Cluster slot. Exam keys are tagged by
exam id. Attempt and exam ids never contain braces (they are validated at the
boundary: attempt ids are hex, exam ids match ``[A-Za-z0-9_.-]+``).
"""

import functools

PREFIX = "ew"

#: Sorted set: member = attempt id, score = the time (ms) at which the attempt
#: is due to expire (deadline + grace). Swept by every engine node.
DEADLINES = f"{PREFIX}:{{deadlines}}"

#: Pub/sub channel carrying attempt control notifications to every node.
CONTROL = f"{PREFIX}:control"

#: A counter written (``INCR``) only so that a connection has a write of its own
#: for ``WAIT`` to wait for: ``RedisAttempts.confirm`` before a repeat is acknowledged.
SYNC = f"{PREFIX}:{{sync}}"

#: Stream of final results waiting to be persisted (the outbox). Appended by
#: ``commit.lua`` in the script that ends an attempt; drained by the Celery
#: ``drain`` task through the consumer group ``OUTBOX_GROUP``. Entries:
#: ``attempt`` (id), ``record`` (JSON result record), ``events`` (JSON array,
#: newest first). One stream for the deployment: on Redis Cluster the ending
#: script would span two slots (see docs/architecture.md, "Results").
OUTBOX = f"{PREFIX}:{{outbox}}"
OUTBOX_BYTES = OUTBOX.encode()

#: Consumer group of the outbox stream.
OUTBOX_GROUP = "persist"

#: Stream of outbox entries the store rejected for good (bad record), with the reason.
OUTBOX_DEAD = f"{PREFIX}:{{outbox}}:dead"

#: Sorted set: member = a Celery worker's name, score = its last heartbeat (ms,
#: Redis server clock; ``heartbeat.lua``). Read by ``/readyz`` and ``examwire status``.
WORKERS = f"{PREFIX}:{{health}}:workers"

#: Sorted set: member = a beat process's name (``host:pid``), score = its last
#: heartbeat, whether it holds ``BEAT_LOCK`` or stands by.
BEATS = f"{PREFIX}:{{health}}:beats"

#: String with a time to live: the name of the one beat allowed to schedule
#: (``beat_lock.lua`` takes and renews it, ``beat_unlock.lua`` releases it).
BEAT_LOCK = f"{PREFIX}:{{health}}:beat"

#: Counter (INCR): attempts found to have lost acknowledged work (Redis restarted without its
#: data, a failover that missed writes), one per detection (docs/protocol.md, "Loss is
#: detected, never silent"). Read by ``/readyz`` and ``examwire status`` as ``attempts_lost``.
#: It lives in Redis, so a later loss of Redis's data resets it: the ``attempt_lost`` error
#: log lines are the record.
ATTEMPTS_LOST = f"{PREFIX}:{{health}}:attempts_lost"


def attempt(attempt_id: str) -> str:
    """Hash of the attempt's scalar fields (state, times, last_id, owner, ver…)."""
    return f"{PREFIX}:att:{{{attempt_id}}}"


def answers(attempt_id: str) -> str:
    """Hash: question id -> JSON-encoded saved value."""
    return f"{PREFIX}:att:{{{attempt_id}}}:ans"


def flags(attempt_id: str) -> str:
    """Set of flagged question ids."""
    return f"{PREFIX}:att:{{{attempt_id}}}:flags"


def events(attempt_id: str) -> str:
    """List (newest first, capped) of JSON-encoded candidate events."""
    return f"{PREFIX}:att:{{{attempt_id}}}:events"


def actions(attempt_id: str) -> str:
    """List (oldest first) of JSON-encoded proctor actions: who, what, when. Kept with the result."""
    return f"{PREFIX}:att:{{{attempt_id}}}:actions"


def attempt_keys(attempt_id: str) -> tuple[str, str, str, str, str]:
    """Every key of one attempt: hash, answers, flags, events, actions."""
    return attempt(attempt_id), answers(attempt_id), flags(attempt_id), events(attempt_id), actions(attempt_id)


@functools.lru_cache(maxsize=65_536)
def attempt_keys_bytes(attempt_id: str) -> tuple[bytes, ...]:
    """``attempt_keys`` encoded, for the answer path (redis-py sends bytes as they are)."""
    return tuple(k.encode() for k in attempt_keys(attempt_id))


def exam(exam_id: str) -> str:
    """Hash: ``current`` -> current version number, ``v:<n>`` -> JSON definition of version n."""
    return f"{PREFIX}:exam:{{{exam_id}}}"


def live(exam_id: str) -> str:
    """Pub/sub channel of one exam's live feed, read by the nodes that have proctors watching it.

    Messages are JSON objects: ``a`` (attempt id) and any of ``v`` + ``s`` (the
    attempt's version and progress summary after a commit), ``c`` (connected
    true/false) and ``e`` (a candidate event entry). See ``storage/live.py``.
    """
    return f"{PREFIX}:live:{{{exam_id}}}"


def roster(exam_id: str) -> str:
    """Set of the ids of every attempt of the exam still in Redis (the proctor snapshot)."""
    return f"{PREFIX}:exam:{{{exam_id}}}:attempts"


def presence(exam_id: str) -> str:
    """Sorted set: member = attempt id, score = the last heartbeat (ms) of its connection.

    A member is present while a node holds the attempt's connection and keeps
    beating; a member older than the staleness limit belongs to a dead node
    and is reaped (``reap.lua``), which tells the proctors it is disconnected.
    """
    return f"{PREFIX}:exam:{{{exam_id}}}:presence"


def presence_claims(exam_id: str) -> str:
    """Hash: attempt id -> the claim number (``claim.lua``) of the newest connection that announced it present.

    ``present.lua`` and ``absent.lua`` act only for a claim at least as new, so
    neither a late announcement nor the close of an older connection undoes
    what a newer connection of the attempt did.
    """
    return f"{PREFIX}:exam:{{{exam_id}}}:claims"
