"""The gateway's part of ``shopfloor demo`` (entry point group ``shopfloor.demo``)."""

from __future__ import annotations

import asyncio
import secrets

from config.models import SiteConfig
from gateway.server import free_port, serve_until, uvicorn_config, wait_started
from gateway.settings import Settings
from gateway.users import UserDB

DEMO_ADMIN = "admin"


def demo_login(users: UserDB) -> str:
    """A fresh password for the demo's ``admin`` (created when absent). Demo data only."""
    password = secrets.token_urlsafe(12)
    if users.get(DEMO_ADMIN) is None:
        users.add_user(DEMO_ADMIN, "admin", password)
    else:
        users.set_password(DEMO_ADMIN, password)
    return password


async def serve(site: SiteConfig, stop: asyncio.Event) -> None:
    """Serve the dashboard for the demo on a free loopback port until ``stop`` is set."""
    settings = Settings.from_site(site)
    users = UserDB(settings.users_db)
    password = await asyncio.to_thread(demo_login, users)
    port = free_port("127.0.0.1")
    config = uvicorn_config(settings, "127.0.0.1", port)
    runner = asyncio.create_task(serve_until(config, stop), name="shopfloor-demo-gateway")
    try:
        await wait_started(config)
    except TimeoutError:
        stop.set()
        await runner
        raise
    print(f"gateway: dashboard at http://127.0.0.1:{port}/  (login {DEMO_ADMIN} / {password})")
    print(f"gateway: API docs at http://127.0.0.1:{port}/docs")
    await runner
