"""The gateway's part of ``shopfloor demo`` (entry point group ``shopfloor.demo``).

The dashboard listens on the site's ``gateway.port`` (8080 in the packaged demo; ``shopfloor
demo --port`` overrides it, a taken port is replaced by a free one and said so). The demo's
``admin`` password is kept beside the users file (``<users_db>.demo-admin``, mode 0600) and
printed again by every run, so a second ``make demo`` logs in with the same password. The
gateway logs only warnings in the demo, so the banner stays on screen above them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from dataclasses import replace
from pathlib import Path

from config.models import SiteConfig
from gateway.server import free_port, serve_until, uvicorn_config, wait_started
from gateway.settings import Settings
from gateway.users import UserDB

DEMO_ADMIN = "admin"
PASSWORD_SUFFIX = ".demo-admin"


def password_file(users_db: Path) -> Path:
    return users_db.with_name(users_db.name + PASSWORD_SUFFIX)


def demo_login(users: UserDB, keep: Path | None = None) -> str:
    """The demo ``admin``'s password (the user is created when absent). With ``keep``, the
    password stored there is reused when it still signs in; a new one is stored there (0600).
    Demo data only."""
    if keep is not None and keep.exists() and users.get(DEMO_ADMIN) is not None:
        kept = keep.read_text(encoding="utf-8").strip()
        if kept and users.authenticate(DEMO_ADMIN, kept) is not None:
            return kept
    password = secrets.token_urlsafe(12)
    if users.get(DEMO_ADMIN) is None:
        users.add_user(DEMO_ADMIN, "admin", password)
    else:
        users.set_password(DEMO_ADMIN, password)
    if keep is not None:
        fd = os.open(keep, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(password + "\n")
        os.chmod(keep, 0o600)
    return password


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def banner(url: str, password: str) -> str:
    line = "=" * 72
    return "\n".join(
        [
            line,
            f"gateway: dashboard at {url}/  (login {DEMO_ADMIN} / {password})",
            f"gateway: API docs at {url}/docs",
            "gateway: the password is kept for the next run (delete the data folder to reset)",
            line,
        ]
    )


async def serve(site: SiteConfig, stop: asyncio.Event) -> None:
    """Serve the dashboard for the demo on the site's gateway port (a free loopback port when
    it is taken) until ``stop`` is set."""
    settings = replace(Settings.from_site(site), log_level="WARNING")
    users = UserDB(settings.users_db)
    password = await asyncio.to_thread(demo_login, users, password_file(settings.users_db))
    port = site.gateway.port
    if not _bindable(port):
        port = free_port("127.0.0.1")
        print(f"gateway: port {site.gateway.port} is taken, using {port}", flush=True)
    config = uvicorn_config(settings, "127.0.0.1", port)
    runner = asyncio.create_task(serve_until(config, stop), name="shopfloor-demo-gateway")
    try:
        await wait_started(config)
    except TimeoutError:
        stop.set()
        await runner
        raise
    print(banner(f"http://127.0.0.1:{port}", password), flush=True)
    await runner
