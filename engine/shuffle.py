"""Auditable per-candidate shuffles.

Every shuffle is a pure function of a per-attempt *seed* (a hex string), so
the order a candidate saw can be recomputed by anyone holding the seed.

Seed derivation (:func:`derive_seed`)::

    seed = hex( HMAC-SHA256( key = secret,
                             msg = b"examwire-seed" 0x00 utf8(exam_id) 0x00 utf8(user) ) )

Permutation of n items (:func:`permutation`), for a ``label`` such as
``"questions"`` or ``"options:" + question_id``:

1. Random stream.  For counter = 0, 1, 2, ... compute the 32-byte block
   ``HMAC-SHA256(key = bytes.fromhex(seed), msg = utf8(label) 0x00 counter)``
   where ``counter`` is encoded as 8 bytes, big-endian.  Split each block
   into four 8-byte big-endian unsigned integers (bytes 0-7, 8-15, 16-23,
   24-31) and emit them in that order.  Blocks are generated lazily; unused
   words are discarded when the permutation is complete.
2. Start from the list ``p = [0, 1, ..., n-1]``.
3. For i = n-1 down to 1 (inclusive): let ``m = i + 1`` and
   ``limit = 2**64 - (2**64 mod m)``.  Take the next word ``x`` from the
   stream; while ``x >= limit`` discard it and take the next one (rejection
   sampling, so ``j`` is exactly uniform).  Let ``j = x mod m`` and swap
   ``p[i]`` and ``p[j]``.
4. The result is ``p``: ``p[k]`` is the original index shown at position k.

For n <= 1 no word is consumed and the result is the identity.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Iterator, Mapping

from .exam import CHOICE_TYPES, Exam

__all__ = ["derive_seed", "permutation", "Layout", "layout", "batch"]

_TWO64 = 1 << 64


def derive_seed(secret: bytes, exam_id: str, user: str) -> str:
    """Per-candidate seed: hex HMAC-SHA256 of the exam id and user id."""
    msg = b"examwire-seed\x00" + exam_id.encode() + b"\x00" + user.encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def _words(key: bytes, label: bytes) -> Iterator[int]:
    counter = 0
    while True:
        block = hmac.new(key, label + b"\x00" + counter.to_bytes(8, "big"), hashlib.sha256).digest()
        for k in range(0, 32, 8):
            yield int.from_bytes(block[k:k + 8], "big")
        counter += 1


def permutation(seed: str, label: str, n: int) -> tuple[int, ...]:
    """Deterministic Fisher-Yates permutation of ``range(n)`` (see module
    docstring).  Raises ValueError if ``seed`` is not hex or ``n < 0``."""
    if n < 0:
        raise ValueError("n must be >= 0")
    key = bytes.fromhex(seed)
    p = list(range(n))
    if n <= 1:
        return tuple(p)
    words = _words(key, label.encode())
    for i in range(n - 1, 0, -1):
        m = i + 1
        limit = _TWO64 - (_TWO64 % m)
        x = next(words)
        while x >= limit:
            x = next(words)
        j = x % m
        p[i], p[j] = p[j], p[i]
    return tuple(p)


@dataclass(frozen=True, slots=True)
class Layout:
    """What one candidate sees.

    ``order[position]`` is the index into ``exam.questions`` shown at that
    candidate position; ``position[question_id]`` is the inverse.
    ``options[question_id]`` is the display order of that question's options
    as indices into ``question.options`` (empty for non-choice questions).
    """

    order: tuple[int, ...]
    position: Mapping[str, int] = field(hash=False)
    options: Mapping[str, tuple[int, ...]] = field(hash=False)


def question_order(exam: Exam, seed: str) -> tuple[int, ...]:
    """``layout(exam, seed).order`` without computing option orders."""
    if exam.shuffle_questions:
        return permutation(seed, "questions", exam.total)
    return tuple(range(exam.total))


def layout(exam: Exam, seed: str) -> Layout:
    """The candidate's layout: question order from label ``"questions"``,
    option order of each choice question from label ``"options:" + id``;
    identity orders for whatever the exam does not shuffle."""
    order = question_order(exam, seed)
    qs = exam.questions
    position = {qs[idx].id: pos for pos, idx in enumerate(order)}
    options: dict[str, tuple[int, ...]] = {}
    for q in qs:
        n = len(q.options)
        if exam.shuffle_options and q.type in CHOICE_TYPES:
            options[q.id] = permutation(seed, "options:" + q.id, n)
        else:
            options[q.id] = tuple(range(n))
    return Layout(order, MappingProxyType(position), MappingProxyType(options))


def batch(exam: Exam, lay: Layout, start: int, count: int) -> list[dict]:
    """Wire views of the questions at candidate positions
    ``[start, min(start + count, total))`` (a negative ``start`` is treated as
    0): each is ``question.public`` plus ``"index"`` with options in the
    layout's order.  Returns fresh dicts; never contains answer keys or
    scoring data."""
    lo = max(start, 0)
    hi = min(start + count, exam.total)
    out: list[dict] = []
    qs = exam.questions
    order = lay.order
    opt_order = lay.options
    for pos in range(lo, hi):
        q = qs[order[pos]]
        pub = q.public
        popts = pub["options"]
        out.append({
            "index": pos,
            "id": pub["id"],
            "type": pub["type"],
            "prompt": pub["prompt"],
            "options": [{"id": popts[k]["id"], "text": popts[k]["text"]} for k in opt_order[q.id]],
            "points": pub["points"],
        })
    return out
