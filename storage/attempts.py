"""The live attempt in Redis: the authority.

An attempt is a hash of scalar fields, a hash of answers, a set of flags and a
capped list of events, all tagged ``{attempt id}``. It changes only through
``commit.lua``: a compare-and-set on the ``ver`` field, so an engine
transition computed from version *n* is written only if the attempt is still
at version *n*; otherwise the caller reloads and recomputes.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import operator
import secrets
from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping, Protocol

import msgpack
from redis.asyncio import Redis

from engine import FINAL, Attempt, State

from . import keys
from .live import encode_message
from .scripts import Scripts

_SCALARS: tuple[tuple[str, str], ...] = (
    # (Attempt attribute, hash field)
    ("exam_id", "exam"),
    ("exam_version", "exam_ver"),
    ("user", "user"),
    ("name", "name"),
    ("seed", "seed"),
    ("duration_ms", "dur"),
    ("created_at", "created"),
    ("state", "state"),
    ("last_id", "last_id"),
    ("index", "idx"),
    ("started_at", "started"),
    ("paused_at", "paused_at"),
    ("paused_ms", "paused_ms"),
    ("extended_ms", "ext_ms"),
    ("events", "events"),
    ("ended_at", "ended"),
    ("end_reason", "reason"),
)
_SCALAR_NAMES = tuple(name for _, name in _SCALARS)
_scalar_values = operator.attrgetter(*(attr for attr, _ in _SCALARS))
#: Fields stored as '' when the attribute is None.
_NULLABLE = {"started", "paused_at", "ended", "reason"}
_INTS = {"exam_ver", "dur", "created", "last_id", "idx", "started", "paused_at", "paused_ms", "ext_ms", "events", "ended"}


def attempt_id(secret: bytes, exam_id: str, user: str) -> str:
    """The one attempt of ``user`` at ``exam_id``: stable, unguessable without the secret."""
    mac = hmac.new(secret, b"examwire-attempt\x00" + exam_id.encode() + b"\x00" + user.encode(), hashlib.sha256)
    return mac.hexdigest()[:32]


def claims_base(now_ms: int) -> int:
    """Where the claim numbers of an attempt created at ``now_ms`` start: above those of any earlier copy.

    Ten numbers per millisecond since the epoch: claims of an attempt whose
    Redis keys were lost (and created again later) stay below, unless there
    were more than ten per millisecond of its life. Kept below 10^14 for this
    era (Lua prints numbers with 14 significant digits: ``claim.lua``).
    """
    return now_ms * 10


def encode_fields(a: Attempt) -> dict[str, str]:
    """The attempt's scalar fields as stored; ``None`` is stored as ''."""
    out: dict[str, str] = {}
    for attr, name in _SCALARS:
        value = getattr(a, attr)
        out[name] = "" if value is None else str(value)
    return out


#: Compact JSON (answers, results, events, control messages); one encoder for every
#: call (it keeps no state between calls), so a string answer costs one C call.
_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def decode(fields: Mapping[str, str], answers: Mapping[str, str], flags: list[str]) -> Attempt:
    """Rebuild an engine ``Attempt`` from its stored parts (``result`` is left None)."""
    kw: dict[str, Any] = {"id": fields["id"]}
    for attr, name in _SCALARS:
        raw = fields.get(name, "")
        if raw == "" and name in _NULLABLE:
            kw[attr] = None
        elif name in _INTS:
            kw[attr] = int(raw or 0)
        elif name == "state":
            kw[attr] = State(raw)
        else:
            kw[attr] = raw
    kw["answers"] = {q: json.loads(v) for q, v in answers.items()}
    kw["flags"] = frozenset(flags)
    return Attempt(**kw)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An attempt as read at version ``ver``, with its stored scalar fields."""

    attempt: Attempt
    ver: int
    owner: str
    fields: Mapping[str, str]
    result: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A connection's claim of an attempt: the attempt's version then, and the claim's number.

    Claim numbers grow by one per claim of the attempt (``claim.lua``): the
    connection with the highest number is the owner, and every other one is
    superseded.
    """

    ver: int
    claim: int


class Commit(Enum):
    """Why a commit wrote nothing."""

    CONFLICT = 0
    SUPERSEDED = -1
    MISSING = -2


