"""Operations: ``/healthz`` (the process answers), ``/readyz`` (store and users readable),
``/metrics`` (Prometheus; needs a viewer token or session)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from edge.store.base import DeviceHealth
from gateway.data import ReadStore, Unavailable
from gateway.deps import Viewer, get_state
from gateway.metrics_prom import CONTENT_TYPE
from gateway.schemas import ReadyOut

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process serves requests."""
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadyOut, responses={503: {"model": ReadyOut}})
async def readyz(request: Request) -> Any:
    """Readiness: the store can be read and the users file opened."""
    state = get_state(request)
    checks: dict[str, str] = {}

    def probe(store: ReadStore) -> int:
        return len(store.health())

    try:
        n = await state.pool.run(probe)
        checks["store"] = f"ok ({n} devices with health)"
    except Unavailable as exc:
        checks["store"] = f"unavailable: {exc}"
    try:
        await asyncio.to_thread(state.users.get, "-")
        checks["users"] = "ok"
    except Exception as exc:
        checks["users"] = f"unavailable: {type(exc).__name__}"
    ready = all(v.startswith("ok") for v in checks.values())
    body = ReadyOut(ready=ready, checks=checks).model_dump()
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get(
    "/metrics",
    dependencies=[Viewer],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}}},
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics (collector health from the store, API latency)."""
    state = get_state(request)

    def read(store: ReadStore) -> list[DeviceHealth]:
        return store.health()

    try:
        state.api_metrics.health.update(await state.pool.run(read))
        state.api_metrics.health.store_ok = 1
    except Unavailable:
        state.api_metrics.health.store_ok = 0
    return Response(state.api_metrics.render(), media_type=CONTENT_TYPE)
