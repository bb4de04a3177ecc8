"""``shopfloor keys init|show|rotate|trust``: the gateway's (or a witness's) signing key."""

from __future__ import annotations

import argparse
import json
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from config.models import SiteConfig
    from metrics.evidence.trust import Role

# Registering the commands imports only argparse-level code (``shopfloor --help`` stays fast
# on a small gateway): the store, ledger, metrics and config modules load in the handlers.

EXIT_USAGE = 2


class CliFail(Exception):
    """A user error: printed without a traceback, exit code 2."""


def load_site_or_fail(path: str) -> SiteConfig:
    from config.loader import ConfigError, load_site

    try:
        return load_site(path)
    except ConfigError as exc:
        raise CliFail("\n".join(f"error: {i}" for i in exc.issues)) from None


def key_dir_of(args: argparse.Namespace) -> tuple[Path, SiteConfig | None]:
    if getattr(args, "dir", None):
        return Path(args.dir), None
    if not getattr(args, "config", None):
        raise CliFail("give the site file (-c SITE) or a key directory (--dir DIR)")
    site = load_site_or_fail(args.config)
    return site.resolve(site.evidence.key_dir), site


def origin_of(site: SiteConfig) -> str:
    return site.evidence.origin or f"shopfloor.local/{site.site.id}"


def guarded(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        from edge.store import keys
        from edge.store.ledger import LedgerError
        from metrics.evidence.note import NoteError
        from metrics.evidence.trust import TrustError

        try:
            code: int = func(args)
            return code
        except (CliFail, keys.KeyDirError, LedgerError, NoteError, TrustError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE

    return run


def _init(args: argparse.Namespace) -> int:
    from edge.store import keys

    kd, site = key_dir_of(args)
    name = args.name or (origin_of(site) if site else None)
    if not name:
        raise CliFail("give --name for a key directory without a site file")
    signer = keys.init_key(kd, name, witness=args.witness)
    print(f"created {'witness ' if args.witness else ''}key {name} ({signer.verifier.key_hash})")
    print(f"  private key: {kd / keys.KEY_FILE} (0600, never leaves this machine)")
    print(f"  public key:  {signer.verifier}")
    print("give the reviewer the public key (or 'shopfloor keys trust') out of band")
    return 0


def _show(args: argparse.Namespace) -> int:
    from edge.store import keys

    kd, _ = key_dir_of(args)
    pub = keys.load_public(kd)
    print(f"name:     {pub.name}")
    print(f"key id:   {pub.key_hash}")
    print(f"type:     {'cosignature/v1 (witness)' if pub.alg == 4 else 'Ed25519'}")
    print(f"public:   {pub}")
    kp = kd / keys.KEY_FILE
    if kp.exists():
        print(f"private:  {kp} (mode {stat.S_IMODE(kp.stat().st_mode):04o})")
    for r in keys.retired(kd):
        print(f"retired:  {r}")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    from edge.store import keys
    from edge.store.ledger import Ledger

    kd, site = key_dir_of(args)
    rot = keys.rotate_key(kd)
    print(f"rotated {rot.old.name}: {rot.old.key_hash} -> {rot.new.key_hash}")
    if site is not None and site.evidence.enabled:
        with Ledger(site.resolve(site.evidence.ledger_path)) as led:
            idx = led.append_special(
                "key_rotation",
                {"old": str(rot.old), "new": str(rot.new), "statement": rot.statement},
            )
        print(f"  rotation leaf {idx} (signed by the old key) appended to the ledger")
    print(f"  new public key: {rot.new}")
    print("  give the reviewer the new key; set not_after of the old one in trust.json")
    return 0


def _trust(args: argparse.Namespace) -> int:
    from edge.store import keys
    from metrics.evidence.trust import TrustedKey, parse_time

    kd, _ = key_dir_of(args)
    pub = keys.load_public(kd)
    role: Role = "witness" if pub.alg == 4 else "gateway"
    nb = parse_time(args.not_before, "--not-before") if args.not_before else None
    na = parse_time(args.not_after, "--not-after") if args.not_after else None
    entry = TrustedKey(role, pub, nb, na, args.comment or "").to_dict()
    print(json.dumps(entry, ensure_ascii=False, indent=2))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", help="site file (key directory from evidence.key_dir)")
    p.add_argument("--dir", help="key directory (instead of a site file)")


def register(sub: Any) -> None:
    p = sub.add_parser("keys", help="signing key: init, show, rotate, trust entry")
    ksub = p.add_subparsers(dest="keys_command", metavar="ACTION")
    ksub.required = True
    i = ksub.add_parser("init", help="create the signing key (0700 directory, 0600 key)")
    _common(i)
    i.add_argument("--name", help="key name (default: the checkpoint origin of the site)")
    i.add_argument("--witness", action="store_true", help="a witness cosigning key (type 0x04)")
    i.set_defaults(func=guarded(_init))
    s = ksub.add_parser("show", help="show the public key")
    _common(s)
    s.set_defaults(func=guarded(_show))
    r = ksub.add_parser("rotate", help="replace the key; the old key signs a rotation leaf")
    _common(r)
    r.set_defaults(func=guarded(_rotate))
    t = ksub.add_parser("trust", help="print a trust.json entry for the reviewer")
    _common(t)
    t.add_argument("--not-before", help="RFC 3339 start of validity, e.g. 2026-01-01T00:00:00Z")
    t.add_argument("--not-after", help="RFC 3339 end of validity")
    t.add_argument("--comment", help="free text, e.g. the enterprise")
    t.set_defaults(func=guarded(_trust))
