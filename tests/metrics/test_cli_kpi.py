"""``shopfloor kpi`` / ``kpi tiers`` / ``kpi import`` / ``import meters`` on a real SQLite store."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest
from openpyxl import load_workbook

from config.loader import load_site
from edge.cli.main import main
from edge.store.sqlite import SqliteStore
from metrics.engine import compute_table
from metrics.periods import parse_range

DEMO = Path(__file__).resolve().parents[2] / "config" / "examples" / "demo.yaml"
BASE = "2025-03-03..2025-03-03"
CUR = "2026-03-02..2026-03-02"


def _meters_csv(day: dt.date, producing_every: int) -> str:
    lines = ["device,point,ts,value"]
    good = 0
    for i in range(8 * 60, 24 * 60, 5):  # every 5 min through both shifts
        t = dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=i)
        state = 0 if i % producing_every else 3
        good += 5 if state == 0 else 0
        for dev in ("cnc1", "cnc2"):
            lines.append(f"{dev},state,{t.isoformat()},{state}")
            lines.append(f"{dev},good,{t.isoformat()},{good}")
            lines.append(f"{dev},scrap,{t.isoformat()},{i // 120}")
        lines.append(f"meter1,energy,{t.isoformat()},{i * 1.5}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("kpicli")
    # every demo path (store, ledger, keys, users) inside the temp folder: a ledger left
    # beside the temp folders would be shared by every run
    text = DEMO.read_text(encoding="utf-8").replace("../../demo-data/", "data/")
    (d / "site.yaml").write_text(text, encoding="utf-8")
    (d / "base.csv").write_text(_meters_csv(dt.date(2025, 3, 3), 10), encoding="utf-8")
    (d / "cur.csv").write_text(_meters_csv(dt.date(2026, 3, 2), 4), encoding="utf-8")
    for f in ("base.csv", "cur.csv"):
        assert main(["import", "meters", str(d / f), "-c", str(d / "site.yaml")]) == 0
    return d


def test_import_meters_writes_import_batches(factory: Path) -> None:
    with SqliteStore.open_readonly(factory / "data" / "shopfloor.db") as store:
        assert {"import:cnc1", "import:cnc2", "import:meter1"} <= set(store.sources())
        assert store.last_seq("import:cnc1") >= 2  # the second file continues the sequence


def test_kpi_table_csv_xlsx_json(
    factory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = factory / "site.yaml"
    out_csv, out_xlsx = tmp_path / "t.csv", tmp_path / "t.xlsx"
    args = ["kpi", "-c", str(site), "--baseline", BASE, "--current", CUR]
    code = main([*args, "--csv", str(out_csv), "--xlsx", str(out_xlsx), "--baseline-imported"])
    assert code == 0
    text = capsys.readouterr().out
    assert "*设备综合利用率" in text
    assert "先进级：满足 —" in text
    rows = list(csv.reader(io.StringIO(out_csv.read_text(encoding="utf-8").lstrip("\ufeff"))))
    assert rows[0][:4] == ["指标", "建设前", "建成后", "变化"]
    oee = next(r for r in rows if r[0] == "*设备综合利用率")
    assert oee[3].startswith("提升 ")
    # both periods come from imported files: provenance is read from the recorded batches
    # (source import:<device>), not from the --baseline-imported flag
    assert "导入 imported" in oee[5]
    assert "实测 measured" not in oee[5]
    wb = load_workbook(out_xlsx)
    assert wb.worksheets[0]["A1"].value == "指标"
    assert main([*args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    # the CLI gives what the engine gives on the same store
    s = load_site(site)
    with SqliteStore.open_readonly(factory / "data" / "shopfloor.db") as store:
        direct = compute_table(
            store,
            s,
            parse_range(BASE, s.site.timezone),
            parse_range(CUR, s.site.timezone),
        ).to_dict()
    assert doc == json.loads(json.dumps(direct, ensure_ascii=False))
    row = {r["id"]: r for r in doc["rows"]}
    assert row["oee"]["before"]["value"] < row["oee"]["after"]["value"]
    assert main([*args, "--lang", "en"]) == 0
    en = capsys.readouterr().out
    assert "*Overall equipment effectiveness (OEE)" in en
    # English completely: no 提升/下降, no Chinese words of the tier check or the headers
    for word in ("提升", "下降", "覆盖环节", "建设前", "建成后", "实测", "无值原因", "目标"):
        assert word not in en, word


def test_kpi_tiers_and_declared_import(
    factory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kpi", "tiers", "-c", str(factory / "site.yaml")]) == 0
    out = capsys.readouterr().out
    assert "先进级：满足 —" in out
    assert "卓越级：不满足 —" in out
    good = tmp_path / "d.csv"
    good.write_text(
        "id,value,unit,period_start,period_end,source\n"
        "orders_due,100,单,2026-01-01,2026-12-31,ERP\n"
        "orders_on_time,97,单,2026-01-01,2026-12-31,ERP\n",
        encoding="utf-8",
    )
    assert main(["kpi", "import", str(good)]) == 0
    assert "2 declared figures ok" in capsys.readouterr().out
    assert (
        main(
            [
                "kpi",
                "-c",
                str(factory / "site.yaml"),
                "--baseline",
                BASE,
                "--current",
                "2026-01-01..2026-12-31",
                "--declared",
                str(good),
                "--json",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    otd = next(r for r in doc["rows"] if r["id"] == "order_otd")
    assert otd["after"]["value"] == pytest.approx(97.0)
    assert otd["after"]["inputs"][0]["provenance"] == "declared"


@pytest.mark.parametrize(
    ("argv", "msg"),
    [
        (["--baseline", "2025-01-01", "--current", CUR], "FROM..TO"),
        (["--baseline", "2025-02-01..2025-01-01", "--current", CUR], "before FROM"),
        (["--current", CUR], "--baseline"),
    ],
)
def test_kpi_bad_input(
    factory: Path, argv: list[str], msg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kpi", "-c", str(factory / "site.yaml"), *argv]) == 2
    assert msg in capsys.readouterr().err


def test_missing_store_and_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (
        DEMO.read_text(encoding="utf-8")
        .replace("../../demo-data/", "data/")
        .replace(
            "storage: {kind: sqlite, path: data/shopfloor.db}",
            "storage: {kind: sqlite, path: nowhere/s.db}",
        )
    )
    site = tmp_path / "site.yaml"
    site.write_text(text, encoding="utf-8")
    assert main(["kpi", "-c", str(site), "--baseline", BASE, "--current", CUR]) == 2
    assert "no store at" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "id,value,unit,period_start,period_end,source\nheadcount,many,人,2026-01-01,2026-12-31,HR\n",
        encoding="utf-8",
    )
    assert main(["kpi", "import", str(bad)]) == 2
    assert "bad.csv:2: value 'many'" in capsys.readouterr().err
    assert (
        main(["kpi", "-c", str(site), "--baseline", BASE, "--current", CUR, "--declared", str(bad)])
        == 2
    )
    assert "bad.csv:2" in capsys.readouterr().err
    meters = tmp_path / "m.csv"
    meters.write_text(
        "device,point,ts,value\ncnc1,state,2026-01-01T08:00,0\ncnc9,state,2026-01-01T08:00,0\n"
        "cnc1,good,yesterday,1\ncnc1,good,2026-01-01T09:00,lots\n",
        encoding="utf-8",
    )
    assert main(["import", "meters", str(meters), "-c", str(site)]) == 2
    err = capsys.readouterr().err
    assert "m.csv:3: cnc9/state is not a point of the site file" in err
    assert "m.csv:4: ts 'yesterday'" in err
    assert "m.csv:5: value 'lots'" in err
    assert not (tmp_path / "nowhere" / "s.db").exists()  # nothing half-imported
    assert main(["kpi", "tiers", "-c", str(tmp_path / "absent.yaml")]) == 2
    assert "file not found" in capsys.readouterr().err
