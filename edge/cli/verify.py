"""``shopfloor verify bundle.zip --trust trust.json [--json] [--max-mb N] [--import-file F ...]``:
verify an evidence bundle offline. ``--import-file`` re-hashes a file that was imported and
checks it against the bundle's ``import`` leaves.

Exit codes (docs/verification.md): 0 integrity holds and no plausibility finding; 3 integrity
holds, plausibility findings for the reviewer to judge; 1 integrity fails (a signature, proof,
hash, sequence, configuration or recomputed KPI); 2 usage error (a file cannot be read, the
trust file is invalid, or the bundle is over the size limits).

Needs only the verifier's dependencies (``pip install 'shopfloor[verify]'``): no collector, no
gateway library is imported.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DEFAULT_MAX_MB = 2048  # metrics.evidence.bundle.MAX_TOTAL_BYTES in MiB


def _verify(args: argparse.Namespace) -> int:
    # imported here: registering the command must stay argparse-level (fast ``--help``)
    from metrics.evidence.bundle import BundleTooLarge
    from metrics.evidence.trust import TrustError, parse_trust
    from metrics.evidence.verify import EXIT_USAGE, verify_bundle

    try:
        trust = parse_trust(Path(args.trust).read_bytes())
    except OSError as exc:
        print(f"error: cannot read {args.trust}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except TrustError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with open(args.bundle, "rb") as bundle:
            rep = verify_bundle(bundle, trust, max_total=args.max_mb << 20)
    except OSError as exc:
        print(f"error: cannot read {args.bundle}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except BundleTooLarge as exc:
        print(f"error: {args.bundle}: {exc} (raise the limit with --max-mb)", file=sys.stderr)
        return EXIT_USAGE
    if args.import_file:
        from metrics.evidence.verify import check_import_files

        files: dict[str, bytes] = {}
        for name in args.import_file:
            try:
                files[name] = Path(name).read_bytes()
            except OSError as exc:
                print(f"error: cannot read {name}: {exc.strerror}", file=sys.stderr)
                return EXIT_USAGE
        check_import_files(rep, args.bundle, files, max_total=args.max_mb << 20)
    if args.json:
        print(json.dumps(rep.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(rep.to_text(), end="")
    return rep.exit_code


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return n


def register(sub: Any) -> None:
    p = sub.add_parser(
        "verify",
        help="verify an evidence bundle offline (reviewers)",
        description="Exit 0: integrity holds, no finding; 3: integrity holds, plausibility "
        "findings to review; 1: integrity fails; 2: usage error or bundle over the limits.",
    )
    p.add_argument("bundle", help="bundle.zip")
    p.add_argument("--trust", required=True, help="trust.json with the keys you trust")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.add_argument(
        "--import-file",
        action="append",
        help="an imported file (e.g. the meter CSV) to check against the bundle's import "
        "leaves: fails when its content changed after the import (repeatable)",
    )
    p.add_argument(
        "--max-mb",
        type=_positive,
        default=DEFAULT_MAX_MB,
        help=f"refuse a bundle over this many MiB uncompressed (default {DEFAULT_MAX_MB})",
    )
    p.set_defaults(func=_verify)
