"""The group view's app: ``shopfloor serve --group GROUP_FILE``.

A read-only service over the central InfluxDB (see :mod:`gateway.group`): no users file, no
sessions, no SQLite, nothing written; API tokens come from the group's read-only tokens file
(:mod:`gateway.group_auth`). Any number of replicas can run behind a load balancer.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from gateway.app import CSP, SafeStatic
from gateway.deps import AuthRequired
from gateway.errors import install_json_errors
from gateway.group import Group, GroupService
from gateway.group_auth import TokenFile
from gateway.logs import configure_logging
from gateway.routers import group as group_router

log = logging.getLogger("shopfloor.group")
HERE = Path(__file__).parent
_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "content-security-policy": CSP,
}


def create_group_app(group: Group, tokens: TokenFile) -> FastAPI:
    service = GroupService(group)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("group view started", extra={"group": group.config.group.id})
        try:
            yield
        finally:
            group.close()

    app = FastAPI(
        title="shopfloor group view",
        version="1",
        description=(
            "Every site of a group read from the central InfluxDB: devices, live values, KPI "
            "values and the group table from summed times and quantities. Read-only; "
            "authenticate with `Authorization: Bearer <token>` (tokens file of the group)."
        ),
        lifespan=lifespan,
    )
    app.state.group = service
    app.state.group_tokens = tokens

    @app.middleware("http")
    async def headers(request: Request, call_next: object) -> Response:
        response: Response = await call_next(request)  # type: ignore[operator]
        for k, v in _HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    @app.exception_handler(AuthRequired)
    async def _auth(request: Request, exc: AuthRequired) -> Response:
        return JSONResponse({"detail": exc.detail}, 401, headers=exc.headers)

    install_json_errors(app)

    app.include_router(group_router.router)
    app.mount("/static", SafeStatic(directory=HERE / "static"), name="static")
    return app


def group_uvicorn_config(
    group: Group,
    tokens: TokenFile,
    host: str,
    port: int,
    *,
    proxy_headers: bool = False,
    forwarded_allow_ips: str | None = None,
    log_level: str = "INFO",
) -> uvicorn.Config:
    configure_logging(log_level)
    return uvicorn.Config(
        create_group_app(group, tokens),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips,
        server_header=False,
    )
