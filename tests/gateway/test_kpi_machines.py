"""Per-machine figures, coverage and no-value reasons through a real gateway process: the
REST API (``/api/v1/kpi/machines``, ``machine_figures`` of ``/api/v1/kpi``), the machine page,
the before/after table page and the overview in headless Chromium.

The store holds the hand-made recording of :mod:`tests.support.kpi_machines` (2026-11-02, the
figures worked out by hand there); nothing depends on today's date.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config.loader import load_site
from gateway.users import ROLES, UserDB
from tests.gateway.support import PASSWORD, ROOT, Gateway, stop_gateway
from tests.support.kpi_machines import DAY, EMPTY_DAY, write_site
from tests.support.net import free_port, wait_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def hand_gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("hand-gw")
    site_path = write_site(folder, after_day=False, gateway={"users_db": "users.db"})
    users = UserDB(folder / "users.db")
    tokens: dict[str, str] = {}
    for role in ROLES:
        users.add_user(role, role, PASSWORD)
        tokens[role] = users.create_token(role, "tests")
    port = free_port()
    log_path = folder / "gateway.log"
    env = {**os.environ, "SHOPFLOOR_LIVE_POLL_MS": "100", "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "edge.cli.main", "serve", "-c", str(site_path)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*argv, "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    g = Gateway(
        f"http://127.0.0.1:{port}",
        folder,
        load_site(site_path),
        site_path,
        folder / "store.db",
        proc,
        tokens,
        log_path,
    )
    try:
        wait_port(port, timeout=30)
    except TimeoutError:
        stop_gateway(g)
        raise RuntimeError("gateway did not start:\n" + log_path.read_text()) from None
    try:
        yield g
    finally:
        stop_gateway(g)


def _figs(machine: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["id"]: f for f in machine["figures"]}


def test_api_machines_hand_worked(hand_gw: Gateway) -> None:
    with hand_gw.client("viewer") as c:
        r = c.get("/api/v1/kpi/machines", params={"period": DAY})
    assert r.status_code == 200, r.text
    v = r.json()
    assert (v["label"], v["timezone"], v["oee_offline"]) == (DAY, "UTC", "exclude")
    machines = {m["device"]: m for m in v["machines"]}
    assert list(machines) == ["cnc1", "cnc2", "oven", "lathe9"]
    c1 = _figs(machines["cnc1"])
    assert c1["availability"]["value"] == pytest.approx(100 * 5.5 / 7.5)
    assert c1["oee"]["value"] == pytest.approx(100 * 60 * 320 / (7.5 * 3600) * 300 / 320)
    assert c1["mtbf"]["value"] == pytest.approx(5.5 / 3)
    texts = [c1[k]["text"] for k in ("availability", "effectiveness", "quality_ratio", "oee")]
    assert texts == ["73.3 %", "97.0 %", "93.8 %", "66.7 %"]
    assert (c1["apt"]["text"], c1["mttr"]["text"], c1["pq"]["text"]) == (
        "5.50 h",
        "0.50 h",
        "320 件",
    )
    c2 = _figs(machines["cnc2"])
    assert c2["coverage"]["value"] == pytest.approx(100 * 6.5 / 7.5)
    eff = c2["effectiveness"]
    assert (eff["value"], eff["text"], eff["reason"]) == (None, "—", "no_ideal_cycle")
    assert eff["reason_zh"] == "站点文件未配置理想节拍 ideal_cycle_s"
    assert eff["coverage"] == pytest.approx(6.5 / 7.5)
    assert c2["quality_ratio"]["reason"] == "no_pq"
    assert machines["oven"]["reason"] == "no_state"
    assert machines["lathe9"]["reason"] == "not_key"
    fleet = _figs(v["fleet"])
    assert fleet["availability"]["value"] == pytest.approx(100 * 12 / 14)
    assert "cnc2" in fleet["oee"]["reason_en"]


def test_api_machines_selected_in_english_and_without_data(hand_gw: Gateway) -> None:
    with hand_gw.client("viewer") as c:
        one = c.get(
            "/api/v1/kpi/machines", params={"period": DAY, "device": ["cnc1"], "lang": "en"}
        ).json()
        empty = c.get("/api/v1/kpi/machines", params={"period": EMPTY_DAY}).json()
    assert [m["device"] for m in one["machines"]] == ["cnc1"]
    assert _figs(one["machines"][0])["pq"]["text"] == "320 pcs"
    for m in [*empty["machines"][:2], empty["fleet"]]:
        a = _figs(m)["availability"]
        assert (a["value"], a["text"], a["reason"]) == (None, "—", "no_data")
        assert a["coverage"] == 0.0


def test_api_kpi_carries_machine_figures_and_the_reasons(hand_gw: Gateway) -> None:
    with hand_gw.client("viewer") as c:
        r = c.get("/api/v1/kpi", params={"period": DAY})
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    oee = result["kpis"]["oee"]
    assert oee["value"] is None
    assert "no value: a machine has no ideal_cycle_s" in oee["notes"]
    assert oee["coverage"] == pytest.approx(14 / 15)
    mf = {m["device"]: m for m in result["machine_figures"]["machines"]}
    assert _figs(mf["cnc2"])["mttr"]["reason"] == "no_failures"
    assert _figs(mf["cnc1"])["oee"]["text"] == "66.7 %"


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"period": DAY, "device": "ghost"}, "unknown device 'ghost'"),
        ({"period": "2026-11-06..2026-11-02"}, "TO is before FROM"),
        ({"period": "2026-11-02..2026-13-02"}, "period"),
        ({"period": DAY, "lang": "fr"}, "lang"),
        ({}, "period"),
    ],
)
def test_api_machines_bad_input_is_422(
    hand_gw: Gateway, params: dict[str, str], words: str
) -> None:
    with hand_gw.client("viewer") as c:
        r = c.get("/api/v1/kpi/machines", params=params)
    assert r.status_code == 422, r.text
    assert words in str(r.json()["detail"])


def test_api_machines_needs_a_login(hand_gw: Gateway) -> None:
    with hand_gw.client() as c:
        assert c.get("/api/v1/kpi/machines", params={"period": DAY}).status_code == 401


def _cells(page: str, figure: str) -> list[str]:
    row = re.search(rf'<tr data-figure="{figure}">(.*?)</tr>', page, re.S)
    assert row, figure
    return [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in row[1].split("</td>")[:4]]


def test_machine_page_shows_figures_coverage_and_reasons(hand_gw: Gateway) -> None:
    with hand_gw.client("viewer") as c:
        # the day of the newest data (2026-11-02) by default
        page = c.get("/machine/cnc2", headers={"Accept": "text/html"}).text
        en = c.get("/machine/cnc2", params={"lang": "en", "period": DAY}).text
        oven = c.get("/machine/oven", params={"period": DAY}).text
        bad = c.get("/machine/cnc2", params={"period": "2026-11-02..x"})
    assert f"期间 {DAY}" in page
    assert _cells(page, "availability") == ["可用率 availability", "100.0 %", "86.7 %", ""]
    assert _cells(page, "effectiveness") == [
        "性能效率 effectiveness",
        "—",
        "86.7 %",
        "站点文件未配置理想节拍 ideal_cycle_s",  # the page's language only
    ]
    assert _cells(en, "mttr") == ["MTTR", "—", "86.7 %", "no failure events (no down episode)"]
    assert "无状态测点，设备时间未测量" in oven
    assert bad.status_code == 200
    assert "is not a date" in html.unescape(bad.text)


def test_table_page_shows_why_a_cell_is_empty(hand_gw: Gateway) -> None:
    with hand_gw.client("viewer") as c:
        page = c.get("/table", params={"baseline": EMPTY_DAY, "current": DAY}).text
    row = re.search(r'<tr data-kpi="oee">(.*?)</tr>', page, re.S)
    assert row
    text = html.unescape(row[1])
    assert "无值：有设备未设理想节拍 ideal_cycle_s" in text  # 建成后 after
    assert "覆盖率 93.3%" in text
    assert "无值：期间内无采集数据" in text  # 建设前 before: nothing recorded
    assert "no value" not in text  # the page's language only


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")
def test_overview_cards_show_no_value_with_the_reason(hand_gw: Gateway) -> None:
    from playwright.sync_api import expect, sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        try:
            page = browser.new_context(base_url=hand_gw.url).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto("/login?next=/")
            page.fill("input[name=username]", "viewer")
            page.fill("input[name=password]", PASSWORD)
            page.click("#login-submit")
            card = page.locator('a.machine[data-device="cnc2"]')
            eff = card.locator('dd[data-figure="effectiveness"]')
            expect(eff).to_contain_text("—", timeout=20_000)
            expect(eff.locator(".reason")).to_have_text("站点文件未配置理想节拍 ideal_cycle_s")
            expect(card.locator('dd[data-figure="coverage"]')).to_have_text("86.7 %")
            c1 = page.locator('a.machine[data-device="cnc1"] dd[data-figure="oee"]')
            expect(c1).to_have_text("66.7 %")
            oven = page.locator('a.machine[data-device="oven"] dd[data-figure="all"]')
            expect(oven).to_contain_text("无状态测点")
            fleet = page.locator('#fleet dd[data-figure="effectiveness"] .reason')
            expect(fleet).to_contain_text("cnc2")
            assert errors == []
        finally:
            browser.close()
