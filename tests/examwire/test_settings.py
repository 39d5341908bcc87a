"""Settings read from ``EXAMWIRE_*``: the garbage collector's thresholds, the protocols' fields, Redis failover."""

from __future__ import annotations

import re

import pytest

from examwire.settings import Settings, SettingsError

BASE = {"EXAMWIRE_REDIS_URL": "redis://127.0.0.1:1/0", "EXAMWIRE_JWT_SECRET": "j" * 32, "EXAMWIRE_SECRET": "s" * 32}


def test_gc_threshold_default_and_override(tmp_path):
    assert Settings.from_env(BASE, data_dir=tmp_path).gc_threshold == (50_000, 20, 100)
    env = {**BASE, "EXAMWIRE_GC_THRESHOLD": " 700, 10,10 "}
    assert Settings.from_env(env, data_dir=tmp_path).gc_threshold == (700, 10, 10)


@pytest.mark.parametrize("raw", ["700,10", "700,10,10,10", "a,b,c", "0,10,10", "700,0,10", "99,10,10", "700,10,10001"])
def test_gc_threshold_refuses_what_it_cannot_use(tmp_path, raw):
    with pytest.raises(SettingsError, match="EXAMWIRE_GC_THRESHOLD"):
        Settings.from_env({**BASE, "EXAMWIRE_GC_THRESHOLD": raw}, data_dir=tmp_path)


def test_settings_has_every_field_the_layers_below_read(tmp_path):
    """Handlers, tasks and services type their settings as protocols; the one ``Settings`` must satisfy each."""
    from handlers.context import NodeSettings
    from handlers.live import LiveSettings
    from services.core import CoreSettings
    from tasks.runtime import WorkerSettings

    settings = Settings.from_env({}, data_dir=tmp_path).with_redis("redis://localhost:1/0")
    for proto in (CoreSettings, LiveSettings, NodeSettings, WorkerSettings):
        names = {n for klass in proto.__mro__ if klass.__module__ not in ("typing", "builtins") for n in vars(klass) if not n.startswith("_")}
        assert names, proto
        assert {n for n in names if not hasattr(settings, n)} == set(), proto.__name__


def test_redis_sentinels_replicas_and_retry(tmp_path):
    """The Redis failover settings: sentinels (with the URL's credentials), the Celery URL they make, the bounds."""
    plain = Settings.from_env(BASE, data_dir=tmp_path)
    assert (plain.redis_sentinels, plain.redis_retry_ms, plain.redis_timeout_ms) == ((), 10_000, 5000)
    assert (plain.redis_min_replicas, plain.redis_wait_timeout_ms) == (0, 1000)
    assert plain.broker_url == "redis://127.0.0.1:1/0" and plain.broker_options == {}

    env = {k: v for k, v in BASE.items() if k != "EXAMWIRE_REDIS_URL"}
    env |= {"EXAMWIRE_REDIS_SENTINELS": " s1:26379, [::1]:26380 ", "EXAMWIRE_REDIS_SENTINEL_SERVICE": "exams",
            "EXAMWIRE_REDIS_MIN_REPLICAS": "1", "EXAMWIRE_REDIS_RETRY_MS": "0"}  # fmt: skip
    s = Settings.from_env(env, data_dir=tmp_path)
    assert s.redis_sentinels == (("s1", 26379), ("::1", 26380)) and s.redis_sentinel_service == "exams"
    assert s.redis_url == "redis://"  # not embedded mode: the sentinels name the primary
    assert (s.redis_min_replicas, s.redis_retry_ms) == (1, 0)
    assert s.broker_url == "sentinel://s1:26379/0;sentinel://[::1]:26380/0" and s.broker_options == {"master_name": "exams"}
    assert s.redis_where == "sentinel service 'exams' at s1:26379,::1:26380"
    with_password = Settings.from_env({**env, "EXAMWIRE_REDIS_URL": "redis://:pw@ignored:1/3"}, data_dir=tmp_path)
    assert with_password.broker_url == "sentinel://:pw@s1:26379/3;sentinel://:pw@[::1]:26380/3"

    for bad, message in [
        ({"EXAMWIRE_REDIS_SENTINELS": "s1"}, "EXAMWIRE_REDIS_SENTINELS must be comma-separated host:port"),
        ({"EXAMWIRE_REDIS_SENTINELS": "s1:0"}, "EXAMWIRE_REDIS_SENTINELS must be comma-separated host:port"),
        ({"EXAMWIRE_REDIS_SENTINEL_SERVICE": "a b"}, "EXAMWIRE_REDIS_SENTINEL_SERVICE must be a name"),
        ({"EXAMWIRE_REDIS_MIN_REPLICAS": "-1"}, "EXAMWIRE_REDIS_MIN_REPLICAS must be between 0 and 100"),
        ({"EXAMWIRE_REDIS_WAIT_TIMEOUT_MS": "5000"}, "EXAMWIRE_REDIS_WAIT_TIMEOUT_MS (5000) must be below EXAMWIRE_REDIS_TIMEOUT_MS"),
        ({"EXAMWIRE_REDIS_URL": "unix:///tmp/r.sock"}, "EXAMWIRE_REDIS_URL cannot be a unix:// socket"),
    ]:
        with pytest.raises(SettingsError, match=re.escape(message)):
            Settings.from_env({**env, **bad}, data_dir=tmp_path)
