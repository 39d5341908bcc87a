"""CSV injection, end to end: hostile names, subs, question ids and a proctor's reason, through a real node and worker, out as CSV.

Candidates take the exam over raw WebSockets with tokens whose ``name`` and
``sub`` are formulas in disguise (after a ``;`` or ``|``, behind blanks,
full-width); a proctor terminates one attempt with a reason that starts with a
line feed. The worker persists the results; the CSV download and the
``examwire.export`` file must then hold no cell where any spreadsheet, in any
locale (``,`` ``;`` ``|`` or tab as the separator), could start a formula.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

from examwire.settings import Settings
from storage.attempts import attempt_id
from tasks.app import create_celery
from testkit import SAMPLE_EXAM, http_json, wait_until
from testkit.spreadsheets import FORMULA_STARTS, formula_lead

EXAM = "inj"
#: (sub, name) of each candidate
CANDIDATES = [
    ("c-semicolon", "x;=1+1"),
    ("c-blank", " =1+1"),
    ("c-fullwidth", "＝1+1"),
    ("c-pipe", "a|=HYPERLINK(1)"),
    ("c-comma", "Doe, =1"),
    ("-c-minus", "@SUM(1)"),
    ("c-plain", "Plain Name"),
]
VICTIM = "c-terminated"
REASON = "\n=1+1;@x|-2"


def formula_starts(raw: str) -> list[str]:
    """Every piece of ``raw`` CSV text, split on any locale's separator (quotes or not), that could start a formula."""
    bad = []
    for text in [cell for row in csv.reader(io.StringIO(raw)) for cell in row] + re.split(r"[,;|\t\r\n]", raw):
        if text[:1] in ("\t", "\r", "\n"):
            bad.append(text)
        bad += [p for p in re.split(r"[,;|\t\r\n\"]", text) if formula_lead(p) in FORMULA_STARTS]
    return bad


def _request(ws: Any, message: dict[str, Any]) -> dict[str, Any]:
    ws.send(json.dumps(message))
    while True:
        m = json.loads(ws.recv(timeout=10))
        if m.get("id") == message["id"] and m["t"] in ("ack", "error"):
            assert m["t"] == "ack", (message, m)
            return m


def test_no_formula_survives_into_the_csv(make_node, make_worker, put_exam, make_token, results_db, redis_url, secrets, tmp_path) -> None:
    node = make_node(EXAMWIRE_SQLITE_PATH=str(results_db))
    worker = make_worker()
    exam = copy.deepcopy(SAMPLE_EXAM)
    exam["id"] = EXAM
    exam["questions"][0]["id"] = "q;=1+1"  # becomes the header cell "q:q;=1+1"
    put_exam(node, exam)

    for sub, name in CANDIDATES:
        with connect(f"{node.ws_url}/v1/exams/{EXAM}/attempt", open_timeout=10) as ws:
            ws.send(json.dumps({"t": "hello", "v": 1, "token": make_token(sub, exams=[EXAM], name=name)}))
            assert json.loads(ws.recv(timeout=10))["t"] == "welcome"
            _request(ws, {"t": "start", "id": 1})
            _request(ws, {"t": "submit", "id": 2})

    with connect(f"{node.ws_url}/v1/exams/{EXAM}/attempt", open_timeout=10) as ws:
        ws.send(json.dumps({"t": "hello", "v": 1, "token": make_token(VICTIM, exams=[EXAM], name="Victim")}))
        assert json.loads(ws.recv(timeout=10))["t"] == "welcome"
        _request(ws, {"t": "start", "id": 1})
    proctor = make_token("pro", "proctor", exams=[EXAM], name="Proctor")
    with connect(f"{node.ws_url}/v1/exams/{EXAM}/proctor", open_timeout=10) as ws:
        ws.send(json.dumps({"t": "hello", "v": 1, "token": proctor}))
        assert json.loads(ws.recv(timeout=10))["t"] == "welcome"
        victim = attempt_id(secrets.secret.encode(), EXAM, VICTIM)
        _request(ws, {"t": "terminate", "id": 1, "attempt": victim, "reason": REASON})

    def persisted() -> bool:
        status, body = http_json("GET", f"{node.base_url}/v1/exams/{EXAM}/results?limit=100", token=proctor)
        return status == 200 and len(body["results"]) == len(CANDIDATES) + 1

    wait_until(persisted, 30, lambda: "every result persisted\n" + worker.log())

    # the download
    req = urllib.request.Request(f"{node.base_url}/v1/exams/{EXAM}/results?format=csv", headers={"Authorization": f"Bearer {proctor}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read().decode()
    assert formula_starts(raw) == [], raw
    rows = list(csv.DictReader(io.StringIO(raw)))
    by_user = {r["user"]: r for r in rows}
    assert by_user["c-semicolon"]["name"] == "x;'=1+1"  # the text is all there, defused where the formula began
    assert by_user["c-plain"]["name"] == "Plain Name"
    assert by_user["'-c-minus"]["name"] == "'@SUM(1)"
    assert by_user[VICTIM]["end_reason"] == "'\n'=1+1;'@x|'-2"
    assert "q:q;'=1+1" in rows[0]

    # the export the worker writes, by task name
    settings = Settings.from_env(
        {"EXAMWIRE_REDIS_URL": redis_url, "EXAMWIRE_JWT_SECRET": secrets.jwt_secret, "EXAMWIRE_SECRET": secrets.secret},
        data_dir=tmp_path / "client",
    )
    path = Path(create_celery(settings).send_task("examwire.export", [EXAM]).get(timeout=30))
    exported = path.read_text(encoding="utf-8")
    assert formula_starts(exported) == [], exported
    assert len(list(csv.DictReader(io.StringIO(exported)))) == len(CANDIDATES) + 1
