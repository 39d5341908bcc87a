"""The node's transport limits are settings (README, "Configuration"), and reach uvicorn's protocols as read."""

from __future__ import annotations

import pytest

from examwire.settings import Settings, SettingsError

BASE = {"EXAMWIRE_REDIS_URL": "redis://127.0.0.1:1/0", "EXAMWIRE_JWT_SECRET": "j" * 32, "EXAMWIRE_SECRET": "s" * 32}


def test_the_transport_limits_have_their_documented_defaults_and_reach_the_protocols(tmp_path):
    from examwire.protocols import node_protocols

    s = Settings.from_env(BASE, data_dir=tmp_path)
    assert (s.max_header_bytes, s.header_timeout_s, s.max_pipelined, s.send_timeout_s) == (32768, 10.0, 16, 20.0)
    s = Settings.from_env(
        {**BASE, "EXAMWIRE_MAX_HEADER_BYTES": "8192", "EXAMWIRE_HEADER_TIMEOUT_S": "3", "EXAMWIRE_SEND_TIMEOUT_S": "7",
         "EXAMWIRE_MAX_PIPELINED": "2",
         "EXAMWIRE_RATE_PER_S": "5", "EXAMWIRE_RATE_BURST": "9"},
        data_dir=tmp_path,
    )  # fmt: skip
    http, ws = node_protocols(s)
    assert (http.max_header_bytes, http.header_timeout_s, http.max_pipelined, http.send_timeout_s) == (8192, 3.0, 2, 7.0)
    assert (ws.frames_per_s, ws.frames_burst, ws.send_timeout_s) == (5.0, 9.0, 7.0)


@pytest.mark.parametrize(
    ("name", "raw"),
    [("EXAMWIRE_MAX_HEADER_BYTES", "100"), ("EXAMWIRE_MAX_HEADER_BYTES", "lots"), ("EXAMWIRE_HEADER_TIMEOUT_S", "0"),
     ("EXAMWIRE_SEND_TIMEOUT_S", "0"), ("EXAMWIRE_SEND_TIMEOUT_S", "1.5"), ("EXAMWIRE_MAX_PIPELINED", "-1")],
)  # fmt: skip
def test_a_transport_limit_that_cannot_work_is_refused_by_name(tmp_path, name, raw):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**BASE, name: raw}, data_dir=tmp_path)
    assert str(caught.value).startswith(name), str(caught.value)
