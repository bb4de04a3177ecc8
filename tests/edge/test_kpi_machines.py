"""``shopfloor kpi --period P [--machines]`` on a hand-made recording in a SQLite store.

The expected figures are worked out by hand in :mod:`tests.support.kpi_machines`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.cli.main import main
from tests.support.kpi_machines import DAY, EMPTY_DAY, write_site

CJK = re.compile(r"[\u2e80-\u9fff\uff00-\uffef]")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_site(tmp_path_factory.mktemp("kpim"))


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    assert main(["kpi", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _figs(machine: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["id"]: f for f in machine["figures"]}


def test_per_machine_figures_match_the_hand_working(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v = _json(capsys, "-c", str(site), "--period", DAY, "--machines")
    assert v["period"] == DAY
    machines = {m["device"]: m for m in v["machines"]}
    assert list(machines) == ["cnc1", "cnc2", "oven", "lathe9"]
    c1 = _figs(machines["cnc1"])
    expect = {
        "availability": 100 * 5.5 / 7.5,
        "effectiveness": 100 * 60 * 320 / (5.5 * 3600),
        "quality_ratio": 100 * 300 / 320,
        "oee": 100 * 60 * 320 / (7.5 * 3600) * 300 / 320,
        "pbt": 7.5,
        "apt": 5.5,
        "asut": 0.5,
        "adet": 1.0,
        "idle": 0.5,
        "offline": 0.0,
        "failures": 2,
        "mtbf": 5.5 / 3,
        "mttr": 0.5,
        "pq": 320,
        "gq": 300,
        "coverage": 100.0,
    }
    for fid, want in expect.items():
        assert c1[fid]["value"] == pytest.approx(want, abs=1e-9), fid
        assert c1[fid]["reason"] is None, fid
        assert c1[fid]["coverage"] == pytest.approx(1.0), fid
    texts = {fid: c1[fid]["text"] for fid in ("availability", "effectiveness", "oee", "mtbf")}
    assert texts == {
        "availability": "73.3 %",
        "effectiveness": "97.0 %",
        "oee": "66.7 %",
        "mtbf": "1.83 h",
    }
    assert (c1["quality_ratio"]["text"], c1["pq"]["text"]) == ("93.8 %", "320 件")

    c2 = _figs(machines["cnc2"])
    assert machines["cnc2"]["coverage"] == pytest.approx(6.5 / 7.5)
    assert c2["availability"]["value"] == pytest.approx(100.0)  # offline excluded from PBT
    assert c2["availability"]["coverage"] == pytest.approx(6.5 / 7.5)
    assert c2["offline"]["value"] == pytest.approx(1.0)
    assert c2["apt"]["value"] == pytest.approx(6.5)
    assert c2["mtbf"]["value"] == pytest.approx(6.5)
    assert c2["coverage"]["text"] == "86.7 %"
    reasons = {fid: (c2[fid]["value"], c2[fid]["text"], c2[fid]["reason"]) for fid in c2}
    assert reasons["effectiveness"] == (None, "—", "no_ideal_cycle")
    assert reasons["oee"] == (None, "—", "no_ideal_cycle")
    assert reasons["quality_ratio"] == (None, "—", "no_pq")
    assert reasons["mttr"] == (None, "—", "no_failures")
    for f in c2.values():  # a missing value always says why, in both languages
        assert (f["value"] is None) == (f["reason"] is not None)
        if f["value"] is None:
            assert f["reason_zh"]
            assert f["reason_en"]

    assert machines["oven"]["reason"] == "no_state"
    assert machines["oven"]["coverage"] == pytest.approx(1.0)
    assert machines["lathe9"]["reason"] == "not_key"
    assert all(f["text"] == "—" for f in machines["lathe9"]["figures"] if f["id"] != "coverage")

    fleet = _figs(v["fleet"])
    assert fleet["availability"]["value"] == pytest.approx(100 * 12 / 14)
    assert fleet["pbt"]["value"] == pytest.approx(15.0)
    assert fleet["effectiveness"]["reason"] == "no_ideal_cycle"
    assert "cnc2" in fleet["effectiveness"]["reason_en"]
    assert v["fleet_mean_oee"] == pytest.approx(expect["oee"])


def test_text_has_chinese_labels_first_coverage_and_reason_on_every_row(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kpi", "-c", str(site), "--period", DAY, "--machine", "cnc2"]) == 0
    out = capsys.readouterr().out
    assert "cnc1" not in out.split("全厂汇总")[0]  # only the machine asked for (then the fleet)
    rows = [line for line in out.splitlines() if re.match(r"  \S.*  (—|[0-9])", line)]
    assert len(rows) == 2 * 16  # cnc2 and the fleet, 16 figures each
    for line in rows:
        cells = re.split(r"\s{2,}", line.strip())
        assert re.fullmatch(r"\d+\.\d %|—", cells[2]), line  # coverage on every row
        assert (cells[1] == "—") == (len(cells) == 4), line  # a reason exactly when no value
    avail = next(line for line in rows if "可用率 availability" in line)
    assert re.search(r"100\.0 %\s+86\.7 %", avail)
    eff = next(line for line in rows if "性能效率 effectiveness" in line)
    assert "—" in eff
    assert "ideal_cycle_s" in eff
    assert "未配置理想节拍" in eff
    mttr = next(line for line in rows if "MTTR" in line)
    assert "no failure events" in mttr


def test_lang_en_is_english_only(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kpi", "-c", str(site), "--period", DAY, "--machines", "--lang", "en"]) == 0
    out = capsys.readouterr().out
    assert not CJK.findall(out)
    assert "availability" in out
    assert "320 pcs" in out
    assert "no ideal_cycle_s in the site" in out


def test_a_period_without_data_shows_no_value_and_the_reason(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v = _json(capsys, "-c", str(site), "--period", EMPTY_DAY, "--machines")
    for m in [*v["machines"][:2], v["fleet"]]:
        figs = _figs(m)
        assert figs["coverage"]["value"] == 0.0
        for fid in ("availability", "effectiveness", "oee", "apt", "mtbf", "pq"):
            assert figs[fid]["value"] is None, (m["device"], fid)
            assert figs[fid]["reason"] == "no_data", (m["device"], fid)
        assert figs["offline"]["value"] == pytest.approx(7.5 if m["device"] != "fleet" else 15)


def test_offline_included_gives_no_flattering_zero_without_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With ``kpi.oee_offline: include`` the engine reads availability 0 over an offline day;
    with no recorded data at all that is no measurement, so the figure has no value."""
    path = write_site(tmp_path, kpi={"oee_offline": "include"})
    assert yaml.safe_load(path.read_text())["kpi"] == {"oee_offline": "include"}
    v = _json(capsys, "-c", str(path), "--period", EMPTY_DAY, "--machine", "cnc1")
    a = _figs(v["machines"][0])["availability"]
    assert (a["value"], a["text"], a["reason"]) == (None, "—", "no_data")
    d = _json(capsys, "-c", str(path), "--period", DAY, "--machine", "cnc2")
    # included: the offline hour is lost time (6.5 / 7.5), coverage beside it
    a = _figs(d["machines"][0])["availability"]
    assert a["value"] == pytest.approx(100 * 6.5 / 7.5)
    assert a["coverage"] == pytest.approx(6.5 / 7.5)


