"""The InfluxDB outbox's quarantine (admin): batches InfluxDB refused for good, listed and sent
again once the cause is fixed (the same as ``shopfloor outbox list|resend``)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from edge.store.influx.quarantine import QuarantineError, listing, open_outbox, resend
from gateway.deps import Admin, get_state
from gateway.schemas import ErrorOut, Out

router = APIRouter(prefix="/api/v1", tags=["admin"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut},
    403: {"model": ErrorOut},
    404: {"model": ErrorOut},
    422: {"model": ErrorOut},
}


class QuarantinedOut(Out):
    id: int
    source: str
    seq: int
    samples: int
    first_ts: int
    last_ts: int
    quarantined_ns: int
    status: int | None = Field(description="HTTP status of InfluxDB's refusal")
    body: str = Field(description="InfluxDB's explanation")


class OutboxOut(Out):
    pending_samples: int
    pending_batches: int
    quarantined: list[QuarantinedOut]


class ResendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[int] | None = Field(
        default=None, max_length=10_000, description="quarantined batch ids; null: every one"
    )


class ResendOut(Out):
    batches: int
    samples: int


def _list(site: Any) -> dict[str, Any]:
    box = open_outbox(site)
    try:
        return listing(box)
    finally:
        box.close()


def _resend(site: Any, ids: list[int] | None) -> tuple[int, int]:
    box = open_outbox(site)
    try:
        return resend(box, ids)
    finally:
        box.close()


@router.get("/outbox", response_model=OutboxOut, responses=_ERRORS, dependencies=[Admin])
async def outbox(request: Request) -> OutboxOut:
    """Pending and quarantined batches of the InfluxDB outbox (404 without one)."""
    site = get_state(request).settings.site
    try:
        data = await asyncio.to_thread(_list, site)
    except QuarantineError as exc:
        raise HTTPException(404, str(exc)) from None
    return OutboxOut.model_validate(data)


@router.post("/outbox/resend", response_model=ResendOut, responses=_ERRORS, dependencies=[Admin])
async def outbox_resend(request: Request, body: ResendIn) -> ResendOut:
    """Move quarantined batches (``ids``, or all) back to the outbox; the collector sends them
    and a batch refused again returns to the quarantine. An unknown id moves nothing (404)."""
    site = get_state(request).settings.site
    try:
        moved, samples = await asyncio.to_thread(_resend, site, body.ids)
    except QuarantineError as exc:  # no outbox here, or an unknown id
        raise HTTPException(404, str(exc)) from None
    return ResendOut(batches=moved, samples=samples)
