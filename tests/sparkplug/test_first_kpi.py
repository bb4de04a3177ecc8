"""docs/connectors/sparkplug.md, worked example: the site file of the page against a private
mosquitto, an independent publisher playing the morning of the page, the connector's samples in a
SQLite store, and ``shopfloor kpi --machines`` giving the hand-worked figures of the page."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

pytest.importorskip("google.protobuf", reason="protobuf (shopfloor[collector]) is not installed")
import yaml

from config.loader import load_site
from config.markers import HEARTBEAT_DEVICE, HEARTBEAT_POINT, HEARTBEAT_S
from connectors.base import Sample
from connectors.sparkplug import build
from edge.cli.main import main
from edge.store.base import Batch
from edge.store.sqlite import SqliteStore
from tests.mqtt.helpers import RecordingSink, publisher, running
from tests.sparkplug.helpers import commands, started
from tests.sparkplug.wire import metric, payload
from tests.support.mosquitto import Mosquitto

DOC = Path(__file__).resolve().parents[2] / "docs" / "connectors" / "sparkplug.md"
S = 1_000_000_000
DAY = "2026-11-02..2026-11-02"
INT32, INT64, UINT32 = 3, 4, 7


def at_ms(hh: int, mm: int = 0) -> int:
    return int(dt.datetime(2026, 11, 2, hh, mm, tzinfo=dt.UTC).timestamp()) * 1000


def doc_site(folder: Path, port: int) -> Path:
    (block,) = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    data = yaml.safe_load(block)
    data["devices"][0]["sparkplug"].update(host="127.0.0.1", port=port)
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def morning() -> list[tuple[str, bytes]]:
    """The table of the page."""
    node = "spBv1.0/stamping/{}/line2-gw"
    dev = node + "/press3"
    t = at_ms(7, 30)
    out = [
        (node.format("NBIRTH"), payload([metric("bdSeq", datatype=INT64, long_value=0)], seq=0)),
        (
            dev.format("DBIRTH"),
            payload(
                [
                    metric("Machine/State", alias=1, ts=t, datatype=INT32, int_value=0),
                    metric("Counters/Good", alias=2, ts=t, datatype=UINT32, int_value=0),
                    metric("Counters/Scrap", alias=3, ts=t, datatype=UINT32, int_value=0),
                ],
                seq=1,
            ),
        ),
    ]
    steps = [
        ((8, 0), [(1, 2)]),
        ((8, 20), [(1, 1)]),
        ((10, 0), [(1, 3), (2, 900), (3, 10)]),
        ((10, 30), [(1, 1)]),
        ((11, 50), [(1, 0), (2, 1750), (3, 20)]),
        ((12, 30), [(1, 2)]),
    ]
    for seq, ((hh, mm), values) in enumerate(steps, start=2):
        ms = at_ms(hh, mm)
        metrics = [metric(alias=a, ts=ms, int_value=v) for a, v in values]
        out.append((dev.format("DDATA"), payload(metrics, seq=seq, ts=ms)))
    return out


async def test_the_worked_example_gives_the_hand_worked_kpis(
    broker: Mosquitto, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site_path = doc_site(tmp_path, broker.port)
    site = load_site(site_path)
    (conn,) = build(site)
    sink = RecordingSink()
    with (
        commands(broker.port, "spBv1.0/stamping/NCMD/line2-gw") as cmds,
        publisher(broker.port) as pub,
    ):
        async with running(conn, sink):
            await started(sink, cmds)
            for topic, data in morning():
                pub(topic, data, 1)
            await sink.wait_for(lambda: len(sink.of("press3", "state")) == 7)
    assert not sink.errors
    hb = int(HEARTBEAT_S * S)
    start = at_ms(7) * 1_000_000
    heartbeat = tuple(
        Sample(HEARTBEAT_DEVICE, HEARTBEAT_POINT, t, 1.0)
        for t in range(start, start + 18 * 3600 * S, hb)
    )
    store = SqliteStore(tmp_path / "store.db")
    try:
        store.write_batches(
            [
                Batch("press3", 1, tuple(sorted(sink.samples, key=lambda s: (s.ts, s.point)))),
                Batch(HEARTBEAT_DEVICE, 1, heartbeat),
            ]
        )
    finally:
        store.close()
    assert main(["kpi", "-c", str(site_path), "--period", DAY, "--machines", "--json"]) == 0
    (machine,) = json.loads(capsys.readouterr().out)["machines"]
    figs = {f["id"]: f["value"] for f in machine["figures"]}
    assert figs["pbt"] == pytest.approx(4.0)
    assert figs["apt"] == pytest.approx(3.0)
    assert figs["asut"] == pytest.approx(20 / 60)
    assert figs["adet"] == pytest.approx(0.5)
    assert figs["idle"] == pytest.approx(10 / 60)
    assert figs["availability"] == pytest.approx(75.0)
    assert figs["effectiveness"] == pytest.approx(100 * 6 * 1770 / (3 * 3600))
    assert figs["quality_ratio"] == pytest.approx(100 * 1750 / 1770)
    assert figs["oee"] == pytest.approx(100 * 6 * 1750 / (4 * 3600))
    assert round(figs["oee"], 1) == 72.9  # the page's figure
