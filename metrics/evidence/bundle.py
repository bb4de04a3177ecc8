"""The evidence bundle: a zip written from parts and read back into parts (pure), and its
human-readable report (HTML with inline SVG plots of the data behind OEE, energy and defects).

Layout (every name fixed; any other entry is an error):

``README.txt``          what the bundle is and how to verify it (中文 / English)
``snapshot.dsse.json``  DSSE envelope over the KPI snapshot (see :mod:`.snapshot`)
``checkpoint.txt``      C2SP checkpoint signed by the gateway, with witness cosignatures
``log/leaves.json``     RFC 8785 JSON list, in log order, of ``{"index", "record", "proof",
                        "samples"}``: the leaf record (its canonical bytes are the leaf),
                        the inclusion proof (base64 hashes) up to the checkpoint, and for batch
                        leaves ``{"offset", "length"}`` of its samples in ``log/samples.bin``
``log/samples.bin``     the ``sfs1`` sample bytes of every batch, concatenated
``report.html``         report with plots (hash signed in the snapshot)
``table.csv``           before/after table with the form's labels (hash signed)
``table.xlsx``          the same as a workbook (hash signed)
"""

from __future__ import annotations

import html
import io
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from metrics import table as table_fmt
from metrics.evidence import canonical
from metrics.evidence.note import b64, b64decode_strict
from metrics.machine_table import no_value_reason

README = "README.txt"
ENVELOPE = "snapshot.dsse.json"
CHECKPOINT = "checkpoint.txt"
LEAVES = "log/leaves.json"
SAMPLES = "log/samples.bin"
REPORT = "report.html"
TABLE_CSV = "table.csv"
TABLE_XLSX = "table.xlsx"
FILES = (README, ENVELOPE, CHECKPOINT, LEAVES, SAMPLES, REPORT, TABLE_CSV, TABLE_XLSX)
SIGNED_FILES = (README, REPORT, TABLE_CSV, TABLE_XLSX)  # their SHA-256 is in the snapshot

MAX_FILE_BYTES = 4 << 30
MAX_TOTAL_BYTES = 2 << 30
"""Default bound of a bundle's total uncompressed size (``shopfloor verify --max-mb``)."""
MAX_MEMBERS = 64
"""More zip entries than this is refused before anything is read (a bundle has 8)."""
READ_CHUNK = 1 << 20
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class BundleError(ValueError):
    """A bundle that cannot be read (the message names the file)."""


class BundleTooLarge(BundleError):
    """A bundle over the size or entry-count limits (nothing beyond the limit was read)."""


@dataclass(frozen=True)
class BundleLeaf:
    index: int
    record: bytes
    proof: tuple[bytes, ...]
    samples: bytes | None = None


@dataclass(frozen=True)
class BundleParts:
    envelope: bytes
    checkpoint: bytes
    leaves: tuple[BundleLeaf, ...]
    report_html: bytes
    table_csv: bytes
    table_xlsx: bytes
    readme: bytes

    def signed_files(self) -> dict[str, bytes]:
        return {
            README: self.readme,
            REPORT: self.report_html,
            TABLE_CSV: self.table_csv,
            TABLE_XLSX: self.table_xlsx,
        }


def encode_leaves(leaves: Sequence[BundleLeaf]) -> tuple[bytes, bytes]:
    """``log/leaves.json`` and ``log/samples.bin`` for these leaves."""
    blob = io.BytesIO()
    out = []
    for lf in leaves:
        entry: dict[str, Any] = {
            "index": lf.index,
            "record": canonical.parse_canonical(lf.record, f"leaf {lf.index} record"),
            "proof": [b64(h) for h in lf.proof],
        }
        if lf.samples is not None:
            entry["samples"] = {"offset": blob.tell(), "length": len(lf.samples)}
            blob.write(lf.samples)
        out.append(entry)
    return canonical.canonical_json(out), blob.getvalue()


