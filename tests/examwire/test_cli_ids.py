"""The command line's doors for exam ids (``examwire export``, ``examwire token --exam``) follow the one rule (``engine.ids``)."""

from __future__ import annotations

import pytest

from testkit import clean_env, run_examwire


@pytest.mark.parametrize("bad", [".", "..", "x\n"])
def test_the_cli_export_and_token_refuse_dot_segment_ids(bad: str, tmp_path) -> None:
    env = clean_env(EXAMWIRE_DATA_DIR=str(tmp_path / "data"))
    out_dir = tmp_path / "exports"
    refused = run_examwire("export", bad, "--out-dir", str(out_dir), env=env)
    assert refused.returncode == 2 and "is not an exam id" in refused.stderr, refused
    token = run_examwire("token", "--sub", "a", "--role", "candidate", "--exam", bad, env=env)
    assert token.returncode == 2 and "is not an exam id" in token.stderr, token
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_the_cli_mints_no_token_the_engine_would_refuse(tmp_path) -> None:
    env = clean_env(EXAMWIRE_DATA_DIR=str(tmp_path / "data"), EXAMWIRE_MAX_TOKEN_LIFETIME_S="3600")
    for args, says in [
        (["--ttl", "3601"], "EXAMWIRE_MAX_TOKEN_LIFETIME_S"),
        (["--sub", "a\nb"], "--sub"),
        (["--sub", "u" * 129], "--sub"),
        (["--name", "n" * 201], "--name"),
        (["--name", "A\u202eB"], "--name"),
    ]:
        argv = ["token", "--sub", "a", "--role", "candidate", *args]
        done = run_examwire(*argv, env=env)
        assert done.returncode == 2 and says in done.stderr and done.stdout == "", (args, done)
    assert run_examwire("token", "--sub", "a", "--role", "candidate", "--ttl", "3600", env=env).returncode == 0
