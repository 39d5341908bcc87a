from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import (
    FINAL, Answer, Attempt, Event, Expire, Extend, Flag, Goto, Outcome, Pause, Refused, Resume,
    Fetch, Start, State, Submit, Terminate, apply, derive_seed, layout, new_attempt, progress, replay,
)

from .engine_testdata import build

T0 = 1_700_000_000_000
DUR = 1_800_000  # 1800 s
GRACE = 2000
SEED = derive_seed(b"secret", "net-101", "alice")

EXAM = build(shuffle_questions=False, shuffle_options=False)
SHUFFLED = build()
LINEAR = build(navigation="linear", shuffle_questions=False)
LINEAR_SHUFFLED = build(navigation="linear", shuffle_questions=True)


def fresh(exam=EXAM, seed=SEED):
    return new_attempt(id="att-1", exam=exam, user="alice", name="Alice", seed=seed, now=T0)


def run(a, cmd, now, exam=EXAM, grace=GRACE):
    return apply(a, exam, cmd, now=now, grace_ms=grace)


def refuse(a, cmd, now, code, exam=EXAM, grace=GRACE):
    with pytest.raises(Refused) as ei:
        run(a, cmd, now, exam, grace)
    assert ei.value.code == code
    assert isinstance(ei.value.message, str) and ei.value.message
    return ei.value


def started(exam=EXAM, at=T0, seed=SEED):
    return run(fresh(exam, seed), Start(1), at, exam).attempt


def paused(at_start=T0, pause_at=T0 + 60_000):
    return run(started(at=at_start), Pause("proc"), pause_at).attempt


# --- creation and Start ------------------------------------------------------

def test_new_attempt():
    a = fresh(build(shuffle_questions=False, shuffle_options=False))
    assert a.state is State.READY and a.state == "ready"
    assert (a.exam_id, a.exam_version, a.duration_ms, a.created_at) == ("net-101", 0, DUR, T0)
    assert a.last_id == 0 and a.index == 0 and a.events == 0
    assert a.answers == {} and a.flags == frozenset()
    assert a.started_at is None and a.result is None
    assert a.deadline(T0) is None
    assert a.remaining_ms(T0 + 999_999) == DUR


def test_state_values():
    assert [s.value for s in State] == ["ready", "active", "paused", "submitted", "expired", "terminated"]
    assert FINAL == {State.SUBMITTED, State.EXPIRED, State.TERMINATED}


def test_start():
    out = run(fresh(), Start(1), T0 + 5)
    a = out.attempt
    assert isinstance(out, Outcome)
    assert a.state is State.ACTIVE and a.started_at == T0 + 5 and a.last_id == 1
    assert out.reply == {"deadline": T0 + 5 + DUR}
    assert out.time_changed and not out.ended and not out.duplicate
    assert a.deadline(T0 + 100) == T0 + 5 + DUR
    assert a.remaining_ms(T0 + 1005) == DUR - 1000


def test_start_again_is_idempotent():
    a = started()
    out = run(a, Start(2), T0 + 10_000)
    assert out.attempt == Attempt(**{**_fields(a), "last_id": 2})
    assert out.reply == {"deadline": T0 + DUR}
    assert not out.time_changed and not out.duplicate
    p = paused()
    out = run(p, Start(2), T0 + 70_000)
    assert out.attempt.state is State.PAUSED and out.attempt.last_id == 2
    assert out.reply == {"deadline": T0 + DUR + 10_000}


def test_start_final_refused():
    a = run(started(), Submit(2), T0 + 1).attempt
    refuse(a, Start(3), T0 + 2, "not_active")


def _fields(a):
    return {name: getattr(a, name) for name in Attempt.__dataclass_fields__}


# --- duplicates and request ids ----------------------------------------------

@pytest.mark.parametrize("cmd", [Start(1), Answer(1, "q1", "a"), Flag(1, "q1", True), Goto(1, 3),
                                 Event(1, "blur"), Submit(1)])
def test_duplicates_are_noops_in_any_state(cmd):
    a = started()
    for state_attempt in (a, run(a, Pause("p"), T0 + 1).attempt, run(a, Submit(5), T0 + 1).attempt):
        out = run(state_attempt, cmd, T0 + 2)
        assert out.duplicate and out.attempt is state_attempt
        assert out.reply == {} and not out.ended and not out.time_changed