def decode_leaves(leaves_json: bytes, samples: bytes) -> tuple[BundleLeaf, ...]:
    obj = canonical.parse_canonical(leaves_json, LEAVES)
    if not isinstance(obj, list):
        raise BundleError(f"{LEAVES}: expected a list")
    out: list[BundleLeaf] = []
    used = 0
    for i, e in enumerate(obj):
        where = f"{LEAVES} entry {i}"
        if not isinstance(e, dict) or not {"index", "record", "proof"} <= set(e):
            raise BundleError(f"{where}: needs index, record and proof")
        if set(e) - {"index", "record", "proof", "samples"}:
            raise BundleError(f"{where}: unknown field")
        idx = e["index"]
        if not isinstance(idx, int) or idx < 0:
            raise BundleError(f"{where}: index must be a non-negative integer")
        if not isinstance(e["proof"], list):
            raise BundleError(f"{where}: proof must be a list")
        try:
            proof = tuple(b64decode_strict(str(p), f"{where} proof") for p in e["proof"])
        except ValueError as exc:
            raise BundleError(str(exc)) from None
        data = None
        if "samples" in e:
            s = e["samples"]
            if not isinstance(s, dict) or set(s) != {"offset", "length"}:
                raise BundleError(f"{where}: samples must be {{offset, length}}")
            off, ln = s["offset"], s["length"]
            if not (isinstance(off, int) and isinstance(ln, int)) or off != used or ln < 0:
                raise BundleError(f"{where}: samples offset/length out of sequence")
            if off + ln > len(samples):
                raise BundleError(f"{where}: samples run past the end of {SAMPLES}")
            data = samples[off : off + ln]
            used = off + ln
        out.append(BundleLeaf(idx, canonical.canonical_json(e["record"]), proof, data))
    if used != len(samples):
        raise BundleError(f"{SAMPLES}: {len(samples) - used} bytes no leaf refers to")
    return tuple(out)


def write_bundle(parts: BundleParts) -> bytes:
    leaves_json, samples = encode_leaves(parts.leaves)
    content = {
        README: parts.readme,
        ENVELOPE: parts.envelope,
        CHECKPOINT: parts.checkpoint,
        LEAVES: leaves_json,
        SAMPLES: samples,
        REPORT: parts.report_html,
        TABLE_CSV: parts.table_csv,
        TABLE_XLSX: parts.table_xlsx,
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for name in FILES:
            info = zipfile.ZipInfo(name, _ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, content[name])
    return buf.getvalue()


def read_files(
    data: bytes | str | os.PathLike[str] | BinaryIO,
    *,
    max_total: int = MAX_TOTAL_BYTES,
    max_members: int = MAX_MEMBERS,
) -> dict[str, bytes]:
    """The bundle's files by name (``data``: the zip's bytes, path or open binary file).
    Members are decompressed in chunks, never more than ``max_total`` bytes in all: a bundle
    listing more than ``max_members`` entries or more than ``max_total`` uncompressed bytes
    (declared, or found while reading) raises :class:`BundleTooLarge`; every other problem
    is a :class:`BundleError`."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise BundleError(f"bundle: not a zip file ({exc})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > max_members:
            raise BundleTooLarge(f"bundle: {len(infos)} entries, more than {max_members}")
        declared = sum(i.file_size for i in infos)
        if declared > max_total:
            raise BundleTooLarge(
                f"bundle: {declared} bytes uncompressed, more than the limit of {max_total}"
            )
        names = [i.filename for i in infos]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise BundleError(f"bundle: duplicate entries {', '.join(sorted(dup))}")
        extra = sorted(set(names) - set(FILES))
        if extra:
            raise BundleError(f"bundle: unexpected file(s) {', '.join(extra)}")
        missing = [n for n in FILES if n not in names]
        if missing:
            raise BundleError(f"bundle: missing file(s) {', '.join(missing)}")
        out: dict[str, bytes] = {}
        left = max_total
        for info in infos:
            if info.file_size > MAX_FILE_BYTES:
                raise BundleError(f"{info.filename}: larger than {MAX_FILE_BYTES} bytes")
            try:
                out[info.filename] = _read_member(zf, info, left)
            except BundleError:
                raise
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                raise BundleError(f"{info.filename}: corrupt in the zip ({exc})") from None
            except Exception as exc:  # zlib.error and friends from a damaged stream
                raise BundleError(f"{info.filename}: corrupt in the zip ({exc})") from None
            left -= len(out[info.filename])
    return out


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """A member's bytes, decompressed ``READ_CHUNK`` at a time, at most ``limit`` bytes."""
    buf = bytearray()
    with zf.open(info) as f:
        while chunk := f.read(READ_CHUNK):
            buf += chunk
            if len(buf) > limit:
                raise BundleTooLarge(f"{info.filename}: decompresses past the bundle's size limit")
    return bytes(buf)


def parts_from_files(files: Mapping[str, bytes]) -> BundleParts:
    return BundleParts(
        envelope=files[ENVELOPE],
        checkpoint=files[CHECKPOINT],
        leaves=decode_leaves(files[LEAVES], files[SAMPLES]),
        report_html=files[REPORT],
        table_csv=files[TABLE_CSV],
        table_xlsx=files[TABLE_XLSX],
        readme=files[README],
    )


def read_bundle(data: bytes) -> BundleParts:
    return parts_from_files(read_files(data))


def readme_text(site_name: str, baseline: str, current: str) -> bytes:
    return (
        f"shopfloor 证据包 evidence bundle — {site_name}\n"
        f"建设前 baseline: {baseline}\n建成后 current: {current}\n\n"
        "核验 Verify (离线 offline, 只需 shopfloor 软件包 / only the shopfloor package):\n"
        "  pip install 'shopfloor[verify]'\n"
        "  shopfloor verify bundle.zip --trust trust.json\n"
        "退出码 Exit: 0 全部通过 passed; 3 完整性通过、有合理性发现待评审 integrity passed, "
        "findings to review; 1 未通过 failed; 2 用法错误 usage error\n\n"
        "trust.json 须由评审方从申报企业以外的渠道获得（不要使用本包内的任何密钥）。\n"
        "Obtain trust.json out of band; never trust a key found inside this bundle.\n"
        "详见 / See docs/verification.md.\n"
    ).encode()


# --- report --------------------------------------------------------------------------------

_STATE_COLOURS = {
    "producing": "#2e9d4f",
    "setup": "#f0b429",
    "idle": "#9aa5b1",
    "down": "#d64545",
    "planned_stop": "#4c6edb",
    "offline": "#ffffff",
}
_LINE_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")


@dataclass(frozen=True)
class PlotSeries:
    label: str
    ts: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]


