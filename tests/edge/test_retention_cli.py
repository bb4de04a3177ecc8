"""``shopfloor store retain``: a real pass on a site's files, a dry run, and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.base import Quality, Sample
from edge.cli.main import main
from edge.store.archive_reader import ArchiveReader
from edge.store.base import Batch
from edge.store.ledger import Ledger
from edge.store.sqlite import SqliteStore

T0 = 1_577_836_800 * 10**9  # 2020-01-01: older than a day whenever the test runs
H = 3600 * 10**9


def _site(tmp_path: Path, extra: str = "  raw_retention_days: 1\n") -> Path:
    p = tmp_path / "site.yaml"
    p.write_text(
        "site: {id: s, name: s}\n"
        "storage:\n  kind: sqlite\n  path: data/store.db\n" + extra + "evidence:\n"
        "  enabled: true\n  ledger_path: data/ledger.db\n",
        encoding="utf-8",
    )
    return p


def _fill(tmp_path: Path, logged: int = 3) -> list[Batch]:
    batches = [
        Batch("m", k, tuple(Sample("m", "p", T0 + k * H, float(k), Quality.GOOD, "") for _ in (0,)))
        for k in (1, 2, 3)
    ]
    with SqliteStore(tmp_path / "data" / "store.db") as store:
        store.write_batches(batches)
    with Ledger(tmp_path / "data" / "ledger.db") as ledger:
        ledger.append_batches(batches[:logged], now_ns=T0)
    return batches


def test_retain_then_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = _site(tmp_path)
    _fill(tmp_path)
    assert main(["store", "retain", "-c", str(site), "--dry-run", "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert (dry["dry_run"], dry["samples_removed"], dry["chunks_removed"]) == (True, 3, 3)
    assert main(["store", "retain", "-c", str(site), "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert (done["samples_removed"], done["blocked_by"]) == (3, None)
    assert done["totals"]["retention_samples_removed"] == 3
    assert main(["store", "retain", "-c", str(site)]) == 0
    assert capsys.readouterr().out.startswith("removed 0 raw samples in 0 chunks")
    with (
        SqliteStore.open_readonly(tmp_path / "data" / "store.db") as store,
        Ledger.open_readonly(tmp_path / "data" / "ledger.db") as ledger,
    ):
        assert len(store.read("m", "p", 0, T0 + 9 * H)) == 0
        got = ArchiveReader(store, ledger).read("m", "p", T0 + 2 * H, T0 + 9 * H, prior=True)
        assert got.values.tolist() == [1.0, 2.0, 3.0]


def test_unlogged_batch_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = _site(tmp_path)
    _fill(tmp_path, logged=1)
    assert main(["store", "retain", "-c", str(site)]) == 0
    out = capsys.readouterr().out
    assert "removed 1 raw samples in 1 chunks" in out
    assert "held back by batch m#2" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("", "storage.raw_retention_days is not set"),
        ("  raw_retention_days: 0\n", "error:"),
    ],
)
def test_refusals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, message: str
) -> None:
    site = _site(tmp_path, extra)
    _fill(tmp_path)
    assert main(["store", "retain", "-c", str(site)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_no_ledger_never_deletes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = _site(tmp_path)
    with SqliteStore(tmp_path / "data" / "store.db") as store:
        store.write_batches([Batch("m", 1, (Sample("m", "p", T0, 1.0, Quality.GOOD, ""),))])
    assert main(["store", "retain", "-c", str(site)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {site}: no evidence ledger: raw samples are never removed"
    )
    with SqliteStore.open_readonly(tmp_path / "data" / "store.db") as store:
        assert len(store.read("m", "p", 0, T0 + H)) == 1
