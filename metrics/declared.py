"""Declared business figures: import from CSV/XLSX and matching to a KPI period.

A figure covers a period of whole days (``period.start``..``period.end`` inclusive). For a KPI
period the engine takes the figures of that id overlapping it, never two that overlap each other
(largest overlap first), and combines them by the figure's kind:

- flows (output value, sales, deliveries...): each figure prorated by the share of its period
  inside the KPI period, then summed. With the site calendar (the engine passes it) the share is
  by planned operating time (POT: shifts minus holidays), so an hour of a working shift gets
  1/POT-hours of an annual figure and a night or a Sunday gets nothing: measured flows over the
  working hours (energy) are then divided by the output value of the same hours. Without a
  calendar, or when the figure's period has no planned operating time, the share is by
  calendar time. The basis is recorded per figure (``share_basis``) and in the notes;
- averages (headcount, average inventory, R&D cycle days): mean weighted by overlap;
- counts of a register (AI models, replication): the latest overlapping figure.

The result keeps every figure used with its source document, and the share of the KPI period the
figures cover (a flow covering half the period is flagged).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from pydantic import ValidationError

from config.calendar import Calendar
from config.declared import DeclaredFigure, DeclaredId, Period
from config.models import SiteConfig
from metrics.annualise import NS_PER_H, pot_ns
from metrics.periods import TimeRange, day_start_ns, zone

FLOW_IDS = frozenset(
    {
        "output_value",
        "value_added",
        "sales",
        "cost_of_sales",
        "supplier_deliveries_due",
        "supplier_deliveries_on_time",
        "orders_due",
        "orders_on_time",
        "operating_cost",
        "material_input",
        "material_in_product",
        "solid_waste_generated",
        "solid_waste_utilised",
        "solid_waste_utilised_from_storage",
    }
)
AVERAGE_IDS = frozenset({"headcount", "inventory_avg", "rd_cycle_days"})
COUNT_IDS = frozenset({"replication_count", "ai_model_count"})
MONEY_IDS = frozenset(
    {"output_value", "value_added", "sales", "cost_of_sales", "inventory_avg", "operating_cost"}
)
# money is reported in 万元; other units of money are converted
MONEY_UNITS = {"万元": 1.0, "元": 1e-4, "千元": 0.1, "百万元": 100.0, "亿元": 1e4}
COLUMNS = ("id", "value", "unit", "period_start", "period_end", "source")
KNOWN_IDS = frozenset(get_args(DeclaredId))


class DeclaredImportError(ValueError):
    """A declared-figures file that cannot be used; ``issues`` lists every problem with its row."""

    def __init__(self, issues: Sequence[str]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(self.issues))


@dataclass(frozen=True)
class DeclaredValue:
    id: str
    value: float
    unit: str
    method: str  # prorated_sum | weighted_mean | latest
    coverage: float  # share of the KPI period covered by the figures used
    figures: tuple[dict[str, Any], ...]
    notes: tuple[str, ...] = field(default=())


def _figure_range(p: Period, tz: str) -> tuple[int, int]:
    zi = zone(tz)
    return day_start_ns(p.start, zi), day_start_ns(p.end + dt.timedelta(days=1), zi)


def _to_unit(fig: DeclaredFigure) -> tuple[float, str, str | None]:
    if fig.id in MONEY_IDS:
        unit = fig.unit.strip()
        if unit in MONEY_UNITS:
            return fig.value * MONEY_UNITS[unit], "万元", None
        return fig.value, fig.unit, f"{fig.id}: unknown money unit {fig.unit!r}, used as 万元"
    return fig.value, fig.unit, None


def _flow_share(
    did: str,
    fig: DeclaredFigure,
    a: int,
    b: int,
    period: TimeRange,
    tz: str,
    calendar: Calendar | None,
) -> tuple[float, str, str | None]:
    """Share of a flow figure inside the period, its basis and a note saying how."""
    lo, hi = max(a, period.start_ns), min(b, period.end_ns)
    if hi - lo >= b - a:
        return 1.0, "whole", None
    where = f"{fig.period.start}..{fig.period.end}"
    if calendar is not None:
        pot_fig = pot_ns(calendar, tz, a, b)
        if pot_fig > 0:
            pot_in = pot_ns(calendar, tz, lo, hi)
            return (
                pot_in / pot_fig,
                "planned_operating_time",
                f"{did}: prorated by planned operating time: {pot_in / NS_PER_H:.2f} h of "
                f"{pot_fig / NS_PER_H:.2f} h planned in {where} ({fig.source})",
            )
        return (
            (hi - lo) / (b - a),
            "calendar_time",
            f"{did}: prorated by calendar time: no planned operating time in {where}",
        )
    return (
        (hi - lo) / (b - a),
        "calendar_time",
        f"{did}: prorated by calendar time: {(hi - lo) / NS_PER_H:.2f} h of "
        f"{(b - a) / NS_PER_H:.2f} h of {where} ({fig.source})",
    )


def declared_value(
    figures: Sequence[DeclaredFigure],
    did: str,
    period: TimeRange,
    tz: str,
    calendar: Calendar | None = None,
) -> DeclaredValue | None:
    """The value of one declared id for a KPI period, or ``None`` when no figure overlaps.

    ``calendar`` (the site's) makes flows prorated by planned operating time."""
    cands: list[tuple[int, int, int, DeclaredFigure]] = []
    for fig in figures:
        if fig.id != did:
            continue
        a, b = _figure_range(fig.period, tz)
        ov = min(b, period.end_ns) - max(a, period.start_ns)
        if ov > 0:
            cands.append((ov, a, b, fig))
    if not cands:
        return None
    cands.sort(key=lambda c: (-c[0], c[1], c[2], c[3].source))
    chosen: list[tuple[int, int, int, DeclaredFigure]] = []
    notes: list[str] = []
    for c in cands:
        if any(c[1] < o[2] and o[1] < c[2] for o in chosen):
            notes.append(
                f"{did}: figure {c[3].period.start}..{c[3].period.end} ({c[3].source}) overlaps "
                "another one already used; left out"
            )
            continue
        chosen.append(c)
    chosen.sort(key=lambda c: (c[1], c[2]))
    used: list[dict[str, Any]] = []
    vals: list[tuple[float, int, int, int, int]] = []
    unit = ""
    shares: list[float] = []
    for ov, a, b, fig in chosen:
        v, unit, note = _to_unit(fig)
        if note:
            notes.append(note)
        entry: dict[str, Any] = {
            "value": fig.value,
            "unit": fig.unit,
            "period": f"{fig.period.start}..{fig.period.end}",
            "source": fig.source,
            "share": ov / (b - a),
        }
        if did in FLOW_IDS:
            share, basis, how = _flow_share(did, fig, a, b, period, tz, calendar)
            entry["share"] = share
            entry["share_basis"] = basis
            if how:
                notes.append(how)
            shares.append(share)
        used.append(entry)
        vals.append((v, ov, a, b, b - a))
    covered = sum(v[1] for v in vals) / period.duration_ns
    if did in FLOW_IDS:
        value = sum(v[0] * sh for v, sh in zip(vals, shares, strict=True))
        method = "prorated_sum"
        if covered < 0.999:
            notes.append(f"{did}: declared figures cover {covered:.1%} of the period")
        if any(ov < length for _, ov, _, _, length in vals):
            notes.append(f"{did}: prorated from figures of other periods")
    elif did in AVERAGE_IDS:
        value = sum(v * ov for v, ov, _, _, _ in vals) / sum(v[1] for v in vals)
        method = "weighted_mean"
    else:
        latest = max(vals, key=lambda v: (v[3], v[2]))
        value = latest[0]
        method = "latest"
    return DeclaredValue(did, value, unit, method, covered, tuple(used), tuple(notes))


def _cell(row: dict[str, Any], key: str) -> str:
    v = row.get(key)
    if v is None:
        return ""
    if isinstance(v, dt.datetime):
        return v.date().isoformat()
    if isinstance(v, dt.date):
        return v.isoformat()
    return str(v).strip()


def figures_from_rows(rows: Sequence[dict[str, Any]], where: str) -> tuple[DeclaredFigure, ...]:
    """Validate rows (dicts keyed by :data:`COLUMNS`); ``where`` names the file in errors.

    Row numbers in messages count the header as row 1.
    """
    issues: list[str] = []
    out: list[DeclaredFigure] = []
    for n, row in enumerate(rows, start=2):
        did = _cell(row, "id")
        if not any(_cell(row, c) for c in COLUMNS):
            continue  # blank line
        if did not in KNOWN_IDS:
            issues.append(
                f"{where}:{n}: unknown id {did!r} (known: {', '.join(sorted(KNOWN_IDS))})"
            )
            continue
        raw = _cell(row, "value").replace(",", "")
        try:
            value = float(raw)
        except ValueError:
            issues.append(f"{where}:{n}: value {raw!r} of {did} is not a number")
            continue
        if value != value or value in (float("inf"), float("-inf")):
            issues.append(f"{where}:{n}: value of {did} must be finite")
            continue
        try:
            fig = DeclaredFigure.model_validate(
                {
                    "id": did,
                    "value": value,
                    "unit": _cell(row, "unit"),
                    "period": {
                        "start": _cell(row, "period_start"),
                        "end": _cell(row, "period_end"),
                    },
                    "source": _cell(row, "source"),
                }
            )
        except ValidationError as exc:
            for err in exc.errors(include_url=False, include_input=False):
                loc = ".".join(str(p) for p in err["loc"])
                msg = str(err["msg"]).removeprefix("Value error, ")
                issues.append(f"{where}:{n}: {did} {loc}: {msg}")
            continue
        if not fig.unit:
            issues.append(f"{where}:{n}: unit of {did} is empty")
            continue
        out.append(fig)
    if issues:
        raise DeclaredImportError(issues)
    return tuple(out)


def _check_header(header: Sequence[str], where: str) -> None:
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise DeclaredImportError(
            [f"{where}:1: missing column(s) {', '.join(missing)}; need {','.join(COLUMNS)}"]
        )


def parse_csv(text: str, where: str = "<csv>") -> tuple[DeclaredFigure, ...]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    _check_header([h.strip() for h in reader.fieldnames or []], where)
    rows = [{(k or "").strip(): v for k, v in r.items()} for r in reader]
    return figures_from_rows(rows, where)


def parse_xlsx(data: bytes, where: str = "<xlsx>") -> tuple[DeclaredFigure, ...]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise DeclaredImportError([f"{where}: not a readable XLSX file ({exc})"]) from None
    try:
        ws = wb.worksheets[0]
        it = ws.iter_rows(values_only=True)
        head = next(it, None)
        if head is None:
            raise DeclaredImportError([f"{where}: the first sheet is empty"])
        header = [str(h).strip() if h is not None else "" for h in head]
        _check_header(header, where)
        rows = [dict(zip(header, r, strict=False)) for r in it]
    finally:
        wb.close()
    return figures_from_rows(rows, where)


def load_file(path: Path) -> tuple[DeclaredFigure, ...]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DeclaredImportError([f"{path}: cannot read ({exc.strerror})"]) from None
    if path.suffix.lower() == ".xlsx":
        return parse_xlsx(data, str(path))
    if path.suffix.lower() == ".csv":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise DeclaredImportError([f"{path}: not UTF-8 text"]) from None
        return parse_csv(text, str(path))
    raise DeclaredImportError([f"{path}: use a .csv or .xlsx file"])


def with_imports(site: SiteConfig, extra: Sequence[Path] = ()) -> SiteConfig:
    """The site with the figures of ``declared.import_files`` (and ``extra``) added."""
    paths = [site.resolve(Path(p)) for p in site.declared.import_files] + list(extra)
    if not paths:
        return site
    figs = list(site.declared.figures)
    for p in paths:
        figs.extend(load_file(p))
    declared = site.declared.model_copy(update={"figures": tuple(figs), "import_files": ()})
    return site.model_copy(update={"declared": declared})