class AttemptStore(Protocol):
    """What the handlers need of the live attempt store."""

    async def create(self, attempt: Attempt, *, claims_from: int = 0) -> bool: ...
    async def load(self, attempt_id: str) -> Snapshot | None: ...
    async def claim(self, attempt_id: str, conn: str) -> Claimed | None: ...
    async def release(self, attempt_id: str, conn: str) -> bool: ...
    async def commit(
        self,
        old: Snapshot,
        new: Attempt,
        *,
        owner: str = "",
        notify: bool = False,
        result: Mapping[str, Any] | None = None,
        event: Mapping[str, Any] | None = None,
        live: Mapping[str, Any] | None = None,
        action: Mapping[str, Any] | None = None,
        control: Mapping[str, Any] | None = None,
        answered: str | None = None,
    ) -> "Snapshot | Commit": ...
    async def load_many(self, attempt_ids: list[str]) -> dict[str, Snapshot]: ...
    async def actions(self, attempt_id: str) -> list[dict[str, Any]]: ...
    async def confirm(self) -> None: ...


def final_record(a: Attempt, result: Mapping[str, Any]) -> dict[str, Any]:
    """The durable record of a final attempt, as queued on the outbox and persisted.

    ``events`` is added by the outbox drain (the script appends the
    attempt's event list to the entry). Every value is JSON; no key is
    user-provided, so the record is a valid MongoDB document.
    """
    return {**_record_head(a), **{k: result[k] for k in _RESULT_KEYS}}


#: The wire result's fields, which the record carries beside the attempt's (``_record_head``).
_RESULT_KEYS = ("score", "max_score", "percent", "passed", "questions")
_RESULT_KEY_SET = frozenset(_RESULT_KEYS)


def _record_head(a: Attempt) -> dict[str, Any]:
    """The attempt's own fields of its final record."""
    return {
        "attempt": a.id,
        "exam": a.exam_id,
        "exam_version": a.exam_version,
        "user": a.user,
        "name": a.name,
        "state": a.state.value,
        "end_reason": a.end_reason,
        "created_at": a.created_at,
        "duration_ms": a.duration_ms,
        "last_id": a.last_id,
        "index": a.index,
        "started_at": a.started_at,
        "ended_at": a.ended_at,
        "paused_ms": a.paused_ms,
        "extended_ms": a.extended_ms,
        "seed": a.seed,
        "flags": sorted(a.flags),
        "event_count": a.events,  # every event: the record's ``events`` keeps only the newest 200
    }


def from_record(record: Mapping[str, Any]) -> Snapshot:
    """A persisted attempt (its Redis keys expired) as a read-only snapshot: ``ver`` 0, no owner.

    Answers come back from the record's per-question values, so a resumed
    connection sees what was saved and its replays are acknowledged as
    duplicates up to ``last_id``. A final attempt never changes, so the
    snapshot is the attempt as it was in Redis (``last_id``, ``index``,
    ``events`` included), save the keys only Redis had (``ver``, ``owner``).
    """
    questions = [q for q in record.get("questions") or [] if isinstance(q, dict)]
    attempt = Attempt(
        id=record["attempt"],
        exam_id=record["exam"],
        exam_version=int(record["exam_version"]),
        user=record["user"],
        name=record.get("name") or "",
        seed=record.get("seed") or "",
        duration_ms=int(record.get("duration_ms") or 0),
        created_at=int(record.get("created_at") or 0),
        state=State(record["state"]),
        last_id=int(record.get("last_id") or 0),
        index=int(record.get("index") or 0),
        started_at=record.get("started_at"),
        paused_ms=int(record.get("paused_ms") or 0),
        extended_ms=int(record.get("extended_ms") or 0),
        answers={q["id"]: q["value"] for q in questions if q.get("value") is not None},
        flags=frozenset(record.get("flags") or ()),
        events=int(record.get("event_count") or len(record.get("events") or ())),
        ended_at=record.get("ended_at"),
        end_reason=record.get("end_reason"),
    )
    result = {k: record.get(k) for k in ("score", "max_score", "percent", "passed", "questions")}
    return Snapshot(attempt, 0, "", {"persisted": "1"}, result)


_MISSING = object()


def _changed_fields(old: Snapshot, new: Attempt) -> dict[str, str]:
    """The stored scalar fields that differ between ``old`` and ``new``, encoded.

    Compares attribute values first and encodes only what changed: an answer
    changes ``last_id`` and nothing else, so it costs one ``str()``, not 17.
    A snapshot whose stored fields are partial is diffed field by field.
    """
    if "state" not in old.fields:
        return {k: v for k, v in encode_fields(new).items() if old.fields.get(k, "") != v}
    return {name: "" if value is None else str(value)
            for name, value, was in zip(_SCALAR_NAMES, _scalar_values(new), _scalar_values(old.attempt)) if value != was}


def _pairs(mapping: Mapping[str, str]) -> list[str]:
    out: list[str] = []
    for k, v in mapping.items():
        out.append(k)
        out.append(v)
    return out


