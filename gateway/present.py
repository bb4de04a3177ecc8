"""Shape KPI tables and verification reports for the pages (pure functions)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from gateway import verify_text
from gateway.data import optional_module
from gateway.i18n import Lang, label
from metrics import formatting


def fmt_number(value: Any, unit: str = "") -> str:
    """A figure in its unit's one format (:mod:`metrics.formatting`, never e-notation)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "✔" if value else "✘"
    if isinstance(value, int):
        return formatting.fmt_count(value)
    if isinstance(value, float):
        return formatting.fmt_value(value, unit)
    return str(value)


def _value_of(v: Any) -> Any:
    if isinstance(v, dict):
        return v.get("value")
    return v


def fmt_change(change: Any, change_label: str | None, lang: Lang = "zh") -> str:
    """The form's change column, ``(after - before) / before`` given as a fraction:
    ``提升 12.3%`` / ``下降 4.0%`` (a worsening shows its sign: ``提升 -3.0%``); English
    ``improved 12.3%`` / ``worsened 3.0%`` (:func:`metrics.formatting.fmt_change`)."""
    direction = "down" if change_label == "下降" else "up"
    return formatting.fmt_change(change, direction, "en" if lang == "en" else "zh")


WORSE_MARK = "↓"
WORSE_LEGEND = {
    "zh": f"{WORSE_MARK} 变差：变化方向不利于该指标 (worse: the change goes the KPI's bad way)",
    "en": f"{WORSE_MARK} worse: the change goes the KPI's bad way",
}


def row_worse(r: dict[str, Any]) -> bool:
    """The row's ``worse`` flag (``KpiRow.to_dict``); for a row without it (an older table),
    worked out from the good direction and the change the same way as the engine."""
    flag = r.get("worse")
    if isinstance(flag, bool):
        return flag
    change = r.get("change")
    if not isinstance(change, int | float) or isinstance(change, bool):
        return False
    if not math.isfinite(change):
        return False
    direction = r.get("direction")
    if direction == "up":
        return change < 0
    if direction == "down":
        return change > 0
    return False


def worse_legend(rows: list[dict[str, Any]], lang: Lang) -> str:
    """The legend of the worse mark when a row of the table carries it, else ``""``."""
    return WORSE_LEGEND["zh" if lang == "zh" else "en"] if any(r["worse"] for r in rows) else ""


def table_rows(table: dict[str, Any] | None, lang: Lang) -> list[dict[str, Any]]:
    if not table:
        return []
    rows = table.get("rows", [])
    out: list[dict[str, Any]] = []
    for r in rows if isinstance(rows, list) else []:
        if not isinstance(r, dict):
            continue
        zh = str(r.get("label_zh") or r.get("label") or r.get("id", ""))
        en = str(r.get("label_en") or "")
        prov = str(r.get("provenance") or "")
        unit = str(r.get("unit") or "")
        out.append(
            {
                "id": str(r.get("id", "")),
                "label": zh if lang == "zh" or not en else en,
                "label_en": en,
                "unit": str(r.get("unit") or ""),
                "mandatory": bool(r.get("mandatory")),
                "before": fmt_number(_value_of(r.get("before")), unit),
                "after": fmt_number(_value_of(r.get("after")), unit),
                "before_reason": value_reason(r.get("before"), lang),
                "after_reason": value_reason(r.get("after"), lang),
                "before_warning": value_warnings(r.get("before"), lang),
                "after_warning": value_warnings(r.get("after"), lang),
                "before_coverage": fmt_coverage(r.get("before")),
                "after_coverage": fmt_coverage(r.get("after")),
                "change": fmt_change(r.get("change"), r.get("change_label"), lang),
                "worse": row_worse(r),
                "worse_title": WORSE_LEGEND["zh" if lang == "zh" else "en"] if row_worse(r) else "",
                "provenance": " + ".join(
                    label(p, lang) for p in prov.replace("/", "+").split("+") if p
                )
                or "—",
            }
        )
    return out


