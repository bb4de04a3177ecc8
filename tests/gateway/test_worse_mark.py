"""The worse mark (↓) and its legend on the gateway's table page."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from gateway.i18n import Lang, label
from gateway.present import WORSE_LEGEND, row_worse, table_rows, worse_legend
from gateway.routers.pages import _env  # the app's environment (StrictUndefined)


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
        "after": {"value": 1.0},
        **extra,
    }


def _page(rows: list[dict[str, Any]], lang: Lang = "zh") -> str:
    return _env.get_template("table.html").render(
        t=lambda key: label(key, lang),
        lang=lang,
        page="table",
        rows=table_rows({"rows": rows}, lang),
        user=None,
        site=SimpleNamespace(site=SimpleNamespace(name="demo")),
        boot="{}",
        csrf="",
        csrf_field="",
        path="/table",
        baseline="2025-01-01..2025-12-31",
        current="2026-01-01..2026-12-31",
        error=None,
    )


def test_worse_flag_from_the_engine_and_worked_out_for_old_tables() -> None:
    # the engine's flag wins (to_dict gives it)
    assert row_worse(_row("a", "up", 0.1, worse=True)) is True
    assert row_worse(_row("a", "up", -0.1, worse=False)) is False
    # older tables without the key: the engine's rule
    assert row_worse(_row("a", "up", -0.1)) is True
    assert row_worse(_row("a", "up", 0.1)) is False
    assert row_worse(_row("a", "down", 0.1)) is True
    assert row_worse(_row("a", "down", -0.1)) is False
    assert row_worse(_row("a", "down", None)) is False
    assert row_worse(_row("a", "down", float("nan"))) is False
    assert row_worse({"id": "x", "change": 0.5}) is False  # no direction: no mark


def test_table_page_marks_worse_rows_and_shows_the_legend() -> None:
    rows = [
        _row("oee", "up", -0.2, worse=True),
        _row("defect_rate", "down", -0.5, worse=False),
    ]
    shaped = table_rows({"rows": rows}, "zh")
    assert [r["worse"] for r in shaped] == [True, False]
    assert worse_legend(shaped, "zh") == WORSE_LEGEND["zh"]
    page = _page(rows)
    oee = page.split('data-kpi="oee"')[1].split("</tr>")[0]
    defect = page.split('data-kpi="defect_rate"')[1].split("</tr>")[0]
    assert "提升 -20.0%" in oee
    assert "↓" in oee
    assert 'class="num worse"' in oee
    assert "↓" not in defect
    assert 'id="worse-legend"' in page
    assert "变差" in page
    en = _page(rows, "en")
    assert "worse: the change goes the KPI&#39;s bad way" in en


def test_no_legend_when_nothing_is_worse() -> None:
    rows = [_row("oee", "up", 0.2, worse=False)]
    assert worse_legend(table_rows({"rows": rows}, "zh"), "zh") == ""
    page = _page(rows)
    assert "worse-legend" not in page
    assert "↓" not in page
