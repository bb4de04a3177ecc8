"""The change column: ``(after - before) / before`` keeps its sign; a change going the KPI's bad
way carries ``worse`` in ``to_dict`` and a ``↓`` in the text table, CSV and XLSX."""

from __future__ import annotations

import io
from typing import Any

import pytest
from openpyxl import load_workbook

from metrics.catalogue import BY_ID
from metrics.engine import KpiRow, KpiTable, KpiValue, change_of, is_worse
from metrics.periods import parse_range
from metrics.table import change_cell, records, to_csv, to_text, to_xlsx


def _row(kpi_id: str, before: float | None, after: float | None) -> KpiRow:
    kpi = BY_ID[kpi_id]
    change, label = change_of(kpi, before, after)
    return KpiRow(
        kpi.id,
        kpi.label_zh,
        kpi.label_en,
        kpi.unit,
        kpi.direction,
        kpi.mandatory,
        kpi.provenance,
        kpi.formula_id,
        kpi.formula_version,
        None,
        KpiValue(before, "measured"),
        KpiValue(after, "measured"),
        change,
        label,
    )


def _table(*rows: KpiRow) -> KpiTable:
    b = parse_range("2025-01-01..2025-01-31", "UTC")
    c = parse_range("2026-01-01..2026-01-31", "UTC")
    return KpiTable("t", b, c, False, False, rows, {}, {}, ())


@pytest.mark.parametrize(
    ("kpi_id", "before", "after", "change", "worse", "cell"),
    [
        ("oee", 60.0, 50.0, -1 / 6, True, "提升 -16.7% ↓"),  # up-KPI fell
        ("oee", 50.0, 60.0, 0.2, False, "提升 20.0%"),
        ("defect_rate", 2.0, 2.2, 0.1, True, "下降 -10.0% ↓"),  # down-KPI rose
        ("defect_rate", 2.0, 1.0, -0.5, False, "下降 50.0%"),
        ("oee", 60.0, 60.0, 0.0, False, "提升 0.0%"),
        ("oee", None, 60.0, None, False, "—"),
        ("oee", 0.0, 60.0, None, False, "—"),  # no relative change from a zero baseline
    ],
)
def test_change_sign_and_worse_flag(
    kpi_id: str, before: float | None, after: float | None, change: Any, worse: bool, cell: str
) -> None:
    row = _row(kpi_id, before, after)
    if change is None:
        assert row.change is None
    else:
        assert row.change == pytest.approx(change)
    assert row.worse is worse
    d = row.to_dict()
    assert d["worse"] is worse
    assert d["change"] == (None if change is None else pytest.approx(change))
    assert change_cell(row) == cell
    assert KpiRow.from_dict(d).to_dict() == d


def test_worse_shows_in_every_export() -> None:
    t = _table(_row("oee", 60.0, 50.0), _row("defect_rate", 2.0, 1.0))
    text = to_text(t)
    assert "提升 -16.7% ↓" in text
    assert "下降 50.0%" in text
    assert "下降 50.0% ↓" not in text
    assert "↓ 变差" in text  # the legend says what the mark means
    assert "worsened 16.7% ↓" in to_text(t, "en")
    assert records(t)[1][3] == "提升 -16.7% ↓"
    assert "提升 -16.7% ↓" in to_csv(t)
    ws = load_workbook(io.BytesIO(to_xlsx(t)))["工厂整体建设成效"]
    assert ws["D2"].value == "提升 -16.7% ↓"
    assert ws["D3"].value == "下降 50.0%"
    assert [r["worse"] for r in t.to_dict()["rows"]] == [True, False]
    assert KpiTable.from_dict(t.to_dict()).to_dict() == t.to_dict()


def test_no_legend_without_a_worse_row() -> None:
    assert "↓" not in to_text(_table(_row("oee", 50.0, 60.0)))


def test_is_worse_ignores_non_finite() -> None:
    assert not is_worse("up", float("nan"))
    assert not is_worse("down", float("inf"))
    assert not is_worse("up", None)
