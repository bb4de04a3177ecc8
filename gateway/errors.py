"""The JSON error answers every app of the service shares (the plant gateway and the group
view): one place for the status and the ``{"detail": ...}`` body of each failure kind."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from gateway.data import Unavailable
from gateway.kpi import PeriodInputError


def install_json_errors(app: FastAPI) -> None:
    """503 for a store or service that is not there, 422 for a bad period or request (every
    problem of a request in one line), and FastAPI's own HTTP errors as ``{"detail": ...}``."""

    @app.exception_handler(Unavailable)
    async def _unavailable(request: Request, exc: Unavailable) -> Response:
        return JSONResponse({"detail": str(exc)}, 503)

    @app.exception_handler(PeriodInputError)
    async def _period(request: Request, exc: PeriodInputError) -> Response:
        return JSONResponse({"detail": str(exc)}, 422)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        ]
        return JSONResponse({"detail": "; ".join(problems) or "invalid request"}, 422)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)
