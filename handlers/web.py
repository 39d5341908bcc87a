"""The pages the engine serves itself (no build step): landing, exam client, proctor dashboard, assets.

Files come from ``handlers/pages``. Every response carries a strict
Content-Security-Policy (scripts and styles from this origin only, no inline
code), so a candidate name or event detail can never run as script, and
``Referrer-Policy: no-referrer``. Tokens travel in the URL fragment, which
browsers never send to the server.
"""

from __future__ import annotations

import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

PAGES = Path(__file__).with_name("pages")

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


def _file(name: str) -> Response:
    m = _NAME.match(name)
    path = PAGES / name
    if m is None or not path.is_file():
        return JSONResponse({"error": "not_found", "message": "no such file"}, status_code=404)
    return Response(path.read_bytes(), media_type=_TYPES[m.group(1)], headers=HEADERS)


async def static(request: Request) -> Response:
    """``GET /static/{name}``: one asset of ``handlers/pages``."""
    return _file(request.path_params["name"])


async def proctor_page(request: Request) -> Response:
    """``GET /proctor``: the live proctor dashboard."""
    return _file("proctor.html")


async def landing_page(request: Request) -> Response:
    """``GET /``: how to start (candidates and proctors)."""
    return _file("index.html")


async def exam_page(request: Request) -> Response:
    """``GET /exam/{exam_id}``: the candidate's exam client (the page reads the exam id from its URL)."""
    return _file("exam.html")