def test_duplicate_checked_before_time_and_state():
    a = run(started(), Answer(7, "q1", "a"), T0 + 1).attempt
    late = T0 + DUR + GRACE + 1
    assert run(a, Answer(7, "q1", "b"), late).duplicate
    assert run(a, Answer(3, "q1", "b"), late).duplicate
    refuse(a, Answer(8, "q1", "b"), late, "time_up")


def test_refused_does_not_advance_last_id():
    a = started()
    refuse(a, Answer(5, "nope", "a"), T0 + 1, "unknown_question")
    a2 = run(a, Answer(5, "q1", "a"), T0 + 2).attempt
    assert a2.last_id == 5 and a2.answers == {"q1": "a"}


def test_ids_need_not_be_consecutive():
    a = run(started(), Answer(10, "q1", "a"), T0 + 1).attempt
    assert run(a, Answer(9, "q1", "b"), T0 + 2).duplicate
    assert run(a, Answer(11, "q1", "b"), T0 + 2).attempt.answers == {"q1": "b"}


@pytest.mark.parametrize("req", [0, -1, True, "3", None, 1.5])
def test_bad_request_id(req):
    refuse(started(), Event(req, "blur"), T0, "bad_request")


def test_unknown_command():
    refuse(started(), object(), T0, "bad_request")


# --- Answer / Flag / Goto --------------------------------------------------

def test_answer_set_replace_clear():
    a0 = started()
    a1 = run(a0, Answer(2, "q1", "a"), T0 + 1).attempt
    a2 = run(a1, Answer(3, "q2", ["c", "a"]), T0 + 2).attempt
    a3 = run(a2, Answer(4, "q1", "b"), T0 + 3).attempt
    a4 = run(a3, Answer(5, "q2", None), T0 + 4).attempt
    a5 = run(a4, Answer(6, "q3", None), T0 + 5).attempt  # clearing an unanswered question
    assert a0.answers == {}
    assert a1.answers == {"q1": "a"}
    assert a2.answers == {"q1": "a", "q2": ["a", "c"]}
    assert a3.answers == {"q1": "b", "q2": ["a", "c"]}
    assert a4.answers == {"q1": "b"}
    assert a5.answers == {"q1": "b"} and a5.last_id == 6
    out = run(a0, Answer(2, "q1", "a"), T0 + 1)
    assert out.reply == {} and not out.time_changed and not out.ended


@pytest.mark.parametrize("q, value", [("q1", "zz"), ("q2", "a"), ("q3", 1), ("q4", "3.14"),
                                      ("q4", float("nan")), ("q5", 42)])
def test_answer_bad_value(q, value):
    refuse(started(), Answer(2, q, value), T0 + 1, "bad_value")


@pytest.mark.parametrize("cmd", [Answer(20, "q1", "a"), Flag(20, "q1", True), Goto(20, 1)])
def test_candidate_writes_by_state(cmd):
    refuse(fresh(), cmd, T0, "not_started")
    refuse(paused(), cmd, T0 + 70_000, "not_active")
    for end in (Submit(9), Terminate("cheating", "p")):
        done = run(started(), end, T0 + 1).attempt
        refuse(done, cmd, T0 + 2, "not_active")
    # an expired attempt says why: the time is up
    refuse(run(started(), Expire(), T0 + DUR + GRACE).attempt, cmd, T0 + DUR + GRACE, "time_up")


@pytest.mark.parametrize("cmd", [Answer(2, "q1", "a"), Flag(2, "q1", True), Goto(2, 1), Submit(2)])
def test_time_up_after_deadline_plus_grace(cmd):
    a = started()
    deadline = T0 + DUR
    assert run(a, cmd, deadline).attempt.last_id == 2
    assert run(a, cmd, deadline + GRACE).attempt.last_id == 2
    refuse(a, cmd, deadline + GRACE + 1, "time_up")
    refuse(a, cmd, deadline + 1, "time_up", grace=0)


@pytest.mark.parametrize("cmd", [Answer(2, "q9", "a"), Flag(2, "q9", True), Answer(2, 5, "a")])
def test_unknown_question(cmd):
    refuse(started(), cmd, T0 + 1, "unknown_question")


