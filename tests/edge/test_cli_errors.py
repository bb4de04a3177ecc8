"""Failures a user has met, through the real ``shopfloor`` command in a subprocess: each prints
one clear line on stderr, exits non-zero and never shows a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.base import Sample
from edge.store.base import Batch
from edge.store.sqlite import SqliteStore
from tests.evidence import factory
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]

MODBUS_SITE = """\
site: {{id: t, name: T}}
storage: {{kind: sqlite, path: s.db}}
gateway: {{users_db: users.db, port: {gw_port}}}
devices:
  - id: meter1
    name: M1
    modbus: {{host: 127.0.0.1, port: {port}, unit: 1}}
    points:
      - {{id: energy, role: energy_kwh, modbus: {{table: holding, address: 0, order: CDAB}}}}
"""


def shopfloor(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "edge.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed command (asserting there is exactly one)."""
    assert r.returncode != 0, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port some other program listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", free_port()))
        s.listen()
        yield int(s.getsockname()[1])


def test_export_into_a_missing_folder(tmp_path: Path) -> None:
    factory.build(tmp_path)
    site = tmp_path / "site.yaml"
    site.write_text(
        factory.SITE_YAML + "storage: {kind: sqlite, path: store.db}\n"
        "evidence: {ledger_path: ledger.db, key_dir: keys}\n",
        encoding="utf-8",
    )
    out = tmp_path / "no-such-folder" / "bundle.zip"
    r = shopfloor(
        "export", "-c", str(site), "--baseline", factory.BASELINE,
        "--current", factory.CURRENT, "--baseline-imported", "-o", str(out),
    )  # fmt: skip
    line = one_error_line(r)
    assert str(out.parent) in line
    assert "does not exist" in line
    assert not out.parent.exists()


def test_sim_on_a_taken_port(tmp_path: Path, taken_port: int) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(MODBUS_SITE.format(port=taken_port, gw_port=free_port()), encoding="utf-8")
    r = shopfloor("sim", "-c", str(site), "--duration", "5")
    line = one_error_line(r)
    assert f"127.0.0.1:{taken_port}" in line
    assert "in use" in line.lower()


def test_serve_on_a_taken_port(tmp_path: Path, taken_port: int) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(MODBUS_SITE.format(port=free_port(), gw_port=taken_port), encoding="utf-8")
    r = shopfloor("serve", "-c", str(site))
    line = one_error_line(r)
    assert f"127.0.0.1:{taken_port}" in line
    assert "in use" in line.lower()
    assert "serving" not in r.stdout, "no claim to serve before the port is held"


def test_serve_with_a_missing_certificate(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(MODBUS_SITE.format(port=free_port(), gw_port=free_port()), encoding="utf-8")
    missing = str(tmp_path / "missing.pem")
    line = one_error_line(shopfloor("serve", "-c", str(site), "--cert", missing, "--key", missing))
    assert "--cert" in line


def test_config_nested_500_deep(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("site:\n" + "".join("  " * (i + 1) + "k:\n" for i in range(500)))
    line = one_error_line(shopfloor("tail", "-c", str(deep)))
    assert f"{deep}:" in line
    assert "nested deeper than" in line
    flow = tmp_path / "flow.yaml"
    flow.write_text("site: " + "[" * 500 + "]" * 500 + "\n")
    assert "nested deeper than" in one_error_line(shopfloor("tail", "-c", str(flow)))


def test_duplicate_top_level_key_is_refused_with_file_line_and_key(tmp_path: Path) -> None:
    text = MODBUS_SITE.format(port=free_port(), gw_port=free_port())
    dup = tmp_path / "dup.yaml"
    dup.write_text(text + "site: {id: other, name: Other}\n", encoding="utf-8")
    last = len(text.splitlines()) + 1
    line = one_error_line(shopfloor("tail", "-c", str(dup)))
    assert line == f"error: {dup}:{last}: duplicate key 'site' (first at line 1)"


def test_tail_full_precision(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store = SqliteStore(db)
    try:
        ts = 1_767_225_600 * 10**9
        samples = (Sample("m", "a", ts, 1234567.891011), Sample("m", "b", ts, 0.1 + 0.2))
        store.write_batches([Batch("m", 1, samples)])
    finally:
        store.close()
    short = shopfloor("tail", "--db", str(db))
    full = shopfloor("tail", "--db", str(db), "--full")
    assert short.returncode == full.returncode == 0, short.stderr + full.stderr
    assert "1.23457e+06" in short.stdout
    assert "1234567.891011" in full.stdout
    assert "0.30000000000000004" in full.stdout
    assert "0.30000000000000004" not in short.stdout
