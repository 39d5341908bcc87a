import hashlib
import hmac
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import Layout, batch, derive_seed, layout, permutation

from .engine_testdata import build

ZERO_SEED = "00" * 32


def reference_permutation(seed: str, label: str, n: int) -> tuple[int, ...]:
    """Independent re-implementation from the module docstring."""
    key = bytes.fromhex(seed)
    buf: list[int] = []
    counter = 0

    def word() -> int:
        nonlocal counter
        if not buf:
            block = hmac.new(key, label.encode() + b"\x00" + struct.pack(">Q", counter), hashlib.sha256).digest()
            buf.extend(struct.unpack(">4Q", block))
            counter += 1
        return buf.pop(0)

    p = list(range(n))
    for i in range(n - 1, 0, -1):
        limit = 2**64 - (2**64 % (i + 1))
        x = word()
        while x >= limit:
            x = word()
        j = x % (i + 1)
        p[i], p[j] = p[j], p[i]
    return tuple(p)


# --- seeds -------------------------------------------------------------------

def test_derive_seed():
    seed = derive_seed(b"secret", "net-101", "alice")
    expected = hmac.new(b"secret", b"examwire-seed\x00net-101\x00alice", hashlib.sha256).hexdigest()
    assert seed == expected and len(seed) == 64
    assert derive_seed(b"secret", "net-101", "bob") != seed
    assert derive_seed(b"other", "net-101", "alice") != seed
    assert derive_seed(b"secret", "net-102", "alice") != seed
    # the separator keeps (exam, user) pairs apart
    assert derive_seed(b"s", "ab", "c") != derive_seed(b"s", "a", "bc")


# --- permutation ---------------------------------------------------------------

def test_pinned_vector():
    assert permutation(ZERO_SEED, "questions", 10) == (7, 9, 0, 1, 4, 2, 6, 3, 5, 8)


def test_matches_reference_implementation():
    for n in (0, 1, 2, 3, 7, 50, 300):
        for label in ("questions", "options:q1", ""):
            seed = derive_seed(b"k", "e", f"{n}{label}")
            assert permutation(seed, label, n) == reference_permutation(seed, label, n)


def test_small_n():
    assert permutation(ZERO_SEED, "x", 0) == ()
    assert permutation(ZERO_SEED, "x", 1) == (0,)
    with pytest.raises(ValueError):
        permutation(ZERO_SEED, "x", -1)
    with pytest.raises(ValueError):
        permutation("not hex", "x", 3)


@settings(max_examples=200, deadline=None)
@given(seed=st.binary(min_size=1, max_size=32).map(bytes.hex), label=st.text(max_size=10),
       n=st.integers(0, 200))
def test_is_a_stable_permutation(seed, label, n):
    p = permutation(seed, label, n)
    assert sorted(p) == list(range(n))
    assert permutation(seed, label, n) == p


def test_differs_across_seeds():
    orders = {permutation(derive_seed(b"k", "e", f"user{i}"), "questions", 20) for i in range(50)}
    assert len(orders) >= 45


def test_differs_across_labels():
    seed = derive_seed(b"k", "e", "u")
    assert permutation(seed, "options:q1", 20) != permutation(seed, "options:q2", 20)


def test_roughly_uniform_first_position():
    counts = [0] * 4
    for i in range(4000):
        counts[permutation(derive_seed(b"k", "e", str(i)), "l", 4)[0]] += 1
    assert all(850 < c < 1150 for c in counts), counts


# --- layout and batch ------------------------------------------------------

def seed_of(user):
    return derive_seed(b"secret", "net-101", user)


def test_layout_identity_when_not_shuffled(make_exam):
    exam = make_exam(shuffle_questions=False, shuffle_options=False)
    lay = layout(exam, seed_of("alice"))
    assert lay.order == (0, 1, 2, 3, 4)
    assert dict(lay.position) == {"q1": 0, "q2": 1, "q3": 2, "q4": 3, "q5": 4}
    assert lay.options["q1"] == (0, 1, 2) and lay.options["q2"] == (0, 1, 2, 3)
    assert lay.options["q3"] == ()


def test_layout_uses_labelled_permutations(exam5):
    seed = seed_of("alice")
    lay = layout(exam5, seed)
    assert isinstance(lay, Layout)
    assert lay.order == permutation(seed, "questions", 5)
    for pos, idx in enumerate(lay.order):
        assert lay.position[exam5.questions[idx].id] == pos
    assert lay.options["q1"] == permutation(seed, "options:q1", 3)
    assert lay.options["q2"] == permutation(seed, "options:q2", 4)
    assert lay.options["q4"] == ()
    assert layout(exam5, seed) == lay  # stable


def test_shuffle_options_only(make_exam):
    exam = make_exam(shuffle_questions=False)
    seed = seed_of("alice")
    lay = layout(exam, seed)
    assert lay.order == (0, 1, 2, 3, 4)
    assert lay.options["q2"] == permutation(seed, "options:q2", 4)


def test_layout_differs_across_candidates():
    qs = [{"id": f"q{i}", "type": "single", "prompt": f"p{i}",
           "options": [{"id": o, "text": o} for o in "abcde"], "answer": "a"} for i in range(20)]
    exam = build(questions=qs)
    lays = [layout(exam, seed_of(f"user{i}")) for i in range(20)]
    assert len({lay.order for lay in lays}) == 20
    assert len({lay.options["q0"] for lay in lays}) > 5


def test_batch(exam5):
    lay = layout(exam5, seed_of("alice"))
    got = batch(exam5, lay, 0, 10)
    assert [b["index"] for b in got] == [0, 1, 2, 3, 4]
    assert [b["id"] for b in got] == [exam5.questions[i].id for i in lay.order]
    for b in got:
        q = exam5.questions[exam5.by_id[b["id"]]]
        assert set(b) == {"index", "id", "type", "prompt", "options", "points"}
        assert [o["id"] for o in b["options"]] == [q.options[k].id for k in lay.options[q.id]]
        assert sorted(b["options"], key=lambda o: o["id"]) == sorted(q.public["options"], key=lambda o: o["id"])
        assert b["points"] == q.public["points"]
    assert batch(exam5, lay, 2, 2) == got[2:4]
    assert batch(exam5, lay, 4, 100) == got[4:]
    assert batch(exam5, lay, 5, 3) == []
    assert batch(exam5, lay, 0, 0) == []


def test_batch_never_leaks_keys_and_returns_fresh_dicts(exam5):
    lay = layout(exam5, seed_of("bob"))
    got = batch(exam5, lay, 0, 5)
    text = repr(got)
    for word in ("answer", "penalty", "tolerance", "scoring", "case_sensitive", "Paris"):
        assert word not in text
    got[0]["prompt"] = "changed"
    got[0]["options"].clear()
    again = batch(exam5, lay, 0, 5)
    assert again[0]["prompt"] != "changed"
    for q in exam5.questions:
        assert q.public["prompt"] != "changed"
        assert len(q.public["options"]) == len(q.options)


def test_batch_is_fast():
    qs = [{"id": f"q{i}", "type": "single", "prompt": "p" * 200,
           "options": [{"id": o, "text": o * 50} for o in "abcde"], "answer": "a"} for i in range(200)]
    exam = build(questions=qs)
    lay = layout(exam, seed_of("carol"))
    batch(exam, lay, 0, 65)
    rounds = 200
    t0 = time.perf_counter()
    for _ in range(rounds):
        batch(exam, lay, 10, 65)
    per_call = (time.perf_counter() - t0) / rounds
    assert per_call < 1e-3, per_call
