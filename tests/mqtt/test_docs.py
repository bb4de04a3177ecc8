"""The worked examples of docs/connectors/mqtt.md are valid site-file fragments."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import yaml

from config.models import SiteConfig
from connectors.mqtt import MqttConnector, build
from connectors.mqtt.payload import decode

DOC = Path(__file__).resolve().parents[2] / "docs" / "connectors" / "mqtt.md"
BLOCKS = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.parametrize("block", BLOCKS, ids=[f"yaml{i}" for i in range(len(BLOCKS))])
def test_doc_examples_load_and_build(block: str) -> None:
    raw = yaml.safe_load(block)
    site = SiteConfig.model_validate({"site": {"id": "doc", "name": "doc"}, **raw})
    connectors = build(site)
    assert len(connectors) == 1


def test_doc_template_example_decodes_as_described() -> None:
    raw = yaml.safe_load(BLOCKS[1])
    site = SiteConfig.model_validate({"site": {"id": "doc", "name": "doc"}, **raw})
    (conn,) = build(site)
    assert isinstance(conn, MqttConnector)
    route = next(r for r in conn.routes if r.topic_filter == "plant/+/quality")
    msg = b'{"time": "2026-11-18T09:00:00.250+08:00", "env": {"temp": 21.5}, "ok": true}'
    got = decode(msg, route.specs, 0, 16384)
    # 09:00:00.250 at +08:00 is 01:00:00.250 UTC
    ts = int(dt.datetime(2026, 11, 18, 1, 0, tzinfo=dt.UTC).timestamp()) * 10**9 + 250_000_000
    assert got.values == [("temp_c", ts, 21.5), ("ok", 0, 1.0)]