def test_flag():
    a = run(started(), Flag(2, "q1", True), T0 + 1).attempt
    a = run(a, Flag(3, "q4", True), T0 + 2).attempt
    a = run(a, Flag(4, "q4", True), T0 + 3).attempt
    assert a.flags == {"q1", "q4"}
    a = run(a, Flag(5, "q1", False), T0 + 4).attempt
    a = run(a, Flag(6, "q2", False), T0 + 5).attempt
    assert a.flags == {"q4"} and a.last_id == 6
    refuse(a, Flag(7, "q1", "yes"), T0 + 6, "bad_request")


def test_goto_free_navigation():
    a = run(started(), Goto(2, 4), T0 + 1).attempt
    assert a.index == 4
    a = run(a, Goto(3, 0), T0 + 2).attempt
    assert a.index == 0
    a = run(a, Answer(4, "q5", "Paris"), T0 + 3).attempt  # any question any time
    assert a.answers == {"q5": "Paris"}


@pytest.mark.parametrize("index", [-1, 5, 100, "1", None, True])
def test_goto_out_of_range(index):
    refuse(started(), Goto(2, index), T0 + 1, "bad_request")


def test_linear_navigation():
    a = started(LINEAR)
    a = run(a, Answer(2, "q1", "a"), T0 + 1, LINEAR).attempt
    a = run(a, Goto(3, 2), T0 + 2, LINEAR).attempt
    assert a.index == 2
    e = refuse(a, Answer(4, "q1", "b"), T0 + 3, "navigation", LINEAR)
    assert e.message == "question is closed"
    refuse(a, Flag(4, "q2", True), T0 + 3, "navigation", LINEAR)
    refuse(a, Goto(4, 1), T0 + 3, "navigation", LINEAR)
    a = run(a, Goto(4, 2), T0 + 3, LINEAR).attempt  # staying put is fine
    a = run(a, Answer(5, "q3", True), T0 + 4, LINEAR).attempt  # current question open
    a = run(a, Answer(6, "q5", "x"), T0 + 5, LINEAR).attempt  # later questions open
    assert a.answers == {"q1": "a", "q3": True, "q5": "x"} and a.last_id == 6


def test_linear_navigation_uses_candidate_order():
    a = started(LINEAR_SHUFFLED)
    lay = layout(LINEAR_SHUFFLED, SEED)
    assert lay.order != (0, 1, 2, 3, 4)  # this seed does shuffle
    a = run(a, Goto(2, 2), T0 + 1, LINEAR_SHUFFLED).attempt
    closed = [qid for qid, pos in lay.position.items() if pos < 2]
    still_open = [qid for qid, pos in lay.position.items() if pos >= 2]
    for qid in closed:
        refuse(a, Flag(3, qid, True), T0 + 2, "navigation", LINEAR_SHUFFLED)
    for qid in still_open:
        assert run(a, Flag(3, qid, True), T0 + 2, LINEAR_SHUFFLED).attempt.flags == {qid}


# --- Event ---------------------------------------------------------------

def test_event_counts_in_non_final_states():
    a = run(fresh(), Event(1, "focus"), T0).attempt
    assert a.events == 1 and a.last_id == 1 and a.state is State.READY
    a = run(a, Start(2), T0).attempt
    a = run(a, Event(3, "blur"), T0 + DUR + GRACE + 50).attempt  # no time check
    assert a.events == 2
    p = run(paused(), Event(5, "copy"), T0 + 70_000).attempt
    assert p.events == 1 and p.last_id == 5
    done = run(a, Terminate("x", "p"), T0 + 1).attempt
    refuse(done, Event(9, "blur"), T0 + 2, "not_active")


# --- Submit --------------------------------------------------------------

def test_submit():
    a = run(started(), Answer(2, "q1", "b"), T0 + 1).attempt
    a = run(a, Answer(3, "q3", True), T0 + 2).attempt
    out = run(a, Submit(4), T0 + 3)
    s = out.attempt
    assert out.ended and not out.duplicate
    assert s.state is State.SUBMITTED and s.end_reason == "submitted"
    assert s.ended_at == T0 + 3 and s.last_id == 4
    assert s.result is not None and s.result.score == 2 and s.result.max_score == 6
    assert s.remaining_ms(T0 + 4) == 0
    assert s.deadline(T0 + 10**9) == T0 + DUR


