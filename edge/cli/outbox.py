"""``shopfloor outbox``: the InfluxDB outbox's quarantine — batches InfluxDB refused for good
(e.g. a field type conflict) — listed, shown and sent again once the cause is fixed.

Works on the outbox file of the site file (``storage.outbox_path``) without talking to InfluxDB
and next to the running collector: ``resend`` moves the batches back to the end of the outbox
and the process that sends the outbox (the collector) sends them within a second. A batch
InfluxDB refuses again goes back to the quarantine with the new answer.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from edge.cli.keys import CliFail, guarded, load_site_or_fail


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _open(args: argparse.Namespace) -> Any:
    from edge.store.influx.quarantine import QuarantineError, open_outbox

    site = load_site_or_fail(args.config)
    try:
        return open_outbox(site)
    except QuarantineError as exc:
        raise CliFail(f"{args.config}: {exc}" if "storage kind" in str(exc) else str(exc)) from None


def _list(args: argparse.Namespace) -> int:
    from edge.store.influx.quarantine import listing

    with _closing(_open(args)) as box:
        data = listing(box)
    if args.json:
        print(json.dumps(data, ensure_ascii=False))
        return 0
    rows = data["quarantined"]
    print(
        f"pending: {data['pending_samples']} samples in {data['pending_batches']} batches; "
        f"quarantined: {len(rows)} batches"
    )
    for q in rows:
        print(
            f"#{q['id']}  {q['source']}#{q['seq']}  {q['samples']} samples  "
            f"{_iso(q['first_ts'])} .. {_iso(q['last_ts'])}  "
            f"quarantined {_iso(q['quarantined_ns'])}  HTTP {q['status']}: "
            f"{str(q['body']).strip()[:200]}"
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    with _closing(_open(args)) as box:
        lines = box.quarantined_lines(args.id)
    if lines is None:
        raise CliFail(f"no quarantined batch #{args.id} (see: shopfloor outbox list)")
    sys.stdout.write(lines.decode("utf-8", "replace"))
    return 0


def _resend(args: argparse.Namespace) -> int:
    from edge.store.influx.quarantine import QuarantineError, resend

    if not args.all and not args.ids:
        raise CliFail("name the batches (--id N, repeatable) or give --all")
    with _closing(_open(args)) as box:
        try:
            moved, samples = resend(box, None if args.all else args.ids)
        except QuarantineError as exc:
            raise CliFail(str(exc)) from None
    print(
        f"{moved} batch(es), {samples} samples, moved back to the outbox; the collector "
        "(shopfloor run) sends them, a batch refused again returns to the quarantine"
    )
    return 0


class _closing:
    def __init__(self, box: Any) -> None:
        self.box = box

    def __enter__(self) -> Any:
        return self.box

    def __exit__(self, *exc: object) -> None:
        self.box.close()


def register(sub: Any) -> None:
    p = sub.add_parser("outbox", help="list, show and re-send batches InfluxDB refused")
    p.add_argument("-c", "--config", required=True, help="site file")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    ls = actions.add_parser("list", help="the quarantined batches and the pending count")
    ls.add_argument("--json", action="store_true", help="as JSON")
    ls.set_defaults(func=guarded(_list))
    sh = actions.add_parser("show", help="print the line protocol of a quarantined batch")
    sh.add_argument("id", type=int)
    sh.set_defaults(func=guarded(_show))
    rs = actions.add_parser("resend", help="move quarantined batches back to the outbox")
    rs.add_argument("--id", dest="ids", type=int, action="append", default=[], help="batch id")
    rs.add_argument("--all", action="store_true", help="every quarantined batch")
    rs.set_defaults(func=guarded(_resend))
