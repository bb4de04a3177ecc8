"""Downloads of the table page: ``GET /table.csv`` and ``/table.xlsx`` (viewer) — the
before/after table as ``shopfloor kpi --csv/--xlsx`` writes it — and ``POST /form``
(applicant): the application form's draft (DOCX and XLSX) with the signed evidence bundle its
footnotes name, as one zip (the same as ``shopfloor form``)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from gateway.data import Unavailable
from gateway.deps import Applicant, Viewer, get_state
from gateway.form import form_package, table_file
from gateway.i18n import LANG_COOKIE, pick_lang
from gateway.kpi import KpiService, PeriodInputError

router = APIRouter(include_in_schema=False)
_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _attachment(data: bytes, media: str, filename: str) -> Response:
    return Response(
        data,
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


def _error(exc: Exception) -> Response:
    status = 503 if isinstance(exc, Unavailable) else 422
    return Response(f"{exc}\n", status, media_type="text/plain; charset=utf-8")


async def _table(request: Request, kind: str, baseline: str, current: str) -> Response:
    kpi: KpiService = request.app.state.kpi
    settings = get_state(request).settings
    lang = pick_lang(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE))
    try:
        data = await kpi.table(baseline, current)
        body = await asyncio.to_thread(table_file, data, settings, kind, lang)
    except (Unavailable, PeriodInputError) as exc:
        return _error(exc)
    name = f"{settings.site.site.id}-table-{baseline}-{current}.{kind}".replace("..", "_")
    return _attachment(body, _TYPES[kind], name)


@router.get("/table.csv", dependencies=[Viewer])
async def table_csv(request: Request, baseline: str, current: str) -> Response:
    return await _table(request, "csv", baseline, current)


@router.get("/table.xlsx", dependencies=[Viewer])
async def table_xlsx(request: Request, baseline: str, current: str) -> Response:
    return await _table(request, "xlsx", baseline, current)


@router.post("/form", dependencies=[Applicant])
async def form_download(
    request: Request,
    baseline: Annotated[str, Form(max_length=100)],
    current: Annotated[str, Form(max_length=100)],
) -> Response:
    settings = get_state(request).settings
    try:
        data, filename = await asyncio.to_thread(form_package, settings, baseline, current)
    except (Unavailable, PeriodInputError) as exc:
        return _error(exc)
    return _attachment(data, "application/zip", filename)
