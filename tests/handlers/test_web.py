"""The pages and their assets, served in process by the app's own routes (plain ASGI
calls, no server and no lifespan: nothing here needs Redis)."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

import pytest

from examwire.app import create_app
from examwire.settings import Settings
from handlers import web
from testkit import REPO_ROOT


@dataclass
class Reply:
    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode()

    def json(self) -> Any:
        return json.loads(self.content)


class Client:
    """Just enough of an HTTP client to call an ASGI app in process."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, path: str, headers: dict[str, str] | None = None) -> Reply:
        raw_path, _, query = path.partition("?")
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": urllib.parse.unquote(raw_path), "raw_path": raw_path.encode(), "query_string": query.encode(),
            "root_path": "", "client": ("127.0.0.1", 1), "server": ("testserver", 80), "state": {},
            "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        }
        sent: list[dict[str, Any]] = []
        asked = []

        async def receive() -> dict[str, Any]:
            if asked:  # the body was read: the client then stays connected until the response is done
                await asyncio.Event().wait()
            asked.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        asyncio.run(self.app(scope, receive, send))
        start = sent[0]
        return Reply(start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]},
                     b"".join(m.get("body", b"") for m in sent[1:]))

    def get(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        return self.request("GET", path, headers)

    def head(self, path: str) -> Reply:
        return self.request("HEAD", path)

    def post(self, path: str) -> Reply:
        return self.request("POST", path)


@pytest.fixture(scope="module")
def client() -> Client:
    return Client(create_app(Settings(data_dir=REPO_ROOT, jwt_secret="x" * 32, secret="y", redis_url="redis://127.0.0.1:1/0")))


def _has_headers(response) -> None:
    for key, value in web.HEADERS.items():
        assert response.headers[key.lower()] == value, key


@pytest.mark.parametrize("path, script", [("/", "/static/landing.js"), ("/exam/net-101", "/static/exam/main.js"),
                                          ("/proctor", "/static/proctor")])
def test_pages_are_html_with_the_strict_headers(client: Client, path: str, script: str) -> None:
    response = client.get(path)
    assert response.status_code == 200 and response.headers["content-type"] == "text/html; charset=utf-8"
    assert script in response.text
    _has_headers(response)
    head = client.head(path)
    assert head.status_code == 200 and head.content == b""
    _has_headers(head)


@pytest.mark.parametrize("asset, kind", [
    ("exam/main.js", "text/javascript; charset=utf-8"), ("lib/wire.js", "text/javascript; charset=utf-8"),
    ("landing.js", "text/javascript; charset=utf-8"), ("common.css", "text/css; charset=utf-8"),
])
def test_assets_in_sub_folders_with_their_types_and_revalidation(client: Client, asset: str, kind: str) -> None:
    response = client.get(f"/static/{asset}")
    assert response.status_code == 200 and response.headers["content-type"] == kind
    assert response.content == (web.PAGES / asset).read_bytes()
    _has_headers(response)
    again = client.get(f"/static/{asset}", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304
    _has_headers(again)


@pytest.mark.parametrize("bad", [
    "nope.js", "lib", "lib/", "exam/nope.js", ".hidden.js", "lib/.hidden.js", "Exam/main.js", "exam/Main.js",
    "../web.py", "lib/../../web.py", "%2e%2e/web.py", "exam/main.py", "index.json", "a" * 70 + ".js",
])
def test_anything_else_is_a_json_404(client: Client, bad: str) -> None:
    response = client.get(f"/static/{bad}")
    assert response.status_code == 404, bad
    assert response.json() == {"error": "not_found", "message": "no such file"}


def test_only_get_and_head(client: Client) -> None:
    assert client.post("/static/landing.js").status_code == 405
    assert client.post("/exam/x").status_code == 405


@pytest.mark.parametrize("exam_id", ["%2e%2e", ".", "a%20b", "a%0A", "x" * 65, "%C3%A9"])
def test_the_exam_page_for_an_id_no_door_accepts_is_a_404(client: Client, exam_id: str) -> None:
    """The page still explains (it is the same page), but the status says what every other door says."""
    response = client.get(f"/exam/{exam_id}")
    assert response.status_code == 404, exam_id
    assert "/static/exam/main.js" in response.text
    _has_headers(response)
    assert client.get("/exam/net-101.v2").status_code == 200
