"""compose.yaml is valid and wires what the deployment needs (offline: no Docker engine here)."""

from __future__ import annotations

import os
import subprocess

import yaml

from examwire.settings import Settings

from .conftest import REPO_ROOT
from tests.conftest import require_tool


def _compose() -> dict:
    return yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())


def test_compose_config_is_valid() -> None:
    exe = require_tool("docker-compose", ".ci/run installs Debian's docker-compose to validate compose.yaml offline")
    env = {**os.environ, "EXAMWIRE_JWT_SECRET": "x" * 40, "EXAMWIRE_SECRET": "y" * 40}
    out = subprocess.run([exe, "-f", str(REPO_ROOT / "compose.yaml"), "config", "-q"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_workers_and_beat_are_health_checked_by_examwire_status() -> None:
    services = _compose()["services"]
    assert services["worker"]["healthcheck"]["test"] == ["CMD", "examwire", "status", "--local", "worker"]
    assert services["beat"]["healthcheck"]["test"] == ["CMD", "examwire", "status", "--local", "beat"]


def test_an_engine_stops_inside_its_grace_period() -> None:
    """The node's bounded shutdown (and the watchdog behind it) ends before compose would SIGKILL it."""
    from examwire.cli import NodeServer

    grace = _compose()["services"]["engine"]["stop_grace_period"]
    assert grace.endswith("s")
    default = Settings.__dataclass_fields__["shutdown_timeout_s"].default
    assert default + NodeServer.WATCHDOG_GRACE_S < int(grace[:-1])


def test_nginx_takes_the_exams_the_engine_takes() -> None:
    """nginx's body limit is the engine's EXAMWIRE_MAX_EXAM_BYTES default: no exam the engine accepts meets nginx's 413."""
    import re

    conf = (REPO_ROOT / "deploy" / "nginx.conf").read_text()
    (value,) = re.findall(r"^\s*client_max_body_size\s+(\d+)([kKmM]?);", conf, re.M)
    size = int(value[0]) * {"": 1, "k": 1024, "m": 1024 * 1024}[value[1].lower()]
    assert size == Settings.__dataclass_fields__["max_exam_bytes"].default


def test_exports_outlive_the_worker_container() -> None:
    services = _compose()["services"]
    assert "exports:/var/lib/examwire/exports" in services["worker"]["volumes"]
    assert "exports" in _compose()["volumes"]
    # the image creates the directory owned by its user, so a fresh named volume is writable
    assert "install -d -o examwire -g examwire /var/lib/examwire/exports" in (REPO_ROOT / "Dockerfile").read_text()
