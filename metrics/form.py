"""A draft of the 先进级 application form's data parts, filled from a signed evidence bundle (pure).

The 工厂整体建设成效 table in the form's own layout (序号 / 指标 / 建设前 / 建成后, the form's row
order and ``*`` marks, 工业总产值 and 其他成效指标), the 覆盖的环节和具体场景 and
应用人工智能技术的具体场景 lists from the scenario register (``declared.scenarios``) in
``环节名称-场景名称-场景实例名称`` form, and for every claimed scenario the recorded data can back
a quantified 已实施成效 paragraph.

Every number carries a footnote: its provenance (实测 / 申报 / 导入 / 实测+申报 per input), the
formula, and where a reviewer finds it — the bundle (file name and SHA-256), the row of the
signed snapshot's KPI table and the log leaves (batch leaves of the period for measured data,
the configuration leaf for declared figures, which the site file carries). Figures are
formatted by :mod:`metrics.formatting`.

:class:`FormDraft` is a list of blocks of runs; :mod:`metrics.form_docx` writes it as DOCX
(real Word footnotes), :func:`to_xlsx` as a workbook and :func:`to_text` as plain text.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from config.models import SiteConfig
from metrics import formatting
from metrics.engine import KpiRow, KpiTable, KpiValue
from metrics.evidence.snapshot import LeafRef
from metrics.machine_table import no_value_reason
from metrics.periods import TimeRange
from metrics.scenarios import DATA_BACKED, check_claim

TITLE = "河北省先进级智能工厂申报书（数据部分草稿）"
RESULTS_TITLE = "工厂整体建设成效"
RESULTS_HEADERS = ("序号", "指标", "建设前", "建成后")
SCENARIOS_TITLE = "覆盖的环节和具体场景"
AI_TITLE = "应用人工智能技术的具体场景"
EFFECTS_TITLE = "已实施成效"
OTHER_LABEL = "其他成效指标"
# the form's rows end at 工业总产值; KPIs of the reference list beyond them go to 其他成效指标
LAST_FORM_ROW = "output_value"
PROVENANCE_ZH = {
    "measured": "实测",
    "declared": "申报",
    "imported": "导入",
    "mixed": "实测+申报",
    "register": "台账",
    "none": "无数据",
}
# the KPIs that quantify a data-backed scenario of the guide (metrics.scenarios.DATA_BACKED)
SCENARIO_KPIS: dict[int, tuple[str, ...]] = {
    10: ("production_efficiency",),
    16: ("energy_per_value", "water_reuse"),
    17: ("co2_per_value",),
    22: ("apc_rate",),
    24: ("defect_rate",),
    25: ("defect_rate",),
    27: ("network_rate", "oee"),
    28: ("oee",),
}
assert set(SCENARIO_KPIS) == set(DATA_BACKED)


@dataclass(frozen=True)
class Run:
    """Text, and the footnote it carries (``None``: plain text)."""

    text: str
    note: str | None = None


Para = tuple[Run, ...]


@dataclass(frozen=True)
class Block:
    """A heading, a paragraph or a table (rows of cells, each cell a paragraph)."""

    kind: str  # heading | para | table
    runs: Para = ()
    rows: tuple[tuple[Para, ...], ...] = ()


@dataclass(frozen=True)
class BundleRef:
    """Where the numbers are signed: the bundle file and the leaves its snapshot references."""

    name: str
    sha256: str
    origin: str
    size: int
    batches: tuple[LeafRef, ...]
    specials: tuple[LeafRef, ...]

    @classmethod
    def from_payload(cls, name: str, sha256: str, payload: Mapping[str, Any]) -> BundleRef:
        log = payload["log"]
        return cls(
            name,
            sha256,
            str(log["origin"]),
            int(log["size"]),
            tuple(LeafRef.from_dict(d) for d in payload["batches"]),
            tuple(LeafRef.from_dict(d) for d in payload["special_leaves"]),
        )


@dataclass(frozen=True)
class FormDraft:
    blocks: tuple[Block, ...] = field(default_factory=tuple)


def leaf_ranges(indices: Sequence[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``#3–#5, #9``."""
    idx = sorted(set(indices))
    out: list[str] = []
    i = 0
    while i < len(idx):
        j = i
        while j + 1 < len(idx) and idx[j + 1] == idx[j] + 1:
            j += 1
        out.append(f"#{idx[i]}" if i == j else f"#{idx[i]}–#{idx[j]}")
        i = j + 1
    return ", ".join(out)


