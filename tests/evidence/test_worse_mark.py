"""The worse mark (↓) and its legend in the evidence HTML report."""

from __future__ import annotations

import html
from typing import Any

from metrics.evidence.bundle import WORSE_LEGEND, render_report, row_worse


def _row(kid: str, direction: str, change: float | None, **extra: Any) -> dict[str, Any]:
    return {
        "id": kid,
        "label_zh": kid,
        "label_en": kid,
        "unit": "%",
        "direction": direction,
        "change": change,
        "change_label": "提升" if direction == "up" else "下降",
        "before": {"value": 1.0},
        "after": {"value": 2.0},
        **extra,
    }


def _html(rows: list[dict[str, Any]]) -> str:
    return render_report(
        title="t",
        site_name="s",
        periods={"建设前": "2025", "建成后": "2026"},
        table={"rows": rows},
        sections=(),
        facts=(),
    ).decode("utf-8")


def _tr(doc: str, kid: str) -> str:
    return next(tr for tr in doc.split("<tr>") if f"{kid}<br>" in tr).split("</tr>")[0]


def test_report_marks_worse_rows_with_a_legend() -> None:
    doc = _html([_row("oee", "up", -0.25, worse=True), _row("defect_rate", "down", -0.5)])
    assert "↓" in _tr(doc, "oee")
    assert "提升 -25.0%" in _tr(doc, "oee")  # the CSV's rule (metrics.table.change_text)
    assert "↓" not in _tr(doc, "defect_rate")
    assert html.escape(WORSE_LEGEND) in doc
    assert 'class="legend"' in doc


def test_report_without_worse_rows_has_no_legend() -> None:
    doc = _html([_row("oee", "up", 0.25, worse=False), _row("defect_rate", "down", None)])
    assert "↓" not in doc
    assert 'class="legend"' not in doc


def test_rows_of_older_tables_get_the_engine_rule() -> None:
    assert row_worse(_row("a", "down", 0.1)) is True
    assert row_worse(_row("a", "up", 0.1)) is False
    assert row_worse(_row("a", "up", None)) is False
    assert row_worse({"change": "x", "direction": "up"}) is False
