"""`shopfloor users ...`, `shopfloor tokens ...` and the demo entry point."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path

import httpx
import pytest

from config.loader import load_site
from edge.cli.main import main
from gateway.demo import serve
from gateway.users import UserDB
from tests.gateway.support import write_site


def _run(monkeypatch: pytest.MonkeyPatch, args: list[str], stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(args)


def test_users_and_tokens_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    site = str(write_site(tmp_path))
    add = ["users", "add", "alice", "--role", "engineer", "--password-stdin", "-c", site]
    assert _run(monkeypatch, add, "alice-password\n") == 0
    assert _run(monkeypatch, add, "alice-password\n") == 2
    assert "already exists" in capsys.readouterr().err
    bad = ["users", "add", "bob", "--role", "viewer", "--password-stdin", "-c", site]
    assert _run(monkeypatch, bad, "short\n") == 2
    assert "at least 8" in capsys.readouterr().err
    assert _run(monkeypatch, ["users", "role", "alice", "applicant", "-c", site]) == 0
    assert _run(monkeypatch, ["users", "list", "-c", site]) == 0
    assert "alice\tapplicant\tenabled" in capsys.readouterr().out
    db = UserDB(tmp_path / "users.db")
    assert db.authenticate("alice", "alice-password") is not None

    assert _run(monkeypatch, ["tokens", "create", "alice", "--name", "ci", "-c", site]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("sft_")
    user = db.user_for_token(token)
    assert user is not None
    assert user.role == "applicant"
    assert _run(monkeypatch, ["tokens", "list", "-c", site]) == 0
    listing = capsys.readouterr().out
    assert "alice\tci" in listing
    assert token not in listing
    token_id = listing.split("\t")[0]
    assert _run(monkeypatch, ["tokens", "revoke", token_id, "-c", site]) == 0
    assert db.user_for_token(token) is None
    assert _run(monkeypatch, ["tokens", "revoke", token_id, "-c", site]) == 2
    assert _run(monkeypatch, ["tokens", "create", "ghost", "--name", "x", "-c", site]) == 2
    assert _run(monkeypatch, ["users", "disable", "alice", "-c", site]) == 0
    assert db.authenticate("alice", "alice-password") is None
    assert _run(monkeypatch, ["users", "remove", "alice", "-c", site]) == 0
    assert db.get("alice") is None


def test_commands_report_a_bad_site_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nsite: {id: x}\n", encoding="utf-8")
    assert _run(monkeypatch, ["users", "list", "-c", str(bad)]) == 2
    assert "bad.yaml:2" in capsys.readouterr().err
    assert _run(monkeypatch, ["users", "list"]) == 2
    assert "-c SITE_FILE" in capsys.readouterr().err
    assert _run(monkeypatch, ["serve", "-c", str(bad)]) == 2


async def test_demo_entry_point_serves_and_stops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = load_site(write_site(tmp_path))
    stop = asyncio.Event()
    task = asyncio.create_task(serve(site, stop))
    printed = ""
    for _ in range(200):
        printed += capsys.readouterr().out
        if "login admin" in printed or task.done():
            break
        await asyncio.sleep(0.05)
    m = re.search(r"dashboard at (http://127\.0\.0\.1:\d+)/  \(login admin / (\S+)\)", printed)
    assert m, printed
    url, password = m.groups()
    async with httpx.AsyncClient(base_url=url) as c:
        assert (await c.get("/healthz")).status_code == 200
        form = await c.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf is not None
        r = await c.post(
            "/login",
            data={"username": "admin", "password": password, "csrf_token": csrf.group(1)},
        )
        assert r.status_code == 303
        me = await c.get("/api/v1/me")
        assert me.json()["role"] == "admin"
    stop.set()
    await asyncio.wait_for(task, 15)
