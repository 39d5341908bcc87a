"""Import rules that keep what is deployed apart from what tests it.

* Nothing outside ``tests/`` imports ``tests`` (a benchmark or the product that
  did would need pytest, which a production install does not have).
* ``testkit`` (helpers shared by tests and benchmarks) imports the standard
  library only, so a benchmark runs without the test extra.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".git", "tests", "build", "dist", "node_modules", "test-artifacts"}


def _sources(root: Path) -> list[Path]:
    out = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).parts
        if rel[0] in SKIP_DIRS or rel[0].startswith(".venv") or rel[0].startswith("."):
            continue
        out.append(path)
    return out


def _imports(path: Path) -> set[str]:
    """Every module named by an import statement of ``path`` (absolute imports only)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_the_walk_sees_the_packages() -> None:
    seen = {p.relative_to(ROOT).parts[0] for p in _sources(ROOT)}
    assert {"engine", "protocol", "handlers", "storage", "tasks", "examwire", "loadtests", "testkit"} <= seen


def test_nothing_outside_tests_imports_tests() -> None:
    bad = {
        str(path.relative_to(ROOT)): sorted(n for n in _imports(path) if n == "tests" or n.startswith("tests."))
        for path in _sources(ROOT)
    }
    assert {p: n for p, n in bad.items() if n} == {}


def test_testkit_imports_the_standard_library_only() -> None:
    allowed = set(sys.stdlib_module_names) | {"testkit"}
    bad = {}
    for path in (ROOT / "testkit").rglob("*.py"):
        foreign = sorted(n for n in _imports(path) if n.partition(".")[0] not in allowed)
        if foreign:
            bad[str(path.relative_to(ROOT))] = foreign
    assert bad == {}


PRODUCT = ("examwire", "engine", "protocol", "handlers", "storage", "tasks")


def test_every_third_party_import_of_the_product_is_a_declared_dependency() -> None:
    """What the product imports comes from ``[project] dependencies`` (not from the test extra)."""
    import re
    import tomllib
    from importlib.metadata import packages_distributions

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[\s\[<>=!~;]", dep, maxsplit=1)[0].lower().replace("_", "-") for dep in project["dependencies"]}
    owners = packages_distributions()
    missing = {}
    for pkg in PRODUCT:
        for path in (ROOT / pkg).rglob("*.py"):
            for name in _imports(path):
                top = name.partition(".")[0]
                if top in sys.stdlib_module_names or top in PRODUCT:
                    continue
                dists = {d.lower().replace("_", "-") for d in owners.get(top, [top])}
                # a module shipped by a dependency's own dependency (bson comes with pymongo) is fine
                # when that distribution is declared
                if not dists & declared:
                    missing.setdefault(str(path.relative_to(ROOT)), []).append(f"{name} ({', '.join(sorted(dists))})")
    assert missing == {}
