"""The before/after table in the application form's layout: 指标 / 建设前 / 建成后 / 变化.

The first four columns are the form's; unit, provenance, formula and notes follow to the right so
the reviewer sees where each number comes from. Labels are the form's exact Chinese wording (with
``*`` in front of mandatory items); ``lang="en"`` gives English labels instead.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from metrics import formatting
from metrics.engine import KpiRow, KpiTable, KpiValue

HEADERS_ZH = ("指标", "建设前", "建成后", "变化", "单位", "数据来源", "公式", "说明")
HEADERS_EN = (
    "KPI",
    "Before (baseline)",
    "After (current)",
    "Change",
    "Unit",
    "Provenance",
    "Formula",
    "Notes",
)
# the provenance words of the Chinese table, with the English beside: the bundle's report and
# its CSV show the same cell (tests/evidence/test_report_html.py)
PROVENANCE_ZH = {
    "measured": "实测 measured",
    "declared": "申报 declared",
    "imported": "导入 imported",
    "mixed": "混合 mixed",
    "none": "无数据 none",
    "register": "台账 register",
}


def fmt_value(v: float | None, unit: str) -> str:
    """The figure in its unit's one format (:mod:`metrics.formatting`)."""
    return formatting.fmt_value(v, unit)


def fmt_change(row: KpiRow, lang: str = "zh") -> str:
    """``提升 12.3%`` for up-KPIs, ``下降 50.2%`` for down-KPIs (a worsening shows negative);
    English ``improved 12.3%`` / ``worsened 10.0%``."""
    return change_text(row.change, row.direction, row.change_label, lang)


def change_text(change: float | None, direction: str, change_label: str, lang: str = "zh") -> str:
    """The form's change column from the row's fields (``KpiRow`` or its ``to_dict``): the
    relative change in the KPI's good direction, one decimal, the label first: an improvement
    of a lower-is-better KPI is ``下降 46.2%``, a worsening ``下降 -10.0%``; in English
    ``improved 46.2%`` / ``worsened 10.0%``. The one rule (:func:`metrics.formatting.fmt_change`)
    of the CSV, XLSX, terminal table, HTML report, dashboard and form draft; ``change_label``
    is kept for callers that pass a row's fields (the label follows from ``direction``)."""
    del change_label
    return formatting.fmt_change(change, direction, lang)


WORSE_MARK = "↓"


def change_cell(row: KpiRow, lang: str = "zh") -> str:
    """:func:`fmt_change` with the worse mark when the change goes the bad way
    (``提升 -16.7% ↓``, ``下降 -10.0% ↓``): the sign is kept, the mark makes it visible."""
    text = fmt_change(row, lang)
    return f"{text} {WORSE_MARK}" if row.worse else text


def _prov(v: KpiValue) -> str:
    return v.provenance


def _provenance_cell(row: KpiRow, lang: str) -> str:
    return provenance_text([_prov(row.before), _prov(row.after)], lang)


def provenance_text(provenances: list[str], lang: str = "zh") -> str:
    """The provenance column from the before and after values' provenances (each once, in
    order): ``导入 imported / 实测 measured`` (``lang="zh"``: both languages), or the English
    words."""
    provs: list[str] = []
    for p in provenances:
        if p not in provs:
            provs.append(p)
    if lang == "zh":
        return " / ".join(PROVENANCE_ZH.get(p, p) for p in provs)
    return " / ".join(provs)


def _notes(row: KpiRow) -> str:
    parts = []
    for tag, v in (("建设前", row.before), ("建成后", row.after)):
        if v.notes:
            parts.append(f"{tag}: " + "; ".join(v.notes))
    return " | ".join(parts)


def label(row: KpiRow, lang: str) -> str:
    if lang == "en":
        return f"*{row.label_en}" if row.mandatory else row.label_en
    return row.form_label


def records(table: KpiTable, lang: str = "zh") -> list[list[str]]:
    """Rows of text cells, header first, in the form's order."""
    out = [list(HEADERS_ZH if lang == "zh" else HEADERS_EN)]
    for r in table.rows:
        formula = f"{r.formula_id} v{r.formula_version}" + (f" ({r.variant})" if r.variant else "")
        out.append(
            [
                label(r, lang),
                fmt_value(r.before.value, r.unit),
                fmt_value(r.after.value, r.unit),
                change_cell(r, lang),
                r.unit,
                _provenance_cell(r, lang),
                formula,
                _notes(r),
            ]
        )
    return out


