"""Headless Chromium through the dashboard: overview, a live update, an export, a verification.

Screenshots go to test-artifacts/ (kept by CI as artifacts)."""

from __future__ import annotations

import datetime
import re
import shutil
import time
from pathlib import Path

import pytest

from connectors.base import Sample
from tests.gateway.support import PASSWORD, PINNED_DAY, PINNED_NOW, ROOT, Gateway, Writer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed"),
]


def test_dashboard_live_export_verify(gw: Gateway, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            ctx = browser.new_context(
                base_url=gw.url, accept_downloads=True, viewport={"width": 1280, "height": 900}
            )
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))

            # sign in (the form carries its CSRF token) and land on the overview
            page.goto("/")
            expect(page).to_have_url(re.compile(r"/login\?next=/$"))
            page.fill("input[name=username]", "applicant")
            page.fill("input[name=password]", PASSWORD)
            page.click("#login-submit")
            expect(page.locator("h1")).to_contain_text("工厂总览")
            card = page.locator('a.machine[data-device="cnc3"]')
            expect(card.locator(".state")).to_be_visible(timeout=10_000)
            page.screenshot(path=str(ARTIFACTS / "gateway-overview.png"), full_page=True)

            # a change written to the store shows within about a second
            w = Writer(gw.store_path)
            try:
                ts = time.time_ns()
                w.write([Sample("cnc3", "state", ts, 3.0), Sample("cnc3", "good", ts, 31337.0)])
            finally:
                w.close()
            started = time.monotonic()
            expect(card.locator(".state")).to_have_text("故障停机", timeout=5_000)
            expect(card).to_contain_text("31,337", timeout=5_000)
            elapsed = time.monotonic() - started
            page.screenshot(path=str(ARTIFACTS / "gateway-live-update.png"), full_page=True)
            (ARTIFACTS / "gateway-live-update.txt").write_text(f"{elapsed:.3f} s\n")

            # the machine page, the health page, then the table in English
            page.click('a.machine[data-device="cnc3"]')
            expect(page.locator("#timeline canvas")).to_be_visible(timeout=10_000)
            page.goto("/health")
            expect(page.locator('#health-table tr[data-device="water1"]')).to_contain_text("未连接")
            page.click("#lang-en")
            expect(page.locator("h1")).to_have_text("Device health")

            # export the signed bundle
            yesterday = (PINNED_NOW.date() - datetime.timedelta(days=1)).isoformat()
            page.goto("/export")
            page.fill("input[name=baseline]", "2025-01-01..2025-12-31")
            page.fill("input[name=current]", f"{yesterday}..{PINNED_DAY}")
            with page.expect_download(timeout=60_000) as dl:
                page.click("#export-submit")
            bundle = tmp_path / dl.value.suggested_filename
            dl.value.save_as(bundle)
            assert bundle.suffix == ".zip"
            assert bundle.stat().st_size > 1000
            shutil.copy(bundle, ARTIFACTS / "gateway-bundle.zip")

            # verify it on the verify page
            page.goto("/verify")
            page.set_input_files("#verify-file", str(bundle))
            page.click("#verify-submit")
            result = page.locator("#verify-result")
            expect(result).to_be_visible(timeout=60_000)
            expect(result.locator("h2")).to_contain_text("verification passed")
            page.screenshot(path=str(ARTIFACTS / "gateway-verify.png"), full_page=True)
            assert errors == [], errors
        finally:
            browser.close()
