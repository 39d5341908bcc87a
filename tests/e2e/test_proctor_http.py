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
    assert b"/static/proctor.js" in body
    status, headers, _ = _get(f"{node.base_url}/static/proctor.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    for bad in ("../app.py", "%2e%2e%2fapp.py", "nope.js", "proctor.py", ".hidden.js"):
        status, _, _ = _get(f"{node.base_url}/static/{bad}")
        assert status == 404, bad


def test_landing_and_exam_pages_are_served(make_node):
    node = make_node()
    for path, script in (("/", b"/static/landing.js"), ("/exam/net-101", b"/static/exam.js"), ("/exam/anything.else", b"/static/exam.js")):
        status, headers, body = _get(f"{node.base_url}{path}")
        assert status == 200 and headers["Content-Type"].startswith("text/html"), path
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert script in body, path
    for asset in ("exam.js", "msgpack.js", "exam.css", "common.css", "landing.js"):
        status, _, _ = _get(f"{node.base_url}/static/{asset}")
        assert status == 200, asset
