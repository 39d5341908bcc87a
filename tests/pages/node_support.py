"""Run the pages' ES modules under node, on any node from 18 up.

The page scripts are ``.js`` ES modules served as they are (no build step).
Node reads a ``.js`` file as an ES module only below a ``package.json`` that
says ``"type": "module"`` (newer nodes guess; node 18, Debian 12's, does not).
Such a file in ``handlers/pages`` would be served and shipped for nothing, so
the tests copy the scripts into a temporary tree that has one:

    <tmp>/package.json                 {"type": "module"}
    <tmp>/handlers/pages/**.js         the pages' modules
    <tmp>/tests/pages/js/**            the node tests (``*.test.mjs``) and their fakes

The relative imports are the same as in the repository, so the node tests
also run in place on a node that detects ES modules:
``node --test tests/pages/js/*.test.mjs``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from testkit import REPO_ROOT
from tests.conftest import require_tool

PAGES = REPO_ROOT / "handlers" / "pages"
NODE_TESTS = REPO_ROOT / "tests" / "pages" / "js"


def node() -> str:
    return require_tool("node", ".ci/run installs nodejs to run the pages' module tests")


def module_tree(root: Path) -> Path:
    """Copy the pages' scripts and the node tests under ``root`` (see above); returns ``root``."""
    (root / "package.json").write_text(json.dumps({"type": "module", "private": True}))
    for src, rel in ((PAGES, "handlers/pages"), (NODE_TESTS, "tests/pages/js")):
        for path in src.rglob("*"):
            if path.is_file() and path.suffix in (".js", ".mjs"):
                target = root / rel / path.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
    return root
