"""``shopfloor store retain``: one retention pass on the site's embedded store (raw samples
older than ``storage.raw_retention_days`` leave once the evidence ledger holds their batches;
per-minute aggregates stay). ``--dry-run`` only says what would be removed. Safe next to the
running collector (SQLite WAL; each step is one short transaction)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from edge.cli.keys import CliFail, guarded, load_site_or_fail


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if ns else "-"


def _retain(args: argparse.Namespace) -> int:
    from edge.store.ledger import Ledger, LedgerError
    from edge.store.retention import retain
    from edge.store.sqlite import SqliteStore, StoreError

    site = load_site_or_fail(args.config)
    st = site.storage
    if st.kind != "sqlite":
        raise CliFail(f"{args.config}: storage kind is {st.kind}, retention is for sqlite")
    days = st.raw_retention_days
    ledger_path = site.resolve(site.evidence.ledger_path)
    if not site.evidence.enabled or not ledger_path.exists():
        raise CliFail(f"{args.config}: no evidence ledger: raw samples are never removed")
    if days is None:
        raise CliFail(f"{args.config}: storage.raw_retention_days is not set: nothing to remove")
    try:
        store = SqliteStore(site.resolve(st.path))
    except (StoreError, OSError) as exc:
        raise CliFail(f"cannot open the store: {exc}") from None
    try:
        ledger = Ledger.open_readonly(ledger_path)
    except (LedgerError, OSError) as exc:
        store.close()
        raise CliFail(f"cannot open the ledger: {exc}") from None
    try:
        res = retain(store, ledger, days, dry_run=args.dry_run)
        totals = store.retention_totals()
    finally:
        ledger.close()
        store.close()
    if args.json:
        print(json.dumps({**res.as_dict(), "totals": totals}))
        return 0
    verb = "would remove" if res.dry_run else "removed"
    print(
        f"{verb} {res.samples_removed} raw samples in {res.chunks_removed} chunks "
        f"before {_iso(res.horizon)} (retention cut-off {_iso(res.cutoff)})"
    )
    if res.blocked_by is not None:
        src, seq = res.blocked_by
        print(f"held back by batch {src}#{seq}: not (yet) in the evidence ledger")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("store", help="the embedded store's lifecycle (retention)")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    r = actions.add_parser("retain", help="remove raw samples the ledger holds (see the docs)")
    r.add_argument("-c", "--config", required=True, help="site file")
    r.add_argument("--dry-run", action="store_true", help="only count what would be removed")
    r.add_argument("--json", action="store_true", help="as JSON")
    r.set_defaults(func=guarded(_retain))
