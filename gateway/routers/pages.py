"""Dashboard pages (server-rendered Jinja2 + a small script; ECharts shipped in /static).

Pages read their data from the REST API with the login session; changes arrive over the live
stream. Forms (login, logout, export, verify) carry a CSRF token; the session cookie is
HttpOnly and SameSite=Strict.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

import jinja2
from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway import evidence
from gateway.auth import CSRF_FIELD, PRELOGIN_COOKIE, SESSION_COOKIE
from gateway.data import Unavailable
from gateway.defaults import default_periods
from gateway.deps import Applicant, Viewer, get_state, optional_user, session_of
from gateway.i18n import LANG_COOKIE, STATE_COLORS, Lang, label, pick_lang
from gateway.kpi import KpiService, PeriodInputError, today_range
from gateway.present import (
    figure_rows,
    pretty_json,
    reason_text,
    report_checks,
    report_findings,
    table_rows,
)
from gateway.routers.evidence import check_upload
from gateway.users import User

log = logging.getLogger("shopfloor.gateway.pages")
router = APIRouter(include_in_schema=False)
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent.parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def _lang(request: Request) -> Lang:
    return pick_lang(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE))


def _safe_next(target: str | None) -> str:
    """Only local paths (no scheme, no host, no '//'): no open redirect after login."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return "/"
    return target


def _render(request: Request, template: str, *, status: int = 200, **ctx: Any) -> HTMLResponse:
    lang = _lang(request)
    state = get_state(request)
    site = state.settings.site
    user: User | None = optional_user(request)
    session = session_of(request)

    def t(key: str) -> str:
        return label(key, lang)

    boot = _boot(request, lang) if user is not None else _anonymous_boot(request, lang)
    html = _env.get_template(template).render(
        t=t,
        lang=lang,
        user=user,
        site=site,
        csrf=session.csrf if session is not None else "",
        csrf_field=CSRF_FIELD,
        path=request.url.path,
        boot=json.dumps(boot, ensure_ascii=False).replace("</", "<\\/"),
        **ctx,
    )
    return HTMLResponse(html, status, headers={"Cache-Control": "no-store"})


def _anonymous_boot(request: Request, lang: Lang) -> dict[str, Any]:
    """What the login page's script may know: nothing about devices, points or factors."""
    site = get_state(request).settings.site
    return {
        "lang": lang,
        "csrf": None,
        "site": {"name": site.site.name},
        "devices": [],
        "labels": {k: label(k, lang) for k in _JS_LABELS},
        "colors": STATE_COLORS,
    }


def _boot(request: Request, lang: Lang) -> dict[str, Any]:
    """The signed-in pages' data: the site, its devices and points, labels and factors."""
    site = get_state(request).settings.site
    session = session_of(request)
    return {
        "lang": lang,
        "csrf": session.csrf if session is not None else None,
        "site": {"id": site.site.id, "name": site.site.name, "tz": site.site.timezone},
        "devices": [
            {
                "id": d.id,
                "name": d.name,
                "line": d.line,
                "key": d.key_equipment,
                "production": d.production,
                "rated_kw": d.rated_power_kw,
                "points": [
                    {
                        "id": p.id,
                        "role": p.role,
                        "unit": p.unit,
                        "name": p.name,
                        "states": p.state_map or None,
                    }
                    for p in d.points
                ],
            }
            for d in site.devices
        ],
        "labels": {k: label(k, lang) for k in _JS_LABELS},
        "colors": STATE_COLORS,
        "factors": {
            "grid_co2_kg_per_kwh": site.kpi.factors.grid_co2_kg_per_kwh.value,
            "grid_co2_id": site.kpi.factors.grid_co2_kg_per_kwh.id,
            "elec_kgce_per_kwh": site.kpi.factors.electricity_kgce_per_kwh.value,
        },
        "today": today_range(site.site.timezone),
    }