class RedisAttempts:
    """``AttemptStore`` on Redis, through the scripts in ``storage/lua``.

    With ``EXAMWIRE_REDIS_MIN_REPLICAS`` above 0 (``Scripts.register(replicas=)``)
    the writes behind what a client is told return only once that many
    replicas have them: ``commit`` (behind every ack), ``claim`` (behind the
    ``welcome``, which covers everything written before it) and ``confirm``
    (behind a repeat's ack). Otherwise they raise ``scripts.NotReplicated``
    and nothing may be acknowledged.
    """

    def __init__(self, redis: Redis, scripts: Scripts) -> None:
        self._redis = redis
        self._s = scripts
        # commit tokens: unique per commit (this process's random prefix, a counter), see commit.lua
        self._token_prefix = secrets.token_hex(6) + ":"
        self._tokens = itertools.count(1)

    async def create(self, attempt: Attempt, *, claims_from: int = 0) -> bool:
        """Create the attempt unless it exists (then False, nothing written).

        ``claims_from`` (``claims_base(now)``) numbers its claims from there:
        an attempt created again after Redis lost it must not number its claims
        below those of connections that may still be open from before, which
        the hubs would take for newer (``claim.lua``).
        """
        fields = encode_fields(attempt)
        fields["ver"] = "1"
        if claims_from:
            fields["claim"] = str(claims_from)
        return bool(await self._s.create(keys=[keys.attempt(attempt.id)], args=_pairs(fields)))

    async def load(self, attempt_id: str) -> Snapshot | None:
        raw = await self._s.load(keys=list(keys.attempt_keys(attempt_id)[:3]))
        return self._snapshot(attempt_id, raw)

    @staticmethod
    def _snapshot(attempt_id: str, raw: Any) -> Snapshot | None:
        if not raw:
            return None
        flat, answers_flat, flags = raw
        fields = {_s(flat[i]): _s(flat[i + 1]) for i in range(0, len(flat), 2)}
        answers = {_s(answers_flat[i]): _s(answers_flat[i + 1]) for i in range(0, len(answers_flat), 2)}
        fields["id"] = attempt_id
        attempt = decode(fields, answers, [_s(f) for f in flags])
        result = json.loads(fields["result"]) if fields.get("result") else None
        return Snapshot(attempt, int(fields["ver"]), fields.get("owner", ""), fields, result)

    async def load_many(self, attempt_ids: list[str]) -> dict[str, Snapshot]:
        """The attempts of ``attempt_ids`` still in Redis, each read consistently (pipelined)."""
        out: dict[str, Snapshot] = {}
        for lo in range(0, len(attempt_ids), 500):
            chunk = attempt_ids[lo : lo + 500]
            async with self._redis.pipeline(transaction=False) as pipe:
                for aid in chunk:
                    await self._s.load(keys=list(keys.attempt_keys(aid)[:3]), client=pipe)
                raws = await pipe.execute()
            for aid, raw in zip(chunk, raws):
                snap = self._snapshot(aid, raw)
                if snap is not None:
                    out[aid] = snap
        return out

    async def actions(self, attempt_id: str) -> list[dict[str, Any]]:
        """The proctor actions recorded on the attempt, oldest first."""
        return [json.loads(x) for x in await self._redis.lrange(keys.actions(attempt_id), 0, -1)]

    async def claim(self, attempt_id: str, conn: str) -> Claimed | None:
        """Make ``conn`` the owner under the attempt's next claim number; None if the attempt does not exist.

        The previous owner, if any, is told on the control channel (``owner``
        with this claim's number ``s``). From the claim on, no other
        connection can commit, so a snapshot at the returned version holds
        every answer and request id the candidate had acknowledged.
        """
        head = _json({"a": attempt_id, "k": "owner", "o": conn})[:-1] + ',"s":'  # the script appends the number
        got = await self._s.claim(keys=[keys.attempt(attempt_id)], args=[conn, keys.CONTROL, head], durable=True)
        return None if not got else Claimed(int(got[0]), int(got[1]))

    async def confirm(self) -> None:
        """Return once everything this process has read is on the required replicas (none required: at once).

        ``WAIT`` counts only the writes of its own connection, and a fresh one
        has none: so this writes a counter (``keys.SYNC``) and waits for that
        write, which follows every write already read in the one replication
        stream. Behind the ack of a repeat, whose write came earlier, perhaps
        on another node. Raises ``scripts.NotReplicated``.
        """
        if self._s.batcher.replicas > 0:
            await self._s.batcher.call(b"INCR", keys.SYNC, durable=True)

    async def release(self, attempt_id: str, conn: str) -> bool:
        """Drop ownership if ``conn`` still holds it; False when a newer connection took over."""
        return bool(await self._s.release(keys=[keys.attempt(attempt_id)], args=[conn]))

    async def commit(
        self,
        old: Snapshot,
        new: Attempt,
        *,
        owner: str = "",
        notify: bool = False,
        result: Mapping[str, Any] | None = None,
        event: Mapping[str, Any] | None = None,
        live: Mapping[str, Any] | None = None,
        action: Mapping[str, Any] | None = None,
        control: Mapping[str, Any] | None = None,
        answered: str | None = None,
    ) -> "Snapshot | Commit":
        """Write the difference between ``old`` and ``new`` if the attempt is still at ``old.ver``.

        ``owner`` non-empty makes the write conditional on that connection
        still owning the attempt. ``notify`` publishes a ``changed`` message on
        the control channel in the same script (``control``, when given, is
        published instead). ``result`` (the wire result of a final attempt),
        ``event`` (a candidate event entry) and ``action`` (a proctor action
        entry) are stored with the change; a ``result`` with a final ``new``
        also queues the attempt's final record on the outbox stream in the
        same script. ``live`` (the attempt's progress summary) is published on
        the exam's live channel with the new version and the event.
        ``answered`` (``engine.Outcome.answered``) names the only answer that
        may differ between ``old`` and ``new``, so the others are not compared.
        Returns the new snapshot, or why nothing was written.

        Safe to send twice (the client resends it when its connection was
        lost): the commit's token makes a resend of a commit that was applied
        return its first result (``commit.lua``).
        """
        changed = _changed_fields(old, new)
        result_json = ""
        if result is not None:
            changed["result"] = result_json = _json(result)
        a_old, a_new = old.attempt.answers, new.answers
        set_answers: list[str] = []
        del_answers: list[str] = []
        if answered is not None:  # the caller knows the one answer that changed
            value = a_new.get(answered, _MISSING)
            if value is _MISSING:
                if answered in a_old:
                    del_answers.append(answered)
            else:
                set_answers += (answered, _json(value))
        elif a_new is not a_old:
            for q, v in a_new.items():
                was = a_old.get(q, _MISSING)
                if was is not v and (was is _MISSING or was != v or type(was) is not type(v)):
                    set_answers += (q, _json(v))
            if len(a_new) - len(set_answers) // 2 < len(a_old):
                del_answers = [q for q in a_old if q not in a_new]
        f_old, f_new = old.attempt.flags, new.flags
        add_flags = list(f_new - f_old) if f_new is not f_old else []
        rem_flags = list(f_old - f_new) if f_new is not f_old else []

        new_ver = old.ver + 1
        notify = notify or control is not None
        if notify:
            control_msg = _json(control if control is not None else {"a": new.id, "k": "changed", "v": new_ver, "o": owner})
        args = [
            owner,
            old.ver,
            keys.CONTROL if notify else "",
            control_msg if notify else "",
            new.id if result is not None and new.state in FINAL else "",
            _final_record_json(new, result, result_json) if result is not None and new.state in FINAL else "",
            keys.live(new.exam_id) if live is not None else "",
            summary_message(new.id, new_ver, live, event) if live is not None else "",
            _pairs(changed),
            set_answers,
            del_answers,
            add_flags,
            rem_flags,
            [_json(event)] if event is not None else [],
            [_json(action)] if action is not None else [],
            self._token_prefix + str(next(self._tokens)),
        ]
        packed = msgpack.packb(args, use_bin_type=False)  # Redis's cmsgpack has no bin type: bytes go as raw strings
        a_keys = keys.attempt_keys_bytes(new.id)
        status, ver = await self._s.commit(keys=(*a_keys[:4], keys.OUTBOX_BYTES, a_keys[4]), args=(packed,), durable=True)
        if int(status) != 1:
            return Commit(int(status))
        stored = {**old.fields, **changed, "ver": str(ver)}
        kept = result if result is not None else old.result
        return Snapshot(new, int(ver), old.owner if not owner else owner, stored, kept)


def _final_record_json(a: Attempt, result: Mapping[str, Any], result_json: str) -> str:
    """``_json(final_record(a, result))``, reusing ``result_json`` (``_json(result)``) instead of encoding it again.

    The record is the attempt's fields plus the result's: two JSON objects
    with disjoint keys, joined as text. The result (a row per question) is
    most of the record, and an expiry sweep encodes thousands at once. A
    result with other keys than the wire result's is encoded with the record.
    """
    if result.keys() != _RESULT_KEY_SET:
        return _json(final_record(a, result))
    return _json(_record_head(a))[:-1] + "," + result_json[1:]


def summary_message(attempt_id: str, ver: int, summary: Mapping[str, Any], event: Mapping[str, Any] | None = None) -> bytes:
    """A live-channel message (``storage.live``): the attempt's progress ``summary`` at version ``ver``, with its event."""
    message: dict[str, Any] = {"a": attempt_id, "v": ver, "s": summary}
    if event is not None:
        message["e"] = event
    return encode_message(message)


def _s(x: bytes | str) -> str:
    return x.decode() if isinstance(x, bytes) else x
