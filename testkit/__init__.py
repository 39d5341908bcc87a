"""Helpers shared by the test suite and the benchmarks (never by the product).

``testkit`` lives beside ``tests/`` and ``loadtests/`` in the repository and is
not installed by ``pip install .``. It imports the standard library only, so
``python -m loadtests.bench`` runs from a checkout without the test extra;
nothing outside ``tests/`` imports ``tests``.
"""

from .exams import SAMPLE_EXAM, SAMPLE_MAX_SCORE, SAMPLE_RIGHT_ANSWERS, SAMPLE_WRONG_ANSWERS, make_exam
from .processes import (
    REPO_ROOT,
    Node,
    NodeStartError,
    clean_env,
    free_port,
    http_json,
    json_events,
    node_env,
    run_examwire,
    tail,
    wait_until,
)

__all__ = [
    "SAMPLE_EXAM",
    "SAMPLE_MAX_SCORE",
    "SAMPLE_RIGHT_ANSWERS",
    "SAMPLE_WRONG_ANSWERS",
    "make_exam",
    "REPO_ROOT",
    "Node",
    "clean_env",
    "run_examwire",
    "NodeStartError",
    "free_port",
    "http_json",
    "json_events",
    "node_env",
    "tail",
    "wait_until",
]
