"""`shopfloor run` (SIGTERM flushes what is queued), `tail`, and the demo's pure helpers."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time
import zoneinfo
from pathlib import Path

import pytest

from config.loader import load_site, load_site_text
from config.markers import HEARTBEAT
from connectors.base import Quality, Sample
from connectors.simulators.base import SimClock
from connectors.simulators.meters import build_meters
from edge.cli.demo import baseline_period, move_ports, packaged_demo, prepare, site_ports
from edge.cli.main import main
from edge.store.base import Batch, DeviceHealth
from edge.store.sqlite import SqliteStore, StoreError
from tests.support.net import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]

SITE = """\
site: {{id: t, name: T}}
runtime: {{flush_interval_ms: 600000, batch_max_samples: 1000000, health_interval_s: 0.1}}
storage: {{kind: sqlite, path: data/s.db}}
devices:
  - id: meter1
    name: M1
    modbus: {{host: 127.0.0.1, port: {port}, unit: 1, poll_interval_ms: 20}}
    points:
      - {{id: energy, role: energy_kwh, modbus: {{table: holding, address: 0, order: CDAB}}}}
      - {{id: power, role: power_kw, modbus: {{table: holding, address: 2, order: CDAB}}}}
"""


async def test_sigterm_of_run_flushes_what_is_queued(tmp_path: Path) -> None:
    port = free_port()
    site_file = tmp_path / "site.yaml"
    site_file.write_text(SITE.format(port=port), encoding="utf-8")
    site = load_site(site_file)
    (server,) = build_meters(site, 7, SimClock(60))
    await server.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edge.cli.main",
        "run",
        "-c",
        str(site_file),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    db = tmp_path / "data" / "s.db"
    queued = 0
    try:
        # the writer flushes only every 10 minutes: samples pile up in the queue; the health
        # records (every 0.1 s) say how many
        for _ in range(1200):  # up to a minute on a loaded machine
            await asyncio.sleep(0.05)
            try:
                ro = SqliteStore.open_readonly(db)
            except StoreError:  # not created yet
                continue
            hs = ro.health()
            ro.close()
            if hs and hs[0].extra.get("queue_len", 0) >= 20:
                queued = hs[0].extra["queue_len"]
                break
        assert queued >= 20, "the collector did not queue samples"
        ro = SqliteStore.open_readonly(db)
        assert ro.batch_records() == []  # nothing written yet
        ro.close()
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await server.stop()
    assert proc.returncode == 0, err.decode()
    ro = SqliteStore.open_readonly(db)
    try:
        stored = sum(len(ro.read("meter1", p, 0, 2**62)) for p in ("energy", "power"))
        beats = len(ro.read(*HEARTBEAT, 0, 2**62))  # the collector's heartbeat series
        (h,) = ro.health()
    finally:
        ro.close()
    assert stored + beats >= queued  # the queue held heartbeats too
    assert stored == h.samples  # every sample received was stored
    assert h.connected is False
    assert beats >= 2  # at start and at the stop
    assert f"{stored + beats} samples" in out.decode()


def test_run_with_a_broken_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("site: {id: t}\n", encoding="utf-8")
    assert main(["run", "-c", str(f)]) == 2
    assert "site.name: required field is missing" in capsys.readouterr().err


def _store_with_data(path: Path) -> None:
    st = SqliteStore(path)
    t = int(dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC).timestamp()) * 10**9
    st.write_batches(
        [
            Batch("m1", 1, (Sample("m1", "e", t, 12.5), Sample("m1", "p", t + 10**9, 3.0))),
            Batch("m2", 1, (Sample("m2", "x", t, float("nan"), Quality.BAD, "timeout"),)),
        ]
    )
    st.write_health([DeviceHealth("m1", connected=True, samples=2, errors={"timeout": 1})])
    st.close()


def test_tail_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "s.db"
    _store_with_data(db)
    assert main(["tail", "--db", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "device" in lines[0]
    assert "quality" in lines[0]
    rows = [ln.split() for ln in lines[2:]]
    assert rows[0][:2] == ["m1", "e"]
    assert rows[0][4:] == ["12.5", "good"]
    assert rows[0][2:4] == ["2026-03-02", "08:00:00.000"]  # UTC without a site file
    assert rows[1][:2] == ["m1", "p"]
    assert rows[1][4] == "3"
    assert rows[2][:2] == ["m2", "x"]
    assert rows[2][4:] == ["NaN", "bad", "timeout"]
    assert main(["tail", "--db", str(db), "--device", "m1", "-n", "1", "--health"]) == 0
    out = capsys.readouterr().out
    assert " p " in out
    assert " e " not in out
    assert "timeout=1" in out
    assert "yes 是" in out
    assert main(["tail", "--db", str(db), "--device", "nobody"]) == 1
    assert main(["tail", "--db", str(tmp_path / "none.db")]) == 1
    assert "no store" in capsys.readouterr().err
    assert main(["tail", "--db", str(db), "-n", "0"]) == 2


def test_tail_uses_the_site_timezone_and_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data").mkdir()
    _store_with_data(tmp_path / "data" / "s.db")
    f = tmp_path / "site.yaml"
    f.write_text(SITE.format(port=1502), encoding="utf-8")
    assert main(["tail", "-c", str(f), "--device", "m1"]) == 0
    assert "2026-03-02 16:00:00.000" in capsys.readouterr().out  # Asia/Shanghai


def test_demo_moves_only_taken_ports_consistently() -> None:
    site = load_site(packaged_demo())
    ports = site_ports(site)
    assert set(ports) == {48401, 50201, 18831, 50001, site.gateway.port}
    taken = {48401, 50201, 50001}
    moved, moves = move_ports(site, is_free=lambda p: p not in taken)
    assert set(moves) == taken
    assert len(set(moves.values())) == 3
    opc = {d.opcua.endpoint for d in moved.devices if d.opcua}
    assert opc == {f"opc.tcp://127.0.0.1:{moves[48401]}/shopfloor/sim"}
    assert {d.modbus.port for d in moved.devices if d.modbus} == {moves[50201]}
    assert {d.mqtt.port for d in moved.devices if d.mqtt} == {18831}
    mtc = [d.mtconnect for d in moved.devices if d.mtconnect]
    assert [(m.url, m.device) for m in mtc] == [(f"http://127.0.0.1:{moves[50001]}", "cnc5")]
    same, none = move_ports(site, is_free=lambda p: True)
    assert none == {}
    assert same is site


def test_demo_prepare_writes_a_valid_site_file(tmp_path: Path) -> None:
    site, site_file, _ = prepare(load_site(packaged_demo()), tmp_path / "d")
    again = load_site(site_file)
    assert again.storage.kind == "sqlite"
    assert again.resolve(again.storage.path) == (tmp_path / "d" / "shopfloor.db").resolve()
    assert again.evidence.ledger_path == (tmp_path / "d" / "ledger.db").resolve()
    assert again.devices == site.devices
    mtc = again.device("cnc5").mtconnect
    assert mtc is not None
    assert mtc.resume_file == (tmp_path / "d" / "mtconnect-cnc5.json").resolve()
    assert again.declared == site.declared
    assert (tmp_path / "d" / "keys" / "signing.key").exists()  # demo checkpoints get signed


def test_baseline_period_is_the_same_week_a_year_earlier() -> None:
    tz = zoneinfo.ZoneInfo("Asia/Shanghai")

    def at(y: int, mo: int, d: int, h: int, mi: int = 0, s: int = 0) -> int:
        return int(dt.datetime(y, mo, d, h, mi, s, tzinfo=tz).timestamp()) * 10**9

    def local(ns: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(ns / 1e9, tz)

    # whole local days ending with the live start's date a year earlier
    b0, b1 = baseline_period(at(2026, 11, 21, 7, 30), "Asia/Shanghai")
    assert local(b0) == dt.datetime(2025, 11, 15, tzinfo=tz)
    assert local(b1) == dt.datetime(2025, 11, 22, tzinfo=tz)
    # just after midnight and just before it: the same day
    assert baseline_period(at(2026, 11, 21, 0, 0, 1), "Asia/Shanghai") == (b0, b1)
    assert baseline_period(at(2026, 11, 21, 23, 59, 59), "Asia/Shanghai") == (b0, b1)
    # --history-days
    b0, b1 = baseline_period(at(2026, 3, 2, 8), "Asia/Shanghai", 1)
    assert (local(b0), local(b1)) == (
        dt.datetime(2025, 3, 2, tzinfo=tz),
        dt.datetime(2025, 3, 3, tzinfo=tz),
    )
    # 29 February -> 28 February; the week may start in the year before that
    b0, b1 = baseline_period(at(2028, 2, 29, 12), "Asia/Shanghai")
    assert (local(b0), local(b1)) == (
        dt.datetime(2027, 2, 22, tzinfo=tz),
        dt.datetime(2027, 3, 1, tzinfo=tz),
    )
    b0, _ = baseline_period(at(2026, 1, 3, 8), "Asia/Shanghai")
    assert local(b0) == dt.datetime(2024, 12, 28, tzinfo=tz)
    # a DST zone: still whole local days (local midnights)
    ny = zoneinfo.ZoneInfo("America/New_York")
    live = int(dt.datetime(2026, 3, 10, 9, tzinfo=ny).timestamp()) * 10**9
    b0, b1 = baseline_period(live, "America/New_York")
    assert dt.datetime.fromtimestamp(b0 / 1e9, ny) == dt.datetime(2025, 3, 4, tzinfo=ny)
    assert dt.datetime.fromtimestamp(b1 / 1e9, ny) == dt.datetime(2025, 3, 11, tzinfo=ny)
    assert (b1 - b0) // 10**9 == 7 * 86_400 - 3600  # 9 March 2025 had 23 hours
    with pytest.raises(ValueError, match="at least one day"):
        baseline_period(live, "America/New_York", 0)
    assert load_site_text("site: {id: a, name: b}").site.timezone == "Asia/Shanghai"


def test_factory_time_sink_restamps_gateway_time() -> None:
    from connectors.base import Sample
    from edge.cli.demo import FactoryTimeSink
    from edge.queue import SampleQueue

    q = SampleQueue(10)
    clock = SimClock(60.0, start_ns=10**18)
    sink = FactoryTimeSink(q, clock)
    now = time.time_ns()
    sink.put(Sample("m", "p", now, 1.0))
    sink.put_many([Sample("m", "p", now - 10**9, 2.0)])  # read 1 s ago
    a, b = q.get_nowait(10)
    assert abs(a.ts - clock.now_ns()) < 60 * 10**9 // 2  # within half a factory minute
    assert 59 * 10**9 < a.ts - b.ts < 61 * 10**9  # one wall second = 60 factory seconds
    assert (a.value, b.value) == (1.0, 2.0)


def test_run_with_an_unreadable_point_fails_before_opening_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "plan.yaml"
    f.write_text(
        """\
site: {id: t, name: T}
storage: {kind: sqlite, path: data/s.db}
devices:
  - id: m
    name: M
    modbus: {host: 127.0.0.1, port: 1502, unit: 1}
    points:
      - {id: s, datatype: string, modbus: {address: 0}}
""",
        encoding="utf-8",
    )
    assert main(["run", "-c", str(f)]) == 2
    assert "a string point needs 'length'" in capsys.readouterr().err
    assert not (tmp_path / "data" / "s.db").exists()


def test_sim_serves_the_site_until_ctrl_c(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    f = tmp_path / "site.yaml"
    f.write_text(SITE.format(port=port), encoding="utf-8")
    assert main(["sim", "-c", str(f), "--speed", "0"]) == 2
    assert main(["sim", "-c", str(f), "--start", "yesterday"]) == 2
    assert "--start" in capsys.readouterr().err
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cli.main", "sim", "-c", str(f), "--speed", "60"],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    try:
        wait_port(port, timeout=60)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert f"Modbus TCP on 127.0.0.1:{port}" in out
    assert "sim: stopped" in out
