"""``shopfloor browse opcua URL`` (a server's node tree, ready to copy into a site file),
``shopfloor discover opcua URL`` (machines found by their companion-specification types, as a
site-file fragment) and ``shopfloor opcua trust URL`` (pin a server certificate)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from config.opcua import OpcUaConnection

# asyncio, asyncua and the config models load in the handler: registering the command stays
# argparse-level so that ``shopfloor --help`` is fast on a small gateway.

POLICIES = ("Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss")
SECURITY = {"None": ("None", "None")} | {
    f"{p}-{m}": (p, m) for p in POLICIES for m in ("Sign", "SignAndEncrypt")
}


def _pki_dir(args: argparse.Namespace) -> Path | None:
    """``<key_dir>/opcua`` from --key-dir or the site file (-c): where the gateway keeps its
    certificate and the trust list of server certificates."""
    if getattr(args, "key_dir", None):
        return Path(args.key_dir) / "opcua"
    if getattr(args, "config", None):
        from config.loader import load_site

        site = load_site(args.config)
        return site.resolve(site.evidence.key_dir) / "opcua"
    return None


def _connection(args: argparse.Namespace) -> OpcUaConnection:
    from config.base import SecretRef
    from config.opcua import OpcUaConnection

    policy, mode = SECURITY[args.security]
    fields: dict[str, Any] = {
        "endpoint": args.url,
        "security_policy": policy,
        "security_mode": mode,
        "timeout_s": args.timeout,
    }
    if args.user is not None:
        if not args.password_env:
            raise ValueError("--user needs --password-env VAR (the password is never an argument)")
        fields["username"] = args.user
        fields["password"] = SecretRef(env=args.password_env)
    if args.cert is not None:
        fields["certificate"] = Path(args.cert)
        fields["private_key"] = Path(args.key) if args.key else None
    if args.server_cert is not None:
        fields["server_certificate"] = Path(args.server_cert)
    return OpcUaConnection(**fields)


def _prepare(args: argparse.Namespace) -> tuple[OpcUaConnection, Path | None] | None:
    """The connection and the gateway's key folder of the command line, or None after an
    error line."""
    from pydantic import ValidationError

    from config.loader import ConfigError

    try:
        conn = _connection(args)
        pki_dir = _pki_dir(args)
    except ConfigError as exc:
        for issue in exc.issues:
            print(f"error: {issue}", file=sys.stderr)
        return None
    except (ValidationError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    if conn.security_policy != "None" and conn.certificate is None and pki_dir is None:
        print(
            "error: a secure policy needs the gateway's certificate: -c SITE or --key-dir DIR "
            "(its <key_dir>/opcua), or --cert and --key",
            file=sys.stderr,
        )
        return None
    return conn, pki_dir


def _browse_opcua(args: argparse.Namespace) -> int:
    import asyncio

    from connectors.base import ConnectorError
    from connectors.opcua.browse import browse, format_tree

    prepared = _prepare(args)
    if prepared is None:
        return 2
    conn, pki_dir = prepared
    try:
        nodes = asyncio.run(browse(conn, depth=args.depth, pki_dir=pki_dir))
    except ConnectorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"# {args.url} — {len(nodes)} nodes (name, class, NodeId, data type, browse path)")
    print(format_tree(nodes))
    return 0


def _trust_opcua(args: argparse.Namespace) -> int:
    import asyncio

    from connectors.base import ConnectorError
    from connectors.opcua.browse import server_certificates
    from connectors.opcua.security import add_trusted, describe, is_trusted, trust_dir

    prepared = _prepare(args)
    if prepared is None:
        return 2
    conn, pki_dir = prepared
    if pki_dir is None:
        print(
            "error: give the site file (-c SITE) or the key folder (--key-dir DIR)", file=sys.stderr
        )
        return 2
    try:
        found = asyncio.run(server_certificates(conn))
    except ConnectorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not found:
        print(
            f"error: {args.url} offers no secure endpoint (no server certificate)", file=sys.stderr
        )
        return 1
    expect = args.expect.replace(":", "").lower() if args.expect else None
    chosen = [
        (der, used)
        for der, used in found
        if expect is None or describe(der).thumbprint == expect or describe(der).sha256 == expect
    ]
    if not chosen:
        print(
            f"error: no certificate of {args.url} has the fingerprint {args.expect}: "
            "nothing trusted (is this the server you think it is?)",
            file=sys.stderr,
        )
        return 1
    for der, used in chosen:
        info = describe(der)
        known = is_trusted(der, trust_dir(pki_dir))
        path = add_trusted(der, pki_dir)
        print(f"{'already trusted' if known else 'trusted'}: {info.subject}")
        print(f"  application URI  {info.application_uri or '-'}")
        print(f"  valid until      {info.not_after:%Y-%m-%d %H:%M} UTC")
        print(f"  SHA-1 thumbprint {info.thumbprint}")
        print(f"  SHA-256          {info.sha256}")
        print(f"  endpoints        {', '.join(used)}")
        print(f"  file             {path}")
    if expect is None:
        print(
            "compare the fingerprint with the one the server shows (its certificate page), or "
            "give it next time with --expect",
        )
    return 0


def _discover_opcua(args: argparse.Namespace) -> int:
    import asyncio

    from connectors.base import ConnectorError
    from connectors.opcua.discover import discover, format_fragment

    prepared = _prepare(args)
    if prepared is None:
        return 2
    conn, pki_dir = prepared
    try:
        found = asyncio.run(discover(conn, depth=args.depth, pki_dir=pki_dir))
    except ConnectorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_fragment(found), end="")
    return 0


def _add_connection_args(op: argparse.ArgumentParser) -> None:
    op.add_argument("url", help="opc.tcp://host:port/path")
    op.add_argument("-c", "--config", metavar="SITE", help="site file (for its key folder)")
    op.add_argument("--key-dir", help="the gateway's key folder (evidence.key_dir)")
    op.add_argument("--user", help="user name")
    op.add_argument("--password-env", metavar="VAR", help="environment variable with the password")
    op.add_argument("--security", choices=sorted(SECURITY), default="None")
    op.add_argument("--cert", help="client certificate (DER/PEM) for a secure policy")
    op.add_argument("--key", help="client private key (PEM)")
    op.add_argument("--server-cert", help="pin the server certificate")
    op.add_argument("--timeout", type=float, default=4.0, help="request timeout, s")


def register(sub: Any) -> None:
    p = sub.add_parser("browse", help="browse a device's address space (OPC UA)")
    psub = p.add_subparsers(dest="browse_protocol", metavar="PROTOCOL")
    psub.required = True
    op = psub.add_parser(
        "opcua", help="print the node tree with NodeIds, browse names and data types"
    )
    _add_connection_args(op)
    op.add_argument("--depth", type=int, default=3, help="levels below Objects (default 3)")
    op.set_defaults(func=_browse_opcua)

    d = sub.add_parser(
        "discover", help="find machines by their companion-specification types (OPC UA)"
    )
    dsub = d.add_subparsers(dest="discover_protocol", metavar="PROTOCOL")
    dsub.required = True
    dop = dsub.add_parser(
        "opcua",
        help="print a commented site-file fragment for the Machinery, MachineTool, PackML and "
        "CNC instances found by type",
    )
    _add_connection_args(dop)
    dop.add_argument("--depth", type=int, default=8, help="levels below Objects (default 8)")
    dop.set_defaults(func=_discover_opcua)

    t = sub.add_parser("opcua", help="OPC UA tools: trust a server certificate")
    tsub = t.add_subparsers(dest="opcua_command", metavar="ACTION")
    tsub.required = True
    trust = tsub.add_parser(
        "trust",
        help="fetch the server's certificate, show its fingerprints and add it to the trust list",
    )
    _add_connection_args(trust)
    trust.add_argument(
        "--expect", metavar="FINGERPRINT", help="trust only a certificate with this SHA-1/SHA-256"
    )
    trust.set_defaults(func=_trust_opcua)
