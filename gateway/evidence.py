"""Bundle export and verification through the evidence modules (``edge.store.export``,
``metrics.evidence.verify``, ``metrics.evidence.trust``). Runs in a worker thread."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from gateway.data import Unavailable, optional_module
from gateway.jsonsafe import jsonable
from gateway.kpi import PeriodInputError, parse_period
from gateway.settings import Settings


class BundleInputError(ValueError):
    """An uploaded file that is not usable (shown as 422 with the reason)."""


def _need(mod: Any, name: str) -> Any:
    fn = getattr(mod, name, None)
    if fn is None:
        raise Unavailable(f"{mod.__name__}.{name} is not available in this build")
    return fn


def export_bundle(settings: Settings, baseline: str, current: str) -> tuple[bytes, str]:
    """The signed bundle (zip bytes) and a file name for it."""
    tz = settings.site.site.timezone
    b = parse_period(baseline, tz)
    c = parse_period(current, tz)
    if settings.store_path is None or not settings.store_path.exists():
        raise Unavailable("the store does not exist yet (is the collector running?)")
    if not settings.ledger_path.exists():
        raise Unavailable("the ledger does not exist yet: evidence is disabled or not started")
    export = optional_module("edge.store.export")
    data: bytes = _need(export, "export_bundle_bytes")(settings.site, b, c)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return data, f"{settings.site.site.id}-evidence-{stamp}.zip"


def _trust(settings: Settings, trust_bytes: bytes | None) -> tuple[Any, str]:
    trust_mod = optional_module("metrics.evidence.trust")
    if trust_bytes is not None:
        try:
            doc = json.loads(trust_bytes)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BundleInputError(f"trust.json is not valid JSON: {exc}") from None
        try:
            return _need(trust_mod, "Trust").from_dict(doc), "uploaded trust.json"
        except (ValueError, KeyError, TypeError) as exc:
            raise BundleInputError(f"trust.json is not a trust file: {exc}") from None
    if settings.trust_file is not None:
        try:
            doc = json.loads(settings.trust_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise Unavailable(f"cannot read the configured trust file: {exc}") from None
        return _need(trust_mod, "Trust").from_dict(doc), f"trust file {settings.trust_file.name}"
    keys = optional_module("edge.store.keys")
    try:
        trust = _need(keys, "trust_for")(settings.key_dir, settings.site)
    except FileNotFoundError:
        raise Unavailable("this gateway has no signing key yet (shopfloor keys init)") from None
    return trust, "this gateway's public key"


def verify_bundle(
    settings: Settings, data: bytes, trust_bytes: bytes | None
) -> tuple[bool, dict[str, Any], str]:
    verify = optional_module("metrics.evidence.verify")
    trust, source = _trust(settings, trust_bytes)
    try:
        report = _need(verify, "verify_bundle")(data, trust)
    except (ValueError, KeyError) as exc:
        raise BundleInputError(f"not a readable bundle: {exc}") from None
    out: dict[str, Any] = jsonable(report)
    return bool(report.ok), out, source


__all__ = ["BundleInputError", "PeriodInputError", "export_bundle", "verify_bundle"]
