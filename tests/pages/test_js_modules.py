"""The pages' shared library (``handlers/pages/lib``) and the exam page's pure
state module, tested under node (``node:test``, no browser): the files in
``tests/pages/js/*.test.mjs``. Fast: no Chromium, no engine. Skipped when
``node`` is missing, except with ``CI=true``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.pages.node_support import NODE_TESTS, PAGES, module_tree, node


def test_every_page_module_parses_and_the_node_tests_pass(tmp_path: Path) -> None:
    root = module_tree(tmp_path)
    tests = sorted(str(p.relative_to(NODE_TESTS.parents[2])) for p in NODE_TESTS.glob("*.test.mjs"))
    assert tests, "no node tests found"
    # every module at least parses as an ES module (the DOM modules cannot run under node)
    modules = sorted(str(p.relative_to(PAGES.parents[1])) for p in PAGES.rglob("*.js"))
    for module in modules:
        check = subprocess.run([node(), "--check", module], cwd=root, capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, f"{module} does not parse:\n{check.stderr}"
    proc = subprocess.run([node(), "--test", *tests], cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"node --test failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
