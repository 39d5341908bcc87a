"""Examwire exam rules as a pure state machine.

No I/O, no clock, no global randomness: time (``now``, int ms since the
epoch) and randomness (a per-attempt hex ``seed``) are inputs, so every
attempt can be replayed and audited.
"""

from .analysis import analyse
from .attempt import (
    FINAL,
    Answer,
    Attempt,
    Event,
    Expire,
    Extend,
    Fetch,
    Flag,
    Goto,
    Lost,
    Outcome,
    Pause,
    Refused,
    Resume,
    Start,
    State,
    Submit,
    Terminate,
    apply,
    new_attempt,
    progress,
    replay,
)
from .exam import Exam, ExamInvalid, Option, Question, parse_exam
from .recovery import MAX_TICKET_LEN, Clock, clock_of, restore, seal, unseal
from .scoring import (
    QuestionResult,
    Result,
    Value,
    check_value,
    number,
    score_exam,
    score_question,
)
from .shuffle import Layout, batch, derive_seed, layout, permutation

__all__ = [
    # exam
    "ExamInvalid", "Option", "Question", "Exam", "parse_exam",
    # shuffle
    "derive_seed", "permutation", "Layout", "layout", "batch",
    # scoring
    "Value", "check_value", "score_question", "QuestionResult", "Result",
    "score_exam", "number",
    # attempt
    "State", "FINAL", "Refused", "Attempt", "new_attempt",
    "Start", "Answer", "Flag", "Goto", "Fetch", "Event", "Submit",
    "Expire", "Pause", "Resume", "Extend", "Terminate", "Lost",
    "Outcome", "apply", "replay", "progress",
    # recovery (a lost attempt: tickets and what is put back)
    "Clock", "clock_of", "seal", "unseal", "restore", "MAX_TICKET_LEN",
    # analysis
    "analyse",
]
