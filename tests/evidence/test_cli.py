"""The evidence CLI end to end (keys, checkpoint, witness, export, verify) and the collector
logging batches into the ledger and issuing checkpoints."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from config.loader import load_site, load_site_text
from connectors.base import Sample, Sink
from edge.cli.main import main
from edge.runtime import Collector
from edge.store.ledger import Ledger
from edge.store.sqlite import SqliteStore
from metrics.evidence import bundle, canonical, note
from tests.evidence import factory

EVIDENCE_LINES = """
storage: {kind: sqlite, path: store.db}
evidence: {ledger_path: ledger.db, key_dir: keys, checkpoint_interval_s: 0.05}
"""


def _site_file(tmp: Path) -> Path:
    p = tmp / "site.yaml"
    p.write_text(factory.SITE_YAML + EVIDENCE_LINES, encoding="utf-8")
    return p


def test_cli_export_verify_and_witness(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    built = factory.build(tmp_path)
    site = str(_site_file(tmp_path))
    # the reviewer's trust.json, from 'keys trust' output (gateway) and the witness key
    assert main(["keys", "trust", "-c", site, "--not-before", "2020-01-01T00:00:00Z"]) == 0
    gw_entry = json.loads(capsys.readouterr().out)
    assert gw_entry["role"] == "gateway"
    wstate = tmp_path / "witness"
    assert main(["witness", "init", "--state", str(wstate), "--name", "reg.example/w2"]) == 0
    assert main(["witness", "add-log", "--state", str(wstate), gw_entry["key"]]) == 0
    assert main(["keys", "trust", "--dir", str(wstate / "key")]) == 0
    out = capsys.readouterr().out
    w_entry = json.loads(out[out.index("{") :])
    assert w_entry["role"] == "witness"
    trust = tmp_path / "trust.json"
    trust.write_text(json.dumps({"version": 1, "keys": [gw_entry, w_entry]}), encoding="utf-8")

    # first checkpoint: witnessed on first sight; then the log grows and the witness needs a
    # consistency proof from the size it saw
    cp1 = tmp_path / "cp1.txt"
    assert main(["checkpoint", "-c", site, "-o", str(cp1)]) == 0
    assert main(["witness", "cosign", str(cp1), "--state", str(wstate), "-o", str(cp1)]) == 0
    size1 = note.Checkpoint.parse_text(note.parse_note(cp1.read_text()).text).size
    with Ledger(built.ledger_path) as led:
        led.append_special("clock", {"synchronised": True})
    cp2, proof = tmp_path / "cp2.txt", tmp_path / "proof.txt"
    assert main(["checkpoint", "-c", site, "-o", str(cp2), "--consistency-from", str(size1),
                 "--proof-out", str(proof)]) == 0  # fmt: skip
    assert main(["witness", "cosign", str(cp2), "--state", str(wstate), "-o", str(cp2)]) == 2
    assert "consistency proof" in capsys.readouterr().err
    assert main(["witness", "cosign", str(cp2), "--proof", str(proof), "--state", str(wstate),
                 "-o", str(cp2)]) == 0  # fmt: skip
    assert main(["checkpoint", "-c", site, "--add-cosigned", str(cp2)]) == 0
    # a forged proof is refused
    forged = proof.read_text().replace(proof.read_text().split("\n")[1], note.b64(b"\x00" * 32))
    proof.write_text(forged)
    with Ledger(built.ledger_path) as led:
        led.append_special("clock", {"synchronised": True})
    cp3 = tmp_path / "cp3.txt"
    assert main(["checkpoint", "-c", site, "-o", str(cp3)]) == 0
    assert main(["witness", "cosign", str(cp3), "--proof", str(proof), "--state", str(wstate)]) == 2
    capsys.readouterr()

    out_zip = tmp_path / "bundle.zip"
    rc = main(["export", "-c", site, "--baseline", factory.BASELINE, "--current", factory.CURRENT,
               "-o", str(out_zip), "--baseline-imported"])  # fmt: skip
    assert rc == 0
    assert "verify with" in capsys.readouterr().out
    assert main(["verify", str(out_zip), "--trust", str(trust)]) == 0
    text = capsys.readouterr().out
    assert "ALL CHECKS PASSED" in text
    assert "reg.example/w2 cosigned" in text
    assert main(["verify", str(out_zip), "--trust", str(trust), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["ok"] is True
    assert {k["status"] for k in rep["kpis"]} == {"recomputed", "declared"}

    # tampered bundle: exit 1 with the reason; unreadable trust: exit 2
    files = bundle.read_files(out_zip.read_bytes())
    files[bundle.TABLE_CSV] = files[bundle.TABLE_CSV].replace(b"1", b"2", 1)
    bad = tmp_path / "bad.zip"
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k, v in files.items():
            zf.writestr(k, v)
    bad.write_bytes(buf.getvalue())
    assert main(["verify", str(bad), "--trust", str(trust)]) == 1
    assert "table.csv" in capsys.readouterr().out
    (tmp_path / "t2.json").write_text("{}")
    assert main(["verify", str(out_zip), "--trust", str(tmp_path / "t2.json")]) == 2
    assert main(["verify", str(tmp_path / "none.zip"), "--trust", str(trust)]) == 2
    assert main(["export", "-c", site, "--baseline", "junk", "--current", factory.CURRENT,
                 "-o", str(out_zip)]) == 2  # fmt: skip


def test_cli_keys_init_show_rotate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = _site_file(tmp_path)
    assert main(["keys", "init", "-c", str(site)]) == 0
    assert "shopfloor.local/tiny" in capsys.readouterr().out
    assert main(["keys", "init", "-c", str(site)]) == 2
    assert "exists already" in capsys.readouterr().err
    assert main(["keys", "show", "-c", str(site)]) == 0
    shown = capsys.readouterr().out
    assert "mode 0600" in shown
    assert main(["keys", "rotate", "-c", str(site)]) == 0
    assert "rotation leaf 0" in capsys.readouterr().out
    with Ledger(tmp_path / "ledger.db") as led:
        rec = canonical.parse_canonical(led.leaf(0).record, "r")
    assert rec["kind"] == "key_rotation"
    old = note.Verifier.parse(rec["old"])
    from edge.store.keys import check_rotation

    assert str(check_rotation(rec["statement"], old)) == rec["new"]
    assert main(["keys", "show"]) == 2
    assert main(["keys", "show", "--dir", str(tmp_path / "nowhere")]) == 2


class _Steady:
    """A connector of our own contract: a few samples, then idle until cancelled."""

    name = "steady"
    devices = ("cnc1",)

    async def run(self, sink: Sink) -> None:
        t = 1_700_000_000_000_000_000
        for i in range(50):
            sink.put(Sample("cnc1", "good", t + i * 10**9, float(i)))
            await asyncio.sleep(0)
        await asyncio.Event().wait()


async def test_collector_logs_batches_and_issues_checkpoints(tmp_path: Path) -> None:
    site_path = _site_file(tmp_path)
    site = load_site(site_path)
    assert main(["keys", "init", "-c", str(site_path)]) == 0
    stop = asyncio.Event()
    col = Collector(site, connectors=[_Steady()])
    task = asyncio.create_task(col.run(stop))
    deadline = asyncio.get_running_loop().time() + 10
    while asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
        with Ledger(tmp_path / "ledger.db") as led:
            if led.checkpoints() and led.last_seq("cnc1") >= 1:
                break
    stop.set()
    await task
    with Ledger(tmp_path / "ledger.db") as led:
        kinds = {lf.kind for lf in led.leaves()}
        assert {"config", "formula", "clock", "batch"} <= kinds
        latest = led.latest_checkpoint()
        assert latest is not None
        assert latest.size == led.size  # the final checkpoint covers everything stored
        n = sum(lf.count or 0 for lf in led.leaves(kind="batch") if lf.source == "cnc1")
        # the collector's heartbeat series is logged like any batch (source _gateway)
        assert any(lf.source == "_gateway" for lf in led.leaves(kind="batch"))
    store = SqliteStore.open_readonly(tmp_path / "store.db")
    try:
        assert len(store.read("cnc1", "good", 0, 2**62)) == n == 50
    finally:
        store.close()


def test_collector_without_a_key_still_logs(tmp_path: Path) -> None:
    site = load_site_text(factory.SITE_YAML + EVIDENCE_LINES, "x").with_source_dir(tmp_path)

    async def go() -> None:
        stop = asyncio.Event()
        col = Collector(site, connectors=[_Steady()])
        task = asyncio.create_task(col.run(stop))
        await asyncio.sleep(0.4)
        stop.set()
        await task

    asyncio.run(go())
    with Ledger(tmp_path / "ledger.db") as led:
        assert led.last_seq("cnc1") >= 1
        assert led.checkpoints() == []
