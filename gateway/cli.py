"""``shopfloor serve``, ``shopfloor users ...``, ``shopfloor tokens ...``.

Registered through the ``shopfloor.commands`` entry-point group (the edge CLI never imports the
gateway). Passwords are read from a prompt or stdin, never from the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import signal
import sys
from pathlib import Path
from typing import Any

from gateway.users import ROLES, UserDB, UserError


def _site(path: str) -> Any:
    from config.loader import ConfigError, load_site  # only when a command runs: --help stays light

    try:
        return load_site(path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(f"error: {issue}", file=sys.stderr)
        return None


def _db(args: argparse.Namespace) -> UserDB | None:
    if args.db:
        return UserDB(Path(args.db))
    if not args.config:
        print("error: give -c SITE_FILE (or --db USERS_DB)", file=sys.stderr)
        return None
    site = _site(args.config)
    if site is None:
        return None
    return UserDB(site.resolve(site.gateway.users_db))


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise UserError("the two passwords differ")
    return first


def _serve_group(args: argparse.Namespace) -> int:
    """``serve --group FILE``: the read-only group view over the central InfluxDB."""
    import os

    from config.group import GroupError
    from gateway.group import open_group
    from gateway.group_app import group_uvicorn_config
    from gateway.group_auth import TokenFile, TokenFileError
    from gateway.server import listen_socket, serve_until

    if args.cert or args.key:
        print(
            "error: the group view serves plain HTTP behind the proxy (no --cert)", file=sys.stderr
        )
        return 2
    try:
        group = open_group(args.group)
    except GroupError as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2
    cfg = group.config
    try:
        tokens = TokenFile(cfg.resolve(cfg.auth.tokens_file))
    except TokenFileError as exc:
        group.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    host = args.host or cfg.server.host
    port = args.port or cfg.server.port
    try:
        sock = listen_socket(host, port)
    except OSError as exc:
        group.close()
        print(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    config = group_uvicorn_config(
        group,
        tokens,
        host,
        port,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
        log_level=os.environ.get("SHOPFLOOR_LOG_LEVEL", "INFO").upper(),
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        n = len(group.sites)
        print(
            f"group view: serving {cfg.group.id} ({n} sites) on http://{host}:{port}/", flush=True
        )
        await serve_until(config, stop, sock)

    try:
        asyncio.run(main())
    finally:
        sock.close()
    return 0


def _serve(args: argparse.Namespace) -> int:
    from gateway.server import listen_socket, serve_until, uvicorn_config
    from gateway.settings import Settings

    if bool(args.config) == bool(args.group):
        print(
            "error: give -c SITE_FILE (a gateway) or --group GROUP_FILE (the group view)",
            file=sys.stderr,
        )
        return 2
    if args.group:
        return _serve_group(args)
    site = _site(args.config)
    if site is None:
        return 2
    if bool(args.cert) != bool(args.key):
        print("error: --cert and --key go together", file=sys.stderr)
        return 2
    settings = Settings.from_site(site)
    host = args.host or site.gateway.host
    port = args.port or site.gateway.port
    try:
        sock = listen_socket(host, port)
    except OSError as exc:
        print(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    config = uvicorn_config(
        settings,
        host,
        port,
        certfile=Path(args.cert) if args.cert else None,
        keyfile=Path(args.key) if args.key else None,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
    )
    try:
        config.load()  # reads the TLS certificate and key: a bad one is one line, not a trace
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        sock.close()
        print(f"error: --cert/--key: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return 2

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        scheme = "https" if args.cert else "http"
        print(f"gateway: serving {site.site.id} on {scheme}://{host}:{port}/", flush=True)
        await serve_until(config, stop, sock)

    try:
        asyncio.run(main())
    finally:
        sock.close()
    return 0


def _users(args: argparse.Namespace) -> int:
    db = _db(args)
    if db is None:
        return 2
    try:
        action = args.users_command
        if action == "list":
            for u in db.users():
                print(f"{u.username}\t{u.role}\t{'disabled' if u.disabled else 'enabled'}")
        elif action == "add":
            db.add_user(args.username, args.role, _password(args))
            print(f"user {args.username} added with role {args.role}")
        elif action == "passwd":
            db.set_password(args.username, _password(args))
            print(f"password of {args.username} changed")
        elif action == "role":
            db.set_role(args.username, args.role)
            print(f"{args.username} now has role {args.role}")
        elif action in ("disable", "enable"):
            db.set_disabled(args.username, action == "disable")
            print(f"{args.username} {action}d")
        elif action == "remove":
            db.remove_user(args.username)
            print(f"user {args.username} removed (and its tokens)")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _tokens(args: argparse.Namespace) -> int:
    db = _db(args)
    if db is None:
        return 2
    try:
        if args.tokens_command == "create":
            token = db.create_token(args.username, args.name, ttl_days=args.ttl_days)
            print("token (shown once; only its SHA-256 is stored):", file=sys.stderr)
            print(token)
        elif args.tokens_command == "list":
            for t in db.tokens(args.user):
                exp = t.expires_ts if t.expires_ts is not None else "never"
                print(f"{t.id}\t{t.username}\t{t.name}\tcreated {t.created_ts}\texpires {exp}")
        elif args.tokens_command == "revoke":
            db.revoke_token(args.id)
            print(f"token {args.id} revoked")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _db_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", help="site file (its gateway.users_db is used)")
    p.add_argument("--db", help="users file, instead of the site file's")


def register(sub: Any) -> None:
    s = sub.add_parser("serve", help="run the gateway service (dashboard, REST, live stream)")
    s.add_argument("-c", "--config", help="site file (a gateway)")
    s.add_argument(
        "--group",
        metavar="GROUP_FILE",
        help="serve the read-only group view of the sites in GROUP_FILE from the central "
        "InfluxDB instead of a gateway (see docs/influxdb.md)",
    )
    s.add_argument("--host", help="listen address (default: gateway.host of the site file)")
    s.add_argument("--port", type=int, help="listen port (default: gateway.port)")
    s.add_argument("--cert", help="TLS certificate (PEM) to serve HTTPS directly")
    s.add_argument("--key", help="TLS private key (PEM)")
    s.add_argument(
        "--proxy-headers", action="store_true", help="trust X-Forwarded-* from the reverse proxy"
    )
    s.add_argument("--forwarded-allow-ips", default=None, help="proxy addresses to trust")
    s.set_defaults(func=_serve)

    u = sub.add_parser("users", help="manage gateway users and roles")
    usub = u.add_subparsers(dest="users_command", metavar="ACTION")
    usub.required = True
    p = usub.add_parser("list", help="list users")
    _db_args(p)
    p = usub.add_parser("add", help="add a user (password from a prompt or --password-stdin)")
    _db_args(p)
    p.add_argument("username")
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--password-stdin", action="store_true")
    p = usub.add_parser("passwd", help="set a user's password")
    _db_args(p)
    p.add_argument("username")
    p.add_argument("--password-stdin", action="store_true")
    p = usub.add_parser("role", help="change a user's role")
    _db_args(p)
    p.add_argument("username")
    p.add_argument("role", choices=ROLES)
    for name in ("disable", "enable", "remove"):
        p = usub.add_parser(name, help=f"{name} a user")
        _db_args(p)
        p.add_argument("username")
    u.set_defaults(func=_users)

    t = sub.add_parser("tokens", help="manage API tokens (stored as SHA-256 hashes)")
    tsub = t.add_subparsers(dest="tokens_command", metavar="ACTION")
    tsub.required = True
    p = tsub.add_parser("create", help="create a token for a user; printed once")
    _db_args(p)
    p.add_argument("username")
    p.add_argument("--name", required=True, help="what the token is for, e.g. prometheus")
    p.add_argument("--ttl-days", type=float, default=None)
    p = tsub.add_parser("list", help="list tokens (never their value)")
    _db_args(p)
    p.add_argument("--user", default=None)
    p = tsub.add_parser("revoke", help="revoke a token by id")
    _db_args(p)
    p.add_argument("id", type=int)
    t.set_defaults(func=_tokens)
