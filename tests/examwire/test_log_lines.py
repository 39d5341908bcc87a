"""``examwire.logs``: every line is one JSON object, whatever the record or the child's output looks like."""

from __future__ import annotations

import io
import json
import logging

from examwire.logs import JsonLines, wrap


def _format(message: str, *, exc: BaseException | None = None) -> dict:
    record = logging.LogRecord("examwire.test", logging.ERROR, __file__, 1, message, None, None)
    if exc is not None:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    return json.loads(JsonLines().format(record))


def test_a_message_that_only_looks_like_json_is_kept_as_text():
    for message in ("{not json", '{"a": 1', "[1, 2]"):
        doc = _format(message)
        assert doc["event"] == "log" and doc["message"] == message and doc["level"] == "error", doc
    structured = _format('{"event": "drained", "n": 3}')
    assert structured["event"] == "drained" and structured["n"] == 3 and "message" not in structured


def test_an_exception_is_logged_with_its_traceback_on_the_same_line():
    try:
        raise RuntimeError("disk on fire")
    except RuntimeError as exc:
        doc = _format('{"event": "drain_failed"}', exc=exc)
    assert doc["event"] == "drain_failed" and doc["logger"] == "examwire.test"
    assert doc["exception"].startswith("Traceback") and "RuntimeError: disk on fire" in doc["exception"]


def test_a_childs_output_line_is_wrapped_unless_it_is_a_json_object_already():
    mine = '{"ts": "x", "event": "e", "logger": "celery"}'
    assert wrap(mine, logger="examwire.worker") == mine
    for text in ("{half a line", "[1]", "plain text", '"a string"'):
        doc = json.loads(wrap(text, logger="examwire.worker"))
        assert doc["event"] == "log" and doc["message"] == text and doc["logger"] == "examwire.worker", doc


def test_every_line_of_a_configured_logger_is_json():
    from examwire import logs

    stream = io.StringIO()
    root, ours = logging.getLogger(), logging.getLogger(logs.OURS)
    saved = (root.handlers[:], root.level, ours.handlers[:], ours.level, ours.propagate)
    try:
        logs.configure(stream)
        logging.getLogger("examwire.test").info('{"event": "hello", "who": "test"}')
        logging.getLogger("some.library").warning("plain %s", "words")
        logging.getLogger("some.library").info("not shown: libraries log at WARNING")
    finally:  # this is the test process's own logging: put it back as it was
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        ours.handlers[:] = saved[2]
        ours.setLevel(saved[3])
        ours.propagate = saved[4]
        logging.captureWarnings(False)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(d["event"], d.get("who") or d.get("message")) for d in lines] == [("hello", "test"), ("log", "plain words")]
