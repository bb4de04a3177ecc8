"""Per-machine figures of one period with their coverage and, for a missing value, the reason.

Built from ``PeriodResult.to_dict()`` of :func:`metrics.engine.compute_period` (its
``machines``, ``fleet``, ``counters`` and ``device_coverage``), so the CLI (``shopfloor kpi
--period P --machines``), the REST API and the dashboard show the same figures, the same
formatting and the same reasons. Pure functions over plain dicts: no numpy, no store.

Units of ``value``: ratios in percent, times in hours, quantities in units, failures as a
count. Text: percent with 1 decimal, hours with 2. A figure without a value shows "—" and a
reason code with its Chinese and English wording; every figure carries its coverage (the time
coverage of the machine's planned busy window, for quantities the lowest coverage of its
production counters, for effectiveness and OEE the lower of the two).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from config.models import Device, SiteConfig
from metrics.periods import NS_PER_S, zone

DASH = "—"
QTY_ROLES = frozenset({"count_total", "count_good", "count_scrap", "count_rework"})


@dataclass(frozen=True)
class Reason:
    code: str
    zh: str
    en: str

    def text(self, lang: str) -> str:
        return self.en if lang == "en" else f"{self.zh} {self.en}"


NOT_KEY = Reason(
    "not_key",
    "非关键设备，不计算 OEE",
    "not key equipment (key_equipment: false): no OEE figures",
)
NO_STATE = Reason(
    "no_state",
    "无状态测点，设备时间未测量",
    "no state point (role state): machine times not measured",
)
NO_WINDOW = Reason(
    "no_window",
    "期间内无计划运行时间（日历）",
    "no planned busy time in this period (calendar)",
)
NO_DATA = Reason(
    "no_data",
    "计划运行时间内无采集数据（覆盖率 0 %）",
    "no recorded data in the planned busy window (coverage 0 %)",
)
NO_PBT = Reason(
    "no_pbt",
    "计划忙碌时间为 0（全部为计划停机）",
    "planned busy time is 0 (all planned stop)",
)
NO_COVERED_PBT = Reason(
    "no_covered_pbt",
    "计划忙碌时间内全部离线",
    "offline for the whole planned busy time",
)
NO_IDEAL = Reason(
    "no_ideal_cycle",
    "站点文件未配置理想节拍 ideal_cycle_s",
    "no ideal_cycle_s in the site file",
)
NO_APT = Reason("no_apt", "无生产时间 (APT 为 0)", "no producing time (APT 0)")
NO_COUNTERS = Reason(
    "no_counters",
    "无产量计数测点",
    "no production counters (count_good / count_total)",
)
NO_PQ = Reason("no_pq", "期间内未计到产量 (PQ 为 0)", "nothing produced was counted (PQ 0)")
NO_FAILURES = Reason("no_failures", "无故障停机 (0 次)", "no failure events (no down episode)")
NO_MACHINES = Reason(
    "no_machines",
    "无带状态测点的关键设备",
    "no key machine with a state point",
)


def _some_no_ideal(devices: Sequence[str]) -> Reason:
    names = ", ".join(devices)
    return Reason(
        "no_ideal_cycle",
        f"有设备未配置理想节拍 ideal_cycle_s：{names}",
        f"machines without ideal_cycle_s: {names}",
    )


# (id, 中文, English, unit, kind) in display order; kind: time | qty | both | fact
FIGURES: tuple[tuple[str, str, str, str, str], ...] = (
    ("availability", "可用率", "availability", "%", "time"),
    ("effectiveness", "性能效率", "effectiveness", "%", "both"),
    ("quality_ratio", "质量合格率", "quality ratio", "%", "qty"),
    ("oee", "设备综合效率", "OEE", "%", "both"),
    ("pbt", "计划忙碌时间", "planned busy time PBT", "h", "fact"),
    ("apt", "实际生产时间", "actual production time APT", "h", "time"),
    ("asut", "实际换型时间", "actual setup time ASUT", "h", "time"),
    ("adet", "故障停机时间", "actual unplanned downtime ADET", "h", "time"),
    ("idle", "待机时间", "idle time", "h", "time"),
    ("offline", "离线时间", "offline time", "h", "fact"),
    ("failures", "故障次数", "failure events", "次", "time"),
    ("mtbf", "平均故障间隔", "MTBF", "h", "time"),
    ("mttr", "平均修复时间", "MTTR", "h", "time"),
    ("pq", "生产数量", "produced quantity PQ", "件", "qty"),
    ("gq", "合格数量", "good quantity GQ", "件", "qty"),
    ("coverage", "数据覆盖率", "data coverage", "%", "fact"),
)
LABELS = {f[0]: (f[1], f[2]) for f in FIGURES}
HEAD = {
    "figure": ("指标", "figure"),
    "value": ("数值", "value"),
    "coverage": ("覆盖率", "coverage"),
    "note": ("无值原因", "no-value reason"),
    "period": ("期间", "period"),
    "fleet": ("全厂汇总（时间与数量求和）", "fleet (summed times and quantities)"),
    "mean_oee": ("各设备 OEE 平均值", "mean of the machines' OEE"),
    "notes": ("说明", "notes"),
    "all": ("全部指标", "every figure"),
    "device_coverage": ("数据覆盖率", "data coverage"),
    "horizon": ("数据截止于最新采集样本", "data horizon (latest recorded sample)"),
    "offline_rule": ("OEE 离线时间", "OEE offline time"),
    "exclude": ("不计入计划忙碌时间", "excluded from PBT"),
    "include": ("计入计划忙碌时间（视为损失）", "included in PBT (counted as lost time)"),
}


def head(key: str, lang: str) -> str:
    zh, en = HEAD[key]
    return en if lang == "en" else f"{zh} {en}"


# --------------------------------------------------------------------------- formatting
UNIT_EN = {"件": "pcs", "次": ""}


def fmt(value: float | None, unit: str, lang: str = "zh") -> str:
    """One format for every figure: ``73.3 %``, ``5.50 h``, ``320 件`` (``320 pcs`` in
    English), ``—`` for no value."""
    if value is None:
        return DASH
    if unit == "%":
        return f"{value:.1f} %"
    if unit == "h":
        return f"{value:.2f} h"
    shown = UNIT_EN.get(unit, unit) if lang == "en" else unit
    text = f"{int(value)}" if float(value).is_integer() else f"{value:.2f}"
    return f"{text} {shown}".rstrip()


def fmt_coverage(cov: float | None) -> str:
    return DASH if cov is None else f"{100.0 * cov:.1f} %"


# --------------------------------------------------------------------------- figures
@dataclass(frozen=True)
class Figure:
    id: str
    unit: str
    value: float | None  # percent, hours, units or a count (see ``unit``)
    coverage: float | None  # fraction 0..1
    reason: Reason | None = None

    def label(self, lang: str) -> str:
        zh, en = LABELS[self.id]
        return en if lang == "en" else f"{zh} {en}"

    def to_dict(self, lang: str = "zh") -> dict[str, Any]:
        zh, en = LABELS[self.id]
        r = self.reason
        return {
            "id": self.id,
            "label_zh": zh,
            "label_en": en,
            "unit": self.unit,
            "value": self.value,
            "text": fmt(self.value, self.unit, lang),
            "coverage": self.coverage,
            "coverage_text": fmt_coverage(self.coverage),
            "reason": None if r is None else r.code,
            "reason_zh": None if r is None else r.zh,
            "reason_en": None if r is None else r.en,
        }


@dataclass(frozen=True)
class MachineFigures:
    device: str
    name: str
    in_oee: bool  # the engine computed its ISO 22400 times
    coverage: float | None
    counter_coverage: float | None
    figures: tuple[Figure, ...]
    notes: tuple[str, ...] = ()
    reason: Reason | None = None  # why the machine has no figures at all

    def figure(self, fid: str) -> Figure:
        for f in self.figures:
            if f.id == fid:
                return f
        raise KeyError(fid)

    def to_dict(self, lang: str = "zh") -> dict[str, Any]:
        r = self.reason
        return {
            "device": self.device,
            "name": self.name,
            "in_oee": self.in_oee,
            "coverage": self.coverage,
            "counter_coverage": self.counter_coverage,
            "reason": None if r is None else r.code,
            "reason_zh": None if r is None else r.zh,
            "reason_en": None if r is None else r.en,
            "figures": [f.to_dict(lang) for f in self.figures],
            "notes": list(self.notes),
        }


def _f(x: Any) -> float | None:
    return None if x is None else float(x)


def _min(*xs: float | None) -> float | None:
    got = [x for x in xs if x is not None]
    return min(got) if got else None


def _pct(x: Any) -> float | None:
    return None if x is None else 100.0 * float(x)


def _hours(x: Any) -> float | None:
    return None if x is None else float(x) / 3600.0


@dataclass(frozen=True)
class _Counters:
    coverage: float | None  # the lowest coverage of the production counters
    present: bool  # the machine has production counters
    counted: bool  # they counted something in the period (placed or not)


def _counters(counters: Mapping[str, Any], devices: Iterable[str]) -> _Counters:
    wanted = set(devices)
    covs: list[float | None] = []
    found = counted = False
    for key, c in counters.items():
        dev = key.split("/", 1)[0]
        if dev in wanted and c.get("role") in QTY_ROLES:
            found = True
            covs.append(_f(c.get("coverage")))
            counted |= bool(c.get("total")) or bool(c.get("unattributed_steps"))
    return _Counters(_min(*covs), found, counted)


def figures_of(m: Mapping[str, Any], c: _Counters, no_ideal: Reason | None) -> tuple[Figure, ...]:
    """The figures of one machine (or of the fleet) from its ``details`` dict."""
    counter_cov = c.coverage
    t = m["times_s"]
    q = m["quantities"]
    cov = _f(m.get("coverage"))
    exclude = m.get("oee_offline", "exclude") == "exclude"
    blocking: Reason | None = None
    if t["window"] <= 0:
        blocking = NO_WINDOW
    elif cov is not None and cov <= 0:
        blocking = NO_DATA
    pbt_reason: Reason | None
    if t["pbt"] <= 0:
        pbt_reason = blocking or NO_PBT
    elif exclude and t["pbt_covered"] <= 0:
        pbt_reason = blocking or NO_COVERED_PBT
    else:
        pbt_reason = blocking
    qty_reason: Reason | None = None if c.present else NO_COUNTERS
    if qty_reason is None and blocking is not None and not c.counted:
        qty_reason = blocking  # nothing recorded: a count of 0 would be no measurement
    quality_reason = blocking or qty_reason or (NO_PQ if q["pq"] <= 0 else None)
    eff_reason = blocking or no_ideal or (NO_APT if t["apt"] <= 0 else None)
    both = _min(cov, counter_cov)
    qcov = counter_cov if counter_cov is not None else cov
    values: dict[str, tuple[float | None, float | None, Reason | None]] = {
        "availability": (_pct(m.get("availability")), cov, pbt_reason),
        "effectiveness": (_pct(m.get("effectiveness")), both, eff_reason),
        "quality_ratio": (_pct(m.get("quality_ratio")), qcov, quality_reason),
        "oee": (_pct(m.get("oee")), both, pbt_reason or eff_reason or quality_reason),
        "pbt": (_hours(t["pbt"]), cov, None),
        "apt": (_hours(t["apt"]), cov, blocking),
        "asut": (_hours(t["asut"]), cov, blocking),
        "adet": (_hours(t["adet"]), cov, blocking),
        "idle": (_hours(t["idle"]), cov, blocking),
        "offline": (_hours(t["offline"]), cov, None),
        "failures": (_f(m.get("failures")), cov, blocking),
        "mtbf": (_hours(m.get("mtbf_s")), cov, blocking or (NO_PBT if t["pbt"] <= 0 else None)),
        "mttr": (
            _hours(m.get("mttr_s")),
            cov,
            blocking or (NO_FAILURES if not m.get("failures") else None),
        ),
        "pq": (_f(q["pq"]), qcov, qty_reason),
        "gq": (_f(q["gq"]), qcov, qty_reason),
        "coverage": (_pct(cov), cov, NO_WINDOW if cov is None else None),
    }
    out = []
    for fid, _zh, _en, unit, _kind in FIGURES:
        value, fcov, reason = values[fid]
        # a value stands only without a reason against it; a missing one always has a reason
        if reason is not None:
            value = None
        elif value is None:
            reason = Reason("no_value", "无值", "no value")
        out.append(Figure(fid, unit, value, fcov, reason))
    return tuple(out)


def is_machine(dev: Device) -> bool:
    """A device listed by ``--machines``: it has a state point or is a production device."""
    return dev.production or any(p.role == "state" for p in dev.points)


def machine_ids(site: SiteConfig) -> list[str]:
    return [d.id for d in site.devices if is_machine(d)]


def machine_figures(
    result: Mapping[str, Any], site: SiteConfig, devices: Sequence[str] | None = None
) -> list[MachineFigures]:
    """Every machine of ``devices`` (default: :func:`machine_ids`) from a period result dict."""
    by_name = {m["name"]: m for m in result.get("machines", [])}
    counters: Mapping[str, Any] = result.get("counters", {})
    dcov: Mapping[str, Any] = result.get("device_coverage", {})
    out: list[MachineFigures] = []
    for did in devices if devices is not None else machine_ids(site):
        dev = site.device(did)
        cs = _counters(counters, [did])
        m = by_name.get(did)
        if m is None:
            why = NO_STATE if not any(p.role == "state" for p in dev.points) else NOT_KEY
            cov = _f(dcov.get(did))
            figs = tuple(
                Figure(
                    fid,
                    unit,
                    _pct(cov) if fid == "coverage" else None,
                    cov,
                    None if fid == "coverage" and cov is not None else why,
                )
                for fid, _zh, _en, unit, _kind in FIGURES
            )
            out.append(MachineFigures(did, dev.name, False, cov, cs.coverage, figs, (), why))
            continue
        no_ideal = NO_IDEAL if m.get("ideal_cycle_s") is None else None
        figs = figures_of(m, cs, no_ideal)
        flags = tuple(str(f) for f in m.get("flags", ()))
        cov = _f(m.get("coverage"))
        out.append(MachineFigures(did, dev.name, True, cov, cs.coverage, figs, flags))
    return out


def fleet_figures(result: Mapping[str, Any], site: SiteConfig) -> MachineFigures:
    """The fleet row: the same figures on summed times and quantities (``result["fleet"]``)."""
    machines = list(result.get("machines", []))
    names = [str(m["name"]) for m in machines]
    cs = _counters(result.get("counters", {}), names)
    fleet = result.get("fleet") or {}
    if not machines or "times_s" not in fleet:
        figs = tuple(
            Figure(fid, unit, None, None, NO_MACHINES) for fid, _zh, _en, unit, _k in FIGURES
        )
        return MachineFigures("fleet", "fleet", False, None, cs.coverage, figs, (), NO_MACHINES)
    lacking = [str(m["name"]) for m in machines if m.get("ideal_cycle_s") is None]
    no_ideal = _some_no_ideal(lacking) if lacking else None
    figs = figures_of(fleet, cs, no_ideal)
    return MachineFigures("fleet", "fleet", True, _f(fleet.get("coverage")), cs.coverage, figs)


def view(
    result: Mapping[str, Any],
    site: SiteConfig,
    devices: Sequence[str] | None = None,
    lang: str = "zh",
) -> dict[str, Any]:
    """The JSON of ``shopfloor kpi --period P --machines --json`` and of the API (``text``
    of each figure in ``lang``; labels and reasons in both languages)."""
    period = result.get("period") or {}
    fleet = fleet_figures(result, site)
    return {
        "period": period.get("label"),
        "timezone": site.site.timezone,
        "oee_offline": site.kpi.oee_offline,
        "data_horizon_ns": result.get("data_horizon_ns"),
        "machines": [m.to_dict(lang) for m in machine_figures(result, site, devices)],
        "fleet": fleet.to_dict(lang),
        "fleet_mean_oee": _pct(result.get("fleet_mean_oee")),
    }


# --------------------------------------------------------------------------- KPI values
def no_value_reason(value: Mapping[str, Any]) -> str:
    """Why a KPI value (``KpiValue.to_dict()``) has no value: its ``no value`` / ``not
    declared`` notes, else all its notes; ``""`` when it has a value."""
    if value.get("value") is not None:
        return ""
    notes = [str(n) for n in value.get("notes", ())]
    why = [n for n in notes if n.startswith(("no value", "not declared", "needs "))]
    return "; ".join(why or notes) or "no value (no reason recorded)"


# --------------------------------------------------------------------------- text
def _width(s: str) -> int:
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in s)


def _pad(s: str, n: int) -> str:
    return s + " " * max(0, n - _width(s))


def _rows(cells: list[list[str]]) -> list[str]:
    widths = [max(_width(r[i]) for r in cells) for i in range(len(cells[0]))]
    lines = []
    for i, rec in enumerate(cells):
        lines.append("  ".join(_pad(c, widths[j]) for j, c in enumerate(rec)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def _block(title: str, m: Mapping[str, Any], lang: str) -> list[str]:
    cells = [[head(k, lang) for k in ("figure", "value", "coverage", "note")]]
    for f in m["figures"]:
        label = f["label_en"] if lang == "en" else f"{f['label_zh']} {f['label_en']}"
        reason = ""
        if f["reason"] is not None:
            reason = f["reason_en"] if lang == "en" else f"{f['reason_zh']} {f['reason_en']}"
        cells.append([label, f["text"], f["coverage_text"], reason])
    lines = [title, *("  " + line for line in _rows(cells))]
    for n in m.get("notes", ()):
        lines.append(f"  {head('notes', lang)}: {n}")
    return lines


def view_text(v: Mapping[str, Any], lang: str = "zh") -> str:
    """The per-machine blocks and the fleet block as a terminal text."""
    lines = [f"{head('period', lang)}: {v['period']} ({v['timezone']})"]
    rule = v["oee_offline"]
    lines.append(f"{head('offline_rule', lang)}: {head(rule, lang)}")
    if v.get("data_horizon_ns") is not None:
        when = dt.datetime.fromtimestamp(v["data_horizon_ns"] / NS_PER_S, zone(v["timezone"]))
        lines.append(f"{head('horizon', lang)}: {when.isoformat()}")
    for m in v["machines"]:
        title = f"{m['device']}  {m['name']}"
        if m["reason"] is None:
            lines += ["", *_block(title, m, lang)]
            continue
        # no figures at all: one line for the reason instead of the same one on every row
        why = m["reason_en"] if lang == "en" else f"{m['reason_zh']} {m['reason_en']}"
        cov = fmt_coverage(m["coverage"])
        lines += ["", title, f"  {head('all', lang)} {DASH}: {why}"]
        lines.append(f"  {head('device_coverage', lang)}: {cov}")
    lines += ["", *_block(head("fleet", lang), v["fleet"], lang)]
    mean = v.get("fleet_mean_oee")
    lines.append(f"  {head('mean_oee', lang)}: {fmt(mean, '%', lang)}")
    return "\n".join(lines) + "\n"
