"""REST API against a real service process reading a real SQLite store."""

from __future__ import annotations

import datetime
import io
import zipfile
from pathlib import Path

import httpx
import pytest

from config.loader import load_site
from gateway.app import create_app
from gateway.data import optional_module
from gateway.settings import Settings
from tests.gateway.support import PINNED_DAY, PINNED_NOW, PINNED_NOW_NS, Gateway, write_site


def _has(module: str) -> bool:
    try:
        optional_module(module)
    except Exception:
        return False
    return True


def test_health_and_readiness(gw: Gateway) -> None:
    with gw.client() as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        ready = c.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["store"].startswith("ok (10 devices")


def test_site_devices_points(gw: Gateway) -> None:
    with gw.client("viewer") as c:
        site = c.get("/api/v1/site").json()
        assert site["id"] == "demo-factory"
        assert site["devices"] == 10
        assert c.get("/api/v1/sites").json() == [site]
        devices = c.get("/api/v1/devices").json()
        assert [d["id"] for d in devices] == [d.id for d in gw.site.devices]
        water = next(d for d in devices if d["id"] == "water1")
        assert water["health"]["connected"] is False
        assert water["health"]["errors"] == {"timeout": 2}
        assert water["health"]["restarts"] == 1
        meter = next(d for d in devices if d["id"] == "meter1")
        assert meter["health"]["outbox_backlog"] == 3
        one = c.get("/api/v1/devices/cnc1").json()
        assert one["protocol"] == "opcua"
        assert one["ideal_cycle_s"] == 45
        assert c.get("/api/v1/devices/cnc5").json()["protocol"] == "mtconnect"
        points = c.get("/api/v1/devices/qs1/points").json()
        assert [p["role"] for p in points][:2] == ["count_total", "count_good"]


def test_latest_values_with_states_and_bad_quality(gw: Gateway) -> None:
    with gw.client("viewer") as c:
        rows = c.get("/api/v1/latest", params={"device": "cnc1"}).json()
    by_point = {r["point"]: r for r in rows}
    assert set(by_point) == {"state", "good", "scrap", "spindle_kw"}
    state = by_point["state"]
    assert state["state"] == {0: "producing", 1: "setup", 2: "idle", 3: "down"}[int(state["value"])]
    bad = by_point["spindle_kw"]
    assert bad["quality"] == "bad"
    assert bad["value"] is None
    assert bad["status"] == "BadTimeout"
    assert by_point["good"]["value"] == 10.0  # 4 producing stretches, 2-3 parts each


def test_history_downsampled(gw: Gateway) -> None:
    now = PINNED_NOW_NS
    start = now - 3 * 3600 * 10**9
    with gw.client("viewer") as c:
        r = c.get(
            "/api/v1/history",
            params={
                "device": "meter1",
                "point": "energy",
                "start": start,
                "end": now,
                "buckets": 4,
            },
        )
    assert r.status_code == 200, r.text
    h = r.json()
    assert len(h["t"]) == 4
    assert sum(h["count"]) == 120  # one sample a minute for two hours
    assert min(x for x in h["min"] if x is not None) == pytest.approx(1000.0, abs=0.1)
    assert h["last"][-1] == pytest.approx(1000.0 + 7140 / 36.0, abs=0.1)
    pairs = [(a, b) for a, b in zip(h["min"], h["max"], strict=True) if a is not None]
    assert pairs
    assert all(a <= b for a, b in pairs)
    assert h["count"][0] == 0, "the first 45 min hold no data: an empty bucket"
    assert h["min"][0] is None


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"device": "nope", "point": "energy"}, 404, "no device"),
        ({"device": "meter1", "point": "nope"}, 404, "no point"),
        ({"device": "meter1", "point": "energy", "start": 10, "end": 5}, 422, "after start"),
        ({"device": "meter1", "point": "energy", "buckets": 0}, 422, "buckets"),
        ({"device": "meter1", "point": "energy", "buckets": 10**6}, 422, "buckets"),
        ({"device": "../etc", "point": "energy"}, 422, "device"),
        ({"device": "meter1", "point": "energy", "start": -1}, 422, "start"),
        ({"device": "meter1", "point": "energy", "end": "soon"}, 422, "end"),
    ],
)
def test_history_bad_input(gw: Gateway, params: dict[str, object], status: int, words: str) -> None:
    with gw.client("viewer") as c:
        r = c.get("/api/v1/history", params=params)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]


