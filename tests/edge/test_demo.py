"""`shopfloor demo` end to end: simulators of every protocol + collector into the embedded store;
Ctrl-C (SIGINT) stops cleanly."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import os
import signal
import sys
import zoneinfo
from pathlib import Path

from connectors.base import Quality
from edge.store.sqlite import SqliteStore, StoreError

ROOT = Path(__file__).resolve().parents[2]
WANTED = {"cnc1", "cnc5", "furnace1", "meter1", "water1", "qs1"}


def _devices(db: Path) -> set[str]:
    try:
        store = SqliteStore.open_readonly(db)
    except StoreError:
        return set()
    try:
        return {s.device for s in store.latest()}
    finally:
        store.close()


async def test_demo_collects_every_protocol_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    db = data / "shopfloor.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edge.cli.main",
        "demo",
        "--data",
        str(data),
        "--no-services",
        "--start",
        "2026-03-02T09:00",
        "--history-days",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(90):
            while True:
                line = (await proc.stdout.readline()).decode()
                assert line, "demo ended early:\n" + "".join(lines)
                lines.append(line)
                if "Ctrl-C stops" in line:
                    break
            for _ in range(400):
                # the MTConnect connector writes its resume position once it is 2 s old
                if _devices(db) >= WANTED and (data / "mtconnect-cnc5.json").is_file():
                    break
                await asyncio.sleep(0.2)
            proc.send_signal(signal.SIGINT)
            lines.append((await proc.stdout.read()).decode())
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    out = "".join(lines)
    assert proc.returncode == 0, out
    for what in (
        "Modbus TCP",
        "OPC UA",
        "MQTT",
        "MTConnect agent of cnc5",
        "collector running",
        "simulators stopped",
    ):
        assert what in out, out
    assert str(db) in out
    # the baseline import ran before the connectors: no first connect timed out
    for what in ("Failed to connect", "no answer within", "timed out", "link_lost"):
        assert what not in out, out
    assert out.index("baseline imported") < out.index("collector running")
    # the KPI command's current period starts when the connectors started (after --start)
    (kpi,) = [ln for ln in out.splitlines() if "shopfloor kpi -c" in ln]
    assert "--current 2026-03-02T09:0" in kpi, kpi
    # the baseline day: the same date a year earlier (--history-days 1)
    assert "--baseline 2025-03-02..2025-03-02 " in kpi, kpi
    assert "importing baseline 建设前 2025-03-02 00:00 .. 2025-03-03 00:00" in out, out
    store = SqliteStore.open_readonly(db)
    try:
        health = {h.device: h for h in store.health()}
        seqs = [r[1] for r in store.batch_records("cnc1")]
        imported = {
            src: [s for b in store.batches_for(src) for s in b.samples]
            for src in store.sources()
            if src.startswith("import:")
        }
    finally:
        store.close()
    # every imported series is closed by one bad import_end sample at the baseline's end
    end = int(dt.datetime(2025, 3, 3, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai")).timestamp())
    assert set(imported) >= {"import:cnc1", "import:cnc5", "import:meter1", "import:water1"}
    for src, samples in imported.items():
        marks = [s for s in samples if s.status == "import_end"]
        series = {(s.device, s.point) for s in samples}
        assert sorted((s.device, s.point) for s in marks) == sorted(series), src
        assert all(s.ts == end * 10**9 and s.quality == Quality.BAD for s in marks), src
        assert all(math.isnan(s.value) for s in marks), src
        assert max(s.ts for s in samples if s.status != "import_end") < end * 10**9
    assert health["cnc1"].samples > 0
    assert health["cnc5"].samples > 0
    # the MTConnect connector keeps its resume position inside the demo's data folder
    assert (data / "mtconnect-cnc5.json").is_file()
    assert not any(h.connected for h in health.values())  # stopped cleanly
    assert seqs == list(range(1, len(seqs) + 1))
