from __future__ import annotations

import io
from pathlib import Path

import pytest
from openpyxl import Workbook

from config.declared import DeclaredFigure
from metrics.declared import (
    DeclaredImportError,
    declared_value,
    load_file,
    parse_csv,
    parse_xlsx,
    with_imports,
)
from metrics.periods import parse_range
from tests.metrics.sites import site


def fig(
    did: str, value: float, start: str, end: str, unit: str = "万元", src: str = "doc"
) -> DeclaredFigure:
    return DeclaredFigure.model_validate(
        {
            "id": did,
            "value": value,
            "unit": unit,
            "period": {"start": start, "end": end},
            "source": src,
        }
    )


def test_flow_is_prorated_and_summed() -> None:
    figs = [
        fig("output_value", 365, "2025-01-01", "2025-12-31", src="FY2025"),
        fig("output_value", 100, "2026-01-01", "2026-01-31", src="Jan 2026"),
    ]
    q = parse_range("2025-12-01..2026-01-31", "UTC")
    v = declared_value(figs, "output_value", q, "UTC")
    assert v is not None
    assert v.value == pytest.approx(31 + 100)
    assert v.method == "prorated_sum"
    assert v.coverage == pytest.approx(1)
    assert [f["source"] for f in v.figures] == ["FY2025", "Jan 2026"]
    assert any("prorated" in n for n in v.notes)


def test_partial_coverage_is_flagged() -> None:
    figs = [fig("sales", 10, "2026-01-01", "2026-01-15")]
    v = declared_value(figs, "sales", parse_range("2026-01-01..2026-01-30", "UTC"), "UTC")
    assert v is not None
    assert v.coverage == pytest.approx(0.5)
    assert any("cover 50.0%" in n for n in v.notes)


def test_average_and_count_kinds() -> None:
    figs = [
        fig("headcount", 100, "2025-01-01", "2025-12-31", "人"),
        fig("headcount", 200, "2026-01-01", "2026-12-31", "人"),
        fig("ai_model_count", 2, "2025-01-01", "2025-12-31", "个"),
        fig("ai_model_count", 5, "2026-01-01", "2026-12-31", "个"),
    ]
    span = parse_range("2025-07-02..2026-07-01", "UTC")  # 183 days of 2025, 182 of 2026
    hc = declared_value(figs, "headcount", span, "UTC")
    assert hc is not None
    assert hc.value == pytest.approx((100 * 183 + 200 * 182) / 365)
    ai = declared_value(figs, "ai_model_count", span, "UTC")
    assert ai is not None
    assert ai.value == 5
    assert ai.method == "latest"


def test_overlapping_figures_are_not_double_counted() -> None:
    figs = [
        fig("output_value", 1200, "2026-01-01", "2026-12-31", src="annual"),
        fig("output_value", 100, "2026-01-01", "2026-01-31", src="monthly"),
    ]
    v = declared_value(figs, "output_value", parse_range("2026-01-01..2026-12-31", "UTC"), "UTC")
    assert v is not None
    assert v.value == 1200
    assert any("overlaps" in n and "monthly" in n for n in v.notes)


def test_money_units_are_converted() -> None:
    figs = [fig("sales", 2.5, "2026-01-01", "2026-12-31", unit="亿元")]
    v = declared_value(figs, "sales", parse_range("2026-01-01..2026-12-31", "UTC"), "UTC")
    assert v is not None
    assert v.value == pytest.approx(25000)
    assert v.unit == "万元"


def test_no_overlap_gives_none() -> None:
    figs = [fig("sales", 1, "2024-01-01", "2024-12-31")]
    assert (
        declared_value(figs, "sales", parse_range("2026-01-01..2026-01-02", "UTC"), "UTC") is None
    )


CSV = """id,value,unit,period_start,period_end,source
output_value,"18,600",万元,2025-01-01,2025-12-31,2025年度财务报表
orders_due,1200,单,2025-01-01,2025-12-31,ERP

orders_on_time,1100,单,2025-01-01,2025-12-31,ERP
"""


def test_csv_import() -> None:
    figs = parse_csv("\ufeff" + CSV, "f.csv")
    assert [(f.id, f.value) for f in figs] == [
        ("output_value", 18600.0),
        ("orders_due", 1200.0),
        ("orders_on_time", 1100.0),
    ]
    assert figs[0].source == "2025年度财务报表"


@pytest.mark.parametrize(
    ("text", "msg"),
    [
        ("id,value,unit\noutput_value,1,万元\n", "missing column"),
        (CSV.replace("orders_due", "orders_owed"), "f.csv:3: unknown id 'orders_owed'"),
        (CSV.replace('"18,600"', "lots"), "f.csv:2: value 'lots'"),
        (
            CSV.replace("2025-01-01,2025-12-31,ERP\n\n", "2025-12-31,2025-01-01,ERP\n\n"),
            "period end is before its start",
        ),
        (CSV.replace("2025-12-31,2025年度财务报表", "2025-12-31,"), "source"),
        (CSV.replace(",万元,", ",,"), "unit of output_value is empty"),
        (CSV.replace("2025-01-01,2025-12-31,ERP\n\n", "2025-02-30,2025-12-31,ERP\n\n"), "f.csv:3"),
        (CSV.replace('"18,600"', "nan"), "finite"),
    ],
)
def test_csv_bad_input(text: str, msg: str) -> None:
    with pytest.raises(DeclaredImportError) as info:
        parse_csv(text, "f.csv")
    assert msg in str(info.value)


def _xlsx(rows: list[list[object]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_xlsx_import_with_date_cells() -> None:
    import datetime as dt

    data = _xlsx(
        [
            ["id", "value", "unit", "period_start", "period_end", "source"],
            ["headcount", 196, "人", dt.datetime(2026, 1, 1), dt.date(2026, 12, 31), "HR"],
        ]
    )
    figs = parse_xlsx(data, "f.xlsx")
    assert figs[0].id == "headcount"
    assert figs[0].period.end.isoformat() == "2026-12-31"


def test_xlsx_bad_input() -> None:
    with pytest.raises(DeclaredImportError, match="not a readable XLSX"):
        parse_xlsx(b"PK not really", "f.xlsx")
    with pytest.raises(DeclaredImportError, match="missing column"):
        parse_xlsx(_xlsx([["id", "value"]]), "f.xlsx")
    with pytest.raises(DeclaredImportError, match=r"f\.xlsx:2: value"):
        parse_xlsx(
            _xlsx(
                [
                    ["id", "value", "unit", "period_start", "period_end", "source"],
                    ["sales", "x", "万元", "2026-01-01", "2026-12-31", "s"],
                ]
            ),
            "f.xlsx",
        )


def test_load_file_and_site_import_files(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text(CSV, encoding="utf-8")
    (tmp_path / "d.txt").write_text(CSV, encoding="utf-8")
    with pytest.raises(DeclaredImportError, match=r"\.csv or \.xlsx"):
        load_file(tmp_path / "d.txt")
    with pytest.raises(DeclaredImportError, match="cannot read"):
        load_file(tmp_path / "missing.csv")
    (tmp_path / "latin.csv").write_bytes("id,value\n\xe9".encode("latin-1"))
    with pytest.raises(DeclaredImportError, match="UTF-8"):
        load_file(tmp_path / "latin.csv")
    s = site([], declared={"import_files": ["d.csv"]}).with_source_dir(tmp_path)
    merged = with_imports(s)
    assert len(merged.declared.figures) == 3
    assert merged.declared.import_files == ()
