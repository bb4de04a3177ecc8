"""Imported history ends with one bad ``import_end`` sample per (device, point), in the import's
source: the collector's import (at the range's end, or last + 1 ns) and ``shopfloor import
meters`` (at the file's end: 1 ns after its latest timestamp, or ``--end``). Checked on the
store's content."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from pathlib import Path

import pytest

from config.loader import load_site_text
from config.markers import IMPORT_END
from config.models import SiteConfig
from connectors.base import Quality, Sample, Sink
from edge import runtime
from edge.cli.main import main
from edge.runtime import Collector, import_end_markers
from edge.store.sqlite import SqliteStore

DEMO = Path(__file__).resolve().parents[2] / "config" / "examples" / "demo.yaml"


def site_for(tmp_path: Path) -> SiteConfig:
    text = """
site: {id: t, name: T}
runtime: {flush_interval_ms: 50, health_interval_s: 0.05, backoff_initial_s: 0.01,
          backoff_max_s: 0.05, batch_max_samples: 1000}
storage: {kind: sqlite, path: store.db}
devices:
  - id: m1
    name: M1
    modbus: {host: 127.0.0.1, port: 1502, unit: 1}
    points:
      - {id: e, modbus: {address: 0}}
      - {id: p, modbus: {address: 2}}
  - id: m2
    name: M2
    modbus: {host: 127.0.0.1, port: 1502, unit: 2}
    points:
      - {id: e, modbus: {address: 0}}
