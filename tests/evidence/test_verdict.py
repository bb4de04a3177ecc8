"""Two kinds of verdict: integrity failures fail the bundle (exit 1); plausibility findings are
listed apart with a severity and a plain explanation (exit 3 when integrity holds); exit 0 only
when both are clean; 2 for usage errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.base import Sample
from edge.cli.main import main
from edge.store.base import Batch
from edge.store.export import export_bundle
from edge.store.ledger import Ledger, record_config
from metrics.evidence import bundle, note, snapshot
from metrics.evidence.trust import Trust, TrustedKey, make_trust
from metrics.evidence.verify import (
    EXIT_FAILED,
    EXIT_FINDINGS,
    EXIT_PASSED,
    INTEGRITY,
    PLAUSIBILITY,
    Report,
    verify_bundle,
)
from metrics.periods import TimeRange, parse_range
from tests.evidence import factory

Extra = Callable[[Ledger, TimeRange], None]
S = 10**9
_signer_of: list[note.Signer] = []  # the key of the bundle being made (for an Extra)


def make_bundle(tmp: Path, extra: Extra | None = None) -> tuple[bytes, Trust]:
    """A tiny-factory bundle (baseline imported, current live) signed by a fresh key; a
    synchronised clock leaf before the baseline; ``extra`` adds leaves before the export."""
    s = factory.site()
    base = parse_range(factory.BASELINE, s.site.timezone)
    cur = parse_range(factory.CURRENT, s.site.timezone)
    hist = list(factory.generate(3, base.start_ns, base.end_ns, 0.95))
    live = list(factory.generate(4, cur.start_ns, cur.end_ns, 0.98))
    signer = note.Signer.generate("shopfloor.local/tiny")
    _signer_of[:] = [signer]
    (tmp / "l.db").unlink(missing_ok=True)
    with Ledger(tmp / "l.db", durable=False) as led:
        led.append_special("clock", {"synchronised": True}, base.start_ns - 10**12)
        # the configuration in force, recorded before the data (so the export adds no leaf
        # of its own after a checkpoint that ``extra`` pinned)
        record_config(led, snapshot.site_json(s), cause="start", now_ns=base.start_ns - 10**12)
        for prefix, samples in (("import:", hist), ("", live)):
            by_dev: dict[str, list[Sample]] = {}
            for x in samples:
                by_dev.setdefault(x.device, []).append(x)
            for dev, lst in by_dev.items():
                for seq, i in enumerate(range(0, len(lst), 100), start=1):
                    led.append_batches([Batch(prefix + dev, seq, tuple(lst[i : i + 100]))])
        if extra is not None:
            extra(led, cur)
        res = export_bundle(s, led, signer, base, cur, baseline_imported=True)
    return res.data, make_trust([TrustedKey("gateway", signer.verifier)])


def unsynchronised(led: Ledger, cur: TimeRange) -> None:
    """The gateway's clock lost its time source an hour into the current period (an
    air-gapped site), and a device ran 40 s ahead of it."""
    t = cur.start_ns + 3600 * 10**9
    led.append_special("clock", {"synchronised": False, "devices_ahead_s": {"cnc1": 40}}, t)


def findings_bundle(tmp: Path) -> tuple[bytes, Trust]:
    return make_bundle(tmp, unsynchronised)


def _flip_csv(data: bytes) -> bytes:
    import io
    import zipfile

    files = bundle.read_files(data)
    files[bundle.TABLE_CSV] = files[bundle.TABLE_CSV].replace(b"1", b"2", 1)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k, v in files.items():
            zf.writestr(k, v)
    return buf.getvalue()


def test_clean_bundle_passes_with_exit_0(tmp_path: Path) -> None:
    data, trust = make_bundle(tmp_path)
    rep = verify_bundle(data, trust)
    assert (rep.ok, rep.verdict, rep.exit_code) == (True, "passed", EXIT_PASSED)
    assert rep.findings() == []
    assert all(c.ok for c in rep.checks if c.level == PLAUSIBILITY)
    assert "ALL CHECKS PASSED" in rep.to_text()


def test_unsynchronised_clock_is_a_finding_not_a_failure(tmp_path: Path) -> None:
    data, trust = findings_bundle(tmp_path)
    rep = verify_bundle(data, trust)
    assert rep.ok, [c.reason for c in rep.integrity_failures()]
    assert (rep.verdict, rep.exit_code) == ("findings", EXIT_FINDINGS)
    found = rep.findings()
    assert {c.name for c in found} == {"plausibility: clock"}
    unsync = next(c for c in found if "not synchronised" in c.reason)
    ahead = next(c for c in found if "ahead of the gateway" in c.reason)
    assert "cnc1 +40 s" in ahead.reason
    assert unsync.severity == ahead.severity == "warning"
    assert "隔离网络" in unsync.explain_zh
    assert "air-gapped" in unsync.explain_en
    assert "超前" in ahead.explain_zh
    assert "ahead" in ahead.explain_en
    assert rep.integrity_failures() == []
    assert all(c.level == INTEGRITY for c in rep.checks if not c.name.startswith("plausibility"))
    text = rep.to_text()
    integrity = text.index("完整性检查 Integrity checks")
    plaus = text.index("合理性检查 Plausibility checks")
    assert integrity < plaus
    assert "[WARNING 注意] plausibility: clock" in text[plaus:]
    assert "[WARNING" not in text[integrity:plaus]
    assert "INTEGRITY PASSED, 2 PLAUSIBILITY FINDINGS TO REVIEW" in text
    assert "clock" in rep.facts


def test_json_report_keeps_the_levels_apart(tmp_path: Path) -> None:
    data, trust = findings_bundle(tmp_path)
    out = verify_bundle(data, trust).to_dict()
    assert out["ok"] is True
    assert out["verdict"] == "findings"
    assert out["exit_code"] == EXIT_FINDINGS
    assert out["findings"] == 2
    assert {c["level"] for c in out["checks"]} == {INTEGRITY}
    assert {c["level"] for c in out["plausibility"]} == {PLAUSIBILITY}
    bad = [c for c in out["plausibility"] if not c["ok"]]
    assert all(c["severity"] == "warning" and c["explain_zh"] and c["explain_en"] for c in bad)
    json.dumps(out)  # JSON-ready


def test_integrity_failure_with_findings_fails(tmp_path: Path) -> None:
    data, trust = findings_bundle(tmp_path)
    rep = verify_bundle(_flip_csv(data), trust)
    assert (rep.ok, rep.verdict, rep.exit_code) == (False, "failed", EXIT_FAILED)
    assert [c.subject for c in rep.integrity_failures()] == [bundle.TABLE_CSV]
    assert len(rep.findings()) == 2
    assert "FAILED (1 integrity checks, 0 KPIs; 2 plausibility findings)" in rep.to_text()


def test_data_after_the_checkpoint_is_a_serious_finding(tmp_path: Path) -> None:
    """A checkpoint signed (pinned clock) an hour into the current day, covering the whole
    day's data: the data could not have existed then; serious, explained in both languages."""
    s = factory.site()
    cur = parse_range(factory.CURRENT, s.site.timezone)

    def early_checkpoint(led: Ledger, _: TimeRange) -> None:
        signer = _signer_of[0]
        led.issue_checkpoint(signer, "shopfloor.local/tiny", now_s=cur.start_ns // S + 3600)

    data, trust = make_bundle(tmp_path, early_checkpoint)
    rep = verify_bundle(data, trust)
    assert rep.ok, [c.reason for c in rep.integrity_failures()]
    assert (rep.verdict, rep.exit_code) == ("findings", EXIT_FINDINGS)
    (late,) = rep.findings()
    assert "after the checkpoint was signed" in late.reason
    assert late.severity == "serious"
    assert "伪造" in late.explain_zh
    assert "fabricated" in late.explain_en
    assert "[SERIOUS 严重] plausibility: clock" in rep.to_text()


def test_a_check_of_another_module_is_integrity_by_default() -> None:
    """Checks added without a level (e.g. configuration checks) fail the bundle."""
    rep = Report()
    rep.add("configuration", "log", False, "state map changed after recording")
    assert rep.integrity_failures()
    assert rep.verdict == "failed"
    assert rep.exit_code == EXIT_FAILED


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clean, trust = make_bundle(tmp_path)
    tfile = tmp_path / "trust.json"
    tfile.write_text(json.dumps(trust.to_dict()), encoding="utf-8")
    z = tmp_path / "clean.zip"
    z.write_bytes(clean)
    assert main(["verify", str(z), "--trust", str(tfile)]) == EXIT_PASSED
    capsys.readouterr()

    found, trust2 = findings_bundle(tmp_path)
    tfile.write_text(json.dumps(trust2.to_dict()), encoding="utf-8")
    z.write_bytes(found)
    assert main(["verify", str(z), "--trust", str(tfile)]) == EXIT_FINDINGS
    assert "PLAUSIBILITY FINDINGS TO REVIEW" in capsys.readouterr().out
    assert main(["verify", str(z), "--trust", str(tfile), "--json"]) == EXIT_FINDINGS
    assert json.loads(capsys.readouterr().out)["verdict"] == "findings"
    z.write_bytes(_flip_csv(found))
    assert main(["verify", str(z), "--trust", str(tfile)]) == EXIT_FAILED
    assert main(["verify", str(tmp_path / "none.zip"), "--trust", str(tfile)]) == 2