def test_submit_refusals():
    refuse(fresh(), Submit(1), T0, "not_started")
    refuse(paused(), Submit(2), T0 + 70_000, "not_active")
    done = run(started(), Submit(2), T0 + 1).attempt
    refuse(done, Submit(3), T0 + 2, "not_active")
    refuse(started(), Submit(2), T0 + DUR + GRACE + 1, "time_up")
    expired = run(started(), Expire(), T0 + DUR + GRACE).attempt
    refuse(expired, Submit(3), T0 + DUR + GRACE + 5, "time_up")


# --- Expire --------------------------------------------------------------

def test_expire_before_due():
    a = started()
    refuse(a, Expire(), T0 + DUR, "not_due")
    refuse(a, Expire(), T0 + DUR + GRACE - 1, "not_due")


def test_expire_at_deadline_plus_grace():
    a = run(started(), Answer(2, "q3", True), T0 + 5).attempt
    out = run(a, Expire(), T0 + DUR + GRACE)
    e = out.attempt
    assert out.ended
    assert e.state is State.EXPIRED and e.end_reason == "time_up"
    assert e.ended_at == T0 + DUR  # the deadline, not the time of the sweep
    assert e.result.score == 1 and e.last_id == 2
    late = run(a, Expire(), T0 + DUR + 10**6).attempt
    assert late.ended_at == T0 + DUR


def test_expire_refused_unless_active():
    refuse(fresh(), Expire(), T0 + 10 * DUR, "not_active")
    refuse(paused(), Expire(), T0 + 10 * DUR, "not_active")  # a paused clock never runs out
    done = run(started(), Submit(2), T0 + 1).attempt
    refuse(done, Expire(), T0 + 10 * DUR, "not_active")


def test_expire_respects_extension_and_pauses():
    a = run(started(), Extend(60_000, "p"), T0 + 1).attempt
    a = run(a, Pause("p"), T0 + 1000).attempt
    a = run(a, Resume("p"), T0 + 31_000).attempt
    due = T0 + DUR + 60_000 + 30_000
    refuse(a, Expire(), due + GRACE - 1, "not_due")
    assert run(a, Expire(), due + GRACE).attempt.ended_at == due


# --- Pause / Resume / Extend arithmetic -------------------------------------

def test_pause_resume_arithmetic():
    a = started()
    out = run(a, Pause("proc"), T0 + 60_000)
    p = out.attempt
    assert out.time_changed and not out.ended and p.last_id == 1
    assert p.state is State.PAUSED and p.paused_at == T0 + 60_000
    # while paused the deadline moves with the clock and remaining is frozen
    assert p.deadline(T0 + 60_000) == T0 + DUR
    assert p.deadline(T0 + 90_000) == T0 + DUR + 30_000
    assert p.remaining_ms(T0 + 60_000) == DUR - 60_000
    assert p.remaining_ms(T0 + 10 * DUR) == DUR - 60_000
    out = run(p, Resume("proc"), T0 + 100_000)
    r = out.attempt
    assert out.time_changed and r.state is State.ACTIVE
    assert r.paused_at is None and r.paused_ms == 40_000
    assert r.deadline(T0 + 100_000) == T0 + DUR + 40_000
    assert r.remaining_ms(T0 + 100_000) == DUR - 60_000
    # second pause accumulates
    r2 = run(run(r, Pause("p"), T0 + 200_000).attempt, Resume("p"), T0 + 205_000).attempt
    assert r2.paused_ms == 45_000 and r2.deadline(0) == T0 + DUR + 45_000


def test_pause_resume_refusals():
    refuse(fresh(), Pause("p"), T0, "not_active")
    refuse(paused(), Pause("p"), T0 + 70_000, "not_active")
    refuse(fresh(), Resume("p"), T0, "not_active")
    refuse(started(), Resume("p"), T0, "not_active")
    done = run(started(), Submit(2), T0 + 1).attempt
    refuse(done, Pause("p"), T0 + 2, "not_active")
    refuse(done, Resume("p"), T0 + 2, "not_active")
    refuse(started(), Pause("p"), T0 + DUR + GRACE + 1, "time_up")
    assert run(started(), Pause("p"), T0 + DUR + GRACE).attempt.state is State.PAUSED


