"""docs/connectors/mtconnect.md, worked example: the site file of the page, the simulated agent
playing the morning of the page, the connector's samples in a SQLite store, and
``shopfloor kpi --machines`` giving the hand-worked figures of the page."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
import yaml

from config.loader import load_site
from config.markers import HEARTBEAT_DEVICE, HEARTBEAT_POINT, HEARTBEAT_S
from config.mtconnect import DEFAULT_STATE_MAP
from connectors.base import Sample
from connectors.mtconnect import build
from connectors.simulators.mtconnect import CNC_ITEMS, MtconnectAgent
from edge.cli.main import main
from edge.store.base import Batch
from edge.store.sqlite import SqliteStore
from tests.mqtt.helpers import RecordingSink
from tests.mtconnect.helpers import running

DOC = Path(__file__).resolve().parents[2] / "docs" / "connectors" / "mtconnect.md"
S = 1_000_000_000
DAY = "2026-11-02..2026-11-02"


def at(hh: int, mm: int = 0, day: int = 2) -> int:
    return int(dt.datetime(2026, 11, day, hh, mm, tzinfo=dt.UTC).timestamp()) * S


def doc_site(folder: Path, url: str) -> Path:
    (block,) = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    data = yaml.safe_load(block)
    data["devices"][0]["mtconnect"]["url"] = url
    data["devices"][0]["mtconnect"]["interval_ms"] = 20
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def play_morning(agent: MtconnectAgent) -> None:
    """The table of the page."""
    for item, value in (
        ("avail", "AVAILABLE"),
        ("mode", "AUTOMATIC"),
        ("exec", "READY"),
        ("pc_all", 0),
        ("pc_good", 0),
        ("pc_bad", 0),
    ):
        agent.set(item, value, at(7, 30))
    agent.set("mode", "MANUAL", at(8))
    agent.set("exec", "ACTIVE", at(8))
    agent.set("mode", "AUTOMATIC", at(8, 30))
    agent.set("exec", "FEED_HOLD", at(10))
    for item, n in (("pc_all", 100), ("pc_good", 98), ("pc_bad", 2)):
        agent.set(item, n, at(10))
    agent.set("exec", "ACTIVE", at(10, 20))
    agent.set("exec", "READY", at(11, 40))
    for item, n in (("pc_all", 200), ("pc_good", 195), ("pc_bad", 5)):
        agent.set(item, n, at(11, 40))
    agent.set("spindle", 0, at(11, 40))
    # after the shift: the data reach past the planned window (the engine cuts the window at
    # the latest recorded sample of the machine's state and counters, the data horizon)
    agent.set("mode", "EDIT", at(12, 30))


async def test_the_worked_example_gives_the_hand_worked_kpis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    agent = MtconnectAgent(
        "cnc7",
        CNC_ITEMS,
        clock=lambda: at(7),
    )
    await agent.start()
    try:
        site_path = doc_site(tmp_path, agent.url)
        site = load_site(site_path)
        assert site.device("cnc7").point("state").state_map == DEFAULT_STATE_MAP
        (conn,) = build(site)
        sink = RecordingSink()
        async with running(site, tmp_path / "resume.json", sink):
            await sink.wait_for(lambda: ("cnc7", True) in sink.links)
            play_morning(agent)
            await sink.wait_for(lambda: any(s.ts == at(12, 30) for s in sink.samples))
        assert conn.devices == ("cnc7",)
    finally:
        await agent.stop()
    hb = int(HEARTBEAT_S * S)
    heartbeat = tuple(
        Sample(HEARTBEAT_DEVICE, HEARTBEAT_POINT, t, 1.0) for t in range(at(7), at(0, 10, 3), hb)
    )
    store = SqliteStore(tmp_path / "store.db")
    try:
        store.write_batches(
            [
                Batch("cnc7", 1, tuple(sorted(sink.samples, key=lambda s: (s.ts, s.point)))),
                Batch(HEARTBEAT_DEVICE, 1, heartbeat),
            ]
        )
    finally:
        store.close()
    assert main(["kpi", "-c", str(site_path), "--period", DAY, "--machines", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (machine,) = out["machines"]
    figs = {f["id"]: f["value"] for f in machine["figures"]}
    apt = 1.5 + 80 / 60
    assert figs["pbt"] == pytest.approx(4.0)
    assert figs["apt"] == pytest.approx(apt)
    assert figs["asut"] == pytest.approx(0.5)
    assert figs["adet"] == pytest.approx(20 / 60)
    assert figs["availability"] == pytest.approx(100 * apt / 4)
    assert figs["effectiveness"] == pytest.approx(100 * 45 * 200 / (apt * 3600))
    assert figs["quality_ratio"] == pytest.approx(100 * 195 / 200)
    assert figs["oee"] == pytest.approx(100 * 45 * 195 / (4 * 3600))
    assert round(figs["oee"], 1) == 60.9  # the page's figure
