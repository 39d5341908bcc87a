"""Import rules that keep what is deployed apart from what tests it.

* Nothing outside ``tests/`` imports ``tests`` (a benchmark or the product that
  did would need pytest, which a production install does not have).
* ``testkit`` (helpers shared by tests and benchmarks) imports the standard
  library only, so a benchmark runs without the test extra.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from testkit import REPO_ROOT

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
    seen = {p.relative_to(REPO_ROOT).parts[0] for p in _sources(REPO_ROOT)}
    assert {"engine", "protocol", "services", "handlers", "storage", "tasks", "examwire", "loadtests", "testkit"} <= seen


def test_nothing_outside_tests_imports_tests() -> None:
    bad = {
        str(path.relative_to(REPO_ROOT)): sorted(n for n in _imports(path) if n == "tests" or n.startswith("tests."))
        for path in _sources(REPO_ROOT)
    }
    assert {p: n for p, n in bad.items() if n} == {}


def test_testkit_imports_the_standard_library_only() -> None:
    allowed = set(sys.stdlib_module_names) | {"testkit"}
    bad = {}
    for path in (REPO_ROOT / "testkit").rglob("*.py"):
        foreign = sorted(n for n in _imports(path) if n.partition(".")[0] not in allowed)
        if foreign:
            bad[str(path.relative_to(REPO_ROOT))] = foreign
    assert bad == {}


PRODUCT = ("examwire", "engine", "protocol", "services", "handlers", "storage", "tasks")


def test_every_third_party_import_of_the_product_is_a_declared_dependency() -> None:
    """What the product imports comes from ``[project] dependencies`` (not from the test extra)."""
    import re
    import tomllib
    from importlib.metadata import packages_distributions

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[\s\[<>=!~;]", dep, maxsplit=1)[0].lower().replace("_", "-") for dep in project["dependencies"]}
    owners = packages_distributions()
    missing = {}
    for pkg in PRODUCT:
        for path in (REPO_ROOT / pkg).rglob("*.py"):
            for name in _imports(path):
                top = name.partition(".")[0]
                if top in sys.stdlib_module_names or top in PRODUCT:
                    continue
                dists = {d.lower().replace("_", "-") for d in owners.get(top, [top])}
                # a module shipped by a dependency's own dependency (bson comes with pymongo) is fine
                # when that distribution is declared
                if not dists & declared:
                    missing.setdefault(str(path.relative_to(REPO_ROOT)), []).append(f"{name} ({', '.join(sorted(dists))})")
    assert missing == {}


# -- the repository stands on its own ------------------------------------------------------

_TOPS = "engine|protocol|handlers|storage|tasks|examwire|loadtests|tests|testkit|docs|deploy|scripts|shared"
#: ``dir/…/name.ext`` or ``dir/…/`` naming something in this repository
_REPO_PATH = re.compile(rf"(?<![\w/.$-])((?:{_TOPS})/(?:[\w.-]+/)*(?:[\w-]+\.[A-Za-z]{{1,5}}\b|(?=[\s`'\")\],:;])))")
_MD_NAME = re.compile(r"(?<![\w/.-])([\w-]+\.md)\b")
_ABSOLUTE = re.compile(r"(?<![\w.~$-])/(?:work|home|root|Users)/[\w.-]+")
_ISSUE = re.compile(r"\bissues? #?\d+\b", re.IGNORECASE)
#: files the tools write, named in the docs but not kept in the repository
_GENERATED = {"bench-results.md", "profile.md", "proctor-latency.md"}
_TEXT = (".py", ".md", ".js", ".html", ".css", ".toml", ".yaml", ".yml", ".lua", ".sh", ".conf", ".txt", ".cfg")


def _tracked() -> list[Path]:
    """The repository's text files: git's list (tracked and new, not ignored) when it can tell, else a walk."""
    try:
        out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
    except OSError:
        out = None
    if out is not None and out.returncode == 0:
        paths = [REPO_ROOT / line for line in out.stdout.splitlines()]
    else:
        paths = [p for p in REPO_ROOT.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(REPO_ROOT).parts)]
    named = {"Makefile", "Dockerfile", "run", "locust-smoke"}
    return [p for p in paths if p.is_file() and (p.suffix in _TEXT or p.name in named)]


def test_the_repository_stands_on_its_own() -> None:
    """No path of a development machine, no reference to a file that is not here, no issue numbers in the code."""
    files = _tracked()
    names = {p.name for p in files} | _GENERATED
    bad: list[str] = []
    for path in files:
        rel = path.relative_to(REPO_ROOT)
        text = path.read_text(errors="replace")
        for m in _ABSOLUTE.finditer(text):
            bad.append(f"{rel}: absolute path {m.group(0)}")
        for m in _REPO_PATH.finditer(text):
            target = m.group(1)
            if not (REPO_ROOT / target).exists() and not (path.parent / target).exists():
                bad.append(f"{rel}: {target} does not exist")
        for m in _MD_NAME.finditer(text):
            if m.group(1) not in names:
                bad.append(f"{rel}: {m.group(1)} does not exist")
        if path.suffix != ".md" and rel.parts[0] != "tests":
            for m in _ISSUE.finditer(text):
                bad.append(f"{rel}: cites {m.group(0)!r} (say what it is instead)")
    assert bad == []