def test_remaining_clamped_at_zero():
    a = started()
    assert a.remaining_ms(T0 + DUR) == 0
    assert a.remaining_ms(T0 + DUR + 5000) == 0
    p = run(a, Pause("p"), T0 + DUR + 1000).attempt
    assert p.remaining_ms(T0 + DUR + 1500) == 0


def test_extend():
    out = run(started(), Extend(120_000, "proc"), T0 + 10)
    a = out.attempt
    assert out.time_changed and a.extended_ms == 120_000
    assert a.deadline(T0 + 10) == T0 + DUR + 120_000
    assert a.remaining_ms(T0 + 10) == DUR + 120_000 - 10
    a = run(a, Extend(1, "proc"), T0 + 11).attempt
    assert a.extended_ms == 120_001


def test_extend_before_start_and_while_paused():
    r = run(fresh(), Extend(5000, "p"), T0).attempt
    assert r.state is State.READY and r.remaining_ms(T0) == DUR + 5000
    out = run(r, Start(1), T0 + 100)
    assert out.reply == {"deadline": T0 + 100 + DUR + 5000}
    p = paused()  # paused at T0 + 60 s
    p2 = run(p, Extend(10_000, "p"), T0 + 65_000).attempt
    assert p2.state is State.PAUSED
    assert p2.remaining_ms(T0 + 99_000) == DUR - 60_000 + 10_000
    assert p2.deadline(T0 + 65_000) == T0 + DUR + 5000 + 10_000


def test_extend_revives_an_overdue_active_attempt():
    a = started()
    late = T0 + DUR + GRACE + 500
    refuse(a, Answer(2, "q1", "a"), late, "time_up")
    a = run(a, Extend(60_000, "p"), late).attempt
    assert run(a, Answer(2, "q1", "a"), late).attempt.answers == {"q1": "a"}


@pytest.mark.parametrize("ms", [0, -5, 86_400_001, 1.5, "60", True])
def test_extend_bad_request(ms):
    refuse(started(), Extend(ms, "p"), T0, "bad_request")


def test_extend_bounds_and_final():
    assert run(started(), Extend(86_400_000, "p"), T0).attempt.extended_ms == 86_400_000
    done = run(started(), Submit(2), T0 + 1).attempt
    refuse(done, Extend(1000, "p"), T0 + 2, "not_active")


# --- Terminate -----------------------------------------------------------------

@pytest.mark.parametrize("make", [fresh, started])
def test_terminate(make):
    a = make()
    out = run(a, Terminate("left the room", "proc"), T0 + 500)
    t = out.attempt
    assert out.ended
    assert t.state is State.TERMINATED and t.end_reason == "left the room" and t.ended_at == T0 + 500
    assert t.result is not None and t.result.score == 0
    assert t.remaining_ms(T0 + 600) == 0


def test_terminate_while_paused_folds_the_pause():
    p = paused()  # paused at T0 + 60 s
    t = run(p, Terminate("cheating", "proc"), T0 + 90_000).attempt
    assert t.paused_at is None and t.paused_ms == 30_000
    assert t.deadline(T0 + 10**9) == T0 + DUR + 30_000
    assert t.ended_at == T0 + 90_000


def test_terminate_final_refused():
    for end in (Submit(2), Terminate("x", "p")):
        done = run(started(), end, T0 + 1).attempt
        refuse(done, Terminate("again", "p"), T0 + 2, "not_active")


def test_final_result_reflects_answers():
    a = run(started(), Answer(2, "q2", ["a"]), T0 + 1).attempt
    a = run(a, Answer(3, "q1", "a"), T0 + 2).attempt  # wrong: -0.5 penalty
    t = run(a, Terminate("x", "p"), T0 + 3).attempt
    assert t.result.score == Fraction(1, 2)
    assert [q.points for q in t.result.questions] == [Fraction(-1, 2), 1, 0, 0, 0]


def test_apply_does_not_mutate_input():
    a = run(started(), Answer(2, "q1", "a"), T0 + 1).attempt
    before = dict(a.answers)
    run(a, Answer(3, "q1", "b"), T0 + 2)
    run(a, Answer(3, "q1", None), T0 + 2)
    assert a.answers == before and a.last_id == 2


