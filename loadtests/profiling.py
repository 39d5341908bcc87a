"""Sampling profiles of a running engine node with py-spy, summarized per phase.

``record(pid, path)`` samples a process (``py-spy record --format raw``; it
pauses the process for each sample, so that every stack is whole) until the
context exits; ``summarize(path)`` reads the collapsed
stacks and says where the samples fell: the functions with the most samples
on top of the stack (self) and anywhere in it (inclusive), and the share of
samples inside each package (inclusive: a sample inside ``engine`` called from
``handlers`` counts for both). py-spy must be installed (``pip install
py-spy``); it needs ptrace rights over the process (root, or the same user
with ``kernel.yama.ptrace_scope`` 0).

Figures from a profiled run are for attribution only: sampling costs the
process a little CPU and its timings are not the benchmark's.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

# "function (path/to/file.py:123)"; py-spy shortens paths to the package part
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]+?)(?::(?P<line>\d+))?\)$")

# packages reported by name; anything else is grouped by its first path part
PACKAGES = ("engine", "protocol", "handlers", "storage", "examwire", "redis", "websockets", "uvicorn", "starlette",
            "msgpack", "jwt", "asyncio", "uvloop", "json", "hiredis")
#: the engine's own packages, reported inclusive too
OURS = ("engine", "protocol", "handlers", "storage")


def py_spy() -> str:
    """The py-spy executable beside this interpreter or on PATH."""
    exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if exe is None:
        raise RuntimeError("py-spy is not installed: pip install py-spy")
    return exe


@contextlib.contextmanager
def record(pid: int, path: Path, rate: int = 100) -> Iterator[None]:
    """Sample process ``pid`` into ``path`` (collapsed stacks) for the duration of the block."""
    proc = subprocess.Popen([py_spy(), "record", "--pid", str(pid), "--format", "raw", "--rate", str(rate),
                             "--gil", "--output", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if not path.exists():
            raise RuntimeError(f"py-spy wrote no profile: {err.decode(errors='replace')[-500:]}")


def _package(file: str) -> str:
    parts = file.replace("\\", "/").split("/")
    for p in parts:
        name = p[:-3] if p.endswith(".py") else p
        if name in PACKAGES:
            return name
    first = parts[0]
    return first[:-3] if first.endswith(".py") else first


def summarize(path: Path, top: int = 25) -> dict[str, Any]:
    """Where the samples in a raw py-spy profile fell (see the module docstring)."""
    self_c: Counter[str] = Counter()
    incl_c: Counter[str] = Counter()
    pkg_c: Counter[str] = Counter()
    ours_c: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = []
        for raw in stack.split(";"):
            m = _FRAME.match(raw)
            frames.append((m["func"], m["file"]) if m else (raw, raw))
        func, file = frames[-1]
        self_c[f"{func} ({file})"] += n
        pkg_c[_package(file)] += n
        for name in {f"{f} ({p})" for f, p in frames}:
            incl_c[name] += n
        for pkg in {_package(p) for _, p in frames} & set(OURS):
            ours_c[pkg] += n

    def share(c: Counter[str]) -> list[list[Any]]:
        return [[k, round(v / total, 3)] for k, v in c.most_common(top)] if total else []

    return {"samples": total, "packages": share(pkg_c), "ours_inclusive": share(ours_c), "self": share(self_c),
            "inclusive": share(incl_c)}


def markdown(name: str, summary: dict[str, Any], top: int = 12) -> str:
    """A short Markdown report of one summary."""
    out = [f"### {name} ({summary['samples']:,} samples)", "", "| package (self) | share |", "|---|---|"]
    out += [f"| {k} | {v:.1%} |" for k, v in summary["packages"][:top]]
    out += ["", "| our package (inclusive) | share |", "|---|---|"]
    out += [f"| {k} | {v:.1%} |" for k, v in summary["ours_inclusive"]]
    out += ["", "| function (self) | share |", "|---|---|"]
    out += [f"| `{k}` | {v:.1%} |" for k, v in summary["self"][:top]]
    return "\n".join(out) + "\n"
