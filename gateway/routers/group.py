"""Routes of the group view (``shopfloor serve --group``): read-only, every one needs the role
``viewer`` through an API token of the group's tokens file (``/healthz`` excepted)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path
from typing import Any

import jinja2
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from gateway.auth import bearer_token
from gateway.deps import AuthRequired
from gateway.group import GroupService
from gateway.group_auth import TokenFile
from gateway.i18n import LANG_COOKIE, Lang, label, pick_lang
from gateway.present import fmt_coverage, fmt_number
from gateway.users import ROLE_RANK, Role, User

router = APIRouter()
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent.parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)

# labels of the group view besides the gateway's (gateway.i18n)
GROUP_LABELS: dict[str, tuple[str, str]] = {
    "group": ("集团总览", "Group view"),
    "group_table": ("集团汇总表", "Group table"),
    "sites": ("工厂", "sites"),
    "site": ("工厂", "site"),
    "machines": ("关键设备数", "key machines"),
    "kpi_table": ("指标表", "KPI table"),
    "devices_live": ("设备与实时数据", "devices and live values"),
    "group_row": ("集团合计", "group total"),
    "group_note": (
        "集团合计由各工厂关键设备的时间与数量求和后计算（PBT、APT、PRU×PQ、PQ、GQ），"
        "不是各百分比的平均值。",
        "The group total is computed from the sites' key machines' summed times and quantities "
        "(PBT, APT, PRU x PQ, PQ, GQ), never as a mean of percentages.",
    ),
    "pbt_h": ("计划运行时间 PBT (h)", "PBT (h)"),
    "apt_h": ("实际生产时间 APT (h)", "APT (h)"),
    "offline_h": ("离线 (h)", "offline (h)"),
    "ideal_h": ("理论加工时间 PRU×PQ (h)", "PRU x PQ (h)"),
    "pq": ("产量 PQ", "PQ"),
    "gq": ("合格数 GQ", "GQ"),
    "bundle_note": (
        "签名证据包按工厂导出：请在该工厂网关上导出。",
        "Signed bundles are per site: export them from the site's gateway.",
    ),
}


def t(key: str, lang: Lang) -> str:
    if key in GROUP_LABELS:
        zh, en = GROUP_LABELS[key]
        return zh if lang == "zh" else en
    return label(key, lang)


def _service(request: Request) -> GroupService:
    service: GroupService = request.app.state.group
    return service


def _caller(request: Request) -> User | None:
    tokens: TokenFile = request.app.state.group_tokens
    token = bearer_token(request.headers.get("authorization"))
    return tokens.user_for_token(token) if token is not None else None


def require(role: Role) -> Any:
    def dependency(request: Request) -> User:
        user = _caller(request)
        if user is None:
            raise AuthRequired()
        if ROLE_RANK[user.role] < ROLE_RANK[role]:
            raise HTTPException(403, f"this needs the role {role} (you have {user.role})")
        return user

    dependency.__name__ = f"require_{role}"
    dependency.required_role = role  # type: ignore[attr-defined]
    return Depends(dependency)


Viewer = require("viewer")


def default_period(tz: str, now: dt.datetime | None = None) -> str:
    """Yesterday in ``tz`` (a whole day of every site), as ``YYYY-MM-DD..YYYY-MM-DD``."""
    day = (now or dt.datetime.now(zoneinfo.ZoneInfo(tz))).date() - dt.timedelta(days=1)
    return f"{day.isoformat()}..{day.isoformat()}"


@router.get("/healthz", include_in_schema=False)
async def healthz(request: Request) -> dict[str, Any]:
    service = _service(request)
    tokens: TokenFile = request.app.state.group_tokens
    return {
        "ok": True,
        "group": service.group.config.group.id,
        "sites": len(service.group.sites),
        "tokens_file_error": tokens.error,
    }


@router.get("/api/v1/group/sites")
async def sites(request: Request, user: User = Viewer) -> dict[str, Any]:
    """The group's sites and their devices (from the sites' site files)."""
    service = _service(request)
    return {"group": service.group.config.group.model_dump(), "sites": service.sites()}


@router.get("/api/v1/group/sites/{site_id}/devices")
async def site_devices(request: Request, site_id: str, user: User = Viewer) -> dict[str, Any]:
    """One site's devices with the newest value of each point from the central InfluxDB."""
    return {"site": site_id, "devices": await _service(request).devices(site_id)}


@router.get("/api/v1/group/kpi")
async def kpi(
    request: Request,
    user: User = Viewer,
    period: str | None = Query(default=None, max_length=64),
) -> dict[str, Any]:
    """Every site's KPI values and summed figures of ``period`` (default yesterday), and the
    group row from the summed times and quantities of all the sites' key machines."""
    service = _service(request)
    text = period or default_period(service.group.sites[0].site.site.timezone)
    return await service.kpi(text)


def _pct(x: Any) -> str:
    return "—" if not isinstance(x, int | float) else f"{100 * x:.1f} %"


def _h(x: Any) -> str:
    return "—" if not isinstance(x, int | float) else f"{x / 3600:.2f}"


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page(
    request: Request,
    user: User = Viewer,
    period: str | None = Query(default=None, max_length=64),
) -> HTMLResponse:
    service = _service(request)
    lang = pick_lang(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE))
    text = period or default_period(service.group.sites[0].site.site.timezone)
    data = await service.kpi(text)
    devices = {gs.id: await service.devices(gs.id) for gs in service.group.sites}
    html = _env.get_template("group.html").render(
        t=lambda k: t(k, lang),
        lang=lang,
        user=user,
        group=service.group.config.group,
        period=text,
        data=data,
        devices=devices,
        pct=_pct,
        hours=_h,
        num=fmt_number,
        cov=lambda c: fmt_coverage({"coverage": c}),
    )
    return HTMLResponse(html)