def value_reason(v: Any, lang: Lang = "zh") -> str:
    """Why a KPI cell (``KpiValue.to_dict()``) has no value, in the page's language: its ``no
    value`` / ``not declared`` notes, else all its notes; ``""`` when it has a value."""
    if not isinstance(v, dict) or v.get("value") is not None:
        return ""
    # a table exists only when the engine computed it, so its module is there
    reason: str = optional_module("metrics.machine_table").no_value_reason(v)
    parts = [_no_value_text(p, lang) for p in reason.split("; ") if p]
    return ("；" if lang == "zh" else "; ").join(parts)


_CJK_ASIDE = re.compile(r"\s*\([^()]*[\u4e00-\u9fff][^()]*\)")
_NO_VALUE_ZH: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), zh)
    for p, zh in (
        (r"^no value: no recorded data in this period$", "无值：期间内无采集数据"),
        (
            r"^no value: no producing time with production counters in this period$",
            "无值：期间内没有带产量计数的生产时间",
        ),
        (r"^no value: no key machine with a state point$", "无值：没有带状态点的关键设备"),
        (r"^no value: no planned busy time in this period$", "无值：期间内没有计划工作时间"),
        (
            r"^no value: no producing time recorded \(effectiveness undefined\)$",
            "无值：未记录生产时间（有效性无定义）",
        ),
        (
            r"^no value: nothing produced was counted(?: in this period)?$",
            "无值：期间内生产总数为 0",
        ),
        (r"^no value: a machine has no ideal_cycle_s$", "无值：有设备未设理想节拍 ideal_cycle_s"),
        (
            r"^no value: no APC loops \(apc_mode points\)$",
            "无值：没有先进过程控制回路（apc_mode 点）",
        ),
        (r"^no value: no running time recorded in this period$", "无值：期间内未记录运行时间"),
        (r"^no value: no water used in this period$", "无值：期间内用水量为 0"),
        (r"^no value: no water meter data in this period$", "无值：期间内无水表数据"),
        (
            r"^no value: no water meters \(water_fresh_m3 / water_reused_m3\)$",
            "无值：没有水表（water_fresh_m3 / water_reused_m3）",
        ),
        (
            r"^no value: no declared output value and no counted good quantity of a device "
            r"with unit_price_wan in this period$",
            "无值：期间内既无申报产值，也无设有 unit_price_wan 的设备的合格品计数",
        ),
        (r"^no value: no meter data in this period for (.+)$", "无值：期间内无{0}表计数据"),
        (r"^no value: no meters for (.+)$", "无值：没有{0}表计"),
        (r"^not declared for this period: (.+)$", "本期间未申报：{0}"),
        (r"^needs output value$", "需要工业总产值"),
        (r"^no value \(no reason recorded\)$", "无值（未记录原因）"),
        (r"^no value$", "无值"),
    )
)


def _no_value_text(note: str, lang: Lang) -> str:
    """One no-value note of the KPI engine in ``lang`` (English notes carry a Chinese aside
    in parentheses now and then: dropped in English, the note translated in Chinese; a note
    no pattern knows is shown as it is, marked 原文)."""
    plain = _CJK_ASIDE.sub("", note).strip()
    if lang == "en":
        return plain
    for pattern, zh in _NO_VALUE_ZH:
        m = pattern.match(plain)
        if m:
            return zh.format(*(_METERED_ZH.get(g, g) for g in m.groups()))
    return f"{verify_text.UNTRANSLATED_ZH}{plain}"


_METERED_ZH = {"energy": "能耗", "CO2": "碳排放"}


_WARNINGS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (
        re.compile(r"^below threshold: (.*)$"),
        "联网阈值以下：{0}",
        "below the networking threshold: {0}",
    ),
    (
        re.compile(
            r"^(\w+): prorated by planned operating time: "
            r"([\d.,]+) h of ([\d.,]+) h planned in (\S+)"
        ),
        "{0} 按计划运行时间分摊：{1} h / {2} h（{3}）",
        "{0} prorated by planned operating time: {1} h of {2} h ({3})",
    ),
    (
        re.compile(
            r"^period truncated at the data horizon (\S+?)(?:\.\d+)?(?:[+-]\d\d:\d\d)?, "
            r"latest recorded sample$"
        ),
        "期间截至最新记录 {0}",
        "period cut at the latest recorded sample {0}",
    ),
)


