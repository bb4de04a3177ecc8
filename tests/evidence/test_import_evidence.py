"""Imports are evidence: ``shopfloor import meters`` logs the imported batches and an ``import``
leaf (file name, SHA-256) in the ledger, they reach the bundle, and a reviewer holding the file
detects a change of its content. Provenance comes from the recorded batches, not from flags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge.cli.main import main
from edge.store.ledger import Ledger
from metrics.evidence import canonical
from tests.evidence import factory

EVIDENCE_LINES = """
storage: {kind: sqlite, path: store.db}
evidence: {ledger_path: ledger.db, key_dir: keys}
"""
DAY = "2026-01-12"


def _meter_csv(path: Path, *, daily: bool = False) -> bytes:
    """meter1/energy: hourly readings over DAY, or daily readings at midnight for January."""
    rows = ["device,point,ts,value"]
    if daily:
        rows += [f"meter1,energy,2026-01-{d:02d}T00:00:00,{1000 + 100 * d}" for d in range(1, 32)]
        rows.append("meter1,energy,2026-02-01T00:00:00,4200")
    else:
        rows += [f"meter1,energy,{DAY}T{h:02d}:00:00,{20000 + 2.5 * h}" for h in range(24)]
        rows.append(f"meter1,energy,2026-01-13T00:00:00,{20000 + 2.5 * 24}")
    raw = ("\n".join(rows) + "\n").encode("utf-8")
    path.write_bytes(raw)
    return raw


def _site(tmp: Path) -> Path:
    p = tmp / "site.yaml"
    p.write_text(factory.SITE_YAML + EVIDENCE_LINES, encoding="utf-8")
    return p


def _trust(tmp: Path, site: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert main(["keys", "trust", "-c", str(site), "--not-before", "2020-01-01T00:00:00Z"]) == 0
    entry = json.loads(capsys.readouterr().out)
    t = tmp / "trust.json"
    t.write_text(json.dumps({"version": 1, "keys": [entry]}), encoding="utf-8")
    return t


def test_import_reaches_the_ledger_and_the_bundle_and_a_changed_file_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    factory.build(tmp_path)
    with Ledger.open_readonly(tmp_path / "ledger.db") as led:
        before = led.last_seq("import:meter1")  # the factory's own imported history
    site = _site(tmp_path)
    csv = tmp_path / "meters-2026-01.csv"
    raw = _meter_csv(csv)
    assert main(["import", "meters", str(csv), "-c", str(site)]) == 0
    out = capsys.readouterr().out
    assert "into the store and the evidence ledger" in out
    assert canonical.sha256_hex(raw) in out
    with Ledger.open_readonly(tmp_path / "ledger.db") as led:
        imp = led.leaves(kind="import")
        assert len(imp) == 1
        rec = canonical.parse_canonical(imp[0].record, "import leaf")
        logged = led.leaves(kind="batch", source="import:meter1")
    assert rec["file"] == csv.name  # the name, no folder
    assert rec["sha256"] == canonical.sha256_hex(raw)
    assert rec["provenance"] == "imported"
    seqs = [lf.seq for lf in logged if (lf.seq or 0) > before]
    assert rec["batches"]["import:meter1"] == [before + 1, max(seqs)]
    assert all(lf.idx < imp[0].idx for lf in logged)  # the batches, then the record of them

    trust = _trust(tmp_path, site, capsys)
    out_zip = tmp_path / "b.zip"
    rc = main(["export", "-c", str(site), "--baseline", f"{DAY}..{DAY}",
               "--current", factory.CURRENT, "-o", str(out_zip)])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    capsys.readouterr()
    rc = main(["verify", str(out_zip), "--trust", str(trust), "--import-file", str(csv), "--json"])
    rep: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert rc == 0, [c for c in rep["checks"] if not c["ok"]]
    imports = [c for c in rep["checks"] if c["check"] == "import"]
    assert len(imports) == 1
    assert csv.name in imports[0]["reason"]
    assert any(c["check"] == "import file" and c["ok"] for c in rep["checks"])
    energy = next(k for k in rep["kpis"] if k["id"] == "energy_per_value")
    assert energy["ok"]
    assert energy["provenance"] != "measured"
    # the imported batches are in the bundle, and the baseline is labelled imported
    # without any --baseline-imported flag
    from metrics.evidence import bundle

    files = bundle.read_files(out_zip.read_bytes())
    leaves = bundle.decode_leaves(files[bundle.LEAVES], files[bundle.SAMPLES])
    sources = {json.loads(lf.record).get("source") for lf in leaves}
    assert "import:meter1" in sources
    env = json.loads(files[bundle.ENVELOPE])
    payload = json.loads(canonical_b64(env["payload"]))
    assert payload["periods"]["baseline"]["imported"] is True

    # the reviewer's copy of the file differs by one reading: verification fails
    csv.write_bytes(raw.replace(b"20005.0", b"20004.0"))
    assert main(["verify", str(out_zip), "--trust", str(trust), "--import-file", str(csv)]) == 1
    text = capsys.readouterr().out
    assert "content changed after its import" in text
    other = tmp_path / "other.csv"
    other.write_bytes(b"device,point,ts,value\n")
    assert main(["verify", str(out_zip), "--trust", str(trust), "--import-file", str(other)]) == 1
    assert "no import leaf of the bundle records this file" in capsys.readouterr().out
    assert main(["verify", str(out_zip), "--trust", str(trust), "--import-file", "nope.csv"]) == 2


def canonical_b64(text: str) -> bytes:
    from metrics.evidence import dsse

    return dsse.b64decode_strict(text, "payload")


def _kpi_json(site: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> dict[str, Any]:
    rc = main(["kpi", "-c", str(site), "--baseline", "2026-01-01..2026-01-31",
               "--current", "2026-03-01..2026-03-01", "--json", *flags])  # fmt: skip
    assert rc == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def test_forgetting_the_flag_no_longer_flatters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Daily meter readings imported for January: without --baseline-imported the energy per
    output value used to be 0.0 (every daily step dropped as a data gap). Provenance now comes
    from the batches' source, so the flag changes nothing."""
    site = _site(tmp_path)
    csv = tmp_path / "daily.csv"
    _meter_csv(csv, daily=True)
    assert main(["import", "meters", str(csv), "-c", str(site)]) == 0
    capsys.readouterr()
    plain = _kpi_json(site, capsys)
    flagged = _kpi_json(site, capsys, "--baseline-imported")
    capsys.readouterr()
    row = next(r for r in plain["rows"] if r["id"] == "energy_per_value")
    assert row["before"]["value"] is not None
    assert float(row["before"]["value"]) > 0
    assert plain["baseline_imported"] is True
    inputs = {i["name"]: i for i in row["before"]["inputs"]}
    assert any(i["provenance"] == "imported" for i in inputs.values()), inputs
    assert plain["rows"] == flagged["rows"]


def test_deprecated_flags_warn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = _site(tmp_path)
    csv = tmp_path / "daily.csv"
    _meter_csv(csv, daily=True)
    assert main(["import", "meters", str(csv), "-c", str(site)]) == 0
    capsys.readouterr()
    rc = main(["kpi", "-c", str(site), "--baseline", "2026-01-01..2026-01-31",
               "--current", "2026-03-01..2026-03-01", "--baseline-imported",
               "--current-imported"])  # fmt: skip
    assert rc == 0
    err = capsys.readouterr().err
    assert "--baseline-imported is deprecated" in err
    # the current period has no imported batch: the flag contradicts the data
    assert "--current-imported is deprecated and ignored" in err