@pytest.mark.skipif(not _has("metrics.engine"), reason="metrics.engine is not in this build")
def test_kpi_period_and_table(gw: Gateway) -> None:
    with gw.client("viewer") as c:
        r = c.get("/api/v1/kpi", params={"period": f"{PINNED_DAY}..{PINNED_DAY}"})
        assert r.status_code == 200, r.text
        result = r.json()["result"]
        assert {m["name"] for m in result["machines"]} >= {"cnc1", "cnc2", "cnc3", "cnc4", "cnc5"}
        assert "oee" in result["kpis"]
        t = c.get(
            "/api/v1/table",
            params={"baseline": "2025-01-01..2025-12-31", "current": "2026-01-01..2026-12-31"},
        )
        assert t.status_code == 200, t.text
        rows = t.json()["table"]["rows"]
        labels = {r["id"]: r["label_zh"] for r in rows}
        assert labels["oee"] == "设备综合利用率"
        assert labels["cnc_rate"] == "关键设备数控化率"
        out = {r["id"]: r for r in rows}["output_value"]
        assert out["before"]["value"] == 18600
        assert out["after"]["value"] == 21400
        page = c.get("/table", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "设备综合利用率" in page.text
    assert "提升 15.1%" in page.text  # output value 18600 -> 21400


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"period": "2026-13-01..2026-13-02"}, "period"),
        ({"period": "2026-02-01..2026-01-01"}, "period"),
        ({"period": "yesterday"}, "period"),
        ({"period": "2026-01-01..2026-01-02", "device": "ghost"}, "unknown device"),
    ],
)
def test_kpi_bad_period(gw: Gateway, params: dict[str, str], words: str) -> None:
    with gw.client("viewer") as c:
        r = c.get("/api/v1/kpi", params=params)
    assert r.status_code in (422, 503), r.text
    if _has("metrics.engine"):
        assert r.status_code == 422
        assert words in r.json()["detail"]


def test_prometheus_metrics_from_store_health(gw: Gateway) -> None:
    with gw.client("viewer") as c:
        c.get("/api/v1/latest")
        text = c.get("/metrics").text
    assert 'shopfloor_device_samples_total{connector="opcua",device="cnc1"} 1000.0' in text
    assert 'shopfloor_device_connected{connector="modbus",device="water1"} 0.0' in text
    assert (
        'shopfloor_device_errors_total{connector="modbus",device="water1",kind="timeout"} 2.0'
        in text
    )
    assert 'shopfloor_device_reconnects_total{connector="modbus",device="water1"} 1.0' in text
    assert 'shopfloor_outbox_backlog{connector="modbus",device="meter1"} 3.0' in text
    assert (
        'shopfloor_api_request_seconds_count{method="GET",route="/api/v1/latest",status="200"}'
        in text
    )
    assert "shopfloor_store_readable 1.0" in text


def _periods() -> dict[str, str]:
    before = PINNED_NOW.date() - datetime.timedelta(days=1)
    return {"baseline": "2025-01-01..2025-12-31", "current": f"{before}..{PINNED_DAY}"}


@pytest.fixture(scope="module")
def bundle(gw: Gateway) -> bytes:
    with gw.client("applicant") as c:
        r = c.post("/api/v1/export", json=_periods())
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert "attachment" in r.headers["content-disposition"]
    return r.content


def test_export_then_verify_round_trip(gw: Gateway, bundle: bytes) -> None:
    names = zipfile.ZipFile(io.BytesIO(bundle)).namelist()
    assert names
    with gw.client("viewer") as c:
        r = c.post("/api/v1/verify", files={"bundle": ("b.zip", bundle, "application/zip")})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["ok"] is True, [c for c in out["report"]["checks"] if not c["ok"]]
    assert out["trust"] == "this gateway's public keys"
    assert out["size"] == len(bundle)