def value_warnings(v: Any, lang: Lang) -> str:
    """What a reader must know beside a value computed on partial data: devices below the
    networking threshold, a declared figure prorated to a short period, a period cut at the
    data horizon (from the value's notes, in the page's language); ``""`` otherwise."""
    if not isinstance(v, dict) or v.get("value") is None:
        return ""
    out: list[str] = []
    for note in v.get("notes") or ():
        for pattern, zh, en in _WARNINGS:
            m = pattern.match(str(note))
            if m:
                out.append((zh if lang == "zh" else en).format(*m.groups()))
                break
    return "；".join(out) if lang == "zh" else "; ".join(out)


def fmt_coverage(v: Any) -> str:
    """A KPI cell's coverage as ``86.7%``; ``""`` without one."""
    cov = v.get("coverage") if isinstance(v, dict) else None
    if not isinstance(cov, int | float) or isinstance(cov, bool) or not math.isfinite(cov):
        return ""
    return formatting.fmt_fraction_pct(cov)


def _reason(d: dict[str, Any], lang: Lang) -> str:
    """The reason of a missing figure in the page's language."""
    if not d.get("reason"):
        return ""
    return str(d.get("reason_en" if lang == "en" else "reason_zh"))


def reason_text(machine: dict[str, Any], lang: Lang) -> str:
    """Why a machine has no figures at all (``metrics.machine_table``), ``""`` otherwise."""
    return _reason(machine, lang)


def figure_rows(machine: dict[str, Any] | None, lang: Lang) -> list[dict[str, str]]:
    """The figures of one machine (``metrics.machine_table`` view) for the machine page."""
    if not machine:
        return []
    return [
        {
            "id": str(f["id"]),
            "label": str(f["label_en"] if lang == "en" else f["label_zh"]),
            "label_en": str(f["label_en"]),
            "text": str(f["text"]),
            "coverage": str(f["coverage_text"]),
            "reason": _reason(f, lang),
        }
        for f in machine.get("figures", [])
    ]


def report_checks(report: dict[str, Any], lang: Lang = "en") -> list[dict[str, Any]]:
    """Flatten a verification report's checks into (name, ok, detail) rows in one language
    (:mod:`gateway.verify_text`): a check's name and subject, a KPI's label in ``lang``."""
    out: list[dict[str, Any]] = []
    for key in ("checks", "kpis", "plausibility"):
        items = report.get(key)
        if isinstance(items, dict):
            items = [
                {"name": k, **v} if isinstance(v, dict) else {"name": k, "ok": bool(v)}
                for k, v in items.items()
            ]
        if not isinstance(items, list):
            continue
        for c in items:
            if not isinstance(c, dict):
                continue
            if c.get("label_zh") or c.get("label_en"):  # a KPI of the report
                name = str(c.get("label_en") if lang == "en" else c.get("label_zh"))
                name = name or str(c.get("label_zh") or c.get("label_en"))
                status = c.get("status")
                if isinstance(status, str) and status:
                    name = f"{name} ({verify_text.kpi_status(status, lang)})"
            else:
                raw = c.get("name") or c.get("check") or c.get("id") or key
                name = verify_text.check_name(str(raw), lang)
                subject = c.get("subject") or ""
                if subject:
                    name = f"{name} — {subject}"
            detail = c.get("detail") or c.get("reason") or c.get("message") or ""
            ok = c.get("ok", c.get("passed", c.get("status") in ("ok", "pass", "passed")))
            out.append(
                {"name": name, "ok": bool(ok), "detail": verify_text.reason(str(detail), lang)}
            )
    return out


def report_findings(report: dict[str, Any], lang: Lang = "en") -> list[dict[str, str]]:
    """The plausibility findings of a verification report (failed plausibility checks), each
    with its severity and the plain explanation in the page's language, serious ones first."""
    items = report.get("plausibility")
    out: list[dict[str, str]] = []
    for c in items if isinstance(items, list) else []:
        if not isinstance(c, dict) or c.get("ok", True):
            continue
        name = verify_text.check_name(str(c.get("check", "")), lang)
        out.append(
            {
                "name": f"{name} — {c.get('subject', '')}",
                "severity": str(c.get("severity") or "warning"),
                "detail": verify_text.reason(str(c.get("reason", "")), lang),
                "explain": str(c.get("explain_en" if lang == "en" else "explain_zh", "")),
            }
        )
    out.sort(key=lambda f: f["severity"] != "serious")
    return out


def pretty_json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True)
