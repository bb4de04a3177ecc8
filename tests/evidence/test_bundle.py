"""Round trip on a small factory (writer -> SQLite store -> ledger -> export -> verify) and every
way a bundle can be broken: byte flips in every file, dropped / duplicated / reordered batches,
untrusted keys, keys outside their validity window, a re-signed table with a changed KPI."""

from __future__ import annotations

import io
import json
import random
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge.store.export import ExportResult, export_bundle
from edge.store.ledger import Ledger
from edge.store.sqlite import SqliteStore
from metrics.evidence import bundle, canonical, dsse, note, snapshot
from metrics.evidence.trust import TrustedKey, make_trust
from metrics.evidence.verify import Report, verify_bundle
from tests.evidence import factory


@dataclass
class Exported:
    built: factory.Built
    result: ExportResult

    @property
    def data(self) -> bytes:
        return self.result.data


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    built = factory.build(tmp_path_factory.mktemp("bundle"))
    with Ledger(built.ledger_path) as led:
        store = SqliteStore.open_readonly(built.store_path)
        try:
            res = export_bundle(
                built.site, led, built.signer, built.baseline, built.current,
                store=store, baseline_imported=True,
            )  # fmt: skip
        finally:
            store.close()
    return Exported(built, res)


def files_of(data: bytes) -> dict[str, bytes]:
    return bundle.read_files(data)


def rezip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()


def payload_of(files: dict[str, bytes]) -> dict[str, Any]:
    env = json.loads(files[bundle.ENVELOPE])
    out: dict[str, Any] = json.loads(dsse.b64decode_strict(env["payload"], "payload"))
    return out


def resign(files: dict[str, bytes], payload: dict[str, Any], signer: note.Signer) -> None:
    files[bundle.ENVELOPE] = dsse.sign_envelope(
        canonical.canonical_json(payload), dsse.SNAPSHOT_TYPE, [signer]
    )


def failed(rep: Report) -> str:
    return "\n".join(f"{c.name} | {c.subject} | {c.reason}" for c in rep.failures()) + "\n".join(
        f"KPI {k.id} | {k.status} | {k.reason}" for k in rep.kpis if not k.ok
    )


def test_round_trip_verifies(exported: Exported) -> None:
    assert exported.result.warnings == []
    rep = verify_bundle(exported.data, exported.built.trust)
    assert rep.ok, failed(rep)
    status = {k.id: k.status for k in rep.kpis}
    assert status["oee"] == "recomputed"
    assert status["defect_rate"] == "recomputed"
    assert status["energy_per_value"] == "recomputed"
    assert status["output_value"] == "declared"
    assert rep.facts["samples"] > 1000
    files = files_of(exported.data)
    assert b"<svg" in files[bundle.REPORT]
    assert "设备综合利用率" in files[bundle.TABLE_CSV].decode("utf-8-sig")
    assert files[bundle.TABLE_XLSX][:2] == b"PK"
    # the machine-readable report says the same
    d = rep.to_dict()
    assert d["ok"] is True
    assert all(c["ok"] for c in d["checks"])
    assert "ALL CHECKS PASSED" in rep.to_text()


def _flip_positions(n: int, k: int, seed: int) -> list[int]:
    rnd = random.Random(seed)
    if n <= k:
        return list(range(n))
    return sorted({0, n - 1, *rnd.sample(range(n), k - 2)})


@pytest.mark.parametrize("name", bundle.FILES)
def test_flipping_any_byte_fails_naming_the_file(exported: Exported, name: str) -> None:
    files = files_of(exported.data)
    content = files[name]
    for pos in _flip_positions(len(content), 20, seed=len(name)):
        broken = dict(files)
        mutated = bytearray(content)
        mutated[pos] ^= 0x01
        broken[name] = bytes(mutated)
        rep = verify_bundle(rezip(broken), exported.built.trust)
        assert not rep.ok, f"flip at {name}:{pos} went unnoticed"
        named = [c for c in rep.failures() if name in c.subject or name in c.reason]
        assert named, f"flip at {name}:{pos}: no failure names {name}:\n{failed(rep)}"