def period_leaves(batches: Sequence[LeafRef], period: TimeRange) -> list[LeafRef]:
    """The batch leaves behind a period: those overlapping it and, for each of their sources,
    the last one before it (the values in force at its start)."""
    inside = [
        b
        for b in batches
        if b.first_ts is not None
        and b.last_ts is not None
        and b.first_ts < period.end_ns
        and b.last_ts >= period.start_ns
    ]
    sources = {b.source for b in inside}
    before: dict[str, LeafRef] = {}
    for b in batches:
        if b.last_ts is not None and b.last_ts < period.start_ns and b.source in sources:
            assert b.source is not None
            cur = before.get(b.source)
            if cur is None or (cur.seq or 0) < (b.seq or 0):
                before[b.source] = b
    return sorted([*inside, *before.values()], key=lambda b: b.index)


def value_text(v: float | None, unit: str) -> str:
    """A form cell: the figure with its unit (``86.7%``, ``18,600.0 万元/年``), ``—`` without."""
    text = formatting.fmt_value(v, unit)
    if text == formatting.NONE:
        return text
    return f"{text}%" if unit == "%" else f"{text} {unit}".rstrip()


def _inputs_text(v: KpiValue) -> str:
    parts = []
    for i in v.inputs:
        prov = PROVENANCE_ZH.get(i.provenance, i.provenance)
        shown = value_text(i.value, i.unit)
        parts.append(f"{i.name} {shown}（{prov}" + (f"，{i.source}）" if i.source else "）"))
    return "；".join(parts)


def footnote(row: KpiRow, side: str, period: TimeRange, ref: BundleRef) -> str:
    """The provenance of one cell and where it is signed."""
    v = row.before if side == "before" else row.after
    tag = "建设前" if side == "before" else "建成后"
    prov = PROVENANCE_ZH.get(v.provenance, v.provenance)
    head = f"{row.label_zh}（{tag} {period.label}）：{prov}"
    if v.value is None:
        head += f"，无数值：{no_value_reason(v.to_dict())}"
    formula = f"{row.formula_id} v{row.formula_version}" + (f"（{v.variant}）" if v.variant else "")
    lines = [head, f"公式 {formula}"]
    if v.coverage is not None:
        lines.append(f"数据覆盖率 {formatting.fmt_fraction_pct(v.coverage)}")
    if v.inputs:
        lines.append(f"输入 {_inputs_text(v)}")
    if v.notes and v.value is not None:  # the engine's working (a missing value says why above)
        lines.append("计算说明 " + "; ".join(v.notes))
    where = (
        f"证据包 {ref.name}（SHA-256 {ref.sha256[:16]}…，日志 {ref.origin} 大小 {ref.size}），"
        f"签名快照 kpi_table 行 {row.id}.{side}"
    )
    leaves: list[str] = []
    provs = {i.provenance for i in v.inputs} | {v.provenance}
    if provs & {"measured", "imported", "mixed"}:
        batches = period_leaves(ref.batches, period)
        if batches:
            leaves.append(
                f"数据叶 {leaf_ranges([b.index for b in batches])}（{len(batches)} 个批次）"
            )
    if provs & {"declared", "mixed", "register"}:
        cfg = [s.index for s in ref.specials if s.kind == "config"]
        if cfg:
            leaves.append(f"配置叶 {leaf_ranges(cfg)}（站点文件，含申报数据与设备台账）")
    if leaves:
        where += "；" + "；".join(leaves)
    return "；".join([*lines, where]) + "。"


