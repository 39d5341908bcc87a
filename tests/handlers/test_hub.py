"""The hub's rule for ``owner`` messages: claim numbers decide, never the order in which messages arrive.

Every interleaving of claims returning and ``owner`` messages arriving is run
against the hub with stand-in connections: exactly the connection with the
newest claim is left, and every other one is told once.
"""

from __future__ import annotations

import itertools
from typing import Any

from handlers.hub import Hub

A = "a" * 32


class Conn:
    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id
        self.items: list[tuple[Any, ...]] = []

    def deliver(self, item: tuple[Any, ...]) -> None:
        self.items.append(item)


def _owner(claim: int, conn: str) -> dict[str, Any]:
    return {"a": A, "k": "owner", "o": conn, "s": claim}


def _run(claims: dict[str, int], order: list[tuple[str, str]]) -> dict[str, bool]:
    """Play ``order`` (("claimed", conn) or ("message", conn)) on one hub; which connections end superseded."""
    hub = Hub(None)  # type: ignore[arg-type]
    conns = {name: Conn(name) for name in claims}
    for conn in conns.values():
        hub.add(A, conn)
    refused: set[str] = set()
    for what, name in order:
        if what == "claimed":
            if not hub.claimed(A, conns[name], claims[name]):
                refused.add(name)
        else:
            hub.dispatch(_owner(claims[name], name))
    out = {}
    for name, conn in conns.items():
        told = conn.items.count(("superseded",))
        assert told + (name in refused) <= 1, f"{name} told {told} times, refused {name in refused}"
        out[name] = told == 1 or name in refused
    return out


def test_every_interleaving_leaves_only_the_newest_claim():
    claims = {"c1": 1, "c2": 2, "c3": 3}
    # claim 1 had no previous owner: it published nothing; claims 2 and 3 did
    events = [("claimed", "c1"), ("claimed", "c2"), ("claimed", "c3"), ("message", "c2"), ("message", "c3")]
    seen = 0
    for order in itertools.permutations(events):
        # a claim's own message is published after its claim, but may arrive before the reply
        superseded = _run(claims, list(order))
        assert superseded == {"c1": True, "c2": True, "c3": False}, (order, superseded)
        seen += 1
    assert seen == 120


def test_a_late_message_of_an_older_claim_closes_nobody_newer():
    hub = Hub(None)  # type: ignore[arg-type]
    old, new = Conn("old"), Conn("new")
    hub.add(A, old)
    hub.add(A, new)
    assert hub.claimed(A, old, 4) and hub.claimed(A, new, 5)
    hub.dispatch(_owner(5, "new"))
    hub.dispatch(_owner(4, "old"))  # late
    hub.dispatch(_owner(5, "new"))  # repeated
    assert old.items == [("superseded",)] and new.items == []


def test_a_message_without_a_claim_number_asks_the_others_to_check_redis():
    hub = Hub(None)  # type: ignore[arg-type]
    mine, other = Conn("mine"), Conn("other")
    hub.add(A, mine)
    hub.add(A, other)
    hub.dispatch({"a": A, "k": "owner", "o": "mine"})
    assert mine.items == [] and other.items == [("changed", 0)]


def test_a_removed_connection_is_forgotten():
    hub = Hub(None)  # type: ignore[arg-type]
    conn = Conn("c")
    hub.add(A, conn)
    hub.remove(A, conn)
    assert hub.connections() == []
    hub.dispatch(_owner(9, "x"))
    assert conn.items == []
