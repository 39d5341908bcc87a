"""``loadtests.profiling.summarize``: where the samples of a raw py-spy profile fell."""

from __future__ import annotations

from pathlib import Path

from loadtests.profiling import markdown, summarize

RAW = """\
run (asyncio/runners.py:118);_frame (handlers/connection.py:265);commit (storage/attempts.py:348);packb (msgpack/__init__.py:36) 6
run (asyncio/runners.py:118);_frame (handlers/connection.py:265);apply (engine/attempt.py:306) 3
run (asyncio/runners.py:118);send (uvicorn/protocols/websockets/websockets_sansio_impl.py:506) 1
"""


def test_summarize_shares_by_package_and_function(tmp_path: Path):
    path = tmp_path / "p.txt"
    path.write_text(RAW + "a malformed line\n")
    s = summarize(path)
    assert s["samples"] == 10
    assert dict(s["packages"]) == {"msgpack": 0.6, "engine": 0.3, "uvicorn": 0.1}  # on top of the stack
    assert dict(s["ours_inclusive"]) == {"handlers": 0.9, "storage": 0.6, "engine": 0.3}
    assert dict(s["self"]) == {"packb (msgpack/__init__.py)": 0.6, "apply (engine/attempt.py)": 0.3,
                               "send (uvicorn/protocols/websockets/websockets_sansio_impl.py)": 0.1}
    assert dict(s["inclusive"])["_frame (handlers/connection.py)"] == 0.9
    md = markdown("throughput", s)
    assert md.startswith("### throughput (10 samples)") and "| handlers | 90.0% |" in md and "| msgpack | 60.0% |" in md


def test_summarize_an_empty_profile(tmp_path: Path):
    path = tmp_path / "empty.txt"
    path.write_text("")
    assert summarize(path) == {"samples": 0, "packages": [], "ours_inclusive": [], "self": [], "inclusive": []}