def _cell(row: KpiRow, side: str, period: TimeRange, ref: BundleRef) -> Para:
    v = row.before if side == "before" else row.after
    return (Run(value_text(v.value, row.unit), footnote(row, side, period, ref)),)


def _results(table: KpiTable, ref: BundleRef) -> Block:
    head = tuple((Run(h),) for h in RESULTS_HEADERS)
    rows: list[tuple[Para, ...]] = [head]
    ids = [r.id for r in table.rows]
    last = ids.index(LAST_FORM_ROW) + 1 if LAST_FORM_ROW in ids else len(ids)
    for n, r in enumerate(table.rows[:last], start=1):
        rows.append(
            (
                (Run(str(n)),),
                (Run(r.form_label),),
                _cell(r, "before", table.baseline, ref),
                _cell(r, "after", table.current, ref),
            )
        )
    others = table.rows[last:]
    if others:
        label: list[Run] = [Run(f"{OTHER_LABEL}：")]
        before: list[Run] = []
        after: list[Run] = []
        for k, r in enumerate(others):
            sep = "；" if k else ""
            label.append(Run(f"{sep}{r.label_zh}"))
            before += [Run(f"{sep}{r.label_zh} "), *_cell(r, "before", table.baseline, ref)]
            after += [Run(f"{sep}{r.label_zh} "), *_cell(r, "after", table.current, ref)]
        rows.append(((Run(str(last + 1)),), tuple(label), tuple(before), tuple(after)))
    else:
        rows.append(((Run(str(last + 1)),), (Run(OTHER_LABEL),), (Run(""),), (Run(""),)))
    return Block("table", rows=tuple(rows))


def _claims(site: SiteConfig) -> list[tuple[str, Any]]:
    out = []
    for c in site.declared.scenarios:
        chk = check_claim(c, site)
        out.append((f"{chk.link}-{chk.scenario}-{chk.instance}", chk))
    return out


def _scenario_list(claims: list[tuple[str, Any]]) -> list[Block]:
    if not claims:
        return [Block("para", (Run("（场景台账 declared.scenarios 为空）"),))]
    out = []
    for n, (entry, chk) in enumerate(claims, start=1):
        note = None
        if chk.problems:
            note = "场景台账校核：" + "；".join(chk.problems)
        out.append(Block("para", (Run(f"{n}.{entry}", note),)))
    return out


def _change_sentence(row: KpiRow) -> str:
    if row.change is None:
        return ""
    return f"，{formatting.fmt_change(row.change, row.direction)}"


def _effect(entry: str, number: int, table: KpiTable, ref: BundleRef) -> Block:
    runs: list[Run] = [Run(f"{entry}：")]
    ids = {r.id: r for r in table.rows}
    first = True
    for kpi in SCENARIO_KPIS[number]:
        row = ids.get(kpi)
        if row is None:
            continue
        lead = "" if first else "；"
        first = False
        if row.before.value is None and row.after.value is None:
            runs.append(Run(f"{lead}{row.label_zh}暂无可计算的数据", footnote(
                row, "after", table.current, ref
            )))  # fmt: skip
            continue
        runs.append(Run(f"{lead}{row.label_zh}由建设前（{table.baseline.label}）的"))
        runs.extend(_cell(row, "before", table.baseline, ref))
        runs.append(Run(f"变为建成后（{table.current.label}）的"))
        runs.extend(_cell(row, "after", table.current, ref))
        runs.append(Run(_change_sentence(row)))
    runs.append(Run("。以上数据由网关实测记录并签名，可由评审方复核。"))
    return Block("para", tuple(runs))


