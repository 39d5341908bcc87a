"""Settings that cannot work are refused at start, with a message naming the variable (``SettingsError``).

Every ``examwire`` command turns a ``SettingsError`` into one line and exit
status 2 (see ``test_a_setting_refused_is_one_line_and_status_2``).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from examwire.settings import Settings, SettingsError
from tests.conftest import REPO_ROOT
from testkit import clean_env

BASE = {"EXAMWIRE_REDIS_URL": "redis://127.0.0.1:1/0", "EXAMWIRE_JWT_SECRET": "j" * 32, "EXAMWIRE_SECRET": "s" * 32}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EXAMWIRE_BATCH_SIZE": "ten"}, "EXAMWIRE_BATCH_SIZE must be an integer, got 'ten'"),
        ({"EXAMWIRE_BATCH_SIZE": "1.5"}, "EXAMWIRE_BATCH_SIZE must be an integer"),
        ({"EXAMWIRE_BATCH_SIZE": "0"}, "EXAMWIRE_BATCH_SIZE must be between 1 and 100, got 0"),
        ({"EXAMWIRE_MAX_FRAME_BYTES": "100"}, "EXAMWIRE_MAX_FRAME_BYTES must be between 1024 and"),
        ({"EXAMWIRE_EMBEDDED_WORKER": "maybe"}, "EXAMWIRE_EMBEDDED_WORKER must be true or false, got 'maybe'"),
        ({"EXAMWIRE_READYZ_FAIL_DEGRADED": "2"}, "EXAMWIRE_READYZ_FAIL_DEGRADED must be true or false"),
        ({"EXAMWIRE_MONGODB_WRITE_CONCERN": "0"}, "EXAMWIRE_MONGODB_WRITE_CONCERN must acknowledge writes"),
        ({"EXAMWIRE_JWT_ALGORITHMS": "none"}, "EXAMWIRE_JWT_ALGORITHMS: 'none' is not supported"),
        ({"EXAMWIRE_JWT_ALGORITHMS": "HS256,RS256"}, "EXAMWIRE_JWT_ALGORITHMS mixes HMAC and public-key algorithms"),
        ({"EXAMWIRE_JWKS_URL": "http://127.0.0.1:1/jwks", "EXAMWIRE_JWT_ALGORITHMS": "HS256"}, "EXAMWIRE_JWKS_URL needs public-key algorithms"),
        ({"EXAMWIRE_JWT_ALGORITHMS": "RS256"}, "public-key EXAMWIRE_JWT_ALGORITHMS need EXAMWIRE_JWKS_URL"),
        ({"EXAMWIRE_JWT_SECRET": None}, "EXAMWIRE_JWT_SECRET must be set when EXAMWIRE_REDIS_URL is set"),
        ({"EXAMWIRE_SECRET": None}, "EXAMWIRE_SECRET must be set when EXAMWIRE_REDIS_URL is set"),
        ({"EXAMWIRE_JWT_SECRET": "short"}, "EXAMWIRE_JWT_SECRET must be at least 32 bytes"),
    ],
)
def test_a_setting_that_cannot_work_is_refused_by_name(tmp_path, env, message):
    full = {k: v for k, v in {**BASE, **env}.items() if v is not None}
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(full, data_dir=tmp_path)
    assert str(caught.value).startswith(message), str(caught.value)
    assert not (tmp_path / "jwt-secret").exists()  # a shared Redis never gets generated secrets


def test_what_is_accepted_is_read_as_meant(tmp_path):
    s = Settings.from_env(
        {**BASE, "EXAMWIRE_MONGODB_WRITE_CONCERN": "2", "EXAMWIRE_EMBEDDED_WORKER": " Off ", "EXAMWIRE_BATCH_SIZE": ""},
        data_dir=tmp_path,
    )
    assert s.mongodb_write_concern == 2 and s.embedded_worker is False and s.batch_size == 10
    jwks = Settings.from_env(
        {"EXAMWIRE_REDIS_URL": BASE["EXAMWIRE_REDIS_URL"], "EXAMWIRE_SECRET": "s" * 32, "EXAMWIRE_JWKS_URL": "https://idp/jwks"},
        data_dir=tmp_path,
    )
    assert jwks.jwt_algorithms == ("RS256",) and jwks.jwt_secret is None  # no HMAC secret needed, nor kept


def test_there_is_no_broker_without_a_redis_url(tmp_path):
    embedded = Settings.from_env({}, data_dir=tmp_path)  # embedded mode, before its Redis runs
    assert embedded.redis_url is None
    with pytest.raises(SettingsError, match="no Redis URL to use as the Celery broker"):
        embedded.broker_url
    assert embedded.with_redis("unix:///tmp/r.sock").broker_url == "redis+socket:///tmp/r.sock"
    assert Settings.from_env({**BASE, "EXAMWIRE_CELERY_BROKER_URL": "redis://b:6379/1"}, data_dir=tmp_path).broker_url == "redis://b:6379/1"


def test_a_setting_refused_is_one_line_and_status_2(tmp_path):
    env = clean_env(**BASE, EXAMWIRE_BATCH_SIZE="lots", EXAMWIRE_DATA_DIR=str(tmp_path))
    for argv in (["token", "--sub", "ann", "--role", "candidate"], ["export", "some-exam"], ["worker"], ["serve", "--port", "0"]):
        done = subprocess.run([sys.executable, "-m", "examwire", *argv], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, (argv, done.stdout, done.stderr)
        assert done.stderr == "examwire: EXAMWIRE_BATCH_SIZE must be an integer, got 'lots'\n", (argv, done.stderr)
        assert done.stdout == "", (argv, done.stdout)
