"""``shopfloor export -c SITE --baseline FROM..TO --current FROM..TO -o bundle.zip``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.cli.keys import CliFail, guarded, load_site_or_fail

if TYPE_CHECKING:
    from config.models import SiteConfig
    from edge.store.export import ExportResult


def _output_path(text: str) -> Path:
    """The bundle's path, checked before any work: its folder exists and it is not a folder."""
    out = Path(text)
    folder = out.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise CliFail(f"-o {out}: the folder {folder} {what} (create it first)")
    if out.is_dir():
        raise CliFail(
            f"-o {out}: is a folder; give the bundle's file name, e.g. {out / 'bundle.zip'}"
        )
    return out


def signed_export(site: SiteConfig, args: argparse.Namespace) -> ExportResult:
    """The signed bundle of ``args.baseline`` / ``args.current`` from the site's ledger (and its
    SQLite store as a cross-check): what ``shopfloor export`` writes and ``shopfloor form``
    cites."""
    from edge.store import keys
    from edge.store.export import ExportError, export_bundle
    from edge.store.ledger import Ledger
    from metrics.periods import PeriodError, parse_range

    tz = site.site.timezone
    try:
        baseline = parse_range(args.baseline, tz)
        current = parse_range(args.current, tz)
    except PeriodError as exc:
        raise CliFail(str(exc)) from None
    ev = site.evidence
    lpath = site.resolve(ev.ledger_path)
    if not lpath.exists():
        raise CliFail(f"no ledger at {lpath}: evidence is recorded by 'shopfloor run'")
    signer = keys.load_key(site.resolve(ev.key_dir))
    store = None
    if site.storage.kind == "sqlite":
        from edge.store.sqlite import SqliteStore

        spath = site.resolve(site.storage.path)
        if spath.exists():
            store = SqliteStore.open_readonly(spath)
    try:
        with Ledger(lpath) as led:
            return export_bundle(
                site,
                led,
                signer,
                baseline,
                current,
                store=store,
                baseline_imported=args.baseline_imported,
                current_imported=args.current_imported,
            )
    except ExportError as exc:
        raise CliFail(str(exc)) from None
    finally:
        if store is not None:
            store.close()


def _export(args: argparse.Namespace) -> int:
    out = _output_path(args.output)
    site = load_site_or_fail(args.config)
    res = signed_export(site, args)
    tmp = out.with_name(out.name + ".part")
    try:
        tmp.write_bytes(res.data)
        tmp.replace(out)
    except OSError as exc:
        raise CliFail(f"-o {out}: cannot write the bundle: {exc.strerror or exc}") from None
    p = res.payload
    print(
        f"{out}: {len(res.data)} bytes, {len(p['batches'])} batches, "
        f"checkpoint {res.checkpoint.origin} size {res.checkpoint.size}"
    )
    for w in res.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"verify with: shopfloor verify {out} --trust trust.json")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("export", help="signed evidence bundle of the before/after table")
    p.add_argument("-c", "--config", required=True, help="site file")
    p.add_argument("--baseline", required=True, help="建设前 period FROM..TO")
    p.add_argument("--current", required=True, help="建成后 period FROM..TO")
    p.add_argument("-o", "--output", required=True, help="bundle file (.zip)")
    p.add_argument("--baseline-imported", action="store_true", help="baseline from imported data")
    p.add_argument("--current-imported", action="store_true", help="current from imported data")
    p.set_defaults(func=guarded(_export))
