"""The HTTP API's refusals, one real node: who may load an exam, what is not an exam, and malformed parameters.

``PUT /v1/exams/{id}`` is the door through which exams (and their answer
keys) enter the engine: only an admin token for that exam passes, and a
refused definition lists every problem by JSON path, as ``examwire import``
does (README, "Command line").
"""

from __future__ import annotations

import json

from tests.e2e.client import ExamClient, attempt_url


def _put(http_json, node, exam_id, token, body):
    return http_json("PUT", f"{node.base_url}/v1/exams/{exam_id}", token=token, body=body)


def test_only_an_admin_token_for_the_exam_may_load_it(make_node, make_token, kit, http_json):
    node = make_node()
    exam = kit.make_exam("door", 2)
    for token, status, error in (
        (None, 401, "unauthorized"),
        ("not-a-jwt", 401, "unauthorized"),
        (make_token("adm", "admin", ttl=-60), 401, "unauthorized"),
        (make_token("cand", "candidate", exams=["door"]), 403, "forbidden"),
        (make_token("pro", "proctor", exams=["door"]), 403, "forbidden"),
        (make_token("pro", "proctor"), 403, "forbidden"),
        (make_token("adm", "admin", exams=["another"]), 403, "forbidden"),
    ):
        got, body = _put(http_json, node, "door", token, exam)
        assert (got, body["error"]) == (status, error), (token, got, body)
    admin = make_token("adm", "admin")
    assert http_json("GET", f"{node.base_url}/v1/exams/door", token=admin)[0] == 404  # none of them stored it
    got, body = _put(http_json, node, "door", make_token("adm", "admin", exams=["door"]), exam)
    assert got == 200 and body == {"id": "door", "version": 1, "created": True, "total": 2}


def test_a_refused_definition_lists_every_problem_by_path(make_node, make_token, kit, http_json):
    node = make_node()
    admin = make_token("adm", "admin")
    bad = kit.make_exam("broken", 3)
    bad["duration_s"] = 0
    bad["questions"][0]["answer"] = "z"  # single choice: no option "z"
    del bad["questions"][2]["answer"]
    got, body = _put(http_json, node, "broken", admin, bad)
    assert got == 400 and body["error"] == "invalid_exam", body
    problems = body["problems"]
    assert body["message"] == f"{len(problems)} problem(s)" and len(problems) >= 3, problems
    assert any(p.startswith("duration_s:") for p in problems), problems
    assert any(p.startswith("questions[0].answer:") and '"z"' in p for p in problems), problems
    assert any(p.startswith("questions[2].answer:") for p in problems), problems
    # the id in the body must be the id in the path
    got, body = _put(http_json, node, "other-id", admin, kit.make_exam("broken", 2))
    assert got == 400 and any(p.startswith("id:") and "other-id" in p for p in body["problems"]), body
    assert http_json("GET", f"{node.base_url}/v1/exams/broken", token=admin)[0] == 404


def test_a_definition_without_an_id_takes_the_path_id(make_node, make_token, kit, http_json):
    node = make_node()
    admin = make_token("adm", "admin")
    exam = kit.make_exam("unused", 2)
    del exam["id"]
    got, body = _put(http_json, node, "from-path", admin, exam)
    assert got == 200 and body["id"] == "from-path" and body["version"] == 1, body
    got, body = _put(http_json, node, "from-path", admin, exam)  # the same definition again: the same version
    assert got == 200 and body["created"] is False and body["version"] == 1, body
    got, body = http_json("GET", f"{node.base_url}/v1/exams/from-path", token=admin)
    assert got == 200 and body["id"] == "from-path" and body["total"] == 2


def test_what_is_not_an_exam_id_or_not_json_is_refused(make_node, make_token, kit, http_json):
    node = make_node()
    admin = make_token("adm", "admin")
    # "{" and "}" would break the Redis hash tag; a space, a path or a file name
    for raw in ("a%7Bb%7D", "with%20space", "x" * 65):
        got, body = _put(http_json, node, raw, admin, kit.make_exam("x", 1))
        assert got == 400 and body["error"] == "invalid_exam" and body["problems"][0].startswith("id: must be"), (raw, body)
    for text in ("{not json", '{"id": "j", "duration_s": NaN}', '{"id": "j", "duration_s": Infinity}', ""):
        got, body = _put(http_json, node, "j", admin, text)
        assert got == 400 and body == {
            "error": "invalid_exam", "message": "body is not JSON", "problems": ["$: not valid JSON"],
        }, (text, body)


def test_reading_routes_refuse_bad_tokens_foreign_exams_and_malformed_parameters(make_node, put_exam, make_token, kit, http_json):
    node = make_node()
    put_exam(node, kit.make_exam("reads", 2))
    base = f"{node.base_url}/v1/exams"
    admin = make_token("adm", "admin")
    for path in ("/reads", "/reads/results", "/reads/analysis"):
        got, body = http_json("GET", base + path, token="garbage")
        assert (got, body["error"]) == (401, "unauthorized"), path
    got, body = http_json("GET", f"{base}/reads", token=make_token("cand", exams=["other"]))
    assert (got, body["error"]) == (403, "forbidden")
    got, body = http_json("GET", f"{base}/reads", token=make_token("cand", exams=["reads"]))
    assert got == 200 and body["id"] == "reads"
    # staff routes: not an exam id is "no such exam", as an unknown one
    for path in ("/a%7Bb%7D/results", "/a%7Bb%7D/analysis"):
        got, body = http_json("GET", base + path, token=admin)
        assert (got, body["error"]) == (404, "not_found"), path
    for query in ("after=garbage", "after=12:nothex", "after=:" + "a" * 32, "limit=0", "limit=5001", "version=x"):
        got, body = http_json("GET", f"{base}/reads/results?{query}", token=admin)
        assert (got, body["error"]) == (400, "bad_request"), (query, body)
    for query in ("version=x", "version=0", "version=-1"):
        got, body = http_json("GET", f"{base}/reads/analysis?{query}", token=admin)
        assert (got, body["error"]) == (400, "bad_request"), (query, body)
    got, body = http_json("GET", f"{base}/reads/analysis?version=7", token=admin)
    assert (got, body["error"]) == (404, "not_found")


def test_an_attempt_not_yet_started_has_no_deadline(make_node, put_exam, make_token, kit, http_json, arun):
    node = make_node()
    put_exam(node, kit.make_exam("ready", 2, duration_s=120))
    token = make_token("rita", exams=["ready"])

    async def hello() -> str:
        client = ExamClient(attempt_url(node.ws_url, "ready"), token)
        await client.connect()
        await client.hello()
        await client.close()
        return client.welcome["attempt"]

    attempt = arun(hello())
    got, body = kit.get_attempt(node, attempt, token)
    assert got == 200 and body["state"] == "ready" and body["deadline"] is None and body["started_at"] is None, body
    assert body["remaining_ms"] == 120_000 and body["questions"] == [], body
    for bad in ("x" * 32, attempt.upper(), attempt[:-1], "0" * 33):  # not an attempt id: no lookup at all
        got, body = kit.get_attempt(node, bad, token)
        assert (got, body["error"]) == (404, "not_found"), bad
    got, _ = kit.get_attempt(node, attempt, "garbage")
    assert got == 401
    # another candidate of the same exam cannot tell it from a missing one
    got, body = kit.get_attempt(node, attempt, make_token("sam", exams=["ready"]))
    assert (got, body["error"]) == (404, "not_found")
    assert "rita" not in json.dumps(body)
