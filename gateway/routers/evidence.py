"""Export of a signed bundle (role applicant) and upload + verification of a bundle."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, File, HTTPException, Request, UploadFile
from fastapi.responses import Response

from gateway import evidence
from gateway.deps import Applicant, Viewer, get_state
from gateway.schemas import ErrorOut, ExportIn, VerifyOut
from gateway.settings import Settings
from metrics.evidence.bundle import BundleTooLarge
from metrics.evidence.verify import Report

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


async def spool_upload(upload: UploadFile, limit: int, what: str) -> tuple[BinaryIO, int]:
    """The upload copied to an anonymous temp file a chunk at a time (never whole in memory),
    rewound; 413 over ``limit`` bytes. The caller closes the file."""
    out = tempfile.TemporaryFile()  # noqa: SIM115 (handed to the caller, who closes it)
    size = 0
    try:
        while chunk := await upload.read(1024 * 1024):
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"{what} is larger than {limit // (1024 * 1024)} MB")
            await asyncio.to_thread(out.write, chunk)
        out.seek(0)
    except BaseException:
        out.close()
        raise
    return out, size


async def check_upload(
    settings: Settings, bundle: UploadFile, trust: UploadFile | None
) -> tuple[Report, dict[str, Any], str, int]:
    """Spool the bundle, verify it in a worker thread: (report, its JSON data, trust source,
    upload size). 413 when the upload or its uncompressed content is over the limits, 422
    when it is empty."""
    spooled, size = await spool_upload(bundle, settings.max_upload_bytes, "the bundle")
    with spooled:
        if not size:
            raise HTTPException(422, "the uploaded bundle is empty")
        trust_bytes = await _read_limited(trust, 1024 * 1024, "trust.json") if trust else None
        try:
            report, data, source = await asyncio.to_thread(
                evidence.verify_bundle, settings, spooled, trust_bytes or None
            )
        except BundleTooLarge as exc:
            limit = evidence.max_uncompressed(settings) // (1024 * 1024)
            raise HTTPException(413, f"the bundle is over the limit of {limit} MB: {exc}") from None
    return report, data, source, size


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
    inclusion proofs, sequence continuity, and every measured KPI recomputed (integrity:
    ``ok``); plausibility findings for the reviewer (``verdict``, ``findings``). The upload
    is streamed to a temp file; its total uncompressed size is bounded (413)."""
    settings = get_state(request).settings
    report, data, source, size = await check_upload(settings, bundle, trust)
    log.info("bundle verified", extra={"verdict": report.verdict, "size": size})
    return VerifyOut(
        ok=report.ok,
        verdict=report.verdict,
        findings=len(report.findings()),
        filename=bundle.filename or "bundle.zip",
        size=size,
        trust=source,
        report=data,
    )
