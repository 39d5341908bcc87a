"""Exam ids that are dot segments, sent percent-encoded (as no client would resolve them away), through every HTTP and WebSocket door.

``..`` and ``.`` are made of valid characters, but a URL client resolves them
away and a file system reads them as directories: the one exam id rule
(``engine.ids``) refuses them, so no exam can be stored under them, and no
route serves one.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from testkit import SAMPLE_EXAM, http_json

pytestmark = pytest.mark.e2e

DOT_SEGMENTS = {"..": "%2E%2E", ".": "%2E", "..(lower)": "%2e%2e"}


def test_dot_segment_exam_ids_are_refused_at_every_door(make_node: Callable[..., Any], make_token: Callable[..., str]) -> None:
    node = make_node()
    admin = make_token("adm", "admin")
    proctor = make_token("pro", "proctor")
    body = {k: v for k, v in SAMPLE_EXAM.items() if k != "id"}  # the id comes from the URL
    for label, encoded in DOT_SEGMENTS.items():
        status, answer = http_json("PUT", f"{node.base_url}/v1/exams/{encoded}", token=admin, body=body)
        assert status == 400 and answer["error"] == "invalid_exam", (label, status, answer)
        status, answer = http_json("GET", f"{node.base_url}/v1/exams/{encoded}", token=admin)
        assert status == 404, (label, status, answer)
        for tail in ("/results", "/results?format=csv", "/analysis"):
            status, answer = http_json("GET", f"{node.base_url}/v1/exams/{encoded}{tail}", token=proctor)
            assert status == 404, (label, tail, status, answer)
        for kind, token in (("attempt", make_token("cand")), ("proctor", proctor)):
            with connect(f"{node.ws_url}/v1/exams/{encoded}/{kind}", open_timeout=10) as ws:
                ws.send(json.dumps({"t": "hello", "v": 1, "token": token}))
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        assert json.loads(ws.recv(timeout=5))["t"] != "welcome", (label, kind)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404, (label, kind, closed.value)
    status, answer = http_json("GET", f"{node.base_url}/v1/exams", token=admin)
    assert status == 200 and all(e["id"] not in (".", "..") for e in answer["exams"]), answer
