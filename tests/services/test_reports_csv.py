"""CSV cells (``services.reports._cell``) follow OWASP's CSV injection guidance.

A cell must never start, for any spreadsheet in any locale, with something it
would run as a formula: ``= + - @`` (after blanks, and after NFKC folds a
full-width ``＝`` into ``=``), or a tab, CR or LF; nor may such a start follow
a separator inside the cell (``,`` ``;`` ``|``, tab, line breaks, quotes),
where a reader that splits on it begins a new cell. The checker here is
written from that rule, not from the code.
"""

from __future__ import annotations

import csv
import io
import re

import pytest

from engine import parse_exam
from services.reports import _cell, csv_header, csv_row
from testkit import SAMPLE_EXAM
from testkit.spreadsheets import FORMULA_STARTS, formula_lead

_SPLIT = re.compile(r"[,;|\t\r\n\"]")


def formula_starts(cell: str) -> list[str]:
    """Every place in ``cell`` where some reader could begin a formula (empty: the cell is safe)."""
    found = [f"starts with {cell[:1]!r}"] if cell[:1] in ("\t", "\r", "\n") else []
    return found + [piece for piece in _SPLIT.split(cell) if formula_lead(piece) in FORMULA_STARTS]


HOSTILE = [
    "=1+1",
    "+1",
    "-1",
    "@SUM(A1:A9)",
    "\t=1",
    "\r=1",
    "\n=1",
    " =1+1",
    "   @x",
    "\u3000=1",  # ideographic space
    "\u200b=1",  # zero-width space (a format character)
    "＝1+1",  # full-width equals sign
    "﹦1",  # small equals sign
    "＋1",
    "＠x",
    "x;=1+1",
    "x; =1+1",
    "x|=1+1",
    "x,=1+1",
    "x\t=1",
    "a\n\n=1",
    'x"=1',
    "x;＝1",
    "a;+1;-2;@3",
    "=cmd|' /C calc'!A0",
    "'=1",
    "x\x00",
    "\x00",
]


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_no_formula_can_start_anywhere_in_a_cell(value: str) -> None:
    cell = _cell(value)
    assert formula_starts(cell) == [], (value, cell)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("x;=1+1", "x;'=1+1"),
        (" =1", "' =1"),
        ("\n=1", "'\n'=1"),
        ("＝1+1", "'＝1+1"),
        ("x|=1", "x|'=1"),
        ("=1", "'=1"),
        ("-", "'-"),
        ("\t", "'\t"),
    ],
)
def test_the_escape_is_an_apostrophe_where_the_formula_would_start(value: str, expected: str) -> None:
    assert _cell(value) == expected


@pytest.mark.parametrize("value", ["Alice", "a|b", "O'Neil", "x-y", "1+1", "a;b", "Zoë 山田", "", "submitted", "2026-12-03T01:00:00.000Z"])
def test_harmless_text_is_left_as_it_is(value: str) -> None:
    assert _cell(value) == value


def test_numbers_stay_numbers_and_other_values_become_safe_text() -> None:
    assert _cell(7) == 7 and _cell(-1.5) == -1.5 and _cell(0) == 0
    assert _cell(None) == "" and _cell(True) == "true" and _cell(False) == "false"
    for value in (["=1"], {"k": "=1"}, ("x", "@y")):
        cell = _cell(value)
        assert isinstance(cell, str) and formula_starts(cell) == [], (value, cell)


def test_the_header_and_rows_go_through_the_same_cell() -> None:
    exam = parse_exam({**SAMPLE_EXAM, "questions": [{**SAMPLE_EXAM["questions"][0], "id": "q;=1+1"}]})
    header = csv_header(exam)
    assert header[-1] == "q:q;'=1+1"
    row = csv_row({"attempt": "a" * 32, "user": "-u", "name": "x;=HYPERLINK(1)", "end_reason": "\n@x", "score": -1, "exam_version": exam.version}, exam)
    for cell in [*header, *row]:
        assert not isinstance(cell, str) or formula_starts(cell) == [], cell
    assert row[2] == "x;'=HYPERLINK(1)" and row[9] == -1  # name, score


def naive_pieces(raw: str) -> list[str]:
    """``raw`` CSV text split on every separator of any locale, quotes or not: the worst reader there is."""
    return [piece.lstrip('"') for piece in re.split(r"[,;|\t\r\n]", raw)]


def test_a_reader_in_any_locale_sees_no_formula() -> None:
    """The cells as the export writes them (every text cell quoted), read back by a proper reader and by a naive one."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_NONNUMERIC).writerow([_cell(v) for v in HOSTILE])
    raw = buf.getvalue()
    (row,) = list(csv.reader(io.StringIO(raw)))
    assert [formula_starts(cell) for cell in row] == [[]] * len(HOSTILE)
    assert [p for p in naive_pieces(raw) if formula_lead(p) in FORMULA_STARTS] == []


def test_the_events_column_counts_every_event_not_only_the_ones_kept() -> None:
    """A record keeps the newest 200 events and ``event_count``, the number of all of them."""
    kept = [{"kind": "blur", "at": i} for i in range(200)]
    assert csv_row({"attempt": "a" * 32, "events": kept, "event_count": 950}, None)[15] == 950
    assert csv_row({"attempt": "a" * 32, "events": kept[:3]}, None)[15] == 3  # a record from before event_count
