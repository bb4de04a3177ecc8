"""Export of a signed bundle (role applicant) and upload + verification of a bundle."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, Request, UploadFile
from fastapi.responses import Response

from gateway import evidence
from gateway.deps import Applicant, Viewer, get_state
from gateway.schemas import ErrorOut, ExportIn, VerifyOut

log = logging.getLogger("shopfloor.gateway.evidence")
router = APIRouter(prefix="/api/v1", tags=["evidence"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut},
    403: {"model": ErrorOut},
    413: {"model": ErrorOut, "description": "the upload is larger than the limit"},
    422: {"model": ErrorOut},
    503: {"model": ErrorOut, "description": "the store, ledger, keys or a module is missing"},
}


@router.post(
    "/export",
    responses={200: {"content": {"application/zip": {}}}, **_ERRORS},
    dependencies=[Applicant],
    response_class=Response,
)
async def export(request: Request, body: ExportIn) -> Response:
    """Assemble and sign the evidence bundle (zip) of the before/after table."""
    settings = get_state(request).settings
    data, filename = await asyncio.to_thread(
        evidence.export_bundle, settings, body.baseline, body.current
    )
    log.info("bundle exported", extra={"size": len(data), "file": filename})
    return Response(
        data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def _read_limited(upload: UploadFile, limit: int, what: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await upload.read(1024 * 1024):
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"{what} is larger than {limit // (1024 * 1024)} MB")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/verify", response_model=VerifyOut, responses=_ERRORS, dependencies=[Viewer])
async def verify(
    request: Request,
    bundle: Annotated[UploadFile, File(description="the bundle zip")],
    trust: Annotated[
        UploadFile | None,
        File(description="trust.json of keys you already hold (default: this gateway's keys)"),
    ] = None,
) -> VerifyOut:
    """Verify a bundle: signatures against trusted keys (never keys found in the bundle),
    inclusion proofs, sequence continuity, and every measured KPI recomputed."""
    settings = get_state(request).settings
    data = await _read_limited(bundle, settings.max_upload_bytes, "the bundle")
    if not data:
        raise HTTPException(422, "the uploaded bundle is empty")
    trust_bytes = await _read_limited(trust, 1024 * 1024, "trust.json") if trust else None
    ok, report, source = await asyncio.to_thread(
        evidence.verify_bundle, settings, data, trust_bytes
    )
    log.info("bundle verified", extra={"ok": ok, "size": len(data)})
    return VerifyOut(
        ok=ok, filename=bundle.filename or "bundle.zip", size=len(data), trust=source, report=report
    )
