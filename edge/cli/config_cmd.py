"""``shopfloor config check FILE`` and ``shopfloor config schema``."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _check(args: argparse.Namespace) -> int:
    # imported here: registering the command must stay argparse-level (fast ``--help``)
    from pathlib import Path

    from config.loader import ConfigError, load_site, secret_issues, yaml_surprises

    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = ""  # load_site reports it
    for warning in yaml_surprises(text, args.file):
        print(f"warning: {warning}", file=sys.stderr)
    try:
        site = load_site(args.file)
    except ConfigError as exc:
        for issue in exc.issues:
            print(f"error: {issue}", file=sys.stderr)
        n = len(exc.issues)
        print(f"{args.file}: {n} error{'s' if n != 1 else ''}", file=sys.stderr)
        return 2
    missing = secret_issues(site, args.file)
    if missing:
        for issue in missing:
            print(f"error: {issue}", file=sys.stderr)
        n = len(missing)
        print(f"{args.file}: {n} secret{'s' if n != 1 else ''} not available", file=sys.stderr)
        return 2
    points = sum(len(d.points) for d in site.devices)
    print(
        f"{args.file}: ok — site {site.site.id} ({site.site.name}), "
        f"{len(site.devices)} devices, {points} points, storage {site.storage.kind}"
    )
    return 0


def _schema(args: argparse.Namespace) -> int:
    from config.loader import json_schema

    print(json_schema())
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("config", help="check a site file or print its JSON Schema")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION")
    csub.required = True
    check = csub.add_parser("check", help="validate a site file; every error with file:line")
    check.add_argument("file")
    check.set_defaults(func=_check)
    schema = csub.add_parser("schema", help="print the JSON Schema of the site file")
    schema.set_defaults(func=_schema)
    from edge.cli import config_record

    config_record.register(csub)
