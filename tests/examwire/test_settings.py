"""Settings read from ``EXAMWIRE_*``: the garbage collector's thresholds."""

from __future__ import annotations

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
