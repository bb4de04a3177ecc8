"""The demo's dashboard: the site's fixed port (a taken one replaced and said so), the admin
password kept between runs (stored 0600 beside the users file), the banner framed."""

from __future__ import annotations

import asyncio
import re
import socket
import stat
from pathlib import Path

import httpx
import pytest

from config.loader import load_site
from gateway.demo import DEMO_ADMIN, demo_login, password_file, serve
from gateway.users import UserDB
from tests.gateway.support import write_site
from tests.support.net import free_port


def test_password_is_kept_and_private(tmp_path: Path) -> None:
    users = UserDB(tmp_path / "users.db")
    keep = password_file(tmp_path / "users.db")
    first = demo_login(users, keep)
    assert demo_login(users, keep) == first
    assert stat.S_IMODE(keep.stat().st_mode) == 0o600
    assert users.authenticate(DEMO_ADMIN, first) is not None
    users.set_password(DEMO_ADMIN, "changed by hand")  # the kept one no longer signs in
    second = demo_login(users, keep)
    assert second != first
    assert users.authenticate(DEMO_ADMIN, second) is not None


async def _run_once(site_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, str, str]:
    site = load_site(site_path)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(site, stop))
    printed = ""
    for _ in range(400):
        printed += capsys.readouterr().out
        if "login admin" in printed or task.done():
            break
        await asyncio.sleep(0.05)
    m = re.search(r"dashboard at (http://127\.0\.0\.1:(\d+))/  \(login admin / (\S+)\)", printed)
    assert m, printed
    url, port, password = m.groups()
    async with httpx.AsyncClient(base_url=url) as c:
        assert (await c.get("/healthz")).status_code == 200
    stop.set()
    await asyncio.wait_for(task, 15)
    return port, password, printed


async def test_twice_is_as_good_as_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    site_path = write_site(tmp_path, port=port)
    p1, pw1, out1 = await _run_once(site_path, capsys)
    p2, pw2, _ = await _run_once(site_path, capsys)
    assert (p1, pw1) == (p2, pw2) == (str(port), pw1)
    assert "=" * 72 in out1
    # the port taken by someone else: a free one, and the banner says so
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        p3, pw3, out3 = await _run_once(site_path, capsys)
    assert p3 != str(port)
    assert pw3 == pw1
    assert f"port {port} is taken" in out3
