"""``shopfloor browse opcua URL``: print a server's node tree, ready to copy into a site file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from config.opcua import OpcUaConnection

# asyncio, asyncua and the config models load in the handler: registering the command stays
# argparse-level so that ``shopfloor --help`` is fast on a small gateway.

SECURITY = {
    "None": ("None", "None"),
    "Basic256Sha256-Sign": ("Basic256Sha256", "Sign"),
    "Basic256Sha256-SignAndEncrypt": ("Basic256Sha256", "SignAndEncrypt"),
}


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


def _browse_opcua(args: argparse.Namespace) -> int:
    import asyncio

    from pydantic import ValidationError

    from connectors.base import ConnectorError
    from connectors.opcua.browse import browse, format_tree

    try:
        conn = _connection(args)
    except (ValidationError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if conn.security_policy != "None" and conn.certificate is None:
        print(
            "error: a secure policy needs --cert and --key (the gateway's certificate, e.g. "
            "<key_dir>/opcua/client-cert.der and client-key.pem)",
            file=sys.stderr,
        )
        return 2
    try:
        nodes = asyncio.run(browse(conn, depth=args.depth))
    except ConnectorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"# {args.url} — {len(nodes)} nodes (name, class, NodeId, data type, browse path)")
    print(format_tree(nodes))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("browse", help="browse a device's address space (OPC UA)")
    psub = p.add_subparsers(dest="browse_protocol", metavar="PROTOCOL")
    psub.required = True
    op = psub.add_parser(
        "opcua", help="print the node tree with NodeIds, browse names and data types"
    )
    op.add_argument("url", help="opc.tcp://host:port/path")
    op.add_argument("--depth", type=int, default=3, help="levels below Objects (default 3)")
    op.add_argument("--user", help="user name")
    op.add_argument("--password-env", metavar="VAR", help="environment variable with the password")
    op.add_argument("--security", choices=sorted(SECURITY), default="None")
    op.add_argument("--cert", help="client certificate (DER/PEM) for a secure policy")
    op.add_argument("--key", help="client private key (PEM)")
    op.add_argument("--server-cert", help="pin the server certificate")
    op.add_argument("--timeout", type=float, default=4.0, help="request timeout, s")
    op.set_defaults(func=_browse_opcua)