"""
    return load_site_text(text).with_source_dir(tmp_path)


class Idle:
    """A connector (our own contract) that only waits."""

    name = "idle"
    devices: tuple[str, ...] = ("m1", "m2")

    async def run(self, sink: Sink) -> None:
        await asyncio.Event().wait()


async def _import(
    site: SiteConfig, history: Iterable[Sample], end_ns: int | None
) -> tuple[Collector, dict[str, list[list[Sample]]]]:
    """Run a collector that imports ``history``; the stored import batches by source."""
    col = Collector(site, connectors=[Idle()])
    stop = asyncio.Event()
    task = asyncio.create_task(col.run(stop, history=history, history_end_ns=end_ns))
    await asyncio.wait_for(col.ready.wait(), 10)
    stop.set()
    await task
    with SqliteStore.open_readonly(site.resolve(site.storage.path)) as ro:  # type: ignore[union-attr]
        stored = {
            src: [list(b.samples) for b in ro.batches_for(src)]
            for src in ro.sources()
            if src.startswith("import:")
        }
    return col, stored


def _history() -> list[Sample]:
    # m1.p out of time order; m2 ends earlier than m1
    return [
        *(Sample("m1", "e", t, float(t)) for t in range(100, 110)),
        Sample("m1", "p", 120, 1.0),
        Sample("m1", "p", 105, 2.0),
        *(Sample("m2", "e", t, 5.0) for t in range(100, 104)),
    ]


def _markers(stored: dict[str, list[list[Sample]]]) -> dict[tuple[str, str], Sample]:
    out: dict[tuple[str, str], Sample] = {}
    for batches in stored.values():
        for b in batches:
            for s in b:
                if s.status == IMPORT_END:
                    assert (s.device, s.point) not in out, "one marker per series"
                    out[(s.device, s.point)] = s
    return out


def _assert_bad(s: Sample) -> None:
    assert math.isnan(s.value)
    assert s.quality == Quality.BAD


async def test_collector_import_ends_each_series_at_the_range_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "IMPORT_CHUNK", 4)  # several chunks: markers join the last one
    col, stored = await _import(site_for(tmp_path), iter(_history()), end_ns=1000)
    assert set(stored) == {"import:m1", "import:m2"}
    markers = _markers(stored)
    assert set(markers) == {("m1", "e"), ("m1", "p"), ("m2", "e")}
    for (device, _point), m in markers.items():
        _assert_bad(m)
        assert m.ts == 1000
        # in the import's own source, in its device's last batch (no extra batch)
        assert m in stored[f"import:{device}"][-1]
    # every imported sample is stored besides the markers, nothing else
    data = [s for b in stored.values() for batch in b for s in batch if s.status != IMPORT_END]
    assert sorted(data, key=lambda s: (s.device, s.point, s.ts)) == sorted(
        _history(), key=lambda s: (s.device, s.point, s.ts)
    )
    assert col.imported_batches == sum(len(b) for b in stored.values())


async def test_collector_import_without_end_closes_each_series_after_its_last_sample(
    tmp_path: Path,
) -> None:
    _, stored = await _import(site_for(tmp_path), iter(_history()), end_ns=None)
    markers = _markers(stored)
    assert {k: m.ts for k, m in markers.items()} == {
        ("m1", "e"): 110,
        ("m1", "p"): 121,  # the newest sample, not the last one given
        ("m2", "e"): 104,
    }
    for m in markers.values():
        _assert_bad(m)


async def test_an_end_inside_the_data_never_puts_a_marker_before_a_sample(tmp_path: Path) -> None:
    _, stored = await _import(site_for(tmp_path), iter(_history()), end_ns=106)
    ts = {k: m.ts for k, m in _markers(stored).items()}
    assert ts == {("m1", "e"): 110, ("m1", "p"): 121, ("m2", "e"): 106}


async def test_an_empty_import_writes_nothing(tmp_path: Path) -> None:
    col, stored = await _import(site_for(tmp_path), iter([]), end_ns=1000)
    assert stored == {}
    assert col.imported_batches == 0


def test_import_end_markers() -> None:
    ms = import_end_markers({("a", "x"): 5, ("b", "y"): 9}, None)
    assert [(m.device, m.point, m.ts, m.status) for m in ms] == [
        ("a", "x", 6, IMPORT_END),
        ("b", "y", 10, IMPORT_END),
    ]
    assert all(math.isnan(m.value) and m.quality == Quality.BAD for m in ms)
    assert [m.ts for m in import_end_markers({("a", "x"): 5}, 50)] == [50]
    assert import_end_markers({}, 50) == []


def _demo_site(tmp_path: Path) -> Path:
    text = DEMO.read_text(encoding="utf-8").replace("../../demo-data/", "data/")
    site = tmp_path / "site.yaml"
    site.write_text(text, encoding="utf-8")
    return site


def test_import_meters_closes_every_series_at_the_files_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = _demo_site(tmp_path)
    csv = tmp_path / "m.csv"
    csv.write_text(
        "device,point,ts,value\n"
        "meter1,energy,2025-03-03T08:00:00,1.0\n"
        "cnc1,state,2025-03-03T08:00:00,0\n"
        "meter1,energy,2025-03-03T09:00:00,2.5\n"
        "cnc1,state,2025-03-03T08:30:00,3\n"
        "meter1,energy,2025-03-03T08:30:00,1.5\n",
        encoding="utf-8",
    )
    assert main(["import", "meters", str(csv), "-c", str(site)]) == 0
    out = capsys.readouterr().out
    assert "imported 5 samples of 2 points" in out
    assert "import_end sample (2) at the file's end" in out
    with SqliteStore.open_readonly(tmp_path / "data" / "shopfloor.db") as ro:
        meter = [s for b in ro.batches_for("import:meter1") for s in b.samples]
        cnc = [s for b in ro.batches_for("import:cnc1") for s in b.samples]
        energy = ro.read("meter1", "energy", 0, 2**62)
    assert [s.value for s in meter[:-1]] == [1.0, 1.5, 2.5]
    file_end = max(s.ts for s in meter + cnc if s.status != IMPORT_END) + 1
    for samples in (meter, cnc):
        *data, end = samples
        assert end.status == IMPORT_END
        _assert_bad(end)
        # at the FILE's end, not at the series' own last sample: the state log's last
        # change (08:30) holds until the file's end (09:00)
        assert end.ts == file_end
        assert all(s.status == "" and s.quality == Quality.GOOD for s in data)
    # what a reader of the series sees: the data, then the bad marker
    assert energy.quality.tolist() == [0, 0, 0, 2]
    assert math.isnan(float(energy.values[-1]))


def test_a_bad_meter_file_writes_no_marker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = _demo_site(tmp_path)
    csv = tmp_path / "bad.csv"
    csv.write_text(
        "device,point,ts,value\nmeter1,energy,2025-03-03T08:00:00,1.0\nnope,energy,x,1\n",
        encoding="utf-8",
    )
    assert main(["import", "meters", str(csv), "-c", str(site)]) == 2
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "data" / "shopfloor.db").exists()


def test_import_meters_end_option_and_an_end_inside_the_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = _demo_site(tmp_path)
    csv = tmp_path / "m.csv"
    csv.write_text(
        "device,point,ts,value\n"
        "meter1,energy,2025-03-03T08:00:00,1.0\n"
        "cnc1,state,2025-03-03T08:00:00,0\n"
        "meter1,energy,2025-03-03T09:00:00,2.5\n",
        encoding="utf-8",
    )
    assert main(["import", "meters", str(csv), "-c", str(site), "--end", "2025-03-03T08:30"]) == 2
    assert "--end is not after the file's latest timestamp" in capsys.readouterr().err
    assert main(["import", "meters", str(csv), "-c", str(site), "--end", "2025-03-04"]) == 0
    capsys.readouterr()
    with SqliteStore.open_readonly(tmp_path / "data" / "shopfloor.db") as ro:
        ends = [
            s.ts
            for src in ("import:meter1", "import:cnc1")
            for b in ro.batches_for(src)
            for s in b.samples
            if s.status == IMPORT_END
        ]
    # 2025-03-04 00:00 Asia/Shanghai
    assert ends == [1741017600 * 10**9] * 2
