"""REST: site, devices with health, points, latest values, history, KPI values, the table."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from edge.store.base import DeviceHealth
from gateway.data import ReadStore
from gateway.deps import Viewer, get_state
from gateway.downsample import MAX_BUCKETS, add_minutes, downsample
from gateway.kpi import KpiService
from gateway.schemas import (
    RANGE_PATTERN,
    DeviceOut,
    ErrorOut,
    HistoryOut,
    MachinesOut,
    PeriodOut,
    PointOut,
    SampleOut,
    SiteOut,
    TableOut,
)
from gateway.views import device_out, point_out, sample_out

router = APIRouter(prefix="/api/v1", tags=["data"])

ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
DeviceId = Annotated[str, Path(min_length=1, max_length=64, pattern=ID)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut},
    403: {"model": ErrorOut},
    404: {"model": ErrorOut},
    422: {"model": ErrorOut},
    503: {"model": ErrorOut, "description": "the store or a module is not available"},
}
MAX_NS = 2**63 - 1


def _kpi(request: Request) -> KpiService:
    svc: KpiService = request.app.state.kpi
    return svc


def _site_out(request: Request) -> SiteOut:
    site = get_state(request).settings.site
    return SiteOut(
        id=site.site.id,
        name=site.site.name,
        enterprise=site.site.enterprise,
        timezone=site.site.timezone,
        devices=len(site.devices),
        points=sum(len(d.points) for d in site.devices),
        storage=site.storage.kind,
    )


@router.get("/site", response_model=SiteOut, responses=_ERRORS, dependencies=[Viewer])
async def get_site(request: Request) -> SiteOut:
    """The site this gateway collects."""
    return _site_out(request)


@router.get("/sites", response_model=list[SiteOut], responses=_ERRORS, dependencies=[Viewer])
async def list_sites(request: Request) -> list[SiteOut]:
    """Sites served here (one gateway serves one site; central deployments list several)."""
    return [_site_out(request)]


async def _health(request: Request) -> dict[str, DeviceHealth]:
    def read(store: ReadStore) -> list[DeviceHealth]:
        return store.health()

    records = await get_state(request).pool.run(read)
    return {h.device: h for h in records}


def _stale_s(request: Request) -> float:
    return 3 * get_state(request).settings.site.runtime.health_interval_s


@router.get("/devices", response_model=list[DeviceOut], responses=_ERRORS, dependencies=[Viewer])
async def list_devices(request: Request) -> list[DeviceOut]:
    """Every configured device with its points and its health as the collector recorded it."""
    health = await _health(request)
    stale = _stale_s(request)
    site = get_state(request).settings.site
    return [device_out(d, health.get(d.id), stale_after_s=stale) for d in site.devices]


def _device(request: Request, device_id: str) -> Any:
    try:
        return get_state(request).settings.site.device(device_id)
    except KeyError:
        raise HTTPException(404, f"no device {device_id!r}") from None


@router.get(
    "/devices/{device_id}", response_model=DeviceOut, responses=_ERRORS, dependencies=[Viewer]
)
async def get_device(request: Request, device_id: DeviceId) -> DeviceOut:
    dev = _device(request, device_id)
    health = await _health(request)
    return device_out(dev, health.get(dev.id), stale_after_s=_stale_s(request))


@router.get(
    "/devices/{device_id}/points",
    response_model=list[PointOut],
    responses=_ERRORS,
    dependencies=[Viewer],
)
async def list_points(request: Request, device_id: DeviceId) -> list[PointOut]:
    return [point_out(p) for p in _device(request, device_id).points]


@router.get("/latest", response_model=list[SampleOut], responses=_ERRORS, dependencies=[Viewer])
async def latest(
    request: Request,
    device: Annotated[str | None, Query(min_length=1, max_length=64, pattern=ID)] = None,
) -> list[SampleOut]:
    """The newest sample of every point (of one device with ``device``)."""
    if device is not None:
        _device(request, device)
    state = get_state(request)

    def read(store: ReadStore) -> list[Any]:
        return list(store.latest(device))

    samples = await state.pool.run(read)
    return [sample_out(state.settings.site, s) for s in samples]


@router.get("/history", response_model=HistoryOut, responses=_ERRORS, dependencies=[Viewer])
async def history(
    request: Request,
    device: Annotated[str, Query(min_length=1, max_length=64, pattern=ID)],
    point: Annotated[str, Query(min_length=1, max_length=64, pattern=ID)],
    start: Annotated[int | None, Query(ge=0, le=MAX_NS, description="ns UTC")] = None,
    end: Annotated[int | None, Query(ge=1, le=MAX_NS, description="ns UTC")] = None,
    buckets: Annotated[int, Query(ge=1, le=MAX_BUCKETS)] = 300,
) -> HistoryOut:
    """One point over ``[start, end)`` (default: the last hour) downsampled to ``buckets``
    buckets of min / max / mean / last, for plots."""
    dev = _device(request, device)
    try:
        dev.point(point)
    except KeyError:
        raise HTTPException(404, f"device {device!r} has no point {point!r}") from None
    end_ns = end if end is not None else time.time_ns()
    start_ns = start if start is not None else max(0, end_ns - 3600 * 10**9)
    if end_ns <= start_ns:
        raise HTTPException(422, "end must be after start")

    def read(store: ReadStore) -> tuple[Any, float | None]:
        # the raw samples still stored (under the ledger fallback: its store alone) plus, below
        # the raw horizon, the per-minute aggregates of those a retention pass removed
        raw: ReadStore = getattr(store, "store", store)
        series = raw.read(device, point, start_ns, end_ns, prior=True)
        before = series.ts < start_ns
        prior = float(series.values[before][-1]) if before.any() else None
        b = downsample(series, start_ns, end_ns, buckets)
        horizon = getattr(store, "raw_horizon", None)
        if horizon is not None and start_ns < (h := int(horizon())):
            minutes = store.minutes(device, point, start_ns, min(end_ns, h))  # type: ignore[attr-defined]
            b = add_minutes(b, minutes, start_ns)
            if prior is None and store is not raw:  # the value in force, from the ledger
                old = store.read(device, point, start_ns, start_ns, prior=True)
                prior = float(old.values[-1]) if len(old) else None
        return b, prior

    b, prior = await get_state(request).pool.run(read)

    def floats(a: Any) -> list[float | None]:
        return [None if x != x else float(x) for x in a.tolist()]

    return HistoryOut(
        device=device,
        point=point,
        start=start_ns,
        end=end_ns,
        bucket_ns=b.width_ns,
        t=b.start_ns.tolist(),
        count=b.count.tolist(),
        bad=b.bad.tolist(),
        min=floats(b.min),
        max=floats(b.max),
        mean=floats(b.mean),
        last=floats(b.last),
        prior=prior if prior is None or prior == prior else None,
    )


Period = Annotated[
    str,
    Query(
        pattern=RANGE_PATTERN,
        description="FROM..TO, dates inclusive (site time zone), e.g. 2026-01-01..2026-03-31",
    ),
]


@router.get("/kpi", response_model=PeriodOut, responses=_ERRORS, dependencies=[Viewer])
async def kpi_period(
    request: Request,
    period: Period,
    device: Annotated[list[str] | None, Query(max_length=100)] = None,
) -> PeriodOut:
    """Measured KPI values of one period (OEE and its components per machine and for the
    fleet, counts, energy, coverage), from ``metrics.engine.compute_period``; every KPI value
    carries its coverage and notes (a missing value says why in a ``no value:`` note), and
    ``machine_figures`` gives each machine's figures with their coverage and no-value reason
    (as ``/api/v1/kpi/machines``)."""
    devices = tuple(device or ())
    rng, result = await _kpi(request).period(period, devices)
    return PeriodOut(label=rng.label, start=rng.start_ns, end=rng.end_ns, result=result)


@router.get("/kpi/machines", response_model=MachinesOut, responses=_ERRORS, dependencies=[Viewer])
async def kpi_machines(
    request: Request,
    period: Period,
    device: Annotated[
        list[str] | None, Query(max_length=100, description="only these machines (repeatable)")
    ] = None,
    lang: Annotated[
        Literal["zh", "en"], Query(description="language of each figure's text")
    ] = "zh",
) -> MachinesOut:
    """Each machine's availability, effectiveness, quality ratio, OEE, PBT / APT / ASUT / ADET /
    idle / offline hours, failures, MTBF / MTTR, PQ / GQ and data coverage over one period, then
    the fleet on summed times and quantities. A figure without a value has ``value: null``,
    ``text: "—"`` and its reason (``reason`` code, ``reason_zh``, ``reason_en``); every figure
    carries its ``coverage``. The same figures as ``shopfloor kpi --period P --machines``."""
    rng, v = await _kpi(request).machines(period, tuple(device or ()), lang)
    return MachinesOut(
        label=rng.label,
        start=rng.start_ns,
        end=rng.end_ns,
        **{
            k: v[k]
            for k in (
                "timezone",
                "oee_offline",
                "data_horizon_ns",
                "machines",
                "fleet",
                "fleet_mean_oee",
            )
        },
    )


@router.get(
    "/table",
    response_class=Response,
    responses={200: {"model": TableOut, "content": {"application/json": {}}}, **_ERRORS},
    dependencies=[Viewer],
)
async def kpi_table(request: Request, baseline: Period, current: Period) -> Response:
    """The application form's before/after table (建设前 / 建成后) in the form's order."""
    body = await _kpi(request).table_json(baseline, current)
    return Response(body, media_type="application/json")


@router.get(
    "/live",
    responses={200: {"content": {"text/event-stream": {}}}, **_ERRORS},
    dependencies=[Viewer],
    response_class=StreamingResponse,
)
async def live(request: Request) -> StreamingResponse:
    """Server-Sent Events: ``snapshot``, then ``latest`` / ``health`` / ``kpi`` changes."""
    state = get_state(request)
    return StreamingResponse(
        state.hub.stream(state.settings.stream_max_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
