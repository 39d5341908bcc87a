"""The package's public surface: the names others code against."""

import ast
import inspect
import pathlib

import protocol
from protocol import candidate, codec, errors, proctor

SPEC_NAMES = {
    "ErrorCode", "CloseCode", "RequestError", "Disconnect", "error_message",
    "Encoding", "decode", "encode",
    "Hello", "Start", "Answer", "Flag", "Goto", "Fetch", "Event", "Submit", "Ping",
    "parse_request", "Request",
    "Welcome", "Ack", "Batch", "Time", "StateChange", "Notice", "ResultMsg", "Pong",
    "ProctorHello", "Extend", "Pause", "Resume", "Terminate", "Message",
    "parse_proctor_request", "ProctorWelcome", "Snapshot", "Update",
}


def test_all_exports_exist_and_cover_the_spec():
    assert SPEC_NAMES <= set(protocol.__all__)
    for name in protocol.__all__:
        assert hasattr(protocol, name), name
    assert len(protocol.__all__) == len(set(protocol.__all__))
    for mod in (errors, codec, candidate, proctor):
        for name in mod.__all__:
            assert getattr(protocol, name) is getattr(mod, name), name
            assert name in protocol.__all__, name


def test_signatures():
    sig = lambda obj: list(inspect.signature(obj).parameters)  # noqa: E731
    assert sig(protocol.RequestError) == ["code", "message", "id"]
    assert sig(protocol.Disconnect) == ["code", "reason"]
    assert sig(protocol.Hello) == ["token", "v", "client", "acked", "ticket"]
    assert sig(protocol.Answer) == ["id", "q", "value"]
    assert sig(protocol.Fetch) == ["id", "start", "count"]
    assert sig(protocol.Event) == ["id", "kind", "detail"]
    assert sig(protocol.Ping) == ["ct"]
    assert sig(protocol.Welcome) == [
        "attempt", "exam", "state", "server_time", "deadline", "remaining_ms",
        "last_id", "answers", "flags", "index", "ticket", "lost",
    ]
    assert sig(protocol.Ack) == ["id", "fields"]
    assert sig(protocol.Batch) == ["start", "questions", "total"]
    assert sig(protocol.Time) == ["server_time", "deadline", "remaining_ms", "state", "ticket"]
    assert sig(protocol.StateChange) == ["state", "reason"]
    assert sig(protocol.Notice) == ["text", "sender"]
    assert sig(protocol.ResultMsg) == ["score", "max_score", "percent", "passed"]
    assert sig(protocol.Pong) == ["ct", "st"]
    assert sig(protocol.Extend) == ["id", "attempt", "seconds"]
    assert sig(protocol.Terminate) == ["id", "attempt", "reason"]
    assert sig(protocol.Message) == ["id", "attempt", "text"]
    assert sig(protocol.ProctorWelcome) == ["exam", "server_time"]
    assert sig(protocol.Snapshot) == ["attempts"]
    assert sig(protocol.Update) == ["attempt", "fields"]


def test_request_unions():
    for cls in (protocol.Hello, protocol.Start, protocol.Answer, protocol.Ping):
        assert cls in protocol.Request.__args__
    assert set(protocol.ProctorRequest.__args__) == {
        protocol.Hello, protocol.Extend, protocol.Pause, protocol.Resume, protocol.Terminate, protocol.Message,
        protocol.Ping,
    }


def test_package_is_pure():
    """No I/O, no asyncio: only the standard modules below and msgpack."""
    allowed = {"__future__", "collections", "dataclasses", "enum", "json", "math", "re", "typing", "msgpack"}
    pkg = pathlib.Path(protocol.__file__).parent
    for path in pkg.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                mods = [node.module]
            else:
                continue
            for mod in mods:
                assert mod.split(".")[0] in allowed, f"{path.name} imports {mod}"