def to_csv(table: KpiTable, lang: str = "zh") -> str:
    """CSV text (UTF-8 with BOM so that spreadsheet programs show the Chinese labels)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    for rec in records(table, lang):
        w.writerow(rec)
    return "\ufeff" + buf.getvalue()


def to_xlsx(table: KpiTable, lang: str = "zh") -> bytes:
    """An XLSX workbook: sheet 工厂整体建设成效 with numeric cells, plus the periods sheet."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "工厂整体建设成效" if lang == "zh" else "Results"
    head = HEADERS_ZH if lang == "zh" else HEADERS_EN
    ws.append(list(head))
    for c in ws[1]:
        c.font = Font(bold=True)
    for r in table.rows:
        formula = f"{r.formula_id} v{r.formula_version}" + (f" ({r.variant})" if r.variant else "")
        ws.append(
            [
                label(r, lang),
                r.before.value,
                r.after.value,
                change_cell(r, lang),
                r.unit,
                _provenance_cell(r, lang),
                formula,
                _notes(r),
            ]
        )
        for col in (2, 3):
            cell = ws.cell(row=ws.max_row, column=col)
            cell.number_format = "0.00" if r.unit != "tce/万元" else "0.0000"
    widths = (44, 14, 14, 14, 14, 20, 36, 80)
    for i, w in enumerate(widths):
        ws.column_dimensions[chr(ord("A") + i)].width = w
    for row in ws.iter_rows(min_row=2):
        row[0].alignment = Alignment(wrap_text=True)
    zh = lang == "zh"
    meta = wb.create_sheet("期间" if zh else "periods")
    meta.append(["项目", "值"] if zh else ["item", "value"])
    meta.append(["建设前" if zh else "baseline", table.baseline.label])
    meta.append(["建成后" if zh else "current", table.current.label])
    for tag_zh, tag_en, imported in (
        ("建设前数据", "baseline data", table.baseline_imported),
        ("建成后数据", "current data", table.current_imported),
    ):
        kind = ("导入" if zh else "imported") if imported else ("实测" if zh else "measured")
        meta.append([tag_zh if zh else tag_en, kind])
    meta.append(["站点" if zh else "site", table.site_id])
    meta.append(["计算引擎版本" if zh else "engine", table.engine_version])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _width(s: str) -> int:
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in s)


def _pad(s: str, n: int) -> str:
    return s + " " * max(0, n - _width(s))


def to_text(table: KpiTable, lang: str = "zh", notes: bool = False) -> str:
    """A terminal table (CJK-aware column widths)."""
    recs = [rec[:6] + ([rec[7]] if notes else []) for rec in records(table, lang)]
    widths = [max(_width(r[i]) for r in recs) for i in range(len(recs[0]))]
    widths[0] = min(widths[0], 40)
    lines = []
    head = (
        f"建设前 {table.baseline.label}  建成后 {table.current.label}"
        if lang == "zh"
        else f"baseline {table.baseline.label}  current {table.current.label}"
    )
    lines.append(head)
    for i, rec in enumerate(recs):
        lines.append("  ".join(_pad(c, widths[j]) for j, c in enumerate(rec)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    if any(r.worse for r in table.rows):
        lines.append(
            f"{WORSE_MARK} 变差：变化方向不利于该指标"
            if lang == "zh"
            else f"{WORSE_MARK} worse: the change goes the KPI's bad way"
        )
    return "\n".join(lines) + "\n"


_TIER_WORDS = {
    "zh": {
        "maturity": "成熟度",
        "sections": "覆盖环节",
        "scenarios": "场景",
        "valid": "个有效",
        "ai": "个应用人工智能",
        "target": "目标",
        "highest": "满足的最高级",
        "met": "满足",
        "not_met": "不满足",
        "conditional": "原则上不满足",
    },
    "en": {
        "maturity": "maturity",
        "sections": "sections",
        "scenarios": "scenarios",
        "valid": "valid",
        "ai": "with AI",
        "target": "target",
        "highest": "highest met",
        "met": "met",
        "not_met": "not met",
        "conditional": "not met in principle",
    },
}


def tiers_text(tiers: dict[str, Any], lang: str = "zh") -> str:
    """The tier check (of one period's report dict) as text, in one language (the tier names,
    环节 and scenario entries are the form's own Chinese words in both)."""
    w = _TIER_WORDS["en" if lang == "en" else "zh"]
    sep = "：" if lang != "en" else ": "
    out = []
    mat = tiers.get("maturity")
    report = tiers.get("maturity_report") or "—"
    out.append(f"{w['maturity']}{sep}{mat if mat is not None else '—'} ({report})")
    out.append(f"{w['sections']}{sep}" + ("、".join(tiers["sections"]) or "—"))
    ratio = tiers.get("ai_ratio")
    out.append(
        f"{w['scenarios']}{sep}{tiers['scenarios_valid']} {w['valid']}, "
        f"{tiers['scenarios_ai']} {w['ai']} ({formatting.fmt_fraction_pct(ratio)})"
    )
    for c in tiers["claims"]:
        mark = "✓" if c["valid"] else "✗"
        extra = f"  [{'; '.join(c['problems'])}]" if c["problems"] else ""
        out.append(f"  {mark} {c['entry']} -> {c['section'] or '?'}{extra}")
    for r in tiers["results"]:
        out.append(f"{r['tier']}{sep}{w[r['status']]} — {'; '.join(r['reasons'])}")
    if tiers.get("target"):
        out.append(
            f"{w['target']}{sep}{tiers['target']}; {w['highest']}{sep}{tiers['highest_met']}"
        )
    return "\n".join(out) + "\n"
