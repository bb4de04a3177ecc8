"""Configuration is evidence: the ledger's ``config`` leaves hold the configuration's content,
each period is recomputed with the configuration the log recorded for its time, and a table
computed under another configuration fails verification with a readable diff."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

from config.loader import load_site, load_site_text
from edge.cli.main import main
from edge.store.export import ExportError, export_bundle
from edge.store.ledger import Ledger, config_leaves, open_evidence, record_config
from metrics.engine import compute_table
from metrics.evidence import bundle, canonical, configlog, dsse
from metrics.evidence.trust import Trust, TrustedKey, make_trust
from metrics.evidence.verify import BundleReader, Report, verify_bundle
from tests.evidence import factory

EVIDENCE_LINES = """
storage: {kind: sqlite, path: store.db}
evidence: {ledger_path: ledger.db, key_dir: keys}
"""
# the state code 3 of both machines re-read as planned downtime instead of breakdown
REMAP = ('"3": down', '"3": planned_stop')
REMAP_LINE = 'devices[cnc1].points[state].state_map.3: "down" -> "planned_stop"'


def _gw(built: factory.Built) -> Trust:
    """Trust in the gateway key only (a checkpoint issued after a new leaf is not witnessed)."""
    return make_trust([TrustedKey("gateway", built.signer.verifier)])


def _failed(rep: Report) -> str:
    return "\n".join(f"{c.name} | {c.subject} | {c.reason}" for c in rep.failures())


def _kpi(rep_or_table: Any, kpi: str, side: str) -> Any:
    rows = rep_or_table["rows"]
    return next(r for r in rows if r["id"] == kpi)[side]["value"]


def _payload(data: bytes) -> dict[str, Any]:
    env = json.loads(bundle.read_files(data)[bundle.ENVELOPE])
    out: dict[str, Any] = json.loads(dsse.b64decode_strict(env["payload"], "payload"))
    return out


def _export(built: factory.Built, site_text: str | None = None) -> bytes:
    s = built.site if site_text is None else load_site_text(site_text, "tiny.yaml")
    with Ledger(built.ledger_path) as led:
        return export_bundle(s, led, built.signer, built.baseline, built.current).data


# --- the pure part ---------------------------------------------------------------------------


def test_content_has_no_paths_and_moving_the_folder_keeps_it(tmp_path: Path) -> None:
    a = load_site_text(
        factory.SITE_YAML + "storage: {kind: sqlite, path: /srv/a/data/s.db}\n", "a.yaml"
    ).with_source_dir(tmp_path / "a")
    b = load_site_text(
        factory.SITE_YAML + "storage: {kind: sqlite, path: /mnt/new/place/s.db}\n", "b.yaml"
    ).with_source_dir(tmp_path / "elsewhere")
    ca, cb = configlog.config_content(a), configlog.config_content(b)
    assert ca == cb
    assert "storage" not in ca
    assert "evidence" not in ca
    assert "/srv" not in canonical.canonical_json(ca).decode()
    # it loads back (the verifier recomputes with it)
    assert configlog.site_of(ca).devices[0].id == "cnc1"


def test_diff_names_what_changed() -> None:
    old = configlog.config_content(factory.site())
    new = configlog.config_content(
        load_site_text(
            factory.SITE_YAML.replace(*REMAP).replace("ideal_cycle_s: 60", "ideal_cycle_s: 50")
        )
    )
    lines = configlog.diff(old, new)
    assert REMAP_LINE in lines
    assert 'devices[cnc1].ideal_cycle_s: "60.0" -> "50.0"' in lines
    assert configlog.diff(old, old) == []


def _leaf(index: int, eff: int, content: dict[str, Any]) -> configlog.ConfigLeaf:
    return configlog.ConfigLeaf(index, eff, eff, configlog.content_sha256(content), content, "", "")


def test_in_force_intervals() -> None:
    a, b, c = ({"v": i} for i in range(3))
    # leaf 9, recorded last, takes effect at 150 (back-dated before leaf 5's 200)
    leaves = [_leaf(1, 100, a), _leaf(5, 200, b), _leaf(9, 150, c)]
    spans = configlog.in_force(leaves, 50, 300)
    assert [(s.leaf.index, s.start_ns, s.end_ns) for s in spans] == [
        (1, 50, 150),  # before any is in effect: the first recorded
        (9, 150, 300),  # the later recording supersedes leaf 5 from its effective time on
    ]
    assert [s.leaf.index for s in configlog.in_force(leaves[:2], 210, 220)] == [5]
    # the first recorded applies before every effective time, even a back-dated later one
    late_first = [_leaf(1, 500, a), _leaf(2, 100, b)]
    spans = configlog.in_force(late_first, 0, 200)
    assert [(s.leaf.index, s.start_ns, s.end_ns) for s in spans] == [(1, 0, 100), (2, 100, 200)]
    assert configlog.in_force([], 0, 10) == []


# --- the reviewer's view ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> factory.Built:
    return factory.build(tmp_path_factory.mktemp("cfg"))


def test_honest_bundle_names_the_configuration_leaf(built: factory.Built) -> None:
    data = _export(built)
    rep = verify_bundle(data, built.trust)
    assert rep.ok, _failed(rep)
    p = _payload(data)
    with Ledger.open_readonly(built.ledger_path) as led:
        idx = config_leaves(led)[0].index
    assert [s["index"] for s in p["configuration"]["baseline"]] == [idx]
    assert [s["index"] for s in p["configuration"]["current"]] == [idx]
    assert any(c.name == "configuration" and c.ok for c in rep.checks)
    report = bundle.read_files(data)[bundle.REPORT].decode("utf-8")
    assert f"建设前 baseline: leaf {idx}" in report


def test_a_site_file_edit_after_recording_fails_with_the_diff(built: factory.Built) -> None:
    """The applicant holds the gateway key: re-signs a snapshot whose table was computed under
    the edited site file (state 3 = planned stop). The log's configuration says otherwise."""
    data = _export(built)
    edited = load_site_text(factory.SITE_YAML.replace(*REMAP), "tiny.yaml")
    files = bundle.read_files(data)
    leaves = bundle.decode_leaves(files[bundle.LEAVES], files[bundle.SAMPLES])
    recs = [json.loads(lf.record) for lf in leaves]
    reader = BundleReader(
        [canonical.decode_samples(lf.samples) for lf in leaves if lf.samples is not None],
        [(r["source"], r["seq"], int(r["first_ts"]), int(r["last_ts"]))
         for r in recs if r["kind"] == "batch"],
    )  # fmt: skip
    table = canonical.jsonable(
        compute_table(reader, edited, built.baseline, built.current).to_dict()
    )
    payload = _payload(data)
    honest_oee = _kpi(payload["kpi_table"], "oee", "after")
    assert float(_kpi(table, "oee", "after")) > float(honest_oee)  # the edit flatters OEE
    payload["kpi_table"] = table
    payload["site_file"] = {
        "sha256": configlog.content_sha256(configlog.config_content(edited)),
        "canonical": configlog.config_content(edited),
    }
    files[bundle.ENVELOPE] = dsse.sign_envelope(
        canonical.canonical_json(payload), dsse.SNAPSHOT_TYPE, [built.signer]
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    rep = verify_bundle(buf.getvalue(), built.trust)
    assert not rep.ok
    cfg = [c.reason for c in rep.failures() if c.name == "configuration"]
    assert cfg, _failed(rep)
    assert REMAP_LINE in cfg[0], _failed(rep)
    assert "does not hold" in cfg[0]
    oee = next(k for k in rep.kpis if k.id == "oee")
    assert not oee.ok
    assert oee.status == "mismatch"
    assert REMAP_LINE in rep.to_text()


def test_export_refuses_an_unrecorded_change_and_a_recorded_one_is_shown(
    tmp_path: Path,
) -> None:
    built = factory.build(tmp_path)
    honest = verify_bundle(_export(built), _gw(built))
    oee_before = next(k for k in honest.kpis if k.id == "oee")
    remapped = factory.SITE_YAML.replace(*REMAP)
    with pytest.raises(ExportError, match="differs from the configuration the log recorded") as ei:
        _export(built, remapped)
    assert REMAP_LINE in str(ei.value)
    assert "shopfloor config record" in str(ei.value)
    # recorded with its reason, in force after the data (2026-04-01): the KPIs do not move
    content = configlog.config_content(load_site_text(remapped))
    april = 1_774_972_800 * 10**9  # 2026-03-31T16:00:00Z = 2026-04-01 00:00 Asia/Shanghai
    with Ledger(built.ledger_path) as led:
        record_config(led, content, cause="record", reason="code 3 is the lunch break",
                      effective_ns=april, now_ns=april)  # fmt: skip
    rep = verify_bundle(_export(built, remapped), _gw(built))
    assert rep.ok, _failed(rep)
    oee = next(k for k in rep.kpis if k.id == "oee")
    assert (oee.before, oee.after) == (oee_before.before, oee_before.after)
    assert "RE-CLASSIFIES" not in rep.to_text()
    # re-classifying history: a visible, signed change that moves the numbers
    jan = 1_767_196_800 * 10**9  # 2026-01-01 00:00 Asia/Shanghai
    with Ledger(built.ledger_path) as led:
        record_config(led, content, cause="record", reason="re-read 2026 stops",
                      effective_ns=jan, now_ns=april + 10**9)  # fmt: skip
    rep = verify_bundle(_export(built, remapped), _gw(built))
    assert rep.ok, _failed(rep)
    oee = next(k for k in rep.kpis if k.id == "oee")
    assert float(oee.after) > float(oee_before.after)
    text = rep.to_text()
    assert "RE-CLASSIFIES HISTORY from 2025-12-31T16:00:00Z" in text
    assert "reason: re-read 2026 stops" in text
    changes = [c.reason for c in rep.checks if c.name == "configuration change"]
    assert any("re-read 2026 stops" in r and REMAP_LINE in r for r in changes), changes


def test_a_period_spanning_different_configurations_is_refused(tmp_path: Path) -> None:
    built = factory.build(tmp_path)
    content = configlog.config_content(load_site_text(factory.SITE_YAML.replace(*REMAP)))
    noon = built.current.start_ns + 12 * 3600 * 10**9
    with Ledger(built.ledger_path) as led:
        record_config(led, content, cause="record", reason="x", effective_ns=noon,
                      now_ns=factory.CONFIG_TS + 1)  # fmt: skip
    with pytest.raises(ExportError, match="configuration changed inside the period"):
        _export(built, factory.SITE_YAML.replace(*REMAP))


def test_cli_config_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    factory.build(tmp_path)
    site = tmp_path / "site.yaml"
    site.write_text(factory.SITE_YAML + EVIDENCE_LINES, encoding="utf-8")
    assert main(["config", "record", "-c", str(site), "--reason", "same"]) == 0
    assert "nothing recorded" in capsys.readouterr().out
    site.write_text(factory.SITE_YAML.replace(*REMAP) + EVIDENCE_LINES, encoding="utf-8")
    rc = main(["export", "-c", str(site), "--baseline", factory.BASELINE,
               "--current", factory.CURRENT, "-o", str(tmp_path / "b.zip")])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert REMAP_LINE in err
    assert "Traceback" not in err
    assert main(["config", "record", "-c", str(site), "--reason", " "]) == 2
    assert main(["config", "record", "-c", str(site), "--reason", "r", "--from", "x"]) == 2
    capsys.readouterr()
    assert main(["config", "record", "-c", str(site), "--reason", "lunch",
                 "--from", "2026-04-01"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "recorded as config leaf" in out
    assert REMAP_LINE in out
    rc = main(["export", "-c", str(site), "--baseline", factory.BASELINE,
               "--current", factory.CURRENT, "-o", str(tmp_path / "b.zip")])  # fmt: skip
    assert rc == 0


def test_a_configuration_left_out_of_the_bundle_fails(tmp_path: Path) -> None:
    """A correction recorded with --from is in force over the data; an applicant who drops it
    from the bundle (and re-signs a snapshot computed without it) is caught by the chain: the
    configuration recorded after it names it as its predecessor."""
    built = factory.build(tmp_path)
    remapped = configlog.config_content(load_site_text(factory.SITE_YAML.replace(*REMAP)))
    jan = 1_767_196_800 * 10**9  # 2026-01-01 00:00 Asia/Shanghai
    with Ledger(built.ledger_path) as led:
        hidden = record_config(led, remapped, cause="record", reason="audit: code 3 is stop",
                               effective_ns=jan, now_ns=factory.CONFIG_TS + 1)  # fmt: skip
        # a later, unrelated change (in force after the data) names the correction as previous
        later = configlog.config_content(load_site_text(
            factory.SITE_YAML.replace(*REMAP).replace("name: 电能表 meter", "name: 电表")
        ))  # fmt: skip
        after = factory.CONFIG_TS + 10**12
        record_config(led, later, cause="record", reason="rename", effective_ns=after,
                      now_ns=factory.CONFIG_TS + 2)  # fmt: skip
    data = _export(
        built, factory.SITE_YAML.replace(*REMAP).replace("name: 电能表 meter", "name: 电表")
    )
    assert verify_bundle(data, _gw(built)).ok
    # drop the correction: re-sign a snapshot whose table is computed under the first configuration
    parts = bundle.read_bundle(data)
    honest = _export_table_under_first(built, parts)
    payload = _payload(data)
    payload["special_leaves"] = [s for s in payload["special_leaves"] if s["index"] != hidden]
    payload["kpi_table"] = honest
    payload["site_file"] = {
        "sha256": configlog.content_sha256(configlog.config_content(built.site)),
        "canonical": configlog.config_content(built.site),
    }
    assert all(s["index"] == hidden for s in payload["configuration"]["baseline"])
    with Ledger.open_readonly(built.ledger_path) as led:
        idx0 = config_leaves(led)[0].index
    for name in ("baseline", "current"):
        payload["configuration"][name] = [{**s, "index": idx0,
            "config_sha256": configlog.content_sha256(configlog.config_content(built.site))}
            for s in payload["configuration"][name]]  # fmt: skip
    env = dsse.sign_envelope(canonical.canonical_json(payload), dsse.SNAPSHOT_TYPE, [built.signer])
    forged = bundle.write_bundle(
        dataclasses.replace(
            parts, envelope=env, leaves=tuple(lf for lf in parts.leaves if lf.index != hidden)
        )
    )
    rep = verify_bundle(forged, _gw(built))
    assert not rep.ok
    reasons = [c.reason for c in rep.failures() if c.name == "configuration"]
    assert any(f"after config leaf {hidden}, which the bundle leaves out" in r for r in reasons), (
        _failed(rep)
    )


def _export_table_under_first(built: factory.Built, parts: bundle.BundleParts) -> Any:
    reader = BundleReader(
        [canonical.decode_samples(lf.samples) for lf in parts.leaves if lf.samples is not None],
        [(r["source"], r["seq"], int(r["first_ts"]), int(r["last_ts"]))
         for r in (json.loads(lf.record) for lf in parts.leaves) if r["kind"] == "batch"],
    )  # fmt: skip
    return canonical.jsonable(
        compute_table(reader, built.site, built.baseline, built.current).to_dict()
    )


def test_collector_start_records_content_and_a_moved_folder_records_nothing_new(
    tmp_path: Path,
) -> None:
    text = factory.SITE_YAML + EVIDENCE_LINES
    a, b = tmp_path / "a", tmp_path / "moved" / "b"
    a.mkdir()
    (a / "site.yaml").write_text(text, encoding="utf-8")
    rec = open_evidence(load_site(a / "site.yaml"))
    rec.ledger.close()
    shutil.copytree(a, b)
    rec = open_evidence(load_site(b / "site.yaml"))
    rec.ledger.close()
    with Ledger.open_readonly(b / "ledger.db") as led:
        cfg = config_leaves(led)
    assert len(cfg) == 1
    assert cfg[0].content == configlog.config_content(factory.site())
    assert cfg[0].cause == "start"