# --- replay and properties -------------------------------------------------

def test_replay_skips_refused():
    steps = [
        (Answer(1, "q1", "a"), T0),           # not_started: skipped
        (Start(1), T0 + 1),
        (Answer(2, "q1", "b"), T0 + 2),
        (Answer(2, "q1", "c"), T0 + 3),       # duplicate
        (Answer(3, "q1", "zz"), T0 + 4),      # bad_value: skipped
        (Expire(), T0 + 5),                   # not_due: skipped
        (Submit(4), T0 + 6),
    ]
    a = replay(fresh(), EXAM, steps, grace_ms=GRACE)
    assert a.state is State.SUBMITTED and a.answers == {"q1": "b"} and a.last_id == 4
    assert a.result.score == 1


QIDS = ["q1", "q2", "q3", "q4", "q5", "qx"]
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(-5, 5),
                   st.sampled_from(["a", "b", "c", "Paris", " "]),
                   st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=4))


RAW_STEP = st.tuples(
    # command kind (index into the list in to_steps), weighted so that
    # attempts live long enough to reach every state
    st.sampled_from([0] * 5 + [1] * 8 + [2] * 2 + [3] * 4 + [4, 5] + [6] * 2 + [7, 7, 8, 9, 10]),
    st.sampled_from([0, 1, 1000, 60_000, 600_000, DUR]),      # time advance
    st.integers(-3, 6),                                       # <= 0: reuse an old request id
    st.sampled_from(QIDS), VALUES, st.booleans(), st.integers(-1, 5),
    st.sampled_from([0, 1000, 60_000]),
)


def to_steps(raw):
    """Turn drawn tuples into a (command, now) log."""
    out, now, req = [], T0, 0
    for kind, dt, dreq, qid, value, on, index, ms in raw:
        now += dt
        req = req + 1 if dreq > 0 else max(1, req + dreq)
        cmd = [
            Start(req), Answer(req, qid, value), Flag(req, qid, on), Goto(req, index),
            Event(req, "blur"), Submit(req), Expire(), Pause("p"), Resume("p"),
            Extend(ms, "p"), Terminate("x", "p"),
        ][kind]
        out.append((cmd, now))
    return out


def steps():
    return st.lists(RAW_STEP, max_size=40).map(to_steps)


EXAMS = [EXAM, SHUFFLED, LINEAR, LINEAR_SHUFFLED]


@settings(max_examples=150, deadline=None)
@given(exam_i=st.sampled_from(range(len(EXAMS))), log=steps())
def test_replay_is_deterministic(exam_i, log):
    exam = EXAMS[exam_i]
    start = fresh(exam)
    end = replay(start, exam, log, grace_ms=GRACE)
    assert replay(start, exam, list(log), grace_ms=GRACE) == end
    half = len(log) // 2
    middle = replay(start, exam, log[:half], grace_ms=GRACE)
    assert replay(middle, exam, log[half:], grace_ms=GRACE) == end


@settings(max_examples=150, deadline=None)
@given(exam_i=st.sampled_from(range(len(EXAMS))), log=steps())
def test_invariants(exam_i, log):
    exam = EXAMS[exam_i]
    a = fresh(exam)
    for cmd, now in log:
        try:
            out = apply(a, exam, cmd, now=now, grace_ms=GRACE)
        except Refused as e:
            assert e.code in {"not_started", "not_active", "time_up", "unknown_question", "bad_value",
                              "navigation", "bad_request", "not_due"}
            continue
        b = out.attempt
        assert b.last_id >= a.last_id
        if out.duplicate:
            assert b is a
        if a.state in FINAL:
            assert b is a  # a final attempt never changes
        assert out.ended == (a.state not in FINAL and b.state in FINAL)
        assert (b.result is not None) == (b.state in FINAL)
        assert (b.paused_at is not None) == (b.state is State.PAUSED)
        assert b.remaining_ms(now) >= 0
        assert set(b.answers) <= set(exam.by_id)
        if b.result is not None:
            assert 0 <= b.result.score <= b.result.max_score
        if exam.navigation == "linear":
            assert b.index >= a.index
        a = b


