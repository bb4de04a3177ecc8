"""The quarantine through the gateway's admin API (``shopfloor serve`` in a subprocess) on a
site storing into a private influxd; the same outbox file as ``shopfloor outbox``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from config.loader import load_site
from edge.store.factory import open_store
from edge.store.influx.store import InfluxStore
from gateway.users import UserDB
from tests.gateway.support import start_gateway, stop_gateway
from tests.influx.helpers import WEEK_2020, batch, drained, wait_for
from tests.influx.test_outbox_cli import drop_shards
from tests.support.influxd import Influxd, influxd_available, influxd_server
from tests.support.net import free_port, wait_port

pytestmark = [
    pytest.mark.xdist_group("influxd"),
    pytest.mark.skipif(not influxd_available(), reason="influxd (Debian package influxdb) missing"),
]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    with influxd_server(tmp_path_factory.mktemp("influxd")) as server:
        yield server


def serve(folder: Path, site_path: Path) -> tuple[subprocess.Popen[bytes], str, dict[str, str]]:
    users = UserDB(folder / "users.db")
    tokens = {}
    for role in ("admin", "engineer"):
        users.add_user(role, role, "correct horse battery")
        tokens[role] = users.create_token(role, "tests")
    port = free_port()
    cmd = [sys.executable, "-m", "edge.cli.main", "serve", "-c", str(site_path)]
    with (folder / "gateway.log").open("wb") as log:
        proc = subprocess.Popen(
            [*cmd, "--port", str(port)],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_port(port, timeout=30)
    except TimeoutError:
        proc.kill()
        proc.wait()
        raise RuntimeError((folder / "gateway.log").read_text()) from None
    return proc, f"http://127.0.0.1:{port}", tokens


def test_admin_lists_and_resends_quarantined_batches(influxd: Influxd, tmp_path: Path) -> None:
    db = influxd.create_database("api")
    site_path = tmp_path / "site.yaml"
    site_path.write_text(
        json.dumps(
            {
                "site": {"id": "plant", "name": "plant"},
                "storage": {
                    "kind": "influxdb",
                    "url": influxd.url,
                    "database": db,
                    "outbox_path": "outbox.db",
                    "local_cache": "cache.db",
                    "replay_backoff_max_s": 0.2,
                },
                "gateway": {"users_db": "users.db"},
            }
        ),
        encoding="utf-8",
    )
    r = influxd.write_raw(db, f'samples,device=x,point=y value="text",quality=0i {WEEK_2020}')
    assert r.status_code == 204
    store = open_store(load_site(site_path))
    assert isinstance(store, InfluxStore)
    proc, url, tokens = serve(tmp_path, site_path)
    try:
        store.write_batches([batch("q", 1, 20, base=WEEK_2020)])
        drained(store)
        admin = {"Authorization": f"Bearer {tokens['admin']}"}
        engineer = {"Authorization": f"Bearer {tokens['engineer']}"}
        with httpx.Client(base_url=url, timeout=30) as c:
            assert c.get("/api/v1/outbox", headers=engineer).status_code == 403
            assert c.get("/api/v1/outbox").status_code == 401
            got = c.get("/api/v1/outbox", headers=admin)
            assert got.status_code == 200
            body = got.json()
            assert (body["pending_samples"], body["pending_batches"]) == (0, 0)
            [q] = body["quarantined"]
            assert (q["id"], q["source"], q["seq"], q["samples"], q["status"]) == (
                1,
                "q",
                1,
                20,
                400,
            )
            assert "field type conflict" in q["body"]
            r = c.post("/api/v1/outbox/resend", json={"ids": [5]}, headers=admin)
            assert r.status_code == 404
            assert r.json() == {"detail": "no quarantined batch #5 (nothing moved)"}
            r = c.post("/api/v1/outbox/resend", json={"ids": [1]}, headers=engineer)
            assert r.status_code == 403
            assert len(store.quarantined()) == 1
            drop_shards(influxd, db)  # the cause fixed
            r = c.post("/api/v1/outbox/resend", json={}, headers=admin)
            assert r.status_code == 200
            assert r.json() == {"batches": 1, "samples": 20}
        wait_for(lambda: store.status().sent_samples >= 20, what="re-sent batch")
        assert store.quarantined() == []
        assert len(store.read("q", "p", WEEK_2020, WEEK_2020 + 10**9)) == 20
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        store.close()


def test_a_site_without_an_outbox_answers_404(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path, fill_store=False)
    try:
        with gw.client("admin") as c:
            r = c.get("/api/v1/outbox")
            assert r.status_code == 404
            assert r.json() == {"detail": "storage kind is 'sqlite'; only influxdb has an outbox"}
            assert c.post("/api/v1/outbox/resend", json={"ids": None}).status_code == 404
    finally:
        stop_gateway(gw)
