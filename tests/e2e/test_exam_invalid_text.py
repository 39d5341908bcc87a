"""An exam definition whose JSON escapes decode to lone surrogates is refused with 400 and the paths, not a 500.

JSON lets ``"\\ud800"`` through; no encoder further on (UTF-8, the stores,
MessagePack) takes the string it decodes to. The engine's exam validation
refuses it at every door (HTTP, ``examwire import``), as token claims and
protocol frames are.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Callable

import pytest

from testkit import SAMPLE_EXAM, clean_env, http_json, run_examwire

pytestmark = pytest.mark.e2e


def _broken() -> dict[str, Any]:
    doc = copy.deepcopy(SAMPLE_EXAM)
    doc["id"] = "broken"
    doc["title"] = "Title \ud800"
    doc["questions"][0]["prompt"] = "\udc00"
    return doc


def test_put_refuses_lone_surrogates_with_their_paths(make_node: Callable[..., Any], make_token: Callable[..., str]) -> None:
    node = make_node()
    status, body = http_json("PUT", f"{node.base_url}/v1/exams/broken", token=make_token("adm", "admin"), body=_broken())
    assert status == 400 and body["error"] == "invalid_exam", (status, body)
    assert body["problems"] == ["questions[0].prompt: must be valid text (no lone surrogates)", "title: must be valid text (no lone surrogates)"]
    status, _ = http_json("GET", f"{node.base_url}/v1/exams/broken", token=make_token("adm", "admin"))
    assert status == 404
    assert "Traceback" not in node.log_path.read_text()


def test_import_refuses_them_too(tmp_path) -> None:
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(_broken()))  # ASCII JSON with \ud800 escapes
    done = run_examwire("import", str(path), env=clean_env(EXAMWIRE_DATA_DIR=str(tmp_path / "data")))
    assert done.returncode == 1 and "title: must be valid text" in done.stderr and "Traceback" not in done.stderr, done