def test_fetch_consumes_its_id_while_the_attempt_is_live():
    refuse(fresh(), Fetch(1), T0, "not_started")
    a = started()
    out = run(a, Fetch(7), T0 + 1)
    assert out.attempt.last_id == 7 and out.attempt.answers == a.answers and not out.time_changed
    assert run(out.attempt, Fetch(7), T0 + 2).duplicate
    assert run(paused(), Fetch(50), T0 + 70_000).attempt.last_id == 50
    # after the end it is answered but changes nothing: last_id stays what the final record holds
    done = run(started(), Submit(9), T0 + 1).attempt
    out = run(done, Fetch(10), T0 + 2)
    assert out.attempt is done and out.attempt.last_id == 9 and not out.duplicate


# --- progress: the proctor's row ----------------------------------------------

def test_progress_follows_the_attempt_through_its_states():
    a = fresh()
    row = progress(a, EXAM.total, T0)
    assert row == {
        "user": "alice", "name": "Alice", "state": "ready", "answered": 0, "total": EXAM.total, "flagged": 0,
        "index": 0, "deadline": None, "remaining_ms": DUR, "events": 0, "reason": None, "score": None, "percent": None,
    }
    q1 = EXAM.questions[1]
    a = started()
    a = run(a, Flag(2, q1.id, True), T0 + 1_000).attempt
    a = run(a, Event(3, "blur"), T0 + 2_000).attempt
    a = run(a, Goto(4, 1), T0 + 3_000).attempt
    row = progress(a, EXAM.total, T0 + 10_000)
    assert (row["state"], row["answered"], row["flagged"], row["index"], row["events"]) == ("active", 0, 1, 1, 1)
    assert row["deadline"] == T0 + DUR and row["remaining_ms"] == DUR - 10_000

    p = run(a, Pause("proc"), T0 + 20_000).attempt
    later = progress(p, EXAM.total, T0 + 80_000)
    assert later["state"] == "paused" and later["remaining_ms"] == DUR - 20_000  # frozen
    assert later["deadline"] == T0 + DUR + 60_000  # moves with the pause

    end = run(a, Terminate("left", "proc"), T0 + 30_000).attempt
    row = progress(end, EXAM.total, T0 + 40_000)
    assert (row["state"], row["reason"], row["remaining_ms"]) == ("terminated", "left", 0)
    assert row["score"] == 0 and row["percent"] == 0
    assert progress(end, EXAM.total, T0, {"score": 3, "percent": 50})["score"] == 3


# -- the transitions' copies -------------------------------------------------------


def test_every_transition_builds_what_dataclasses_replace_would():
    """``_evolve`` (the transitions' copy) is ``dataclasses.replace``: every field copied, the changes set."""
    import dataclasses

    from engine.attempt import _evolve

    a = run(run(fresh(), Start(1), T0).attempt, Answer(2, EXAM.questions[0].id, EXAM.questions[0].options[0].id), T0 + 5).attempt
    changes = {"last_id": 9, "index": 2, "events": 4, "flags": frozenset({"q"}), "state": State.PAUSED, "paused_at": T0 + 9}
    for name, value in changes.items():
        assert _evolve(a, **{name: value}) == dataclasses.replace(a, **{name: value})
    b = _evolve(a, **changes)
    assert b == dataclasses.replace(a, **changes) and b is not a and type(b) is Attempt
    assert a.last_id == 2 and a.state is State.ACTIVE  # the original is untouched


def test_only_an_answer_changes_the_answers_and_it_names_its_question():
    """``Outcome.answered`` names the answer's question; every other command keeps the same answers mapping."""
    q = EXAM.questions[0]
    a = run(fresh(), Start(1), T0).attempt
    out = run(a, Answer(2, q.id, q.options[0].id), T0 + 1)
    assert out.answered == q.id and out.attempt.answers == {q.id: q.options[0].id}
    cleared = run(out.attempt, Answer(3, q.id, None), T0 + 2)
    assert cleared.answered == q.id and cleared.attempt.answers == {}
    b = out.attempt
    for cmd in (Flag(4, q.id, True), Goto(5, 1), Fetch(6), Event(7, "blur"), Extend(60_000, "p"), Pause("p"),
                Resume("p"), Submit(8)):
        nxt = run(b, cmd, T0 + 3)
        assert nxt.answered is None and nxt.attempt.answers is b.answers, cmd
        b = nxt.attempt