def _leaves(files: dict[str, bytes]) -> list[bundle.BundleLeaf]:
    return list(bundle.decode_leaves(files[bundle.LEAVES], files[bundle.SAMPLES]))


def _put_leaves(files: dict[str, bytes], leaves: list[bundle.BundleLeaf]) -> None:
    files[bundle.LEAVES], files[bundle.SAMPLES] = bundle.encode_leaves(leaves)


def _batch_positions(leaves: list[bundle.BundleLeaf]) -> list[int]:
    return [i for i, lf in enumerate(leaves) if lf.samples is not None]


def test_dropping_a_batch_fails(exported: Exported) -> None:
    files = files_of(exported.data)
    leaves = _leaves(files)
    pos = _batch_positions(leaves)[3]
    dropped = leaves[pos].index
    del leaves[pos]
    _put_leaves(files, leaves)
    rep = verify_bundle(rezip(files), exported.built.trust)
    assert not rep.ok
    assert f"leaf {dropped} referenced by the snapshot is missing" in failed(rep)


def test_dropping_a_batch_and_resigning_still_fails_continuity(exported: Exported) -> None:
    """An insider with the gateway key removes a batch from the bundle and the snapshot."""
    files = files_of(exported.data)
    leaves = _leaves(files)
    payload = payload_of(files)
    # a batch in the middle of a source's run
    refs = payload["batches"]
    by_src: dict[str, list[dict[str, Any]]] = {}
    for r in refs:
        by_src.setdefault(r["source"], []).append(r)
    run = max(by_src.values(), key=len)
    victim = run[len(run) // 2]
    payload["batches"] = [r for r in refs if r["index"] != victim["index"]]
    _put_leaves(files, [lf for lf in leaves if lf.index != victim["index"]])
    resign(files, payload, exported.built.signer)
    rep = verify_bundle(rezip(files), exported.built.trust)
    assert not rep.ok
    assert "missing (removed) and no gap leaf records them" in failed(rep)


def test_duplicating_a_batch_fails(exported: Exported) -> None:
    files = files_of(exported.data)
    leaves = _leaves(files)
    pos = _batch_positions(leaves)[2]
    leaves.insert(pos + 1, leaves[pos])
    _put_leaves(files, leaves)
    rep = verify_bundle(rezip(files), exported.built.trust)
    assert not rep.ok
    assert "not in strictly increasing log order" in failed(rep)


def test_reordering_batches_fails(exported: Exported) -> None:
    files = files_of(exported.data)
    leaves = _leaves(files)
    a, b = _batch_positions(leaves)[1:3]
    leaves[a], leaves[b] = leaves[b], leaves[a]
    _put_leaves(files, leaves)
    rep = verify_bundle(rezip(files), exported.built.trust)
    assert "not in strictly increasing log order" in failed(rep)
    # swapping only the samples of two batches breaks both hashes
    leaves = _leaves(files_of(exported.data))
    la, lb = leaves[a], leaves[b]
    leaves[a] = bundle.BundleLeaf(la.index, la.record, la.proof, lb.samples)
    leaves[b] = bundle.BundleLeaf(lb.index, lb.record, lb.proof, la.samples)
    files = files_of(exported.data)
    _put_leaves(files, leaves)
    rep = verify_bundle(rezip(files), exported.built.trust)
    assert f"leaf {la.index}" in failed(rep)
    assert "samples do not match" in failed(rep)


def test_fabricated_batch_resigned_is_not_in_the_log(exported: Exported) -> None:
    files = files_of(exported.data)
    leaves = _leaves(files)
    payload = payload_of(files)
    pos = _batch_positions(leaves)[4]
    lf = leaves[pos]
    rec = canonical.parse_canonical(lf.record, "r")
    dec = canonical.decode_samples(lf.samples or b"")
    values = dec.values.copy()
    values[:] = values * 1.5
    devs = [dec.series[i][0] for i in dec.index]
    pts = [dec.series[i][1] for i in dec.index]
    data = canonical.encode_columns(devs, pts, dec.ts, values, dec.quality)
    rec["samples_sha256"] = canonical.sha256_hex(data)
    raw = canonical.canonical_json(rec)
    leaves[pos] = bundle.BundleLeaf(lf.index, raw, lf.proof, data)
    from metrics.evidence import merkle

    for r in payload["batches"]:
        if r["index"] == lf.index:
            r["leaf_hash"] = merkle.leaf_hash(raw).hex()
    _put_leaves(files, leaves)
    resign(files, payload, exported.built.signer)
    rep = verify_bundle(rezip(files), exported.built.trust)
    assert not rep.ok
    assert f"leaf {lf.index}" in failed(rep)
    assert "inclusion proof" in failed(rep)


def test_untrusted_key_fails(exported: Exported) -> None:
    stranger = note.Signer.generate("shopfloor.local/tiny")  # same name, other key
    trust = make_trust([TrustedKey("gateway", stranger.verifier)])
    rep = verify_bundle(exported.data, trust)
    assert not rep.ok
    text = failed(rep)
    assert "checkpoint.txt" in text
    assert "no trusted key" in text


def test_key_outside_validity_window_fails(exported: Exported) -> None:
    b = exported.built
    cp_time = exported.result.checkpoint.time
    assert cp_time is not None
    expired = make_trust(
        [TrustedKey("gateway", b.signer.verifier, None, cp_time - 86400),
         TrustedKey("witness", b.witness.verifier)]
    )  # fmt: skip
    rep = verify_bundle(exported.data, expired)
    assert not rep.ok
    assert any(c.name == "checkpoint key validity" and not c.ok for c in rep.checks)
    assert any(c.name == "snapshot key validity" and not c.ok for c in rep.checks)
    late_witness = make_trust(
        [TrustedKey("gateway", b.signer.verifier),
         TrustedKey("witness", b.witness.verifier, cp_time + 10**8, None)]
    )  # fmt: skip
    rep = verify_bundle(exported.data, late_witness)
    assert not rep.ok
    assert "0 of 1 required witness cosignatures" in failed(rep)


def test_missing_witness_fails_quorum_and_unknown_signatures_are_ignored(
    exported: Exported,
) -> None:
    b = exported.built
    files = files_of(exported.data)
    parsed = note.parse_note(files[bundle.CHECKPOINT])
    only_log = note.Note(
        parsed.text, tuple(s for s in parsed.signatures if s.name == b.signer.name)
    )
    files[bundle.CHECKPOINT] = only_log.render().encode()
    rep = verify_bundle(rezip(files), b.trust)
    assert "0 of 1 required witness cosignatures" in failed(rep)
    # a signature by some unknown key changes nothing
    other = note.Signer.generate("unknown.example/log")
    extra = note.sign_note(parsed.text, [other])
    files = files_of(exported.data)
    files[bundle.CHECKPOINT] = note.merge_signatures(
        files[bundle.CHECKPOINT].decode(), extra
    ).encode()
    rep = verify_bundle(rezip(files), b.trust)
    assert rep.ok, failed(rep)


def test_changed_kpi_resigned_by_trusted_key_fails_recomputation(exported: Exported) -> None:
    files = files_of(exported.data)
    payload = payload_of(files)
    for row in payload["kpi_table"]["rows"]:
        if row["id"] == "oee":
            row["after"]["value"] = canonical.decimal(float(row["after"]["value"]) + 7.5)
    resign(files, payload, exported.built.signer)
    rep = verify_bundle(rezip(files), exported.built.trust)
    assert not rep.ok
    oee = next(k for k in rep.kpis if k.id == "oee")
    assert oee.status == "mismatch"
    assert "after.value" in oee.reason
    # every check of signatures and proofs still passes: only the number is wrong
    assert all(c.ok for c in rep.checks if "signature" in c.name or c.name == "leaf")


def test_wrong_payload_type_and_garbage_bundles(exported: Exported) -> None:
    b = exported.built
    files = files_of(exported.data)
    payload = payload_of(files)
    files[bundle.ENVELOPE] = dsse.sign_envelope(
        canonical.canonical_json(payload), "application/json", [b.signer]
    )
    rep = verify_bundle(rezip(files), b.trust)
    assert "payload type" in failed(rep)
    assert not verify_bundle(b"not a zip", b.trust).ok
    files = files_of(exported.data)
    files["extra.txt"] = b"x"
    assert "unexpected file" in failed(verify_bundle(rezip(files), b.trust))
    del files["extra.txt"]
    del files[bundle.REPORT]
    assert "missing file" in failed(verify_bundle(rezip(files), b.trust))


def test_snapshot_payload_contents(exported: Exported) -> None:
    p = exported.result.payload
    assert p["periods"]["baseline"]["imported"] is True
    assert p["site_file"]["sha256"] == canonical.sha256_hex(
        canonical.canonical_json(p["site_file"]["canonical"])
    )
    assert snapshot.site_from_json(p["site_file"]["canonical"]).site.id == "tiny"
    assert {f["kpi"] for f in p["formulas"]} >= {"oee", "defect_rate"}
    assert p["factors"]["grid_co2_kg_per_kwh"]["id"] == "grid_co2_cn_2023"
    kinds = {r["kind"] for r in p["special_leaves"]}
    assert {"config", "formula", "clock"} <= kinds
    assert all(r["leaf_hash"] for r in p["batches"])
    sources = {r["source"] for r in p["batches"]}
    assert {"cnc1", "import:cnc1", "meter1"} <= sources


def test_export_without_data_is_a_clear_error(tmp_path: Path) -> None:
    from edge.store.export import ExportError
    from metrics.periods import parse_range

    s = factory.site()
    with Ledger(tmp_path / "l.db", durable=False) as led, pytest.raises(ExportError, match="no"):
        export_bundle(
            s, led, note.Signer.generate("x"),
            parse_range("2026-01-01..2026-01-01", s.site.timezone),
            parse_range("2026-02-01..2026-02-01", s.site.timezone),
        )  # fmt: skip


def test_key_rotation_leaf_is_checked(tmp_path: Path) -> None:
    from edge.store import keys

    built = factory.build(tmp_path)
    rot = keys.rotate_key(built.key_dir)
    new = keys.load_key(built.key_dir)
    with Ledger(built.ledger_path) as led:
        led.append_special(
            "key_rotation", {"old": str(rot.old), "new": str(rot.new), "statement": rot.statement}
        )
        res = export_bundle(
            built.site, led, new, built.baseline, built.current, baseline_imported=True
        )
    both = make_trust(
        [TrustedKey("gateway", built.signer.verifier), TrustedKey("gateway", new.verifier)]
    )
    rep = verify_bundle(res.data, both)
    assert rep.ok, failed(rep)
    rot_checks = [c for c in rep.checks if c.name == "key rotation"]
    assert len(rot_checks) == 1
    assert rot.new.key_hash in rot_checks[0].reason
    # the old key alone no longer verifies the new snapshot
    old_only = make_trust([TrustedKey("gateway", built.signer.verifier)])
    assert not verify_bundle(res.data, old_only).ok


def test_malformed_payload_fields_give_a_report_not_a_traceback(exported: Exported) -> None:
    b = exported.built
    for mutate in (
        lambda p: p["periods"].__setitem__("baseline", "junk"),
        lambda p: p.__setitem__("batches", [1, 2, 3]),
        lambda p: p["site_file"].__setitem__("canonical", {"site": 5}),
        lambda p: p.__setitem__("kpi_table", {"rows": "x"}),
    ):
        files = files_of(exported.data)
        payload = payload_of(files)
        mutate(payload)
        resign(files, payload, b.signer)
        rep = verify_bundle(rezip(files), b.trust)
        assert not rep.ok
        assert rep.failures() or any(not k.ok for k in rep.kpis)
