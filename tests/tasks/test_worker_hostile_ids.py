"""Hostile ids sent to a real worker by task name, as anyone who can reach the broker can send them.

``examwire.export`` names a file after its exam id, ``examwire.analyse`` hands
its id and version to the stores' queries and Redis keys: each must refuse
anything the one exam id rule (``engine.ids``) refuses, with that rule's
message, and write nothing anywhere. A good id still works afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from examwire.settings import Settings
from tasks.app import create_celery
from testkit import SAMPLE_EXAM, wait_until

HOSTILE_IDS: list[Any] = [
    "/../../../../tmp/x",
    "../x",
    "x/../../y",
    "..",
    ".",
    "x\n",
    "",
    "x" * 65,
    "{tag}",
    "a\\b",
    None,
    7,
    ["x"],
    {"$gt": ""},
]


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_export_and_analyse_refuse_hostile_ids(make_node, make_worker, put_exam, results_db, redis_url, secrets, tmp_path, tmp_path_factory) -> None:
    node = make_node(EXAMWIRE_SQLITE_PATH=str(results_db))
    put_exam(node, {**SAMPLE_EXAM, "id": "hx"})
    worker = make_worker()
    settings = Settings.from_env(
        {"EXAMWIRE_REDIS_URL": redis_url, "EXAMWIRE_JWT_SECRET": secrets.jwt_secret, "EXAMWIRE_SECRET": secrets.secret},
        data_dir=tmp_path / "client",
    )
    app = create_celery(settings)
    base = tmp_path_factory.getbasetemp()
    before = _files(base)

    refusals = []
    for bad in HOSTILE_IDS:
        try:
            path = app.send_task("examwire.export", [bad]).get(timeout=30)
        except Exception as exc:  # the task's exception, re-raised by the result
            if "is not an exam id" not in str(exc):
                refusals.append(f"export {bad!r}: {type(exc).__name__}: {exc}")
        else:
            refusals.append(f"export {bad!r}: wrote {path}")
    assert not refusals, "\n".join(refusals) + "\n" + worker.log()
    written = _files(base) - before
    assert not [p for p in written if p.suffix == ".csv"], written
    assert not Path("/tmp/x.csv").exists()

    # analyse: the id and the version reach the results store's queries (a MongoDB filter takes a dict as an operator)
    analyses = {
        app.send_task("examwire.analyse", [bad]).id: "is not an exam id" for bad in HOSTILE_IDS
    } | {
        app.send_task("examwire.analyse", ["hx", version]).id: "is not an exam version" for version in ("1", True, 0, -1, 1.5, [1], 2**40)
    }

    def failures_logged() -> list[str] | None:
        log = worker.log_path.read_text()
        missing = [f"{task_id}: {why}" for task_id, why in analyses.items() if not any(task_id in line and why in line for line in log.splitlines())]
        return None if missing else []

    wait_until(lambda: failures_logged() == [], 30, lambda: "every hostile analyse refused with the rule's message\n" + worker.log())

    # the good id still exports, into the worker's <data dir>/exports
    path = Path(app.send_task("examwire.export", ["hx"]).get(timeout=30))
    assert path.name == "hx.csv" and path.parent.name == "exports" and path.exists(), path