def test_one_period_lists_every_kpi_with_coverage_and_reason(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kpi", "-c", str(site), "--period", DAY]) == 0
    out = capsys.readouterr().out
    oee = next(line for line in out.splitlines() if "*设备综合利用率" in line)
    assert "—" in oee
    assert "93.3 %" in oee
    assert "a machine has no ideal_cycle_s" in oee
    r = _json(capsys, "-c", str(site), "--period", DAY)
    assert r["period"]["label"] == DAY
    assert r["kpis"]["oee"]["value"] is None
    assert r["machines"][0]["name"] == "cnc1"


def test_before_after_table_says_why_a_cell_has_no_value(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["kpi", "-c", str(site), "--baseline", EMPTY_DAY, "--current", DAY]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "无值原因：" in out
    lines = out.split("无值原因：")[1].splitlines()
    assert any("设备综合利用率" in x and "建设前" in x and "no value" in x for x in lines)
    assert main([*args, "--lang", "en"]) == 0
    out = capsys.readouterr().out
    assert "(after): no value: a machine has no ideal_cycle_s" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--period", "2026-11-02..2026-11-0x", "--machines"], "is not a date"),
        (["--period", "2026-11-06..2026-11-02", "--machines"], "TO is before FROM"),
        (["--period", "2026-11-02", "--machines"], "FROM..TO"),
        (["--period", DAY, "--machine", "cnc7"], "unknown machine 'cnc7' (machines: cnc1"),
        (["--machines"], "--period FROM..TO"),
        (["--baseline", DAY, "--machines"], "give --period"),
        (["--period", DAY, "--csv", "x.csv"], "--csv / --xlsx"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    site: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["kpi", "-c", str(site), *args]) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    assert cap.err.startswith("error: ")
    assert cap.err.count("\n") == 1
    assert message in cap.err
    assert "Traceback" not in cap.err


def test_bundle_report_shows_coverage_and_why_a_cell_is_empty(site: Path) -> None:
    """The evidence report's before/after table (``render_report``) on the table of the
    recording: the OEE cell with no value says why, beside its coverage."""
    from config.loader import load_site
    from edge.store.sqlite import SqliteStore
    from metrics.engine import compute_table
    from metrics.evidence.bundle import render_report
    from metrics.periods import parse_range

    s = load_site(site)
    with SqliteStore.open_readonly(site.parent / "store.db") as store:
        table = compute_table(store, s, parse_range(EMPTY_DAY, "UTC"), parse_range(DAY, "UTC"))
    doc = render_report(
        title="t",
        site_name="s",
        periods={"建设前": EMPTY_DAY, "建成后": DAY},
        table=table.to_dict(),
        sections=(),
        facts=(),
    ).decode("utf-8")
    oee = next(tr for tr in doc.split("<tr>") if "设备综合利用率<br>" in tr)
    assert "no value: a machine has no ideal_cycle_s" in oee
    assert "覆盖率 coverage 93.3%" in oee
    assert "no recorded data in this period" in oee  # the baseline: nothing recorded
