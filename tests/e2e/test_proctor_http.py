"""HTTP around the dashboard: the exam list a proctor picks from, and the served pages' headers."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any


def _get(url: str) -> tuple[int, Any, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def test_exam_list_is_for_staff_and_limited_by_the_exams_claim(make_node, put_exam, make_token, kit, http_json):
    node = make_node()
    for exam_id in ("b-exam", "a-exam", "c-exam"):
        put_exam(node, kit.make_exam(exam_id, 2))
    url = f"{node.base_url}/v1/exams"
    status, body = http_json("GET", url, token=make_token("adm", "admin"))
    assert status == 200 and [e["id"] for e in body["exams"]] == ["a-exam", "b-exam", "c-exam"]
    assert set(body["exams"][0]) == {"id", "title", "version", "total", "duration_ms", "navigation"}
    status, body = http_json("GET", url, token=make_token("pro", "proctor", exams=["c-exam", "a-exam", "zzz"]))
    assert status == 200 and [e["id"] for e in body["exams"]] == ["a-exam", "c-exam"]
    status, body = http_json("GET", url, token=make_token("cand"))
    assert status == 403 and body["error"] == "forbidden"
    status, body = http_json("GET", url)
    assert status == 401


def test_pages_are_served_with_a_strict_policy(make_node):
    node = make_node()
    status, headers, body = _get(f"{node.base_url}/proctor")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert headers["Referrer-Policy"] == "no-referrer" and headers["X-Content-Type-Options"] == "nosniff"
    assert b"/static/proctor/main.js" in body
    status, headers, _ = _get(f"{node.base_url}/static/proctor/main.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    for bad in ("../app.py", "%2e%2e%2fapp.py", "nope.js", "proctor.py", ".hidden.js"):
        status, _, _ = _get(f"{node.base_url}/static/{bad}")
        assert status == 404, bad


def test_landing_and_exam_pages_are_served(make_node):
    node = make_node()
    for path, script in (("/", b"/static/landing.js"), ("/exam/net-101", b"/static/exam/main.js"), ("/exam/anything.else", b"/static/exam/main.js")):
        status, headers, body = _get(f"{node.base_url}{path}")
        assert status == 200 and headers["Content-Type"].startswith("text/html"), path
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert script in body, path
    for asset in ("exam/main.js", "exam/state.js", "lib/wire.js", "lib/msgpack.js", "exam.css", "common.css", "landing.js"):
        status, headers, _ = _get(f"{node.base_url}/static/{asset}")
        assert status == 200, asset
        assert headers["Content-Security-Policy"] and headers["Cache-Control"] == "no-cache", asset
    # sub-folders are served, but only page files with plain names
    for bad in ("lib/", "lib/../../web.py", "lib/.hidden.js", "Exam/main.js", "exam/main.py", "nope/main.js"):
        status, _, body = _get(f"{node.base_url}/static/{bad}")
        assert status == 404 and b'"not_found"' in body, bad


def test_an_unknown_exam_is_404_on_every_exam_route(make_node, put_exam, make_token, kit, http_json):
    node = make_node()
    put_exam(node, kit.make_exam("known", 2))
    admin = make_token("adm", "admin")
    for path in ("", "/results", "/results?format=csv", "/analysis"):
        status, body = http_json("GET", f"{node.base_url}/v1/exams/nope{path}", token=admin)
        assert status == 404 and body["error"] == "not_found", (path, status, body)
        status, body = http_json("GET", f"{node.base_url}/v1/exams/known{path}", token=admin)
        assert status == 200, (path, status, body)
    status, body = http_json("GET", f"{node.base_url}/v1/exams/known/results?format=xml", token=admin)
    assert status == 400 and body["error"] == "bad_request"


def test_an_exam_past_the_size_limit_is_refused_without_reading_it_all(make_node, make_token, kit, http_json):
    import json as _json
    import socket as _socket

    node = make_node(EXAMWIRE_MAX_EXAM_BYTES="4096")
    admin = make_token("adm", "admin")
    small = kit.make_exam("small", 2)
    assert http_json("PUT", f"{node.base_url}/v1/exams/small", token=admin, body=small)[0] == 200
    big = kit.make_exam("big", 40)
    assert len(_json.dumps(big)) > 4096
    status, body = http_json("PUT", f"{node.base_url}/v1/exams/big", token=admin, body=big)
    assert status == 413 and body["error"] == "too_large" and "4096" in body["message"]
    # a client that announces 1 GiB is answered at once, before it sends a byte of it
    with _socket.create_connection(("127.0.0.1", node.port), timeout=5) as sock:
        sock.sendall(
            f"PUT /v1/exams/huge HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {1 << 30}\r\n\r\n".encode()
        )
        head = sock.recv(4096).decode(errors="replace")
    assert head.startswith("HTTP/1.1 413"), head