_JS_LABELS = (
    "producing",
    "setup",
    "idle",
    "down",
    "planned_stop",
    "offline",
    "oee",
    "availability",
    "effectiveness",
    "quality",
    "good",
    "scrap",
    "power",
    "updated",
    "connected",
    "disconnected",
    "last_data",
    "errors",
    "restarts",
    "drops",
    "outbox",
    "samples",
    "no_data",
    "energy_today",
    "carbon_today",
    "timeline",
    "trends",
    "fleet",
    "unavailable",
    "value",
    "time",
    "point",
    "coverage",
    "no_value_reason",
    "q_good",
    "q_uncertain",
    "q_bad",
)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str = "/") -> Response:
    state = get_state(request)
    if optional_user(request) is not None:  # signed in already: on to where it was going
        return RedirectResponse(_safe_next(next), status_code=303)
    cookie, csrf = state.signer.prelogin()
    resp = _render(
        request, "login.html", page="login", next=_safe_next(next), login_csrf=csrf, error=None
    )
    resp.set_cookie(
        PRELOGIN_COOKIE,
        cookie,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=state.settings.cookie_secure,
    )
    return resp


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    state = get_state(request)
    if not state.signer.check_prelogin(request.cookies.get(PRELOGIN_COOKIE), csrf_token):
        raise HTTPException(403, "the login form expired or lacks its CSRF token; reload it")
    address = request.client.host if request.client is not None else "-"
    if state.logins.blocked(username, address):
        log.warning("login refused: too many failures", extra={"username": username})
        raise HTTPException(429, "too many failed logins; wait 5 minutes")
    user = await asyncio.to_thread(state.users.authenticate, username, password)
    if user is None:
        state.logins.failed(username, address)
        log.info("login failed", extra={"username": username})
        cookie, csrf = state.signer.prelogin()
        failed = _render(
            request,
            "login.html",
            status=401,
            page="login",
            next=_safe_next(next),
            login_csrf=csrf,
            error=label("login_failed", _lang(request)),
        )
        failed.set_cookie(
            PRELOGIN_COOKIE,
            cookie,
            max_age=3600,
            httponly=True,
            samesite="strict",
            secure=state.settings.cookie_secure,
        )
        return failed
    cookie, session = state.signer.new_session(user.username, state.settings.session_ttl_s)
    await asyncio.to_thread(state.users.add_session, session.sid, user.username, session.expires)
    resp = RedirectResponse(_safe_next(next), status_code=303)
    resp.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=state.settings.session_ttl_s,
        httponly=True,
        samesite="strict",
        secure=state.settings.cookie_secure,
    )
    resp.delete_cookie(PRELOGIN_COOKIE)
    return resp


@router.post("/logout", dependencies=[Viewer])
async def logout(request: Request) -> Response:
    """Ends the session on the server too: the cookie, even if kept, no longer signs in."""
    session = session_of(request)
    if session is not None:
        await asyncio.to_thread(get_state(request).users.end_session, session.sid)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE)
    return resp


@router.get("/lang/{lang}")
async def set_lang(request: Request, lang: str, next: str = "/") -> Response:
    if lang not in ("zh", "en"):
        raise HTTPException(404, "languages: zh, en")
    resp = RedirectResponse(_safe_next(next), status_code=303)
    resp.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="strict")
    return resp


@router.get("/", response_class=HTMLResponse, dependencies=[Viewer])
async def overview(request: Request) -> Response:
    return _render(request, "overview.html", page="overview")


@router.get("/machine/{device_id}", response_class=HTMLResponse, dependencies=[Viewer])
async def machine(request: Request, device_id: str) -> Response:
    try:
        dev = get_state(request).settings.site.device(device_id)
    except KeyError:
        raise HTTPException(404, f"no device {device_id!r}") from None
    kpi: KpiService = request.app.state.kpi
    lang = _lang(request)
    period = request.query_params.get("period")
    figures: dict[str, Any] | None = None
    error: str | None = None
    try:
        period = period or await kpi.data_day()
        _, view = await kpi.machines(period, (dev.id,), lang)
        figures = view["machines"][0]
    except (Unavailable, PeriodInputError) as exc:
        error = str(exc)
    return _render(
        request,
        "machine.html",
        page="machine",
        device=dev,
        period=period or "",
        figures=figure_rows(figures, lang),
        machine_reason=reason_text(figures, lang) if figures else "",
        error=error,
    )


