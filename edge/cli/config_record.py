"""``shopfloor config record -c SITE --reason "..." [--from DATE]``: record the site file's
configuration in the evidence ledger as a new ``config`` leaf with the operator's reason.

Without ``--from`` the configuration takes effect now (data recorded earlier keep the
configuration they were recorded under). ``--from DATE`` re-classifies history: the new
configuration applies from that instant on, and every verifier report shows the leaf as a
re-classification with its reason.
"""

from __future__ import annotations

import argparse
import sys


def _record(args: argparse.Namespace) -> int:
    from config.loader import ConfigError, load_site
    from edge.cli.kpi import fmt_ns, parse_instant
    from edge.store.ledger import Ledger, LedgerError, latest_config, record_config
    from metrics.evidence import configlog
    from metrics.periods import PeriodError

    try:
        site = load_site(args.config)
    except ConfigError as exc:
        for issue in exc.issues:
            print(f"error: {issue}", file=sys.stderr)
        return 2
    reason = args.reason.strip()
    if not reason:
        print("error: --reason must say why the configuration changes", file=sys.stderr)
        return 2
    effective = None
    if args.from_:
        try:
            effective = parse_instant(args.from_, site.site.timezone)
        except PeriodError as exc:
            print(f"error: --from: {exc}", file=sys.stderr)
            return 2
    content = configlog.config_content(site)
    path = site.resolve(site.evidence.ledger_path)
    try:
        with Ledger(path) as led:
            last = latest_config(led)
            idx = record_config(led, content, cause="record", reason=reason, effective_ns=effective)
    except (LedgerError, OSError, ValueError) as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 2
    if idx is None:
        print(
            f"{args.config}: already the configuration recorded last "
            f"(leaf {last.index if last else '?'}); nothing recorded"
        )
        return 0
    when = "now" if effective is None else f"from {fmt_ns(effective)} (re-classifies history)"
    print(f"{args.config}: recorded as config leaf {idx}, in force {when}; reason: {reason}")
    if last is not None and last.content is not None:
        for line in configlog.diff(last.content, content, kpi_only=False):
            print(f"  {line}")
    return 0


def register(csub: object) -> None:
    rec = csub.add_parser(  # type: ignore[attr-defined]
        "record",
        help="record the site file's configuration in the evidence ledger, with a reason",
    )
    rec.add_argument("-c", "--config", required=True, help="site file")
    rec.add_argument("--reason", required=True, help="why the configuration changes")
    rec.add_argument(
        "--from",
        dest="from_",
        help="in force from this date/datetime (earlier than now: re-classifies history)",
    )
    rec.set_defaults(func=_record)
