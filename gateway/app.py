"""The app factory: ``create_app(settings)``.

The lifespan opens the users file, the pool of read-only store handles and the live hub, and
closes them at shutdown. Errors are JSON ``{"detail": ...}`` for the API; a missing part
(store not created yet, module absent) is a 503 with the reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from gateway.auth import Signer
from gateway.data import ReaderPool
from gateway.deps import SAFE_METHODS, AuthRequired, State, optional_user
from gateway.errors import install_json_errors
from gateway.evidence import BundleInputError
from gateway.kpi import KpiService
from gateway.live import LiveHub
from gateway.metrics_prom import ApiMetrics
from gateway.routers import admin, api, evidence, form, ops, outbox, pages
from gateway.settings import Settings
from gateway.users import UserDB, dummy_hash

log = logging.getLogger("shopfloor.gateway")
HERE = Path(__file__).parent

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """Refuse request bodies larger than ``limit`` bytes with 413, before anything parses
    them (Content-Length checked up front, chunked bodies counted as they arrive)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = True
                if too_big:
                    await self._refuse(send)
                    return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        mb = self.limit // (1024 * 1024)
        body = f'{{"detail":"the request body is larger than the limit of {mb} MB"}}'.encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    """The request body went over the upload limit while it was being received."""


# requests that may change something without a caller: only the login form itself
_ANONYMOUS_WRITES = frozenset({"/login"})


class AuthFirst:
    """Authentication before any request body is read: a request that may carry one (POST,
    PUT, PATCH, DELETE) without a valid API token or open session is refused (401, or a
    redirect to the login form for a browser) before its body is received, so an anonymous
    caller cannot make the service read and spool uploads. The role and CSRF checks stay in
    the routes' dependencies, which find the caller resolved here."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] not in SAFE_METHODS
            and scope["path"] not in _ANONYMOUS_WRITES
        ):
            request = Request(scope)
            if optional_user(request) is None:
                response = _auth_required(request, AuthRequired())
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class SafeStatic(StaticFiles):
    """Static files; a path the file system cannot even look up (a NUL byte) is a 404."""

    def lookup_path(self, path: str) -> tuple[str, Any]:
        if "\x00" in path:
            return "", None
        return super().lookup_path(path)


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith(("/api/", "/metrics")) and "text/html" in (
        request.headers.get("accept", "")
    )


def _auth_required(request: Request, exc: AuthRequired) -> Response:
    if _wants_html(request):
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    return JSONResponse({"detail": exc.detail}, 401, headers=exc.headers)


def create_app(settings: Settings) -> FastAPI:
    users = UserDB(settings.users_db)
    dummy_hash()  # computed now, so that the first unknown user name costs no extra hash
    pool = ReaderPool(settings.store_path, settings.readers, settings.ledger_path)
    kpi = KpiService(pool, settings.site, settings.kpi_cache_s)
    hub = LiveHub(
        pool,
        settings.site,
        poll_s=settings.live_poll_s,
        kpi_s=settings.kpi_refresh_s,
        kpi=kpi.live_today,
    )
    state = State(
        settings=settings,
        users=users,
        signer=Signer(users.signing_secret()),
        pool=pool,
        hub=hub,
        api_metrics=ApiMetrics(settings.site),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info(
            "gateway started",
            extra={"site": settings.site.site.id, "store": str(settings.store_path)},
        )
        try:
            yield
        finally:
            await hub.close()
            await pool.close()
            log.info("gateway stopped")

    app = FastAPI(
        title="shopfloor gateway",
        version="1",
        description=(
            "Live data, KPI values (智能工厂 建设前/建成后), evidence bundles and verification "
            "of one shop-floor gateway. Authenticate with `Authorization: Bearer <token>` "
            "(tokens from `shopfloor tokens create`) or a login session."
        ),
        lifespan=lifespan,
    )
    app.state.gw = state
    app.state.kpi = kpi

    @app.exception_handler(AuthRequired)
    async def _auth(request: Request, exc: AuthRequired) -> Response:
        return _auth_required(request, exc)

    @app.exception_handler(BundleInputError)
    async def _bundle(request: Request, exc: BundleInputError) -> Response:
        return JSONResponse({"detail": str(exc)}, 422)

    install_json_errors(app)

    app.include_router(ops.router)
    app.include_router(api.router)
    app.include_router(evidence.router)
    app.include_router(admin.router)
    app.include_router(outbox.router)
    app.include_router(form.router)
    app.include_router(pages.router)
    app.mount("/static", SafeStatic(directory=HERE / "static"), name="static")
    # the multipart envelope around the largest allowed bundle needs a little room
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes + 64 * 1024)
    app.add_middleware(AuthFirst)
    app.add_middleware(Observe, metrics=state.api_metrics)
    return app


# Scripts only from this origin (the bundled ECharts and app.js; the boot data is a JSON data
# block, which is not run). Inline style attributes stay allowed: ECharts writes its tooltips
# and chart boxes as HTML with style="..." (styles cannot run code).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's API docs (/docs, /redoc) load Swagger UI / ReDoc from a CDN with an inline script
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
    "https://cdn.redoc.ly; worker-src blob:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
_DOCS_PATHS = ("/docs", "/redoc")
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


def _csp(path: str) -> bytes:
    return (DOCS_CSP if path.startswith(_DOCS_PATHS) else CSP).encode("ascii")


class Observe:
    """Pure ASGI middleware: latency histogram, one JSON log line per request, security
    headers. (Never logs headers, cookies or query strings: tokens stay out of the logs.)"""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                have = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in _SECURITY_HEADERS if k not in have]
                if b"content-security-policy" not in have:
                    headers.append((b"content-security-policy", _csp(scope["path"])))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.metrics.observe(scope["method"], path, status, started)
            state = scope.get("state") or {}
            user = state.get("user") if isinstance(state, dict) else None
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "route": path,
                    "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                    "user": getattr(user, "username", None),
                },
            )