@router.get("/energy", response_class=HTMLResponse, dependencies=[Viewer])
async def energy(request: Request) -> Response:
    return _render(request, "energy.html", page="energy")


@router.get("/health", response_class=HTMLResponse, dependencies=[Viewer])
async def health(request: Request) -> Response:
    return _render(request, "health.html", page="health")


async def _default_periods(request: Request) -> tuple[str, str]:
    """The periods asked for, else those the recorded data suggests (gateway.defaults)."""
    q = request.query_params
    if q.get("baseline") and q.get("current"):
        return q["baseline"], q["current"]
    state = get_state(request)
    tz = state.settings.site.site.timezone

    def spans(store: Any) -> list[tuple[str, int, int]]:
        read = getattr(store, "source_spans", None)
        return list(read()) if read is not None else []

    try:
        found = await state.pool.run(spans)
    except Unavailable:
        found = []
    today = dt.date.fromisoformat(today_range(tz).split("..")[0])
    baseline, current = default_periods(found, tz, today)
    return q.get("baseline") or baseline, q.get("current") or current


@router.get("/table", response_class=HTMLResponse, dependencies=[Viewer])
async def table(request: Request) -> Response:
    baseline, current = await _default_periods(request)
    kpi: KpiService = request.app.state.kpi
    data: dict[str, Any] | None = None
    error: str | None = None
    try:
        data = await kpi.table(baseline, current)
    except (Unavailable, PeriodInputError) as exc:
        error = str(exc)
    return _render(
        request,
        "table.html",
        page="table",
        baseline=baseline,
        current=current,
        rows=table_rows(data, _lang(request)),
        error=error,
        query=urlencode({"baseline": baseline, "current": current, "lang": _lang(request)}),
    )


@router.get("/export", response_class=HTMLResponse, dependencies=[Applicant])
async def export_form(request: Request) -> Response:
    baseline, current = await _default_periods(request)
    return _render(
        request, "export.html", page="export", baseline=baseline, current=current, error=None
    )


@router.post("/export", dependencies=[Applicant])
async def export_download(
    request: Request,
    baseline: Annotated[str, Form(max_length=100)],
    current: Annotated[str, Form(max_length=100)],
) -> Response:
    settings = get_state(request).settings
    try:
        data, filename = await asyncio.to_thread(
            evidence.export_bundle, settings, baseline, current
        )
    except (Unavailable, PeriodInputError) as exc:
        return _render(
            request,
            "export.html",
            status=503 if isinstance(exc, Unavailable) else 422,
            page="export",
            baseline=baseline,
            current=current,
            error=str(exc),
        )
    return Response(
        data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/verify", response_class=HTMLResponse, dependencies=[Viewer])
async def verify_form(request: Request) -> Response:
    return _render(request, "verify.html", page="verify", result=None, error=None)


@router.post("/verify", response_class=HTMLResponse, dependencies=[Viewer])
async def verify_upload(
    request: Request,
    bundle: Annotated[UploadFile, File()],
    trust: Annotated[UploadFile | None, File()] = None,
) -> Response:
    settings = get_state(request).settings
    try:
        rep, report, source, _ = await check_upload(
            settings, bundle, trust if trust is not None and trust.filename else None
        )
    except (Unavailable, evidence.BundleInputError, HTTPException) as exc:
        msg = exc.detail if isinstance(exc, HTTPException) else str(exc)
        return _render(request, "verify.html", status=200, page="verify", result=None, error=msg)
    lang = _lang(request)
    result = {
        "ok": rep.ok,
        "verdict": rep.verdict,
        "trust": source,
        "filename": bundle.filename or "bundle.zip",
    }
    return _render(
        request,
        "verify.html",
        page="verify",
        result=result,
        checks=report_checks({"checks": report["checks"], "kpis": report["kpis"]}, lang),
        findings=report_findings(report, lang),
        plausible=report_checks(
            {"plausibility": [c for c in report["plausibility"] if c["ok"]]}, lang
        ),
        report_json=pretty_json(report),
        error=None,
    )
