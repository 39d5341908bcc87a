"""Exams for tests and benchmarks: the sample exam with its known keys, and generated ones.

Standard library only (no pytest), so a benchmark runs without the test extra.
"""

from __future__ import annotations

from typing import Any

_TYPES = ("single", "multiple", "true_false", "numeric", "text")


def make_exam(
    exam_id: str,
    n: int,
    *,
    duration_s: int = 600,
    navigation: str = "free",
    shuffle_questions: bool = True,
    shuffle_options: bool = True,
    show_result: bool = True,
    pass_percent: float = 50,
    types_: tuple[str, ...] = _TYPES,
) -> dict[str, Any]:
    """An exam of ``n`` questions ``x01..xNN`` cycling through ``types_``.

    Keys: single -> "c"; multiple (all_or_nothing) -> ["a", "d"]; true_false ->
    False; numeric -> 42 (tolerance 0.5); text -> "Blue" (case-insensitive).
    Every question is worth 1 point, no penalty.
    """
    questions = []
    for i in range(n):
        qid = f"x{i + 1:02d}"
        kind = types_[i % len(types_)]
        q: dict[str, Any] = {"id": qid, "type": kind, "prompt": f"Question {i + 1} ({kind})", "points": 1}
        opts = [{"id": o, "text": f"option {o} of {qid}"} for o in "abcde"]
        if kind == "single":
            q.update(options=opts, answer="c")
        elif kind == "multiple":
            q.update(options=opts, answer=["a", "d"])
        elif kind == "true_false":
            q.update(answer=False)
        elif kind == "numeric":
            q.update(answer=42, tolerance=0.5)
        elif kind == "text":
            q.update(answer=["Blue"], case_sensitive=False)
        questions.append(q)
    return {
        "id": exam_id,
        "title": f"E2E {exam_id}",
        "duration_s": duration_s,
        "navigation": navigation,
        "shuffle_questions": shuffle_questions,
        "shuffle_options": shuffle_options,
        "show_result": show_result,
        "pass_percent": pass_percent,
        "questions": questions,
    }


# --------------------------------------------------------------------------
# The sample exam: all five item types, known keys, known maximum score.
#
#   q1 single      1 pt, penalty 0.5     right "b"            wrong "a"
#   q2 multiple    2 pts, partial        right ["a","c"]       (each right option 1, each wrong -1, floor 0)
#   q3 true_false  1 pt                  right True
#   q4 numeric     1 pt, tolerance 0.01  right 3.14 (3.13..3.15 also right)
#   q5 text        1 pt, case-insens.    right "Paris" ("  paris " also right)
#   q6 multiple    1 pt, all_or_nothing  right ["b","d"]
#
#   max score 7; pass_percent 50 -> passed at score >= 3.5
# --------------------------------------------------------------------------

SAMPLE_EXAM: dict[str, Any] = {
    "id": "sample",
    "title": "Sample exam",
    "duration_s": 600,
    "navigation": "free",
    "shuffle_questions": True,
    "shuffle_options": True,
    "show_result": True,
    "pass_percent": 50,
    "questions": [
        {
            "id": "q1",
            "type": "single",
            "prompt": "Which layer of the OSI model does IP belong to?",
            "points": 1,
            "penalty": 0.5,
            "options": [
                {"id": "a", "text": "Data link"},
                {"id": "b", "text": "Network"},
                {"id": "c", "text": "Transport"},
                {"id": "d", "text": "Application"},
            ],
            "answer": "b",
        },
        {
            "id": "q2",
            "type": "multiple",
            "prompt": "Which of these protocols run over TCP?",
            "points": 2,
            "scoring": "partial",
            "options": [
                {"id": "a", "text": "HTTP/1.1"},
                {"id": "b", "text": "DHCP"},
                {"id": "c", "text": "SMTP"},
                {"id": "d", "text": "NTP"},
            ],
            "answer": ["a", "c"],
        },
        {
            "id": "q3",
            "type": "true_false",
            "prompt": "A WebSocket connection starts as an HTTP request.",
            "answer": True,
        },
        {
            "id": "q4",
            "type": "numeric",
            "prompt": "Give pi to two decimal places.",
            "answer": 3.14,
            "tolerance": 0.01,
        },
        {
            "id": "q5",
            "type": "text",
            "prompt": "What is the capital of France?",
            "answer": ["Paris"],
            "case_sensitive": False,
        },
        {
            "id": "q6",
            "type": "multiple",
            "prompt": "Which of these are even numbers?",
            "options": [
                {"id": "a", "text": "3"},
                {"id": "b", "text": "4"},
                {"id": "c", "text": "7"},
                {"id": "d", "text": "10"},
            ],
            "answer": ["b", "d"],
        },
    ],
}

#: qid -> the value a candidate sends to get the question fully right.
SAMPLE_RIGHT_ANSWERS: dict[str, Any] = {
    "q1": "b",
    "q2": ["a", "c"],
    "q3": True,
    "q4": 3.14,
    "q5": "Paris",
    "q6": ["b", "d"],
}

#: qid -> a value that scores 0 for that question (q1 then costs its 0.5 penalty).
SAMPLE_WRONG_ANSWERS: dict[str, Any] = {
    "q1": "a",
    "q2": ["b", "d"],
    "q3": False,
    "q4": 2.5,
    "q5": "London",
    "q6": ["a", "b"],
}

SAMPLE_MAX_SCORE: float = 7