def build(site: SiteConfig, table: KpiTable, ref: BundleRef) -> FormDraft:
    """The form draft of ``table`` (the table the bundle ``ref`` signs)."""
    blocks: list[Block] = [
        Block("heading", (Run(TITLE),)),
        Block(
            "para",
            (
                Run(
                    f"{site.site.enterprise or ''} {site.site.name}；".lstrip()
                    + f"建设前 {table.baseline.label}，建成后 {table.current.label}。"
                    "每个数字的脚注给出其来源（实测/申报/导入）及签名证据包中的位置；"
                    "申报数据标注“申报”。"
                ),
            ),
        ),
        Block("heading", (Run(RESULTS_TITLE),)),
        _results(table, ref),
        Block("para", (Run("注：带*的为必填指标。"),)),
    ]
    claims = _claims(site)
    blocks.append(Block("heading", (Run(SCENARIOS_TITLE),)))
    blocks += _scenario_list(claims)
    blocks.append(Block("heading", (Run(AI_TITLE),)))
    ai = [(e, c) for e, c in claims if c.uses_ai]
    blocks += _scenario_list(ai) if ai else [Block("para", (Run("（无）"),))]
    blocks.append(Block("heading", (Run(EFFECTS_TITLE),)))
    effects = [
        _effect(e, c.number, table, ref) for e, c in claims if c.number in SCENARIO_KPIS and c.valid
    ]
    blocks += effects or [Block("para", (Run("（没有可由实测数据支撑的场景）"),))]
    return FormDraft(tuple(blocks))


def numbered_notes(draft: FormDraft) -> list[str]:
    """The footnotes in document order (footnote ``n`` is ``[n-1]``)."""
    out: list[str] = []
    for b in draft.blocks:
        for para in [b.runs, *(c for row in b.rows for c in row)]:
            out.extend(r.note for r in para if r.note is not None)
    return out


def to_text(draft: FormDraft) -> str:
    """Plain text with ``[n]`` at each footnote reference and the footnotes at the end (the
    same text a reader extracts from the DOCX)."""
    n = 0
    notes: list[str] = []

    def para(runs: Para) -> str:
        nonlocal n
        out = []
        for r in runs:
            out.append(r.text)
            if r.note is not None:
                n += 1
                notes.append(r.note)
                out.append(f"[{n}]")
        return "".join(out)

    lines: list[str] = []
    for b in draft.blocks:
        if b.kind == "table":
            lines.extend(" | ".join(para(c) for c in row) for row in b.rows)
        else:
            lines.append(para(b.runs))
    lines.append("")
    lines.extend(f"[{i}] {t}" for i, t in enumerate(notes, start=1))
    return "\n".join(lines) + "\n"


def to_xlsx(draft: FormDraft) -> bytes:
    """The draft as a workbook: sheet 工厂整体建设成效 in the form's columns with the footnotes
    of 建设前 and 建成后 beside them, sheet 场景 and sheet 已实施成效."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = RESULTS_TITLE
    scen = wb.create_sheet("场景")
    eff = wb.create_sheet(EFFECTS_TITLE)
    section = ""
    for b in draft.blocks:
        if b.kind == "heading":
            section = "".join(r.text for r in b.runs)
            if section in (SCENARIOS_TITLE, AI_TITLE):
                scen.append([section])
                scen.cell(scen.max_row, 1).font = Font(bold=True)
        elif b.kind == "table":
            for i, row in enumerate(b.rows):
                cells = ["".join(r.text for r in c) for c in row]
                if i == 0:
                    ws.append([*cells, "建设前来源", "建成后来源"])
                    for c in ws[1]:
                        c.font = Font(bold=True)
                    continue
                notes = ["\n".join(r.note for r in c if r.note) for c in row[2:4]]
                ws.append([int(cells[0]), *cells[1:], *notes])
        elif section in (SCENARIOS_TITLE, AI_TITLE):
            scen.append(["".join(r.text for r in b.runs)])
        elif section == EFFECTS_TITLE:
            eff.append(
                ["".join(r.text for r in b.runs), "\n".join(r.note for r in b.runs if r.note)]
            )
    for col, w in zip("ABCDEF", (6, 44, 22, 22, 80, 80), strict=True):
        ws.column_dimensions[col].width = w
    for cells_ in ws.iter_rows(min_row=2):
        for cell in cells_:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    scen.column_dimensions["A"].width = 80
    eff.column_dimensions["A"].width = 100
    eff.column_dimensions["B"].width = 100
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