def test_verify_detects_a_changed_byte(gw: Gateway, bundle: bytes) -> None:
    zin = zipfile.ZipFile(io.BytesIO(bundle))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith(".json") and b"0" in data:
                i = data.index(b"0")
                data = data[:i] + b"1" + data[i + 1 :]
            zout.writestr(info, data)
    with gw.client("viewer") as c:
        r = c.post("/api/v1/verify", files={"bundle": ("t.zip", buf.getvalue(), "application/zip")})
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is False


def test_upload_limit_and_bad_bundles(gw: Gateway) -> None:
    big = b"\0" * (1024 * 1024 + 200 * 1024)  # the test site allows 1 MB
    with gw.client("viewer") as c:
        r = c.post("/api/v1/verify", files={"bundle": ("big.zip", big, "application/zip")})
        assert r.status_code == 413
        assert "1 MB" in r.json()["detail"]
        empty = c.post("/api/v1/verify", files={"bundle": ("e.zip", b"", "application/zip")})
        assert empty.status_code == 422
        junk = c.post(
            "/api/v1/verify", files={"bundle": ("j.zip", b"not a zip", "application/zip")}
        )
        assert junk.status_code in (200, 422), junk.text
        if junk.status_code == 200:
            assert junk.json()["ok"] is False
        missing = c.post("/api/v1/verify")
        assert missing.status_code == 422
        bad_trust = c.post(
            "/api/v1/verify",
            files={"bundle": ("j.zip", b"PK", "application/zip"), "trust": ("t.json", b"{", "x")},
        )
        assert bad_trust.status_code == 422, bad_trust.text
        assert "trust.json" in bad_trust.json()["detail"]


def test_export_bad_input(gw: Gateway) -> None:
    with gw.client("applicant") as c:
        bad = c.post("/api/v1/export", json={"baseline": "x", "current": "y"})
        extra = c.post("/api/v1/export", json={**_periods(), "sign": False})
        long = c.post(
            "/api/v1/export",
            json={"baseline": "2001-01-01..2025-12-31", "current": _periods()["current"]},
        )
    assert bad.status_code == 422
    assert extra.status_code == 422
    assert long.status_code == 422
    assert "at most" in long.json()["detail"]


async def test_missing_store_is_a_clear_503(tmp_path: Path) -> None:
    """In process (no server needed): the store file is not there yet."""
    site = load_site(write_site(tmp_path))
    app = create_app(Settings.from_site(site))
    state = app.state.gw
    state.users.add_user("v", "viewer", "viewer-password")
    token = state.users.create_token("v", "t")
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gw", headers=headers
        ) as c:
            r = await c.get("/api/v1/latest")
            ready = await c.get("/readyz")
            page = await c.get("/", headers={"Accept": "text/html"})
    finally:
        await state.pool.close()
    assert r.status_code == 503
    assert "does not exist yet" in r.json()["detail"]
    assert ready.status_code == 503
    assert ready.json()["ready"] is False
    assert page.status_code == 200, "pages still render and explain through the API"


async def test_site_config_shows_secret_references_never_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SF_TEST_INFLUX_TOKEN", "s3cr3t-token-value")
    path = write_site(tmp_path)
    text = path.read_text(encoding="utf-8").replace(
        "storage:\n  kind: sqlite\n  path: store.db\n",
        "storage:\n  kind: influxdb\n  url: http://127.0.0.1:9\n  api: v2\n  org: o\n"
        "  bucket: b\n  token: {env: SF_TEST_INFLUX_TOKEN}\n  local_cache: store.db\n",
    )
    path.write_text(text, encoding="utf-8")
    app = create_app(Settings.from_site(load_site(path)))
    state = app.state.gw
    state.users.add_user("e", "engineer", "engineer-password")
    state.users.add_user("v", "viewer", "viewer-password")
    eng = state.users.create_token("e", "t")
    view = state.users.create_token("v", "t")
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
            r = await c.get("/api/v1/config", headers={"Authorization": f"Bearer {eng}"})
            denied = await c.get("/api/v1/config", headers={"Authorization": f"Bearer {view}"})
    finally:
        await state.pool.close()
    assert r.status_code == 200
    assert r.json()["storage"]["token"] == {"env": "SF_TEST_INFLUX_TOKEN", "file": None}
    assert "s3cr3t-token-value" not in r.text
    assert denied.status_code == 403
