"""``shopfloor kpi --period P [--machines | --machine ID ...] [--json] [--lang en]``.

One period without a baseline: every KPI of the catalogue with its coverage and, for a missing
value, the reason; with ``--machines`` each machine's availability, effectiveness, quality, OEE,
PBT / APT / ASUT / ADET / idle / offline, failures, MTBF / MTTR, PQ / GQ and coverage
(:mod:`metrics.machine_table`), then the fleet on summed times and quantities. Without
``--period`` / ``--machines`` the command is the before/after table (:mod:`edge.cli.kpi`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from edge.cli import kpi as table_cli
from metrics.catalogue import CATALOGUE
from metrics.engine import compute_period
from metrics.machine_table import fmt_coverage, head, machine_ids, no_value_reason, view
from metrics.machine_table import view_text as machines_text
from metrics.periods import PeriodError, parse_range
from metrics.table import fmt_value

_Fail = table_cli._Fail


def _wanted(args: argparse.Namespace) -> bool:
    return bool(args.period or args.machines or args.machine)


def _period_text(args: argparse.Namespace) -> str:
    if args.baseline and not args.period:
        raise _Fail(
            "error: --machines shows one period: give --period FROM..TO (not --baseline)"
            if args.machines or args.machine
            else "error: give --period FROM..TO alone, or --baseline and --current"
        )
    text = args.period or args.current
    if not text:
        raise _Fail("error: give -c SITE and --period FROM..TO")
    if args.csv or args.xlsx:
        raise _Fail("error: --csv / --xlsx write the before/after table (--baseline, --current)")
    return str(text)


def kpis_text(result: dict[str, Any], lang: str) -> str:
    """Every KPI of one period: value, unit, coverage, provenance, and the no-value reason."""
    cols = ("指标 KPI", "数值 value", "单位 unit", "覆盖率 coverage", "来源 provenance", "无值原因")
    cols_en = ("KPI", "value", "unit", "coverage", "provenance", "no-value reason")
    cells = [list(cols_en if lang == "en" else cols)]
    if lang != "en":
        cells[0][5] = head("note", lang)
    for k in CATALOGUE:
        v = result["kpis"][k.id]
        label = k.label_en if lang == "en" else f"{k.label_zh} {k.label_en}"
        value = v["value"]
        shown = fmt_value(value, k.unit) if k.unit != "%" or value is None else f"{value:.1f}"
        cells.append(
            [
                ("*" if k.mandatory else "") + label,
                shown,
                k.unit,
                fmt_coverage(v["coverage"]),
                v["provenance"],
                no_value_reason(v),
            ]
        )
    widths = [max(_w(r[i]) for r in cells) for i in range(len(cells[0]))]
    widths[0] = min(widths[0], 48)
    lines = [f"{head('period', lang)}: {result['period']['label']}"]
    for i, rec in enumerate(cells):
        lines.append("  ".join(_pad(c, widths[j]) for j, c in enumerate(rec)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def _w(s: str) -> int:
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in s)


def _pad(s: str, n: int) -> str:
    return s + " " * max(0, n - _w(s))


def _period(args: argparse.Namespace) -> int:
    if not args.config:
        raise _Fail("error: give -c SITE and --period FROM..TO")
    text = _period_text(args)
    site = table_cli._site(args.config, args.declared)
    try:
        period = parse_range(text, site.site.timezone)
    except PeriodError as exc:
        raise _Fail(f"error: {exc}") from None
    ids = {d.id for d in site.devices}
    wanted: list[str] | None = None
    if args.machine:
        unknown = [m for m in args.machine if m not in ids]
        if unknown:
            known = ", ".join(machine_ids(site)) or "none"
            raise _Fail(f"error: unknown machine {unknown[0]!r} (machines: {known})")
        wanted = list(dict.fromkeys(args.machine))
    machines = bool(args.machines or args.machine)
    with table_cli.open_reader(site) as reader:
        result = compute_period(reader, site, period).to_dict()
    if machines:
        v = view(result, site, wanted, args.lang)
        if args.json:
            print(json.dumps(v, ensure_ascii=False, indent=2, allow_nan=False))
        else:
            sys.stdout.write(machines_text(v, args.lang))
        return 0
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2, allow_nan=False))
    else:
        sys.stdout.write(kpis_text(result, args.lang))
    return 0


def period_cmd(args: argparse.Namespace) -> int | None:
    """The one-period command when ``--period`` / ``--machines`` / ``--machine`` is given, else
    ``None`` (the before/after table of :mod:`edge.cli.kpi` runs)."""
    return _period(args) if _wanted(args) else None


def no_value_text(table: Any, lang: str) -> str:
    """Below the before/after table (without ``--notes``): why each "—" cell has no value."""
    lines = []
    for r in table.rows:
        for tag, v in ((("建设前", "before"), r.before), (("建成后", "after"), r.after)):
            why = no_value_reason(v.to_dict())
            if why:
                name = r.label_en if lang == "en" else r.label_zh
                when = tag[1] if lang == "en" else tag[0]
                lines.append(f"  — {name} ({when}): {why}")
    if not lines:
        return ""
    title = "no value:" if lang == "en" else "无值原因："
    return "\n".join([title, *lines]) + "\n"
