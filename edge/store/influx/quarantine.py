"""The outbox's quarantine for tools (``shopfloor outbox`` and the gateway's admin API):
open the outbox of a site file, list the batches InfluxDB refused, move chosen ones back.

Opening never creates an outbox and never talks to InfluxDB; the process that sends the outbox
(the collector) sends re-queued batches within a second (``sender.IDLE_POLL_S``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from config.models import SiteConfig
from config.storage import InfluxStorage
from edge.store.influx.outbox import Outbox, OutboxError, Quarantined


class QuarantineError(ValueError):
    """A request about the quarantine that cannot be served (the message says why)."""


class NoOutbox(QuarantineError):
    """The site has no InfluxDB outbox (SQLite storage, or nothing written yet)."""


def open_outbox(site: SiteConfig) -> Outbox:
    cfg = site.storage
    if not isinstance(cfg, InfluxStorage):
        raise NoOutbox(f"storage kind is {cfg.kind!r}; only influxdb has an outbox")
    path = site.resolve(cfg.outbox_path)
    if not path.exists():
        raise NoOutbox(f"no outbox at {path}: the collector has not written to InfluxDB yet")
    try:
        return Outbox(path, max_samples=cfg.outbox_max_samples, drop=cfg.outbox_drop)
    except OutboxError as exc:
        raise QuarantineError(str(exc)) from None


def as_dict(q: Quarantined) -> dict[str, Any]:
    return {
        "id": q.id,
        "source": q.source,
        "seq": q.seq,
        "samples": q.n,
        "first_ts": q.first_ts,
        "last_ts": q.last_ts,
        "quarantined_ns": q.quarantined_ns,
        "status": q.status,
        "body": q.body,
    }


def listing(box: Outbox) -> dict[str, Any]:
    """Pending counts and every quarantined batch (oldest first)."""
    pending_n, pending_b = box.pending()
    return {
        "pending_samples": pending_n,
        "pending_batches": pending_b,
        "quarantined": [as_dict(q) for q in box.quarantined()],
    }


def resend(box: Outbox, ids: Sequence[int] | None) -> tuple[int, int]:
    """Move the quarantined batches ``ids`` (None: all) back to the outbox; (batches,
    samples) moved. An unknown id moves nothing and raises :class:`QuarantineError`."""
    known = {q.id: q for q in box.quarantined()}
    chosen = sorted(known) if ids is None else list(dict.fromkeys(ids))
    missing = [i for i in chosen if i not in known]
    if missing:
        raise QuarantineError(
            "no quarantined batch " + ", ".join(f"#{i}" for i in missing) + " (nothing moved)"
        )
    moved = box.requeue(chosen)
    return moved, sum(known[i].n for i in chosen)