def _thin(
    ts: npt.NDArray[np.int64], v: npt.NDArray[np.float64], n: int = 400
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    if ts.shape[0] <= n:
        return ts, v
    idx = np.unique(np.concatenate([np.linspace(0, ts.shape[0] - 1, n).astype(np.int64)]))
    return ts[idx], v[idx]


def svg_lines(title: str, series: Sequence[PlotSeries], t0: int, t1: int, unit: str = "") -> str:
    """A line plot (inline SVG) of step/counter series over ``[t0, t1)``."""
    w, h, pad = 760, 220, 46
    vals = [s.values[np.isfinite(s.values)] for s in series if s.values.size]
    lo = min((float(v.min()) for v in vals if v.size), default=0.0)
    hi = max((float(v.max()) for v in vals if v.size), default=1.0)
    if hi <= lo:
        hi = lo + 1.0
    span = max(t1 - t0, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<text x="{pad}" y="16" font-size="13">{html.escape(title)}</text>',
        f'<rect x="{pad}" y="24" width="{w - 2 * pad}" height="{h - 60}" fill="none" '
        'stroke="#ccc"/>',
        f'<text x="2" y="34" font-size="10">{hi:.6g} {html.escape(unit)}</text>',
        f'<text x="2" y="{h - 36}" font-size="10">{lo:.6g}</text>',
    ]
    for k, s in enumerate(series):
        ts, v = _thin(s.ts, s.values)
        ok = np.isfinite(v)
        ts, v = ts[ok], v[ok]
        if not ts.size:
            continue
        xs = pad + (ts - t0) / span * (w - 2 * pad)
        ys = 24 + (h - 60) * (1 - (v - lo) / (hi - lo))
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
        colour = _LINE_COLOURS[k % len(_LINE_COLOURS)]
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.2" points="{pts}"/>')
        parts.append(
            f'<text x="{pad + 110 * k}" y="{h - 8}" font-size="11" fill="{colour}">'
            f"{html.escape(s.label)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def svg_states(
    title: str, rows: Sequence[tuple[str, npt.NDArray[np.int64], list[str]]], t0: int, t1: int
) -> str:
    """A state timeline (inline SVG): one strip per machine, coloured by mapped state."""
    w, pad, rh = 760, 90, 18
    h = 40 + rh * len(rows) + 24
    span = max(t1 - t0, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<text x="4" y="16" font-size="13">{html.escape(title)}</text>',
    ]
    for r, (label, ts, states) in enumerate(rows):
        y = 28 + r * rh
        parts.append(f'<text x="4" y="{y + 13}" font-size="11">{html.escape(label)}</text>')
        n = ts.shape[0]
        # merge runs so a year of minute-level states stays a small picture
        k = 0
        while k < n:
            j = k
            while j + 1 < n and states[j + 1] == states[k]:
                j += 1
            start = max(int(ts[k]), t0)
            end = int(ts[j + 1]) if j + 1 < n else t1
            if end > start:
                x0 = pad + (start - t0) / span * (w - pad - 10)
                x1 = pad + (min(end, t1) - t0) / span * (w - pad - 10)
                colour = _STATE_COLOURS.get(states[k], "#000")
                parts.append(
                    f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 0.3):.1f}" '
                    f'height="{rh - 4}" fill="{colour}"/>'
                )
            k = j + 1
    lx = pad
    for name, colour in _STATE_COLOURS.items():
        parts.append(
            f'<rect x="{lx}" y="{h - 16}" width="10" height="10" fill="{colour}" stroke="#999"/>'
            f'<text x="{lx + 13}" y="{h - 7}" font-size="10">{name}</text>'
        )
        lx += 100
    parts.append("</svg>")
    return "".join(parts)


