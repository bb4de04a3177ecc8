"""``shopfloor import meters`` on bad files, through the real command in a subprocess: one clear
line per problem (file:line), a non-zero exit, never a traceback, and nothing imported; the time
column headed ``timestamp``; import-only devices (no connection, no protocol block); ``tail``
naming what was imported."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.loader import load_site
from connectors.registry import build_connectors
from edge.store.sqlite import SqliteStore
from gateway.views import device_out
from tests.edge.test_cli_errors import shopfloor

SITE = """\
site: {id: t, name: T}
storage: {kind: sqlite, path: s.db}
evidence: {enabled: false}
devices:
  - id: meter1
    name: M1
    modbus: {host: 127.0.0.1, port: 1502, unit: 1}
    points:
      - {id: energy, role: energy_kwh, modbus: {table: holding, address: 0, order: CDAB}}
  - id: old
    name: 旧电表
    import_only: true
    points:
      - {id: energy, name: 有功电能, role: energy_kwh}
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(SITE, encoding="utf-8")
    return path


def _import(site: Path, body: str) -> tuple[int, list[str], str]:
    csv = site.parent / "m.csv"
    csv.write_text(body, encoding="utf-8")
    r = shopfloor("import", "meters", csv.name, "-c", str(site), cwd=site.parent)
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    return r.returncode, [x for x in r.stderr.splitlines() if x.strip()], r.stdout


def _stored(site: Path) -> int:
    db = site.parent / "s.db"
    if not db.exists():
        return 0
    store = SqliteStore.open_readonly(db)
    try:
        return len(store.series())
    finally:
        store.close()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "device,point,ts,value,extra\nmeter1,energy,2025-01-01T00:00,1,x\n",
            "m.csv:1: unknown column(s) 'extra'",
        ),
        (
            "device,point,ts,value\nmeter1,energy,2025-01-01T00:00,1\n"
            "meter1,energy,2025-01-01T01:00,2,x\n",
            "m.csv:3: 5 fields, the header has 4",
        ),
        (
            "device,point,ts,value\nmeter1,energy,2025-01-01T00:00,1\n"
            "meter1,energy,1500-01-01T00:00,2\n",
            "m.csv:3: ts '1500-01-01T00:00' lies outside 1678..2261",
        ),
        (
            "device,point,timestamp,value\nmeter1,energy,3000-06-01T00:00,1\n",
            "m.csv:2: ts '3000-06-01T00:00' lies outside 1678..2261",
        ),
        ("device,point,ts,value\nmeter1,energy,1e30,1\n", "m.csv:2: ts '1e30' lies outside"),
        (
            "device,point,ts,timestamp,value\nmeter1,energy,1,2,3\n",
            "m.csv:1: both ts and timestamp columns",
        ),
    ],
)
def test_one_line_per_problem_and_nothing_imported(site: Path, body: str, expected: str) -> None:
    code, lines, _ = _import(site, body)
    assert code != 0
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines[0]
    assert expected in lines[0], lines[0]
    assert _stored(site) == 0


def test_every_problem_listed_each_on_its_line(site: Path) -> None:
    body = (
        "device,point,ts,value\n"
        "meter1,energy,1500-01-01T00:00,1\n"
        "meter1,energy,2025-01-01T00:00,1,x\n"
        "meter1,energy,3000-01-01T00:00,1\n"
    )
    code, lines, _ = _import(site, body)
    assert code != 0
    assert [line.split(": ")[1] for line in lines] == ["m.csv:2", "m.csv:3", "m.csv:4"]
    assert _stored(site) == 0


def test_timestamp_header_and_an_import_only_device(site: Path) -> None:
    body = (
        "device,point,timestamp,value\n"
        "old,energy,2025-01-01T00:00,10\n"
        "old,energy,2025-01-01T01:00,12.5\n"
    )
    code, lines, out = _import(site, body)
    assert code == 0, lines
    assert "imported 2 samples of 1 points" in out
    store = SqliteStore.open_readonly(site.parent / "s.db")
    try:
        assert store.series() == [("old", "energy")]
        got = store.read("old", "energy", 0, 2**62)
    finally:
        store.close()
    assert got.values[got.quality == 0].tolist() == [10.0, 12.5]
    # tail names the series from the site file, the raw ids beside
    r = shopfloor("tail", "-c", str(site), "--full")
    assert r.returncode == 0, r.stderr
    (row,) = [line for line in r.stdout.splitlines() if "(old)" in line]
    assert row.startswith("旧电表 (old)  有功电能 (energy)  "), row
    assert "import_end" in row


def test_import_only_device_checked_and_left_alone_by_collector_and_gateway(site: Path) -> None:
    r = shopfloor("config", "check", str(site))
    assert r.returncode == 0, r.stderr
    loaded = load_site(site)
    old = loaded.device("old")
    assert old.protocol is None
    # only meter1 gets a connector; the gateway names the import-only device's source
    (conn,) = build_connectors(loaded)
    assert list(conn.devices) == ["meter1"]
    assert device_out(old, None).protocol == "import"


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        (
            "  - id: old\n    name: O\n    points: [{id: e, role: energy_kwh}]\n",
            "give exactly one protocol block",
        ),
        (
            "  - id: old\n    name: O\n    import_only: true\n"
            "    modbus: {host: 127.0.0.1, port: 1502, unit: 1}\n    points: []\n",
            "an import_only device has no protocol block",
        ),
        (
            "  - id: old\n    name: O\n    import_only: true\n    points:\n"
            "      - {id: e, role: energy_kwh, modbus: {table: holding, address: 0}}\n",
            "'modbus' block on an import_only device",
        ),
    ],
)
def test_protocol_blocks_checked(tmp_path: Path, device: str, expected: str) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("site: {id: t, name: T}\ndevices:\n" + device, encoding="utf-8")
    r = shopfloor("config", "check", str(path))
    assert r.returncode != 0
    assert "Traceback" not in r.stderr + r.stdout
    assert expected in r.stderr, r.stderr
