"""Shared exam documents for the engine tests."""

import copy

from engine import parse_exam

FIVE_TYPES = {
    "id": "net-101",
    "title": "Networking basics",
    "duration_s": 1800,
    "navigation": "free",
    "shuffle_questions": True,
    "shuffle_options": True,
    "show_result": True,
    "pass_percent": 70,
    "questions": [
        {"id": "q1", "type": "single", "prompt": "Layer of IP?", "points": 1,
         "options": [{"id": "a", "text": "2"}, {"id": "b", "text": "3"}, {"id": "c", "text": "4"}],
         "answer": "b", "penalty": 0.5},
        {"id": "q2", "type": "multiple", "prompt": "Transport protocols?", "points": 2,
         "scoring": "partial",
         "options": [{"id": "a", "text": "TCP"}, {"id": "b", "text": "IP"},
                     {"id": "c", "text": "UDP"}, {"id": "d", "text": "ARP"}],
         "answer": ["a", "c"]},
        {"id": "q3", "type": "true_false", "prompt": "DNS uses port 53.", "answer": True},
        {"id": "q4", "type": "numeric", "prompt": "pi?", "answer": 3.14, "tolerance": 0.01},
        {"id": "q5", "type": "text", "prompt": "Capital of France?", "answer": ["Paris"],
         "case_sensitive": False},
    ],
}


def build(base=FIVE_TYPES, *, questions=None, **top):
    """Parse a copy of ``base`` with top-level overrides / replaced questions."""
    doc = copy.deepcopy(base)
    doc.update(copy.deepcopy(top))
    if questions is not None:
        doc["questions"] = copy.deepcopy(questions)
    return parse_exam(doc)


