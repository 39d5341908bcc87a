"""Every limit is a documented setting: each ``EXAMWIRE_*`` variable the product reads has a row in the README's configuration table."""

from __future__ import annotations

import re

from testkit import REPO_ROOT

PRODUCT = ("examwire", "handlers", "services", "tasks", "storage", "engine", "protocol")


def _configuration_table() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    return "\n".join(line for line in section.splitlines() if line.startswith("| `EXAMWIRE_"))


def test_every_variable_the_product_reads_is_in_the_configuration_table() -> None:
    read = set()
    for package in PRODUCT:
        for path in (REPO_ROOT / package).rglob("*.py"):
            read |= set(re.findall(r"\bEXAMWIRE_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    assert "EXAMWIRE_MAX_TOKEN_LIFETIME_S" in read
    documented = set(re.findall(r"`(EXAMWIRE_[A-Z0-9_]+)`", _configuration_table()))
    assert sorted(read - documented) == []
