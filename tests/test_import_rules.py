"""docs/architecture.md's "what it may import" table, enforced.

The table is the rule: this test reads it from the document (so the two
cannot drift) and every import of every module of every package in it,
lazy imports inside functions and relative imports included, must name the
standard library, the module's own package, or something its row lists.
A row for a module (``examwire/client.py``) replaces its package's row for
that module. ``tests`` is never listed, so nothing outside ``tests/``
imports it.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from testkit import REPO_ROOT

DOC = REPO_ROOT / "docs" / "architecture.md"
HEADER = "| package | what it is | what it may import |"


def read_rules(text: str) -> dict[str, set[str]]:
    """``{"engine": {...}, "examwire/client.py": {...}}``: each row's first cell → the backticked names of its last."""
    lines = text.splitlines()
    start = lines.index(HEADER) + 2
    rules: dict[str, set[str]] = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = re.fullmatch(r"`([\w/.]+?)/?`", cells[0])
        assert name, f"the first cell of a row names one package or module in backticks: {line}"
        rules[name.group(1)] = set(re.findall(r"`([\w.]+)`", cells[-1]))
    return rules


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path = REPO_ROOT) -> set[str]:
    """Every module an import statement of ``path`` names, relative ones resolved to absolute names."""
    package = _module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names.add(node.module or "")
                continue
            base = package[: len(package) - (node.level - 1)]
            if node.module:
                names.add(".".join([*base, node.module]))
            else:  # from . import x: each x is a module (or a name) of the base package
                names.update(".".join([*base, alias.name]) for alias in node.names)
    return names


def allowed(name: str, own: str, listed: set[str]) -> bool:
    top = name.partition(".")[0]
    if top in sys.stdlib_module_names or top == "__future__" or top == own:
        return True
    return any(name == item or name.startswith(item + ".") for item in listed)


def violations(rules: dict[str, set[str]], root: Path = REPO_ROOT) -> dict[str, list[str]]:
    bad: dict[str, list[str]] = {}
    for package in (r for r in rules if "/" not in r):
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            listed, own = rules.get(rel, rules[package]), package
            if rel in rules:  # a module's own row: its package is not implied
                own = ""
            wrong = sorted(n for n in imports_of(path, root) if not allowed(n, own, listed))
            if wrong:
                bad[rel] = wrong
    return bad


RULES = read_rules(DOC.read_text())


def test_the_table_has_a_row_for_every_package_and_names_only_real_ones() -> None:
    packages = {p.parent.name for p in REPO_ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages == {r for r in RULES if "/" not in r}
    for row, listed in RULES.items():
        assert (REPO_ROOT / row).exists(), row
        ours = {n.partition(".")[0] for n in listed} & (packages | {"tests"})
        assert "tests" not in ours, f"{row} may not import tests"


def test_every_import_follows_the_table() -> None:
    assert violations(RULES) == {}


@pytest.mark.parametrize(
    ("row", "source", "found"),
    [
        ("handlers", "from tasks import jobs\n", ["tasks"]),
        ("tasks", "def f():\n    from handlers.context import Context\n", ["handlers.context"]),
        ("services", "from examwire.settings import Settings\n", ["examwire.settings"]),
        ("storage", "import tests.conftest\n", ["tests.conftest"]),
        ("engine", "import redis\nfrom . import exam\n", ["redis"]),
        ("examwire", "from .settings import Settings\nfrom protocol import encode\n", []),
    ],
)
def test_a_violation_is_found(tmp_path: Path, row: str, source: str, found: list[str]) -> None:
    """The checker on a planted module in a copy of the layout: each kind of violation is reported by module name."""
    for package in (r for r in RULES if "/" not in r):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / row / "planted.py").write_text(source)
    assert violations(RULES, tmp_path) == ({f"{row}/planted.py": found} if found else {})


def test_a_module_row_narrows_its_package(tmp_path: Path) -> None:
    """A module's row (the protocol client's, say) keeps it from the rest of its package, even relatively."""
    package, planted = "examwire", "examwire.planted"
    row = planted.replace(".", "/") + ".py"
    rules = {**RULES, row: {"protocol", "websockets", "msgpack"}}
    (tmp_path / package).mkdir()
    (tmp_path / row).write_text("from .settings import Settings\nfrom handlers import web\nimport protocol\n")
    assert violations(rules, tmp_path) == {row: [f"{package}.settings", "handlers"]}
