"""Downloads of the table page: the before/after table as CSV / XLSX and the application
form's draft (:mod:`metrics.form`) with the signed bundle its footnotes refer to."""

from __future__ import annotations

import hashlib
import io
import zipfile
from typing import Any

from gateway import evidence
from gateway.kpi import parse_period
from gateway.settings import Settings
from metrics import form
from metrics import table as table_mod
from metrics.engine import KpiTable
from metrics.form_docx import to_docx

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def table_file(table: dict[str, Any], settings: Settings, kind: str, lang: str) -> bytes:
    """The before/after table (``KpiTable.to_dict()``) as ``csv`` or ``xlsx``, in the same
    cells as ``shopfloor kpi --csv/--xlsx``."""
    tz = settings.site.site.timezone
    kt = KpiTable(
        site_id=str(table["site_id"]),
        baseline=parse_period(str(table["baseline"]["label"]), tz),
        current=parse_period(str(table["current"]["label"]), tz),
        baseline_imported=bool(table["baseline_imported"]),
        current_imported=bool(table["current_imported"]),
        rows=tuple(_row(r) for r in table["rows"]),
        settings={},
        tiers={},
        reads=(),
        engine_version=str(table.get("engine_version", "")),
    )
    if kind == "csv":
        return table_mod.to_csv(kt, lang).encode("utf-8")
    return table_mod.to_xlsx(kt, lang)


def _row(d: dict[str, Any]) -> Any:
    from metrics.engine import KpiRow

    return KpiRow.from_dict({k: v for k, v in d.items() if k != "worse"})


def form_package(settings: Settings, baseline: str, current: str) -> tuple[bytes, str]:
    """A zip of the form draft (DOCX and XLSX) and the evidence bundle its footnotes name,
    exported and signed now; and a file name for it."""
    result, bundle_name = evidence.export_result(settings, baseline, current)
    ref = form.BundleRef.from_payload(
        bundle_name, hashlib.sha256(result.data).hexdigest(), result.payload
    )
    draft = form.build(settings.site, result.table, ref)
    stem = bundle_name.removesuffix(".zip").replace("-evidence-", "-form-")
    files = {
        f"{stem}.docx": to_docx(draft),
        f"{stem}.xlsx": form.to_xlsx(draft),
        bundle_name: result.data,
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(zipfile.ZipInfo(name, _ZIP_TIME), data)
    return buf.getvalue(), f"{stem}.zip"
