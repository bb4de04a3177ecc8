"""The table page's downloads and first screen through a real gateway process: default periods
from the recorded data (pure cases too), CSV/XLSX of the table, the application form's draft
(DOCX + XLSX + the bundle its footnotes name), and the same in headless Chromium in both
languages. The store is the pinned two-hour recording of tests/gateway/support.py (2026-03-10,
10:30 in the demo site's zone); nothing depends on today's date."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from openpyxl import load_workbook

from gateway.defaults import default_periods
from tests.edge.test_form import FORM_ROWS, docx_text
from tests.gateway.support import PASSWORD, PINNED_DAY, ROOT, Gateway, start_gateway, stop_gateway

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
TZ = "Asia/Shanghai"
S = 10**9
TODAY = dt.date(2026, 12, 4)


def _ns(text: str) -> int:
    from zoneinfo import ZoneInfo

    return int(dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(TZ)).timestamp()) * S


@pytest.fixture(scope="module")
def fgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = start_gateway(tmp_path_factory.mktemp("form-gw"))
    try:
        yield g
    finally:
        stop_gateway(g)


def test_default_periods_follow_the_data() -> None:
    # an imported year and ten live days: baseline = the import, current = the 7 days before
    # the newest (partial) day
    spans = [
        ("import:meter1", _ns("2025-03-01T00:00"), _ns("2025-08-31T23:00")),
        ("cnc1", _ns("2026-11-20T08:00"), _ns("2026-11-30T10:00")),
        ("meter1", _ns("2026-11-21T08:00"), _ns("2026-11-30T11:00")),
    ]
    assert default_periods(spans, TZ, TODAY) == (
        "2025-03-01..2025-08-31",
        "2026-11-23..2026-11-29",
    )
    # three live days, no import: current = the complete days, baseline = the first of them
    spans = [("cnc1", _ns("2026-11-27T08:00"), _ns("2026-11-30T10:00"))]
    assert default_periods(spans, TZ, TODAY) == ("2026-11-27..2026-11-27", "2026-11-28..2026-11-29")
    # a fresh recording of a few hours: exactly what was recorded (the whole day would read its
    # hours before the first sample as offline) against the same day a year before (the
    # previous year's declared figures)
    spans = [("cnc1", _ns("2026-11-30T08:00"), _ns("2026-11-30T10:00"))]
    assert default_periods(spans, TZ, TODAY) == (
        "2025-11-30..2025-11-30",
        "2026-11-30T08:00:00..2026-11-30T10:00:01",
    )
    # the demo: a week imported (range end exclusive, its import_end markers at midnight) and
    # a fresh live recording: the baseline is the seven imported days, not eight
    spans = [
        ("import:cnc1", _ns("2025-11-28T00:00"), _ns("2025-12-05T00:00")),
        ("cnc1", _ns("2026-12-04T16:00"), _ns("2026-12-04T16:37:53")),
    ]
    assert default_periods(spans, TZ, TODAY) == (
        "2025-11-28..2025-12-04",
        "2026-12-04T16:00:00..2026-12-04T16:37:54",
    )
    spans = [("cnc1", _ns("2028-02-29T08:00"), _ns("2028-02-29T10:00"))]
    assert default_periods(spans, TZ, TODAY)[0] == "2027-02-28..2027-02-28"
    # an empty store: today in the site's zone, never a calendar year
    assert default_periods([], TZ, TODAY) == ("2026-12-04..2026-12-04", "2026-12-04..2026-12-04")


def test_table_page_defaults_and_download_links(fgw: Gateway) -> None:
    with fgw.client("applicant") as c:
        page = c.get("/table").text
    # two hours recorded up to the pinned clock (the newest sample 1 s before it)
    span = "2026-03-10T08:30:00..2026-03-10T10:30:00"
    assert f'name="current" value="{span}"' in page
    assert 'name="baseline" value="2025-03-10..2025-03-10"' in page
    assert 'value="2026-01-01..2026-12-31"' not in page  # no calendar year
    assert 'id="dl-csv"' in page
    assert 'id="dl-xlsx"' in page
    assert 'id="dl-form"' in page
    with fgw.client("viewer") as c:
        page = c.get("/table").text
    assert 'id="dl-csv"' in page
    assert 'id="dl-form"' not in page  # exporting signs a bundle: applicants only


def test_partial_values_carry_their_warning(fgw: Gateway) -> None:
    """Two hours recorded of a 16-hour day: the networking rate reads 0 % only with the
    devices below the threshold beside it, and the energy per output value with the share of
    the year's output it was divided by; in the page's language."""
    day = f"{PINNED_DAY}..{PINNED_DAY}"
    with fgw.client("viewer") as c:
        zh = c.get("/table", params={"baseline": day, "current": day}).text
        en = c.get("/table", params={"baseline": day, "current": day, "lang": "en"}).text

    def row(page: str, kpi: str) -> str:
        m = re.search(rf'<tr data-kpi="{kpi}">(.*?)</tr>', page, re.S)
        assert m, kpi
        return m.group(1)

    assert "联网阈值以下：cnc1 79.9%" in row(zh, "network_rate")
    assert "output_value 按计划运行时间分摊：16.00 h / 4960.00 h" in row(zh, "energy_per_value")
    assert "below the networking threshold: cnc1 79.9%" in row(en, "network_rate")
    assert "联网" not in row(en, "network_rate")


def test_table_csv_and_xlsx(fgw: Gateway) -> None:
    q = {"baseline": f"{PINNED_DAY}..{PINNED_DAY}", "current": f"{PINNED_DAY}..{PINNED_DAY}"}
    with fgw.client("viewer") as c:
        zh = c.get("/table.csv", params=q)
        en = c.get("/table.csv", params={**q, "lang": "en"})
        xl = c.get("/table.xlsx", params=q)
        bad = c.get("/table.csv", params={**q, "current": "yesterday"})
    assert zh.status_code == 200
    assert "attachment" in zh.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(zh.text.lstrip("\ufeff"))))
    assert rows[0][:4] == ["指标", "建设前", "建成后", "变化"]
    assert [r[0] for r in rows[1:23]] == FORM_ROWS
    assert not any(re.search(r"\de[+-]\d", cell) for r in rows for cell in r)  # no e-notation
    en_rows = list(csv.reader(io.StringIO(en.text.lstrip("\ufeff"))))
    assert en_rows[0][:4] == ["KPI", "Before (baseline)", "After (current)", "Change"]
    assert not any("提升" in r[3] or "下降" in r[3] for r in en_rows)
    wb = load_workbook(io.BytesIO(xl.content))
    assert wb.active is not None
    assert wb.active["A1"].value == "指标"
    assert bad.status_code == 422


def test_form_package(fgw: Gateway) -> None:
    day = f"{PINNED_DAY}..{PINNED_DAY}"
    with fgw.client("viewer") as c:
        denied = c.post("/form", data={"baseline": day, "current": day})
    assert denied.status_code == 403
    with fgw.client("applicant") as c:
        r = c.post("/form", data={"baseline": day, "current": day})
    assert r.status_code == 200, r.text
    z = zipfile.ZipFile(io.BytesIO(r.content))
    names = z.namelist()
    docx = next(n for n in names if n.endswith(".docx"))
    bundle = next(n for n in names if "-evidence-" in n)
    assert any(n.endswith(".xlsx") for n in names)
    text = docx_text(z.read(docx))
    assert bundle in text
    assert hashlib.sha256(z.read(bundle)).hexdigest()[:16] in text
    lines = text.splitlines()
    head = lines.index("序号 | 指标 | 建设前 | 建成后")
    assert [ln.split(" | ")[1] for ln in lines[head + 1 : head + 23]] == FORM_ROWS
    # the demo's register: every scenario listed, the data-backed ones quantified
    assert "1.生产作业-设备运行监控-数控设备联网与状态监控" in lines
    effects = lines[lines.index("已实施成效") + 1 :]
    assert any(
        e.startswith("生产作业-设备运行监控-数控设备联网与状态监控：关键设备联网率由")
        for e in effects
    )


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")
def test_table_page_in_a_browser_both_languages(fgw: Gateway, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.gateway.test_browser import ARGS

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            ctx = browser.new_context(
                base_url=fgw.url, accept_downloads=True, viewport={"width": 1280, "height": 900}
            )
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto("/login?next=/table")
            page.fill("input[name=username]", "applicant")
            page.fill("input[name=password]", PASSWORD)
            page.click("#login-submit")
            expect(page.locator("h1")).to_have_text("建设成效对比表")
            expect(page.locator("form.periods input[name=current]")).to_have_value(
                "2026-03-10T08:30:00..2026-03-10T10:30:00"  # what was recorded, not the day
            )
            expect(page.locator("#kpi-table")).to_contain_text("*关键设备联网率")
            page.screenshot(path=str(ARTIFACTS / "gateway-table-zh.png"), full_page=True)
            with page.expect_download(timeout=30_000) as dl:
                page.click("#dl-csv")
            assert dl.value.suggested_filename.endswith(".csv")
            with page.expect_download(timeout=120_000) as dl:
                page.click("#dl-form")
            package = tmp_path / dl.value.suggested_filename
            dl.value.save_as(package)
            with zipfile.ZipFile(package) as z:
                docx = next(n for n in z.namelist() if n.endswith(".docx"))
                assert "*工业总产值" in docx_text(z.read(docx))

            page.goto("/table?lang=en")
            expect(page.locator("h1")).to_have_text("Before/after table")
            expect(page.locator("#dl-form")).to_contain_text("form draft")
            body = page.locator("#kpi-table").inner_text()
            assert "提升" not in body
            assert "下降" not in body
            page.screenshot(path=str(ARTIFACTS / "gateway-table-en.png"), full_page=True)
            assert errors == [], errors
        finally:
            browser.close()


async def _names(stream: object, stop: str | None) -> list[str]:
    """Event names of a hub stream until ``stop`` arrives or the stream ends."""
    from collections.abc import AsyncIterator

    assert isinstance(stream, AsyncIterator)
    names: list[str] = []
    try:
        async for chunk in stream:
            names += [
                ln.removeprefix("event: ") for ln in chunk.splitlines() if ln.startswith("event: ")
            ]
            if stop is not None and stop in names:
                break
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return names


def test_overview_gets_the_last_kpi_values_on_connect(fgw: Gateway) -> None:
    """A client connecting after a KPI computation gets its values right after the snapshot,
    not at the next turn of the KPI refresh (here an hour; the second stream lasts 0.5 s)."""
    import asyncio

    from gateway.data import ReaderPool
    from gateway.live import LiveHub

    async def kpi() -> dict[str, object]:
        return {"period": "p", "result": {"fleet": {"oee": 0.5}}}

    async def run() -> tuple[list[str], list[str]]:
        pool = ReaderPool(fgw.store_path, 1)
        hub = LiveHub(pool, fgw.site, poll_s=0.05, kpi_s=3600.0, kpi=kpi)
        try:
            first = await _names(hub.stream(60.0), "kpi")
            second = await _names(hub.stream(0.5), None)
        finally:
            await hub.close()
            await pool.close()
        return first, second

    first, second = asyncio.run(run())
    assert first[0] == "snapshot"
    assert first[-1] == "kpi"
    assert second[:2] == ["snapshot", "kpi"]


PAGES = {  # path -> the h1 in Chinese and in English (the machine page's is the device name)
    "/": ("工厂总览", "Overview"),
    "/energy": ("能源与碳排放", "Energy and carbon"),
    "/health": ("设备连接状态", "Device health"),
    "/table": ("建设成效对比表", "Before/after table"),
    "/export": ("导出证据包", "Export bundle"),
    "/verify": ("核验证据包", "Verify bundle"),
}
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")
def test_every_page_in_both_languages(fgw: Gateway) -> None:
    """Each page in Chinese and in English: its title, the navigation wholly in the page's
    language, no script error; the overview's live table with names from the site file, the
    数据质量 column and times in the site's zone (the browser runs in New York)."""
    from playwright.sync_api import expect, sync_playwright

    from tests.gateway.test_browser import ARGS

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            ctx = browser.new_context(base_url=fgw.url, timezone_id="America/New_York")
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto("/login")
            page.fill("input[name=username]", "applicant")
            page.fill("input[name=password]", PASSWORD)
            page.click("#login-submit")
            expect(page.locator("h1")).to_contain_text("工厂总览")
            table = page.locator("#latest-table")
            expect(table.locator("thead")).to_contain_text("数据质量")
            row = table.locator("tbody tr[data-key='cnc1/state']")
            expect(row).to_contain_text("1号数控车床", timeout=10_000)
            day = PINNED_DAY.replace("-0", "-").replace("-", "/")  # 2026/3/10 in zh-CN
            expect(row).to_contain_text(day)  # 10:29 in Shanghai, the evening before in New York
            expect(row).to_contain_text("良好")
            for lang, pos in (("zh", 0), ("en", 1)):
                for path, titles in PAGES.items():
                    page.goto(f"{path}?lang={lang}")
                    expect(page.locator("h1")).to_contain_text(titles[pos])
                    nav = page.locator("header nav").inner_text()
                    if lang == "en":
                        assert not CJK.search(nav), (path, nav)
                    else:
                        assert CJK.search(nav), (path, nav)
                page.goto(f"/machine/cnc1?lang={lang}")
                expect(page.locator("h1")).to_contain_text("1号数控车床")
            page.goto("/?lang=en")
            expect(page.locator("#latest-table thead")).to_contain_text("data quality")
            expect(page.locator("#latest-table tbody tr[data-key='cnc1/state']")).to_contain_text(
                "good"
            )
            assert errors == [], errors
        finally:
            browser.close()


def test_reviewer_page_in_both_languages(fgw: Gateway) -> None:
    """The verify page's verdict and where its trust came from, in the page's language."""
    day = f"{PINNED_DAY}..{PINNED_DAY}"
    with fgw.client("applicant") as c:
        bundle = c.post("/api/v1/export", json={"baseline": day, "current": day})
    assert bundle.status_code == 200, bundle.text
    with fgw.client("viewer") as c:
        files = {"bundle": ("b.zip", bundle.content, "application/zip")}
        zh = c.post("/verify", files=files).text
        en = c.post("/verify?lang=en", files=files).text
    assert "本网关的公钥" in zh
    assert "核验" in zh
    assert "this gateway&#39;s public keys" in en or "this gateway's public keys" in en
    assert "本网关" not in en
