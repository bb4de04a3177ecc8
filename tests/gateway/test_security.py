"""Gateway security (issue 15, item 6) against the real service: sessions end on the server,
the login page tells nothing, logins are throttled per address and per user at one hash per
attempt, the users file is private, no body is read before authentication, a CSP that the
dashboard lives with, and the inputs that once gave a 500."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import CSP
from gateway.throttle import LoginThrottle
from gateway.users import UserDB
from tests.gateway.support import PASSWORD, Gateway

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _login(c: httpx.Client, user: str, password: str = PASSWORD) -> httpx.Response:
    form = c.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf is not None, form.text
    return c.post(
        "/login",
        data={"username": user, "password": password, "csrf_token": csrf.group(1), "next": "/"},
    )


def _client_from(gw: Gateway, address: str) -> httpx.Client:
    """A client whose connections come from another loopback address (127.0.0.0/8)."""
    return httpx.Client(
        base_url=gw.url, timeout=30.0, transport=httpx.HTTPTransport(local_address=address)
    )


# -- sessions --------------------------------------------------------------------------


def test_logout_ends_the_session_on_the_server(gw: Gateway) -> None:
    with gw.client() as c:
        assert _login(c, "viewer").status_code == 303
        cookie = c.cookies["sf_session"]
        me = c.get("/api/v1/me")
        assert me.status_code == 200
        assert c.post("/logout", data={"csrf_token": me.json()["csrf_token"]}).status_code == 303
    # the cookie kept by an eavesdropper or a shared machine signs in no more
    with gw.client(cookies={"sf_session": cookie}) as replay:
        assert replay.get("/api/v1/me").status_code == 401
        page = replay.get("/", headers={"Accept": "text/html"})
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=/"


def test_new_password_and_disabling_end_open_sessions(tmp_path: Path) -> None:
    db = UserDB(tmp_path / "users.db")
    db.add_user("alice", "viewer", "password-1")
    db.add_session("s1", "alice", 2**40)
    db.add_session("s2", "alice", 2**40)
    user = db.session_user("s1")
    assert user is not None
    assert user.username == "alice"
    assert db.session_user("nope") is None
    assert db.session_user("") is None
    db.set_password("alice", "password-2")
    assert db.session_user("s1") is None
    assert db.session_user("s2") is None
    db.add_session("s3", "alice", 2**40)
    db.set_disabled("alice", True)
    db.set_disabled("alice", False)
    assert db.session_user("s3") is None, "a disabled account's sessions stay ended"
    db.add_session("old", "alice", 1)
    assert db.session_user("old") is None, "expired"


def test_signed_in_login_page_redirects_instead_of_failing(gw: Gateway) -> None:
    with gw.client() as c:
        assert _login(c, "engineer").status_code == 303
        r = c.get("/login?next=/health")
        assert r.status_code == 303
        assert r.headers["location"] == "/health"
        assert c.get("/login?next=//evil.example").headers["location"] == "/"


# -- the anonymous login page ----------------------------------------------------------------


def test_anonymous_login_page_reveals_nothing_about_devices(gw: Gateway) -> None:
    with gw.client() as c:
        page = c.get("/login")
    assert page.status_code == 200
    boot = re.search(r'<script id="sf-boot" type="application/json">(.*?)</script>', page.text)
    assert boot is not None
    data = json.loads(boot.group(1))
    assert data["devices"] == []
    assert "factors" not in data
    for dev in gw.site.devices:
        assert dev.id not in page.text
        assert dev.name not in page.text
        for p in dev.points:
            assert not p.name or p.name not in page.text
    assert "spindle_kw" not in page.text


# -- login throttling and timing -------------------------------------------------------------


def test_login_throttled_per_client_address(gw: Gateway) -> None:
    # many user names from one address: the 21st attempt is refused before any password check
    with _client_from(gw, "127.0.0.2") as sprayer:
        codes = [_login(sprayer, f"guess{i}", "wrong password!").status_code for i in range(20)]
        assert codes == [401] * 20
        assert _login(sprayer, "guess-more", "wrong password!").status_code == 429
        # the address is blocked even with the right password of a real user
        assert _login(sprayer, "viewer").status_code == 429
    # another address is not
    with _client_from(gw, "127.0.0.3") as other:
        assert _login(other, "viewer").status_code == 303


def test_throttle_counts_per_user_and_per_address_in_a_window() -> None:
    now = [1000.0]
    t = LoginThrottle(per_user=2, per_address=3, window_s=60.0, clock=lambda: now[0])
    t.failed("bob", "10.0.0.1")
    t.failed("bob", "10.0.0.2")
    assert t.blocked("bob", "10.0.0.9")
    assert not t.blocked("carol", "10.0.0.1")
    t.failed("carol", "10.0.0.1")
    t.failed("dave", "10.0.0.1")
    assert t.blocked("erin", "10.0.0.1")
    now[0] += 61.0
    assert not t.blocked("bob", "10.0.0.1")


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    calls: list[tuple[Any, ...]] = []
    real = hashlib.scrypt

    def counting(password: bytes, **kw: Any) -> bytes:
        calls.append((kw["n"], kw["r"], kw["p"], kw["dklen"]))
        return real(password, **kw)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    return calls


def test_unknown_and_known_users_cost_the_same_single_hash(
    tmp_path: Path, scrypt_calls: list[tuple[Any, ...]]
) -> None:
    db = UserDB(tmp_path / "users.db")
    db.add_user("alice", "viewer", "password-1")
    db.add_user("mallory", "viewer", "password-1")
    db.set_disabled("mallory", True)
    db.authenticate("warm-up", "x")  # the dummy hash is made once per process
    attempts = [
        ("alice", "password-1"),
        ("alice", "wrong"),
        ("nobody", "password-1"),
        ("mallory", "password-1"),
    ]
    costs = []
    for name, password in attempts:
        scrypt_calls.clear()
        db.authenticate(name, password)
        costs.append(list(scrypt_calls))
    assert all(len(c) == 1 for c in costs), costs
    assert len({c[0] for c in costs}) == 1, f"different hash parameters: {costs}"


# -- the users file ----------------------------------------------------------------------------


def test_users_file_is_private(tmp_path: Path, gw: Gateway) -> None:
    path = tmp_path / "new" / "users.db"
    UserDB(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((gw.folder / "users.db").stat().st_mode) == 0o600
    loose = tmp_path / "loose.db"
    loose.touch(mode=0o644)
    loose.chmod(0o644)
    UserDB(loose)
    assert stat.S_IMODE(loose.stat().st_mode) == 0o600


# -- authentication before the body ---------------------------------------------------------


def _post_headers_only(gw: Gateway, path: str, ctype: str, length: int) -> str:
    """POST announcing ``length`` bytes, send only the headers and 1 KiB, return the status
    line: a service that waits for the body before authenticating never answers (timeout)."""
    port = int(gw.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {length}\r\nAccept: application/json\r\n\r\n".encode()
            + b"x" * 1024
        )
        head = s.recv(4096).decode("latin-1")
    return head.split("\r\n", 1)[0]


@pytest.mark.parametrize(
    ("path", "ctype"),
    [
        ("/api/v1/verify", "multipart/form-data; boundary=xyz"),
        ("/api/v1/export", "application/json"),
        ("/verify", "multipart/form-data; boundary=xyz"),
    ],
)
def test_anonymous_upload_is_refused_before_its_body(gw: Gateway, path: str, ctype: str) -> None:
    # 900 kB: under the 1 MB upload limit of this gateway, so only authentication can refuse
    status_line = _post_headers_only(gw, path, ctype, 900_000)
    assert status_line == "HTTP/1.1 401 Unauthorized", status_line
    with gw.client("viewer") as c:
        assert c.get("/api/v1/site").status_code == 200


def test_an_authenticated_upload_still_works(gw: Gateway) -> None:
    with gw.client("viewer") as c:
        r = c.post("/api/v1/verify", files={"bundle": ("b.zip", b"not a zip", "application/zip")})
    assert r.status_code in (200, 422), r.text  # read and judged, not refused


# -- the Content-Security-Policy --------------------------------------------------------------


def test_pages_and_api_carry_a_script_self_csp(gw: Gateway) -> None:
    with gw.client() as anon, gw.client("viewer") as c:
        for r in (anon.get("/login"), c.get("/api/v1/site"), c.get("/static/app.js")):
            assert r.headers["content-security-policy"] == CSP
        docs = anon.get("/docs").headers["content-security-policy"]
        assert "frame-ancestors 'none'" in docs
    script_src = next(d for d in CSP.split(";") if d.strip().startswith("script-src"))
    assert script_src.split() == ["script-src", "'self'"]
    assert "frame-ancestors 'none'" in CSP


CSP_WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));
"""


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")
def test_dashboard_runs_under_the_csp(gw: Gateway) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox"], headless=True
        )
        try:
            page = browser.new_context(base_url=gw.url).new_page()
            page.add_init_script(CSP_WATCH)
            console: list[str] = []
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: console.append(str(e)))
            page.goto("/login")
            page.fill("input[name=username]", "applicant")
            page.fill("input[name=password]", PASSWORD)
            page.click("#login-submit")
            expect(page.locator("a.machine").first).to_be_visible(timeout=10_000)
            seen: dict[str, list[str]] = {}
            for url, ready in [
                ("/", "a.machine .state"),
                ("/machine/cnc1", "#timeline canvas"),
                ("/energy", "#power-chart canvas"),
                ("/health", "#health-table tr"),
                ("/table", "h1"),
                ("/export", "#export-submit"),
                ("/verify", "#verify-submit"),
            ]:
                page.goto(url)
                expect(page.locator(ready).first).to_be_visible(timeout=10_000)
                if url == "/machine/cnc1":  # an ECharts tooltip (HTML with style attributes)
                    page.locator("#trends canvas").first.hover()
                seen[url] = page.evaluate("window.__csp")
            assert all(v == [] for v in seen.values()), seen
            assert not [m for m in console if "Content Security Policy" in m], console
            # and the policy is in force: an injected inline script does not run
            page.evaluate(
                "() => { const s = document.createElement('script');"
                " s.textContent = 'window.__ran = 1'; document.body.append(s); }"
            )
            assert page.evaluate("window.__ran") is None
            assert any(v.startswith("script-src") for v in page.evaluate("window.__csp"))
        finally:
            browser.close()


# -- inputs that gave a 500 -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/kpi?period=1500-01-01..1500-01-02", 422),
        ("/api/v1/kpi?period=2300-01-01..2300-01-02", 422),
        ("/api/v1/table?baseline=1677-01-01..1677-01-02&current=2026-01-01..2026-01-02", 422),
        ("/static/app.js%00", 404),
        ("/static/%00", 404),
    ],
)
def test_former_server_errors_are_client_errors(gw: Gateway, path: str, status: int) -> None:
    with gw.client("viewer") as c:
        r = c.get(path)
        assert r.status_code == status, r.text
        if status == 422:
            assert "between 1678 and 2261" in r.json()["detail"]
        assert c.get("/api/v1/site").status_code == 200


def test_table_page_with_a_period_out_of_range_shows_the_reason(gw: Gateway) -> None:
    with gw.client() as c:
        assert _login(c, "viewer").status_code == 303
        r = c.get("/table?baseline=1600-01-01..1600-12-31&current=2026-01-01..2026-01-02")
    assert r.status_code == 200
    assert "between 1678 and 2261" in r.text
