"""Fixtures for what a user deploys: a production install, and processes run from it.

``prod_venv``   (session) a virtual environment built with ``pip install .``
                only: no extras, not editable, so none of the test extra's
                packages (pytest, playwright, nx-27017 and what they pull in)
                are there. ``EXAMWIRE_PROD_VENV`` names one built beforehand
                instead. Checked: ``pip check`` passes and ``pytest`` does not
                import. Attribute ``bin``: its scripts directory.
``prod_env``    ``prod_env(**env) -> dict``: the environment of a production
                process: no ``EXAMWIRE_*``, ``PYTHONPATH`` or coverage
                variable of the test run leaks in; ``env`` is added.
``spawn``       ``spawn(name, argv, env, cwd=None) -> Proc``: a process in its
                own process group, output to ``<tmp>/<name>.log``; every one is
                stopped (SIGTERM to the group, SIGKILL after 15 s) at teardown.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import types
from pathlib import Path
from typing import Callable

import pytest

from testkit import REPO_ROOT, tail

PROD_VENV_ENV = "EXAMWIRE_PROD_VENV"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/deploy/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


def _not_sources(directory: str, names: list[str]) -> set[str]:
    """What a build context leaves out (.dockerignore's spirit): VCS, venvs, build output, local state."""
    skip = {"__pycache__", "node_modules"}
    if Path(directory) == REPO_ROOT:
        skip |= {".git", "build", "dist", "tests", "test-artifacts", "data", ".examwire"}
    return {n for n in names if n in skip or n.startswith((".venv", ".coverage")) or n.endswith((".egg-info", ".sock", ".pyc"))}


def _run(argv: list[str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, **kw)


@pytest.fixture(scope="session")
def prod_venv(tmp_path_factory: pytest.TempPathFactory) -> types.SimpleNamespace:
    given = os.environ.get(PROD_VENV_ENV)
    if given:
        root = Path(given)
    else:
        work = tmp_path_factory.mktemp("prod")
        root = work / "venv"
        # build from a copy of the sources, as `docker build` does from its context: an in-tree
        # build would leave build/ behind, whose stale files a later build would package
        src = work / "src"
        shutil.copytree(REPO_ROOT, src, ignore=_not_sources)
        # the base interpreter, not this test venv's: nothing of the test venv may leak in
        base = getattr(sys, "_base_executable", sys.executable)
        made = _run([base, "-m", "venv", str(root)], timeout=120)
        assert made.returncode == 0, made.stderr
        # nor the coverage measurement of the test run (`make test`): the build must not be measured
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV") and not k.startswith("COVERAGE_")}
        built = _run(
            [str(root / "bin" / "pip"), "install", "-q", "--no-input", "--disable-pip-version-check", str(src)],
            env=env, timeout=900, cwd=root.parent,
        )  # fmt: skip
        assert built.returncode == 0, f"pip install . failed:\n{built.stdout[-3000:]}\n{built.stderr[-3000:]}"
    python = root / "bin" / "python"
    assert (root / "bin" / "examwire").exists(), f"{root} has no examwire script"
    check = _run([str(python), "-m", "pip", "check"], timeout=120)
    assert check.returncode == 0, f"pip check in the production venv:\n{check.stdout}{check.stderr}"
    for test_only in ("pytest", "coverage"):  # coverage: its .pth file would measure every process of the venv
        found = _run([str(python), "-c", f"import {test_only}"], timeout=60, cwd=root)
        assert found.returncode != 0, f"the production venv has {test_only}: it was not built with `pip install .` alone"
    editable = _run([str(python), "-c", "import examwire, sys; print(examwire.__file__)"], timeout=60, cwd=root)
    assert editable.returncode == 0 and str(root) in editable.stdout, f"examwire is not installed into the venv: {editable}"
    return types.SimpleNamespace(root=root, bin=root / "bin", python=python)


@pytest.fixture
def prod_env() -> Callable[..., dict[str, str]]:
    leaks = ("EXAMWIRE_", "COVERAGE_", "COV_CORE_", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")

    def _env(**extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(leaks)}
        env["PYTHONUNBUFFERED"] = "1"
        env.update(extra)
        return env

    return _env


class Proc:
    """A process (group) of the deployment under test; its output goes to ``log_path``."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole group (a crash) and wait."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM the leader (as `docker stop` does), SIGKILL the group after ``timeout``."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        try:  # whatever the leader left behind in its group
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._log.close()
        return self.proc.returncode

    def log(self, lines: int = 80) -> str:
        return f"--- {self.name}: last {lines} lines of {self.log_path} ---\n" + tail(self.log_path, lines)

    def __repr__(self) -> str:
        state = "running" if self.alive() else f"exited {self.proc.returncode}"
        return f"<Proc {self.name} pid={self.proc.pid} {state}>"


@pytest.fixture
def spawn(tmp_path: Path):
    procs: list[Proc] = []

    def _spawn(name: str, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> Proc:
        p = Proc(name, argv, env, tmp_path / f"{name}.log", cwd or tmp_path)
        procs.append(p)
        return p

    yield _spawn
    for p in reversed(procs):
        p.stop()
