"""The one exam id rule (``engine.ids``): what every door (HTTP, WebSocket, command line, tasks, token claims) lets through."""

from __future__ import annotations

import pytest

from engine import ExamInvalid, parse_exam
from engine.ids import EXAM_ID_RULE, is_attempt_id, is_exam_id

from .engine_testdata import FIVE_TYPES

HOSTILE_EXAM_IDS = [
    ".",  # dot segments: a URL client resolves them away; a file system reads them as directories
    "..",
    "x\n",  # a regular expression's ``$`` matches before a trailing newline
    "x\r\n",
    "\n",
    "/../../x",
    "../x",
    "x/../../y",
    "a/b",
    "a\\b",
    "",
    "x" * 65,
    "{tag}",
    "x\x00",
    "é",
    "ｘ",  # full-width
    " x",
    "x ",
    None,
    7,
    ["x"],
    {"$gt": ""},
    b"x",
]


@pytest.mark.parametrize("value", HOSTILE_EXAM_IDS, ids=repr)
def test_hostile_exam_ids_are_refused(value) -> None:
    assert is_exam_id(value) is False


@pytest.mark.parametrize("value", ["x", "net-101", "a.b", ".x", "x.", "...", "_", "-", "A" * 64, "a..b"])
def test_exam_ids_that_are_fine(value: str) -> None:
    assert is_exam_id(value) is True


def test_the_rule_in_words_names_the_dot_segments() -> None:
    assert "'.' or '..'" in EXAM_ID_RULE


@pytest.mark.parametrize("value", [".", ".."])
def test_an_exam_definition_with_a_dot_segment_id_is_refused(value: str) -> None:
    with pytest.raises(ExamInvalid) as info:
        parse_exam({**FIVE_TYPES, "id": value})
    assert any(p.startswith("id: must be") for p in info.value.problems), info.value.problems


@pytest.mark.parametrize("value", ["0" * 31 + "\n", "0" * 31 + "G", "0" * 32 + "\n", "0" * 33, "0" * 31, "A" * 32, None, 0])
def test_attempt_ids_are_32_lowercase_hex_digits_and_nothing_after(value) -> None:
    assert is_attempt_id(value) is False
    assert is_attempt_id("0123456789abcdef" * 2) is True
