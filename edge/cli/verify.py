"""``shopfloor verify bundle.zip --trust trust.json [--json] [--import-file F ...]``: exit 0
only when every check and every KPI holds (1 when something fails, 2 when the files cannot be
read). ``--import-file`` re-hashes a file that was imported and checks it against the bundle's
``import`` leaves."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _verify(args: argparse.Namespace) -> int:
    # imported here: registering the command must stay argparse-level (fast ``--help``)
    from metrics.evidence.trust import TrustError, parse_trust
    from metrics.evidence.verify import verify_bundle

    try:
        data = Path(args.bundle).read_bytes()
    except OSError as exc:
        print(f"error: cannot read {args.bundle}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        trust = parse_trust(Path(args.trust).read_bytes())
    except OSError as exc:
        print(f"error: cannot read {args.trust}: {exc.strerror}", file=sys.stderr)
        return 2
    except TrustError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rep = verify_bundle(data, trust)
    if args.import_file:
        from metrics.evidence.verify import check_import_files

        files: dict[str, bytes] = {}
        for name in args.import_file:
            try:
                files[name] = Path(name).read_bytes()
            except OSError as exc:
                print(f"error: cannot read {name}: {exc.strerror}", file=sys.stderr)
                return 2
        check_import_files(rep, data, files)
    if args.json:
        print(json.dumps(rep.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(rep.to_text(), end="")
    return 0 if rep.ok else 1


def register(sub: Any) -> None:
    p = sub.add_parser("verify", help="verify an evidence bundle offline (reviewers)")
    p.add_argument("bundle", help="bundle.zip")
    p.add_argument("--trust", required=True, help="trust.json with the keys you trust")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.add_argument(
        "--import-file",
        action="append",
        help="an imported file (e.g. the meter CSV) to check against the bundle's import "
        "leaves: fails when its content changed after the import (repeatable)",
    )
    p.set_defaults(func=_verify)
