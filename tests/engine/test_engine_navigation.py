"""Linear navigation as a position that only moves forward, and final attempts that never change.

In a linear exam a question closes once the candidate has moved past it by any
means: a ``goto``, or an answer or flag of a later question (which moves the
position there). A final attempt is frozen: the one candidate command it still
accepts (``Fetch``, for review) changes nothing, ``last_id`` included, so the
record persisted when it ended stays the whole truth.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import (
    FINAL, Answer, Event, Expire, Extend, Fetch, Flag, Goto, Pause, Refused, Resume, Start, Submit, Terminate,
    apply, derive_seed, layout, new_attempt, replay,
)

from .engine_testdata import build

T0 = 1_700_000_000_000
GRACE = 2000
SEED = derive_seed(b"secret", "net-101", "alice")

SIX = [{"id": f"q{i}", "type": "true_false", "prompt": f"Statement {i}.", "answer": i % 2 == 0} for i in range(6)]
LINEAR6 = build(questions=SIX, navigation="linear", shuffle_questions=False)
LINEAR6_SHUFFLED = build(questions=SIX, navigation="linear", shuffle_questions=True)
FREE6 = build(questions=SIX, navigation="free", shuffle_questions=False)
QIDS = [q["id"] for q in SIX]


def started(exam, seed=SEED):
    a = new_attempt(id="att-1", exam=exam, user="alice", name="Alice", seed=seed, now=T0)
    return apply(a, exam, Start(1), now=T0, grace_ms=GRACE).attempt


def outcome(a, exam, cmd, now=T0 + 1):
    """The new attempt, or the refusal code."""
    try:
        return apply(a, exam, cmd, now=now, grace_ms=GRACE).attempt
    except Refused as e:
        return e.code


def test_the_probe_order_is_refused_after_the_first_move_forward():
    """q5, q0, q3, q0, q5, q1, q5: once q5 is answered everything before it is closed."""
    a = started(LINEAR6)
    codes = []
    for req, qid in enumerate(["q5", "q0", "q3", "q0", "q5", "q1", "q5"], start=2):
        got = outcome(a, LINEAR6, Answer(req, qid, True))
        if isinstance(got, str):
            codes.append(got)
        else:
            codes.append("ack")
            a = got
    assert codes == ["ack", "navigation", "navigation", "navigation", "ack", "navigation", "ack"]
    assert a.index == 5 and set(a.answers) == {"q5"}


def test_an_answer_or_flag_ahead_moves_the_position_there():
    a = started(LINEAR6)
    a = outcome(a, LINEAR6, Answer(2, "q2", True))
    assert a.index == 2
    assert outcome(a, LINEAR6, Goto(3, 1)) == "navigation"
    assert outcome(a, LINEAR6, Flag(3, "q1", True)) == "navigation"
    a = outcome(a, LINEAR6, Flag(3, "q4", True))
    assert a.index == 4 and a.flags == {"q4"}
    assert outcome(a, LINEAR6, Answer(4, "q3", False)) == "navigation"
    a = outcome(a, LINEAR6, Answer(4, "q4", None))  # clearing the current question: the position stays
    assert a.index == 4 and a.last_id == 4


def test_a_refused_answer_ahead_does_not_move_the_position():
    a = started(LINEAR6)
    assert outcome(a, LINEAR6, Answer(2, "q4", "not a boolean")) == "bad_value"
    assert outcome(a, LINEAR6, Flag(2, "q4", "yes")) == "bad_request"
    assert outcome(a, LINEAR6, Answer(2, "q1", True)).index == 1  # nothing moved: q1 is still open


def test_free_navigation_keeps_its_index_on_answers():
    a = started(FREE6)
    a = outcome(a, FREE6, Goto(2, 1))
    for req, qid in enumerate(["q5", "q0", "q3"], start=3):
        a = outcome(a, FREE6, Answer(req, qid, True))
        assert a.index == 1


def test_the_position_is_in_the_candidate_order():
    lay = layout(LINEAR6_SHUFFLED, SEED)
    assert lay.order != tuple(range(6))  # this seed does shuffle
    by_pos = {pos: qid for qid, pos in lay.position.items()}
    a = started(LINEAR6_SHUFFLED)
    a = outcome(a, LINEAR6_SHUFFLED, Answer(2, by_pos[3], True))
    assert a.index == 3
    for pos in range(6):
        got = outcome(a, LINEAR6_SHUFFLED, Flag(3, by_pos[pos], True))
        assert (got == "navigation") == (pos < 3), (pos, got)


POSITIONAL = st.one_of(
    st.tuples(st.just("answer"), st.sampled_from(QIDS), st.sampled_from([True, False, None, "x"])),
    st.tuples(st.just("flag"), st.sampled_from(QIDS), st.booleans()),
    st.tuples(st.just("goto"), st.integers(-1, 6), st.none()),
)


def _command(req, step):
    kind, target, value = step
    if kind == "answer":
        return Answer(req, target, value)
    if kind == "flag":
        return Flag(req, target, value)
    return Goto(req, target)


def _position_of(cmd, lay):
    return cmd.index if isinstance(cmd, Goto) else lay.position[cmd.q]


@settings(max_examples=300, deadline=None)
@given(shuffled=st.booleans(), user=st.sampled_from(["alice", "bob", "carol"]), log=st.lists(POSITIONAL, max_size=30))
def test_linear_acks_never_go_back(shuffled, user, log):
    """For any answers, flags and gotos in a linear exam: a request about position p is never
    acknowledged after one about a position above p, and the attempt's ``index`` (welcome's
    ``index``, the proctor's view) is the position of the last one acknowledged. Replaying the
    same log gives the same attempt."""
    exam = LINEAR6_SHUFFLED if shuffled else LINEAR6
    seed = derive_seed(b"secret", exam.id, user)
    lay = layout(exam, seed)
    a = start = started(exam, seed)
    acked: list[int] = []
    steps = []
    for req, step in enumerate(log, start=2):
        cmd = _command(req, step)
        steps.append((cmd, T0 + req))
        got = outcome(a, exam, cmd, T0 + req)
        if isinstance(got, str):
            assert got in {"navigation", "bad_value", "bad_request"}, got
            if got == "navigation":
                assert _position_of(cmd, lay) < a.index
            continue
        pos = _position_of(cmd, lay)
        assert not acked or pos >= acked[-1], f"ack at position {pos} after one at {acked[-1]}"
        acked.append(pos)
        assert got.index == pos
        a = got
    for qid in a.answers:
        assert lay.position[qid] <= a.index
    assert replay(start, exam, steps, grace_ms=GRACE) == a


# --- final attempts ---------------------------------------------------------------------

def _finals():
    s = started(LINEAR6)
    s = outcome(s, LINEAR6, Answer(2, "q2", True))
    return [
        apply(s, LINEAR6, Submit(3), now=T0 + 5, grace_ms=GRACE).attempt,
        apply(s, LINEAR6, Terminate("left", "p"), now=T0 + 5, grace_ms=GRACE).attempt,
        apply(s, LINEAR6, Expire(), now=T0 + LINEAR6.duration_ms + GRACE, grace_ms=GRACE).attempt,
    ]


def test_fetch_after_the_end_is_answered_and_changes_nothing():
    for done in _finals():
        assert done.state in FINAL
        out = apply(done, LINEAR6, Fetch(done.last_id + 5), now=T0 + 10**8, grace_ms=GRACE)
        assert out.attempt is done and not out.duplicate and out.attempt.last_id == done.last_id
        assert apply(done, LINEAR6, Fetch(1), now=T0 + 10**8, grace_ms=GRACE).duplicate


ANY_COMMAND = st.one_of(
    st.builds(Start, st.integers(1, 20)),
    st.builds(Answer, st.integers(1, 20), st.sampled_from(QIDS), st.booleans()),
    st.builds(Flag, st.integers(1, 20), st.sampled_from(QIDS), st.booleans()),
    st.builds(Goto, st.integers(1, 20), st.integers(0, 5)),
    st.builds(Fetch, st.integers(1, 20)),
    st.builds(Event, st.integers(1, 20), st.just("blur")),
    st.builds(Submit, st.integers(1, 20)),
    st.just(Expire()), st.just(Pause("p")), st.just(Resume("p")),
    st.builds(Extend, st.integers(1, 10**6), st.just("p")), st.just(Terminate("x", "p")),
)


@settings(max_examples=300, deadline=None)
@given(which=st.integers(0, 2), cmds=st.lists(ANY_COMMAND, max_size=10), dt=st.integers(0, 10**9))
def test_a_final_attempt_never_changes(which, cmds, dt):
    """Whatever comes after the end is refused or leaves the very same attempt: nothing to write,
    and ``last_id`` stays what the persisted record holds."""
    done = _finals()[which]
    for cmd in cmds:
        try:
            out = apply(done, LINEAR6, cmd, now=T0 + dt, grace_ms=GRACE)
        except Refused as e:
            assert e.code in {"not_active", "time_up", "bad_request"}, e.code
            continue
        assert out.attempt is done and not out.ended and not out.time_changed


@pytest.mark.parametrize("exam", [LINEAR6, FREE6])
def test_goto_does_not_touch_answers(exam):
    a = outcome(started(exam), exam, Answer(2, "q3", True))
    b = outcome(a, exam, Goto(3, 4))
    assert b.answers is a.answers and b.index == 4
