"""The README tells the truth: every route in its HTTP table, links that lead somewhere, hints that work."""

from __future__ import annotations

import re
import subprocess

from starlette.routing import Mount, Route, WebSocketRoute

from examwire.app import create_app
from examwire.redis_server import EmbeddedRedis
from examwire.settings import Settings
from storage import keys
from testkit import REPO_ROOT
from tests.conftest import require_tool

README = (REPO_ROOT / "README.md").read_text()


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path.partition("?")[0])


def test_the_http_table_lists_every_route() -> None:
    app = create_app(Settings(data_dir=REPO_ROOT, jwt_secret="x" * 32, secret="y", redis_url="redis://127.0.0.1:1/0"))
    served = set()
    for route in app.routes:
        if isinstance(route, WebSocketRoute):
            served.add(f"WS {_shape(route.path)}")
        elif isinstance(route, Route):
            served |= {f"{m} {_shape(route.path)}" for m in route.methods or () if m != "HEAD"}
        elif isinstance(route, Mount):
            served.add(f"GET {_shape(route.path)}/{{}}")  # a folder of files (the pages' assets)
    documented = {f"{m} {_shape(p)}" for m, p in re.findall(r"^\| `(GET|PUT|POST|DELETE|WS) ([^`]+)` \|", README, re.M)}
    assert served - documented == set(), "routes missing from the README's HTTP table"
    assert documented - served == set(), "the README documents routes that do not exist"


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\s-]", "", text)
    return re.sub(r"\s", "-", text)


def test_every_link_of_the_docs_leads_somewhere() -> None:
    bad = []
    for doc in [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # a URL: not ours to check offline
            path, _, anchor = target.partition("#")
            file = (doc.parent / path).resolve() if path else doc
            if not file.exists():
                bad.append(f"{doc.name}: {target}: no such file")
                continue
            if anchor and file.suffix == ".md":
                anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", file.read_text(), re.M)}
                if anchor not in anchors:
                    bad.append(f"{doc.name}: {target}: no such heading")
    assert bad == []


def test_the_redis_cli_hints_work_on_the_embedded_socket(tmp_path) -> None:
    cli = require_tool("redis-cli", "it comes with Debian's redis-server, which .ci/run installs")
    hints = [line.split("#")[0].strip() for line in README.splitlines() if line.startswith("redis-cli -s ")]
    assert hints, "the README shows how to reach the embedded Redis"
    with EmbeddedRedis(tmp_path, appendonly=False) as url:
        import redis

        client = redis.Redis.from_url(url)
        client.xgroup_create(keys.OUTBOX, keys.OUTBOX_GROUP, id="0", mkstream=True)  # as after a worker's first drain
        client.close()
        for hint in hints:
            argv = hint.replace("~/.local/share/examwire", str(tmp_path)).split()
            argv = [a.strip("'") for a in argv]
            done = subprocess.run([cli, *argv[1:]], capture_output=True, text=True, timeout=10)
            said = done.stdout + done.stderr
            assert done.returncode == 0 and not any(w in said for w in ("ERR", "NOGROUP", "(error)", "Could not connect")), (hint, done)
