"""Bundle export and verification through the evidence modules (``edge.store.export``,
``edge.store.keys``, ``edge.store.ledger``, ``metrics.evidence.verify``). Runs in a worker
thread; the same calls as ``shopfloor export`` and ``shopfloor verify``."""

from __future__ import annotations

import datetime as dt
import zipfile
from typing import Any, BinaryIO

from edge.store import keys
from edge.store.export import ExportError, ExportResult
from edge.store.export import export_bundle as _export
from edge.store.ledger import Ledger, LedgerError
from edge.store.sqlite import SqliteStore
from gateway.data import Unavailable
from gateway.jsonsafe import jsonable
from gateway.kpi import PeriodInputError, parse_period
from gateway.settings import Settings
from metrics.evidence import bundle
from metrics.evidence.trust import TrustedKey, TrustError, make_trust, parse_trust
from metrics.evidence.verify import Report
from metrics.evidence.verify import verify_bundle as _verify


class BundleInputError(ValueError):
    """An uploaded file that is not usable (shown as 422 with the reason)."""


def export_result(settings: Settings, baseline: str, current: str) -> tuple[ExportResult, str]:
    """The signed bundle (``edge.store.export.ExportResult``: bytes, table, payload) and a
    file name for it."""
    site = settings.site
    tz = site.site.timezone
    b = parse_period(baseline, tz)
    c = parse_period(current, tz)
    if not settings.ledger_path.exists():
        raise Unavailable("the ledger does not exist yet: evidence is recorded by the collector")
    try:
        signer = keys.load_key(settings.key_dir)
    except keys.KeyDirError as exc:
        raise Unavailable(f"no usable signing key: {exc}") from None
    store = None
    if settings.store_path is not None and settings.store_path.exists():
        store = SqliteStore.open_readonly(settings.store_path)
    try:
        with Ledger(settings.ledger_path) as ledger:
            result = _export(site, ledger, signer, b, c, store=store)
    except ExportError as exc:
        raise Unavailable(f"no bundle: {exc}") from None
    except LedgerError as exc:
        raise Unavailable(f"the ledger cannot be used: {exc}") from None
    finally:
        if store is not None:
            store.close()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return result, f"{site.site.id}-evidence-{stamp}.zip"


def export_bundle(settings: Settings, baseline: str, current: str) -> tuple[bytes, str]:
    """The signed bundle (zip bytes) and a file name for it."""
    result, name = export_result(settings, baseline, current)
    return result.data, name


def gateway_trust(settings: Settings) -> Any:
    """Trust in this gateway's current and retired public keys (no private key is read)."""
    try:
        current = keys.load_public(settings.key_dir)
    except keys.KeyDirError as exc:
        raise Unavailable(f"this gateway has no public key to verify with: {exc}") from None
    entries = [TrustedKey("gateway", current, comment="this gateway")]
    entries += [TrustedKey("gateway", v, comment="retired") for v in keys.retired(settings.key_dir)]
    return make_trust(entries, witness_quorum=0)


def _trust(settings: Settings, trust_bytes: bytes | None) -> tuple[Any, str]:
    if trust_bytes is not None:
        try:
            return parse_trust(trust_bytes), "uploaded trust.json"
        except TrustError as exc:
            raise BundleInputError(str(exc)) from None
    if settings.trust_file is not None:
        try:
            return parse_trust(settings.trust_file.read_bytes()), "the service's trust file"
        except (OSError, TrustError) as exc:
            raise Unavailable(f"the configured trust file cannot be used: {exc}") from None
    return gateway_trust(settings), "this gateway's public keys"


def max_uncompressed(settings: Settings) -> int:
    """Bound of an uploaded bundle's total uncompressed size: 32 x the upload limit, at most
    the verifier's default (the verification holds the bundle's files in memory)."""
    return min(bundle.MAX_TOTAL_BYTES, 32 * settings.max_upload_bytes)


def verify_bundle(
    settings: Settings, data: bytes | BinaryIO, trust_bytes: bytes | None
) -> tuple[Report, dict[str, Any], str]:
    """The report (object and JSON data) and where the trusted keys came from. A bundle over
    :func:`max_uncompressed` raises :class:`~metrics.evidence.bundle.BundleTooLarge` (413)."""
    trust, source = _trust(settings, trust_bytes)
    try:
        report = _verify(data, trust, max_total=max_uncompressed(settings))
    except bundle.BundleTooLarge:
        raise
    except (zipfile.BadZipFile, ValueError, KeyError) as exc:
        raise BundleInputError(f"not a readable bundle: {exc}") from None
    out: dict[str, Any] = jsonable(report.to_dict())
    return report, out, source


__all__ = [
    "BundleInputError",
    "PeriodInputError",
    "export_bundle",
    "max_uncompressed",
    "verify_bundle",
]
