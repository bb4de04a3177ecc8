"""The group view (``shopfloor serve --group``) over one private influxd holding two sites
with identical device ids.

plant-a: the hand-made cnc1 of tests/support/kpi_machines.py (shift 08:00-16:00, lunch
12:00-12:30): PBT 7.5 h, APT 5.5 h, PRU 60 s, PQ 320, GQ 300 -> OEE = 60 x 300 / 27000 = 66.67 %.
plant-b: the same device id cnc1 and states, shift 08:00-16:00 without a lunch break, so it also
produces 12:00-12:30: PBT 8 h, APT 6.0 h, ASUT 0.5 h, ADET 1.0 h, idle 0.5 h; good 0 -> 40 ->
100 -> 120, scrap 0 -> 0 -> 30 -> 30: PQ 150, GQ 120 -> OEE = 60 x 120 / 28800 = 25.00 %.
Group (summed): PBT 15.5 h, APT 11.5 h, PRU x PQ = 60 x 470 s, PQ 470, GQ 420:
availability 11.5 / 15.5 = 74.19 %, effectiveness 28200 / 41400 = 68.12 %, quality 420 / 470
= 89.36 %, OEE = 60 x 420 / 55800 = 45.16 % -- not the mean of the sites' OEE (45.83 %).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from config.markers import HEARTBEAT_DEVICE
from connectors.base import Sample
from edge.store.influx.lineproto import encode, identity_tags
from gateway.group import open_group
from gateway.group_app import create_group_app
from gateway.group_auth import TokenFile
from tests.support import kpi_machines as km
from tests.support.influxd import Influxd, influxd_available, influxd_server
from tests.support.net import free_port, wait_port

pytestmark = [
    pytest.mark.xdist_group("influxd"),
    pytest.mark.skipif(not influxd_available(), reason="influxd (Debian package influxdb) missing"),
]

VIEWER = "group-viewer-token-0123456789"
DAY = km.DAY
GROUP_OEE = 60 * 420 / 55800


def _site_data(site_id: str, *, lunch: bool) -> dict[str, Any]:
    data = km.site_data()
    data["site"] = {"id": site_id, "name": f"{site_id} works", "timezone": "UTC"}
    data["devices"] = [d for d in data["devices"] if d["id"] == "cnc1"]
    if not lunch:
        data["calendar"] = {"shifts": [{"name": "day", "start": "08:00", "end": "16:00"}]}
    return data


def _samples_a() -> list[Sample]:
    return [s for s in km.samples() if s.device in ("cnc1", HEARTBEAT_DEVICE)]


def _samples_b() -> list[Sample]:
    counts = {
        (8, 30): (0.0, 0.0),
        (10, 0): (40.0, 0.0),
        (14, 0): (100.0, 30.0),
        (15, 0): (120.0, 30.0),
    }
    out = []
    for s in _samples_a():
        if s.device == "cnc1" and s.point in ("good", "scrap"):
            for (hh, mm), (good, scrap) in counts.items():
                if s.ts == km.at(hh, mm):
                    s = Sample(s.device, s.point, s.ts, good if s.point == "good" else scrap)
        out.append(s)
    return out


@pytest.fixture(scope="module")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    with influxd_server(tmp_path_factory.mktemp("influxd")) as server:
        yield server


@pytest.fixture(scope="module")
def group_file(influxd: Influxd, tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = influxd.create_database("central")
    for site_id, samples in (("plant-a", _samples_a()), ("plant-b", _samples_b())):
        body = encode("samples", samples, identity_tags(site_id, f"gw-{site_id}")).decode()
        assert influxd.write_raw(db, body).status_code == 204
    root = tmp_path_factory.mktemp("group")
    for site_id, lunch in (("plant-a", True), ("plant-b", False)):
        folder = root / site_id
        folder.mkdir()
        (folder / "site.yaml").write_text(
            yaml.safe_dump(_site_data(site_id, lunch=lunch)), encoding="utf-8"
        )
    digest = hashlib.sha256(VIEWER.encode()).hexdigest()
    (root / "tokens.txt").write_text(f"# group tokens\n{digest} viewer reviewer\n")
    group = {
        "version": 1,
        "group": {"id": "acme", "name": "ACME 集团"},
        "sites": ["plant-a/site.yaml", "plant-b/site.yaml"],
        "influxdb": {"url": influxd.url, "database": db, "timeout_s": 10},
        "auth": {"tokens_file": "tokens.txt"},
    }
    path = root / "group.yaml"
    path.write_text(yaml.safe_dump(group, allow_unicode=True), encoding="utf-8")
    return path


async def _get(path: Path, url: str, token: str | None = VIEWER) -> httpx.Response:
    group = open_group(str(path))
    cfg = group.config
    app = create_group_app(group, TokenFile(cfg.resolve(cfg.auth.tokens_file)))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://group") as c:
            return await c.get(url, headers=headers)
    finally:
        group.close()


async def test_group_table_sums_times_and_quantities_of_both_sites(group_file: Path) -> None:
    r = await _get(group_file, f"/api/v1/group/kpi?period={DAY}")
    assert r.status_code == 200, r.text
    doc = r.json()
    a, b = doc["sites"]
    assert (a["site"], b["site"]) == ("plant-a", "plant-b")
    assert a["times_s"]["pbt"] == 7.5 * 3600
    assert a["times_s"]["apt"] == 5.5 * 3600
    assert a["quantities"]["pq"] == 320
    assert a["quantities"]["gq"] == 300
    assert a["oee"] == pytest.approx(60 * 300 / 27000)
    assert b["times_s"]["pbt"] == 8 * 3600
    assert b["times_s"]["apt"] == 6 * 3600
    assert b["quantities"]["pq"] == 150
    assert b["quantities"]["gq"] == 120
    assert b["oee"] == pytest.approx(60 * 120 / 28800)
    g = doc["group"]
    assert g["sites"] == 2
    assert g["machines"] == 2
    assert g["times_s"]["pbt"] == 15.5 * 3600
    assert g["times_s"]["apt"] == 11.5 * 3600
    assert g["quantities"] == {"pq": 470, "gq": 420, "sq": 50, "rq": 0}
    assert g["ideal_time_s"] == 60 * 470
    assert g["availability"] == pytest.approx(11.5 / 15.5)
    assert g["effectiveness"] == pytest.approx(28200 / 41400)
    assert g["quality_ratio"] == pytest.approx(420 / 470)
    assert g["oee"] == pytest.approx(GROUP_OEE)
    mean = (a["oee"] + b["oee"]) / 2
    assert abs(g["oee"] - mean) > 0.005  # 45.16 % summed, 45.83 % as a mean
    # each site's KPI table, as its gateway computes it
    oee_a = next(k for k in a["kpis"] if k["id"] == "oee")
    assert oee_a["value"] == pytest.approx(100 * 60 * 300 / 27000)


async def test_both_sites_devices_and_live_values(group_file: Path) -> None:
    r = await _get(group_file, "/api/v1/group/sites")
    assert [s["id"] for s in r.json()["sites"]] == ["plant-a", "plant-b"]
    for site_id, good in (("plant-a", 300.0), ("plant-b", 120.0)):
        r = await _get(group_file, f"/api/v1/group/sites/{site_id}/devices")
        assert r.status_code == 200, r.text
        (cnc1,) = r.json()["devices"]
        values = {v["point"]: v for v in cnc1["values"]}
        assert values["good"]["value"] == good
        assert values["state"]["state"] == "idle"  # 00:05 the day after: idle
        assert values["state"]["ts"] == km.at(0, 5, day=3)
    r = await _get(group_file, "/api/v1/group/sites/plant-x/devices")
    assert r.status_code == 422


async def test_page_shows_sites_and_group_row_in_both_languages(group_file: Path) -> None:
    r = await _get(group_file, f"/?period={DAY}")
    assert r.status_code == 200, r.text
    html = r.text
    assert "集团汇总表" in html
    assert "plant-a works" in html
    assert "plant-b works" in html
    assert "45.2 %" in html  # the group OEE
    assert 'data-site="group"' in html
    r = await _get(group_file, f"/?period={DAY}&lang=en")
    assert "Group table" in r.text
    assert "never as a mean of percentages" in r.text


async def test_roles_and_tokens(group_file: Path) -> None:
    assert (await _get(group_file, "/api/v1/group/sites", token=None)).status_code == 401
    assert (await _get(group_file, "/api/v1/group/sites", token="wrong")).status_code == 401
    assert (await _get(group_file, "/healthz", token=None)).status_code == 200
    bad = await _get(group_file, "/api/v1/group/kpi?period=2026-13-01..2026-13-02")
    assert bad.status_code == 422


def _group_file_away(group_file: Path, folder: Path) -> Path:
    """The group file with the central InfluxDB on a closed port."""
    away = yaml.safe_load(group_file.read_text(encoding="utf-8"))
    away["influxdb"]["url"] = f"http://127.0.0.1:{free_port()}"
    away["influxdb"]["timeout_s"] = 2
    away["sites"] = [str(group_file.parent / p) for p in away["sites"]]
    away["auth"]["tokens_file"] = str(group_file.parent / "tokens.txt")
    path = folder / "group.yaml"
    path.write_text(yaml.safe_dump(away, allow_unicode=True), encoding="utf-8")
    return path


async def test_central_influxdb_away_is_a_503_with_the_reason(
    group_file: Path, tmp_path: Path
) -> None:
    path = _group_file_away(group_file, tmp_path)
    r = await _get(path, f"/api/v1/group/kpi?period={DAY}")
    assert r.status_code == 503
    assert "central InfluxDB: cannot reach InfluxDB" in r.json()["detail"]
    r = await _get(path, "/api/v1/group/sites/plant-a/devices")
    assert r.status_code == 503


def _group_routes() -> list[tuple[str, str, str | None]]:
    from fastapi.routing import APIRoute

    from gateway.routers import group as routes

    table = []
    for route in routes.router.routes:
        assert isinstance(route, APIRoute)
        roles = [getattr(d.call, "required_role", None) for d in route.dependant.dependencies]
        table += [(m, route.path, next((r for r in roles if r), None)) for m in route.methods]
    return table


def test_every_group_route_needs_the_viewer_role_but_healthz() -> None:
    table = _group_routes()
    assert {(m, p) for m, p, r in table if r is None} == {("GET", "/healthz")}
    assert {r for _, _, r in table if r is not None} == {"viewer"}
    assert len(table) == 5


@pytest.mark.parametrize("path", [p for _, p, r in _group_routes() if r])
async def test_group_route_refuses_anonymous_callers(group_file: Path, path: str) -> None:
    url = path.replace("{site_id}", "plant-a")
    assert (await _get(group_file, url, token=None)).status_code == 401
    assert (await _get(group_file, url, token="sft_not-a-token")).status_code == 401


def test_tokens_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    from gateway.group_auth import TokenFileError

    path = tmp_path / "tokens.txt"
    path.write_text(f"{hashlib.sha256(b'one').hexdigest()} viewer a\n")
    tokens = TokenFile(path)
    assert tokens.user_for_token("two") is None
    path.write_text(
        f"{hashlib.sha256(b'one').hexdigest()} viewer a\n"
        f"{hashlib.sha256(b'two').hexdigest()} admin b  # added later\n"
    )
    user = tokens.user_for_token("two")
    assert user is not None
    assert (user.username, user.role) == ("b", "admin")
    path.write_text("not a token line\n")  # a broken edit keeps the last good tokens
    assert tokens.user_for_token("two") is not None
    assert tokens.error is not None
    assert "tokens.txt:1" in tokens.error
    path.write_text(f"{hashlib.sha256(b'x').hexdigest()} boss c\n")
    with pytest.raises(TokenFileError, match=r"role 'boss' is not one of"):
        TokenFile(path)


def _serve(group_file: Path, port: int, cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge.cli.main",
            "serve",
            "--group",
            str(group_file),
            "--port",
            str(port),
        ],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_two_replicas_answer_the_same_and_write_nothing(group_file: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in group_file.parent.rglob("*"))
    ports = [free_port(), free_port()]
    procs = [_serve(group_file, p, tmp_path) for p in ports]
    try:
        for p in ports:
            wait_port(p, timeout=30)
        answers = []
        for p in ports:
            r = httpx.get(
                f"http://127.0.0.1:{p}/api/v1/group/kpi",
                params={"period": DAY},
                headers={"Authorization": f"Bearer {VIEWER}"},
                timeout=60,
            )
            assert r.status_code == 200, r.text
            answers.append(r.json())
        assert answers[0] == answers[1]
        assert answers[0]["group"]["oee"] == pytest.approx(GROUP_OEE)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=20)
            assert proc.stderr is not None
            proc.stderr.close()
    assert sorted(p.name for p in group_file.parent.rglob("*")) == before
    assert list(tmp_path.iterdir()) == []


def test_bad_group_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "group.yaml"
    bad.write_text("group: {id: x, name: x}\nsites: [missing.yaml]\n")
    r = subprocess.run(
        [sys.executable, "-m", "edge.cli.main", "serve", "--group", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "influxdb" in r.stderr
    assert "auth" in r.stderr
