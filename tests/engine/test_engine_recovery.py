"""A lost attempt (engine.recovery and ``Lost``): tickets carry the clock, ``restore`` never gives time back.

The rules (docs/protocol.md, "Loss is detected, never silent"):

* a ticket is the attempt's clock, signed: it reads back exactly, and any
  change, another secret or any other text reads as nothing (never raises);
* restored from its ticket, an attempt has the very deadline and remaining
  time it had, at every later instant (time that passed stays passed);
  without a (matching) ticket it is held: paused, its clock frozen until a
  proctor resumes it;
* ``Lost(acked)`` marks the ids up to ``acked`` as used and counts one event,
  nothing else;
* the client's resend of its acknowledged answers and flags, with fresh ids
  and in question order, brings them all back while the time runs, in free
  and linear exams alike; and it never gets past the deadline.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from engine import (
    FINAL, MAX_TICKET_LEN, Answer, Attempt, Clock, Flag, Lost, Refused, Resume, Start, State, apply,
    clock_of, layout, replay, restore, seal, unseal,
)

from engine import Extend, Goto, Pause

from .test_engine_attempt import (
    DUR, EXAM, EXAMS, GRACE, LINEAR, QIDS, SEED, T0, VALUES, fresh, refuse, run, started, steps,
)

SECRET = b"deployment secret"


def live_attempts():
    """(exam, attempt, now): an attempt after a random log, still live, and a time at or after its last step."""
    return st.tuples(st.sampled_from(range(len(EXAMS))), steps(), st.sampled_from([0, 1, 999, 60_000, DUR])).map(_live)


def _live(drawn):
    exam_i, log, later = drawn
    exam = EXAMS[exam_i]
    a = replay(fresh(exam), exam, log, grace_ms=GRACE)
    now = (log[-1][1] if log else T0) + later
    return exam, a, now


def active_attempts():
    """(exam, attempt, now): a started attempt after answers, flags, moves, pauses and extensions (mostly still active)."""
    step = st.tuples(
        st.sampled_from(["answer"] * 6 + ["flag"] * 2 + ["goto", "pause", "extend"]),
        st.sampled_from(QIDS), VALUES, st.booleans(), st.integers(0, 4), st.sampled_from([0, 1, 1000, 60_000]),
    )  # fmt: skip
    return st.tuples(st.sampled_from(range(len(EXAMS))), st.lists(step, max_size=25)).map(_active)


def _active(drawn):
    exam_i, raw = drawn
    exam = EXAMS[exam_i]
    now, req, log = T0, 1, [(Start(1), T0)]
    for kind, qid, value, on, index, dt in raw:
        now += dt
        req += 1
        if kind == "pause":
            log += [(Pause("p"), now), (Resume("p"), now + dt)]
            now += dt
            continue
        cmd = {"answer": Answer(req, qid, value), "flag": Flag(req, qid, on), "goto": Goto(req, index),
               "extend": Extend(60_000, "p")}[kind]  # fmt: skip
        log.append((cmd, now))
    return exam, replay(fresh(exam), exam, log, grace_ms=GRACE), now


def put_back(exam, a, now, clock):
    return restore(id=a.id, exam=exam, user=a.user, name=a.name, seed=a.seed, now=now, clock=clock)


# --------------------------------------------------------------------------- tickets
@settings(max_examples=200, deadline=None)
@given(live=live_attempts())
def test_a_ticket_reads_back_exactly(live):
    exam, a, now = live
    clock = clock_of(a, now)
    if a.state in FINAL:
        assert clock is None
        return
    ticket = seal(SECRET, clock)
    assert ticket.isascii() and len(ticket) <= MAX_TICKET_LEN
    assert unseal(SECRET, ticket) == clock
    assert unseal(b"another deployment", ticket) is None


@settings(max_examples=300, deadline=None)
@given(live=live_attempts(), data=st.data())
def test_any_change_to_a_ticket_reads_as_nothing(live, data):
    exam, a, now = live
    assume(a.state not in FINAL)
    ticket = seal(SECRET, clock_of(a, now))
    i = data.draw(st.integers(0, len(ticket) - 1))
    ch = data.draw(st.sampled_from("0123456789abcdef._-tAZ").filter(lambda c: c != ticket[i]))
    assert unseal(SECRET, ticket[:i] + ch + ticket[i + 1 :]) is None
    assert unseal(SECRET, ticket[:i]) is None
    assert unseal(SECRET, ticket + data.draw(st.text(min_size=1, max_size=5))) is None


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=600), st.binary(max_size=50), st.integers(), st.none(), st.lists(st.text())))
def test_unseal_never_raises_on_anything(junk):
    assert unseal(SECRET, junk) is None


def test_a_signed_but_inconsistent_clock_is_refused():
    """A ticket only ever comes from clock_of; one whose facts contradict its state is not believed."""
    good = clock_of(started(), T0 + 5)
    for bad in (
        dataclasses.replace(good, state=State.READY),
        dataclasses.replace(good, state=State.PAUSED),
        dataclasses.replace(good, paused_at=T0 + 1),
        dataclasses.replace(good, started_at=None),
    ):
        assert unseal(SECRET, seal(SECRET, bad)) is None
    assert unseal(SECRET, seal(SECRET, good)) == good


def test_ticket_shape():
    t = seal(SECRET, clock_of(started(), T0 + 5))
    parts = t.split(".")
    assert parts[0] == "t1" and parts[1] == "att-1" and parts[5] == "a" and len(parts) == 13 and len(parts[-1]) == 32


# --------------------------------------------------------------------------- restore
@settings(max_examples=200, deadline=None)
@given(live=live_attempts(), later=st.lists(st.integers(0, 3 * DUR), min_size=1, max_size=5))
def test_restored_from_its_ticket_an_attempt_keeps_its_deadline(live, later):
    exam, a, now = live
    assume(a.state not in FINAL)
    r = put_back(exam, a, now + 1234, unseal(SECRET, seal(SECRET, clock_of(a, now))))
    assert r.state is a.state and r.started_at == a.started_at and r.exam_version == a.exam_version
    assert (dict(r.answers), r.flags, r.index, r.last_id) == ({}, frozenset(), 0, 0)
    for dt in later:
        u = now + dt
        assert r.deadline(u) == a.deadline(u)
        assert r.remaining_ms(u) == a.remaining_ms(u)


@settings(max_examples=200, deadline=None)
@given(live=live_attempts(), wrong=st.sampled_from(["attempt", "version", "none"]), later=st.integers(0, 3 * DUR))
def test_without_a_matching_ticket_the_attempt_is_held_until_a_proctor_acts(live, wrong, later):
    exam, a, now = live
    assume(a.state not in FINAL)
    clock = clock_of(a, now)
    clock = {"attempt": dataclasses.replace(clock, attempt="someone-else"),
             "version": dataclasses.replace(clock, exam_version=clock.exam_version + 1), "none": None}[wrong]
    r = put_back(exam, a, now, clock)
    assert r.state is State.PAUSED and (dict(r.answers), r.last_id) == ({}, 0)
    assert r.remaining_ms(now + later) == exam.duration_ms  # frozen: the clock does not run
    q = exam.questions[0].id
    refuse(r, Answer(1, q, None), now + later, "not_active", exam)
    assert apply(r, exam, Start(1), now=now + later, grace_ms=GRACE).attempt.state is State.PAUSED
    resumed = apply(r, exam, Resume("proctor"), now=now + later, grace_ms=GRACE).attempt
    assert resumed.state is State.ACTIVE and resumed.deadline(now + later) == now + later + exam.duration_ms


def test_a_restored_attempt_past_its_deadline_expires_as_usual():
    a = started()
    r = put_back(EXAM, a, T0 + DUR + GRACE + 10, clock_of(a, T0 + 1000))
    refuse(r, Answer(5, "q1", "a"), T0 + DUR + GRACE + 10, "time_up")
    from engine import Expire

    out = run(r, Expire(), T0 + DUR + GRACE + 10)
    assert out.ended and out.attempt.state is State.EXPIRED and out.attempt.ended_at == T0 + DUR


# --------------------------------------------------------------------------- Lost
@settings(max_examples=200, deadline=None)
@given(live=live_attempts(), acked=st.integers(0, 2**53 - 1))
def test_lost_marks_the_acknowledged_ids_used_and_counts_one_event(live, acked):
    exam, a, now = live
    if a.state in FINAL:
        with pytest.raises(Refused) as e:
            apply(a, exam, Lost(acked), now=now, grace_ms=GRACE)
        assert e.value.code == "not_active"
        return
    out = apply(a, exam, Lost(acked), now=now, grace_ms=GRACE)
    b = out.attempt
    assert b.last_id == max(a.last_id, acked) and b.events == a.events + 1
    assert dataclasses.replace(b, last_id=a.last_id, events=a.events) == a
    assert not (out.duplicate or out.ended or out.time_changed)
    if b.last_id >= 1:  # an id the client saw acknowledged is never applied again
        q = exam.questions[0].id
        assert apply(b, exam, Answer(b.last_id, q, None), now=now, grace_ms=GRACE).duplicate


@pytest.mark.parametrize("acked", [-1, True, 1.5, "3", None])
def test_lost_bad_acked(acked):
    refuse(started(), Lost(acked), T0 + 1, "bad_request")


# --------------------------------------------------------------------------- the resend
def resend(exam: object, lost: Attempt, r: Attempt, now: int) -> Attempt:
    """What a client does after a loss: its acknowledged answers and flags again, fresh ids, in question order."""
    pos = layout(exam, lost.seed).position  # type: ignore[arg-type]
    requests = []
    for q in sorted(set(lost.answers) | set(lost.flags), key=lambda q: pos[q]):
        if q in lost.answers:
            requests.append(("answer", q))
        if q in lost.flags:
            requests.append(("flag", q))
    req = r.last_id
    for kind, q in requests:
        req += 1
        cmd = Answer(req, q, lost.answers[q]) if kind == "answer" else Flag(req, q, True)
        r = apply(r, exam, cmd, now=now, grace_ms=GRACE).attempt  # type: ignore[arg-type]
    return r


@settings(max_examples=200, deadline=None)
@given(live=active_attempts(), acked_extra=st.integers(0, 5))
def test_the_resend_brings_every_acknowledged_answer_back_while_the_time_runs(live, acked_extra):
    exam, a, now = live
    assume(a.state is State.ACTIVE and now <= a.deadline(now) + GRACE)
    acked = a.last_id + acked_extra
    r = put_back(exam, a, now, unseal(SECRET, seal(SECRET, clock_of(a, now))))
    r = apply(r, exam, Lost(acked), now=now, grace_ms=GRACE).attempt
    back = resend(exam, a, r, now)
    assert dict(back.answers) == dict(a.answers) and back.flags == a.flags
    assert back.deadline(now) == a.deadline(now) and back.state is State.ACTIVE
    assert back.last_id > acked or not (a.answers or a.flags)
    if exam.navigation == "linear":
        assert back.index <= a.index  # the position is never moved past where the candidate was


@settings(max_examples=100, deadline=None)
@given(live=active_attempts())
def test_the_resend_never_gets_past_the_deadline(live):
    exam, a, now = live
    assume(a.state is State.ACTIVE and a.answers)
    late = a.deadline(now) + GRACE + 1
    r = put_back(exam, a, late, clock_of(a, now))
    q, value = next(iter(a.answers.items()))
    refuse(r, Answer(a.last_id + 1, q, value), late, "time_up", exam)


def test_a_linear_resend_goes_in_question_order():
    """Why the client resends by position: in a linear exam, an earlier question after a later one is closed."""
    a = started(LINEAR)
    qs = [q.id for q in LINEAR.questions]
    a = run(a, Answer(2, qs[0], "a"), T0 + 1, LINEAR).attempt
    a = run(a, Answer(3, qs[1], ["a"]), T0 + 2, LINEAR).attempt
    r = put_back(LINEAR, a, T0 + 10, clock_of(a, T0 + 5))
    r = run(r, Lost(a.last_id), T0 + 10, LINEAR).attempt
    refuse(run(r, Answer(9, qs[1], ["a"]), T0 + 11, LINEAR).attempt, Answer(10, qs[0], "a"), T0 + 12, "navigation", LINEAR)
    back = resend(LINEAR, a, r, T0 + 11)
    assert dict(back.answers) == dict(a.answers)


def test_clock_of_is_none_for_final_and_restore_keeps_identity():
    done = run(started(), Answer(2, "q1", "a"), T0 + 1).attempt
    from engine import Submit

    final = run(done, Submit(3), T0 + 2).attempt
    assert clock_of(final, T0 + 3) is None
    r = put_back(EXAM, done, T0 + 5, clock_of(done, T0 + 4))
    assert (r.id, r.exam_id, r.user, r.name, r.seed) == (done.id, done.exam_id, done.user, done.name, SEED)
    assert isinstance(clock_of(done, 1), Clock)


def test_the_wire_limit_of_a_ticket_is_the_engine_s():
    import protocol

    assert protocol.MAX_TICKET_LEN == MAX_TICKET_LEN
