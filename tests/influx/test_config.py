"""The influxdb storage block of the site file: bad settings are clear errors."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from config.storage import InfluxStorage


def make(**kw: Any) -> InfluxStorage:
    base: dict[str, Any] = {"kind": "influxdb", "url": "http://127.0.0.1:9999", "database": "d"}
    base.update(kw)
    return InfluxStorage.model_validate(base)


def test_defaults() -> None:
    cfg = make()
    assert (cfg.api, cfg.measurement, cfg.outbox_drop, cfg.outbox_synchronous) == (
        "v1",
        "samples",
        "drop_oldest",
        "full",
    )


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"database": None}, "the v1 API needs 'database'"),
        ({"api": "v2", "org": "o", "bucket": "b"}, "needs 'org', 'bucket' and 'token'"),
        ({"url": "influx:8086"}, "should match pattern"),
        ({"measurement": "my samples"}, "should match pattern"),
        ({"token": {"env": "T"}, "username": "u", "password": {"env": "P"}}, "not both"),
        ({"username": "u"}, "go together"),
        ({"outbox_max_samples": 10}, "greater than or equal to 1000"),
        ({"outbox_drop": "drop_all"}, "drop_oldest"),
        ({"replay_backoff_max_s": 0}, "greater than 0"),
        ({"password": {"env": "P", "file": "/x"}, "username": "u"}, "exactly one"),
        ({"retention": "7d"}, "valid dictionary"),
        ({"retention": {"duration": "7 days"}}, "should match pattern"),
        ({"retention": {"duration": "7d", "keep": "x"}}, "Extra inputs are not permitted"),
        ({"gateway": "gw 1"}, "should match pattern"),
        ({"reads": "local_cache"}, "needs 'local_cache'"),
    ],
)
def test_bad_settings(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make(**kw)


def test_v2_settings() -> None:
    cfg = make(api="v2", database=None, org="o", bucket="b", token={"env": "T"})
    assert cfg.v2_reads == "flux"
    assert str(cfg.token) == "env:T"