def _float(v: Any) -> float | None:
    """A table cell's number (the engine's float, or a canonical decimal string)."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def _provenance(r: Mapping[str, Any]) -> str:
    """The provenance cell of a row: the before and after values' own provenances (an
    imported baseline says 导入 imported), in both languages, as in the CSV."""
    sides = [
        v.get("provenance") if isinstance(v, Mapping) else None
        for v in (r.get("before"), r.get("after"))
    ]
    provs = [str(p) for p in sides if isinstance(p, str) and p]
    return table_fmt.provenance_text(provs or [str(r.get("provenance", ""))], "zh")


def row_value(v: Any) -> Any:
    """The number of a table cell whether the engine gives a value dict or a bare number."""
    if isinstance(v, Mapping):
        return v.get("value")
    return v


def _cell(v: Any, text: str) -> str:
    """A before/after cell: the value as ``text`` (the table's one formatting rule), its
    coverage, and for no value the reason (never hidden:
    ``metrics.machine_table.no_value_reason``)."""
    out = html.escape(text)
    if not isinstance(v, Mapping):
        return out
    cov = v.get("coverage")
    if isinstance(cov, int | float) and not isinstance(cov, bool) and np.isfinite(cov):
        out += f"<br><small>覆盖率 coverage {100.0 * cov:.1f}%</small>"
    why = no_value_reason(v)
    if why:
        out += f'<br><small class="reason">{html.escape(why)}</small>'
    return out


WORSE_MARK = "↓"
WORSE_LEGEND = f"{WORSE_MARK} 变差：变化方向不利于该指标 (worse: the change goes the KPI's bad way)"


def row_worse(r: Mapping[str, Any]) -> bool:
    """The row's ``worse`` flag (``KpiRow.to_dict``), or for a row without it the same rule from
    its good direction and change."""
    flag = r.get("worse")
    if isinstance(flag, bool):
        return flag
    try:
        change = float(r.get("change"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    if not np.isfinite(change):
        return False
    direction = r.get("direction")
    return change < 0 if direction == "up" else change > 0 if direction == "down" else False


def render_report(
    *,
    title: str,
    site_name: str,
    periods: Mapping[str, str],
    table: Mapping[str, Any],
    sections: Sequence[tuple[str, str]],
    facts: Sequence[tuple[str, str]],
) -> bytes:
    """The HTML report: facts, the before/after table, then plot sections ``(heading, svg)``."""
    rows_html = []
    any_worse = False
    for r in table.get("rows", []):
        if not isinstance(r, Mapping):
            continue
        worse = row_worse(r)
        any_worse = any_worse or worse
        mark = f' <span class="worse" title="{html.escape(WORSE_LEGEND)}">{WORSE_MARK}</span>'
        label = html.escape(str(r.get("label_zh", r.get("id", ""))))
        en = html.escape(str(r.get("label_en", "")))
        unit = str(r.get("unit", ""))
        change = table_fmt.change_text(
            _float(r.get("change")), str(r.get("direction", "")), str(r.get("change_label", ""))
        )
        before = table_fmt.fmt_value(_float(row_value(r.get("before"))), unit)
        after = table_fmt.fmt_value(_float(row_value(r.get("after"))), unit)
        rows_html.append(
            "<tr>"
            f"<td>{'*' if r.get('mandatory') else ''}{label}<br><small>{en}</small></td>"
            f"<td>{html.escape(unit)}</td>"
            f"<td>{_cell(r.get('before'), before)}</td>"
            f"<td>{_cell(r.get('after'), after)}</td>"
            f"<td>{html.escape(change)}{mark if worse else ''}</td>"
            f"<td>{html.escape(_provenance(r))}</td>"
            "</tr>"
        )
    legend = f'<p class="legend">{html.escape(WORSE_LEGEND)}</p>' if any_worse else ""
    facts_html = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts
    )
    per = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in periods.items())
    secs = "".join(f"<h2>{html.escape(h)}</h2>\n{svg}\n" for h, svg in sections)
    doc = f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }}
small {{ color: #666; }}
.worse {{ color: #b42318; font-weight: bold; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(site_name)}</p>
<ul>{per}</ul>
<table>{facts_html}</table>
<h2>建设前 / 建成后 指标 Before / after KPI table</h2>
<table>
<tr><th>指标 KPI</th><th>单位 unit</th><th>建设前 before</th><th>建成后 after</th>
<th>变化 change</th><th>来源 provenance</th></tr>
{"".join(rows_html)}
</table>
{legend}
<p>所有实测指标均可用 <code>shopfloor verify bundle.zip --trust trust.json</code> 离线复算。
Every measured KPI can be recomputed offline with
<code>shopfloor verify bundle.zip --trust trust.json</code>.</p>
{secs}
</body></html>
"""
    return doc.encode("utf-8")


def report_sections(
    site: Any, reader: Any, periods: Sequence[tuple[str, int, int]]
) -> list[tuple[str, str]]:
    """Plots of the data behind OEE (machine states, good/scrap counts), energy (meters) and
    the defect rate (scrap, rework, total counters), per period, read through ``reader``."""
    from config.models import SiteConfig

    assert isinstance(site, SiteConfig)
    out: list[tuple[str, str]] = []
    for pname, t0, t1 in periods:
        rows = []
        counts: list[PlotSeries] = []
        defects: list[PlotSeries] = []
        energy: list[PlotSeries] = []
        for dev in site.devices:
            for pt in dev.points:
                s = reader.read(dev.id, pt.id, t0, t1, prior=pt.role in ("state",))
                if not len(s):
                    continue
                label = f"{dev.id}/{pt.id}"
                if pt.role == "state" and dev.key_equipment:
                    smap = pt.state_map or {}
                    names: list[str] = [
                        smap.get(str(int(v)) if np.isfinite(v) else "", "offline") for v in s.values
                    ]
                    rows.append((dev.id, s.ts, names))
                elif pt.role == "count_good":
                    counts.append(PlotSeries(label, s.ts, s.values))
                elif pt.role in ("count_scrap", "count_rework", "count_total"):
                    defects.append(PlotSeries(label, s.ts, s.values))
                elif pt.role == "energy_kwh":
                    energy.append(PlotSeries(label, s.ts, s.values))
        if rows:
            out.append(
                (
                    f"{pname}: 设备状态 machine states (OEE 时间模型 time model)",
                    svg_states("状态 states", rows, t0, t1),
                )
            )
        if counts:
            out.append(
                (
                    f"{pname}: 合格品计数 good counts (OEE 质量/性能 quality, effectiveness)",
                    svg_lines("good (cumulative)", counts, t0, t1, "件"),
                )
            )
        if energy:
            out.append(
                (
                    f"{pname}: 电能表 energy meters (单位产值综合能耗 energy per value)",
                    svg_lines("kWh (cumulative)", energy, t0, t1, "kWh"),
                )
            )
        if defects:
            out.append(
                (
                    f"{pname}: 不良品 scrap / rework / total (产品不良品率 defect rate)",
                    svg_lines("counts (cumulative)", defects, t0, t1, "件"),
                )
            )
    return out
