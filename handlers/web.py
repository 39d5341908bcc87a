"""The pages the engine serves itself (no build step): landing, exam client, proctor dashboard, assets.

Files come from ``handlers/pages``: the three pages at ``/``, ``/exam/{id}``
and ``/proctor``, and every script and style (ES modules, sub-folders
included) under ``/static`` through Starlette's ``StaticFiles``. Only names
made of lower-case letters, digits, ``-`` and ``_`` with a page extension are
served; anything else is a JSON 404 (``not_found``).

Every response carries the same headers (``HEADERS``, added by
``SecureHeaders``): a strict Content-Security-Policy (scripts and styles from
this origin only, no inline code), so a candidate name or event detail can
never run as script, ``Referrer-Policy: no-referrer``, and ``no-cache`` (a
browser revalidates, so a deploy is picked up at once). Tokens travel in the
URL fragment, which browsers never send to the server.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.ids import is_exam_id

PAGES = Path(__file__).with_name("pages")

_FOLDER = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\.(js|mjs|css|html|svg|png|ico)$")
_TYPES = {
    "js": "text/javascript; charset=utf-8",
    "mjs": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "svg": "image/svg+xml",
    "png": "image/png",
    "ico": "image/x-icon",
}
CSP = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
    "X-Frame-Options": "DENY",
}


def _not_found() -> Response:
    return JSONResponse({"error": "not_found", "message": "no such file"}, status_code=404)


def _servable(path: str) -> str | None:
    """The file type of a relative asset path (``exam/main.js`` -> ``js``), or None when it may not be served."""
    *folders, name = path.split("/")
    m = _NAME.match(name)
    if m is None or not all(_FOLDER.match(f) for f in folders):
        return None
    return m.group(1)


class SecureHeaders:
    """ASGI wrapper: ``HEADERS`` on every HTTP response of the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in HEADERS.items():
                    headers[key] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Assets(StaticFiles):
    """``handlers/pages`` as static files: page file types only, each with its exact content type."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        kind = _servable(path.replace("\\", "/"))
        if kind is None:
            return _not_found()
        try:
            response = await super().get_response(path, scope)
        except HTTPException as exc:
            if exc.status_code == 404:
                return _not_found()
            raise
        if response.status_code == 200:
            response.headers["content-type"] = _TYPES[kind]
        return response


class Page:
    """One HTML page of ``handlers/pages`` (an ASGI app for a route).

    ``valid`` checks the route's path parameters: when it says no, the page
    is still served (it tells the reader what is wrong) but with status 404,
    so no door answers 200 for an id that every other door refuses.
    """

    def __init__(self, name: str, valid: Callable[[dict[str, Any]], bool] | None = None) -> None:
        self.path = PAGES / name
        self.valid = valid

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ok = self.valid is None or self.valid(scope.get("path_params", {}))
        await FileResponse(self.path, status_code=200 if ok else 404, media_type=_TYPES["html"])(scope, receive, send)


#: ``GET /static/{path}``: one asset of ``handlers/pages`` (mounted at ``/static``).
static = SecureHeaders(Assets(directory=PAGES))
#: ``GET /``: how to start (candidates and proctors).
landing_page = SecureHeaders(Page("index.html"))
#: ``GET /exam/{exam_id}``: the candidate's exam client (the page reads the exam id from its URL).
exam_page = SecureHeaders(Page("exam.html", valid=lambda params: is_exam_id(params.get("exam_id"))))
#: ``GET /proctor``: the live proctor dashboard.
proctor_page = SecureHeaders(Page("proctor.html"))
