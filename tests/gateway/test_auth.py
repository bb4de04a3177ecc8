"""Every route refuses callers without the role it needs; sessions, CSRF, login."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute

from config.loader import load_site
from gateway.app import create_app
from gateway.routers import admin, api, evidence, form, ops, outbox, pages
from gateway.settings import Settings
from gateway.users import ROLE_RANK, ROLES
from tests.gateway.support import PASSWORD, Gateway, write_site

PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/lang/{lang}"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
}
PARAMS = {"device_id": "cnc1", "username": "nobody", "token_id": "999999", "lang": "en"}


def _route_table() -> list[tuple[str, str, str | None]]:
    """(method, path, required role) of every route of every router of the service."""
    table: list[tuple[str, str, str | None]] = []
    for module in (admin, api, evidence, form, ops, outbox, pages):
        for route in module.router.routes:
            assert isinstance(route, APIRoute)
            roles = [getattr(d.call, "required_role", None) for d in route.dependant.dependencies]
            role = next((r for r in roles if r), None)
            table.extend((method, route.path, role) for method in sorted(route.methods))
    return table


_TABLE = _route_table()


def test_every_route_has_a_role_or_is_public_on_purpose(tmp_path: Path) -> None:
    unprotected = {(m, p) for m, p, role in _TABLE if role is None}
    assert unprotected <= PUBLIC, f"routes without a role check: {unprotected - PUBLIC}"
    assert len([r for r in _TABLE if r[2]]) >= 25
    # the table covers every operation the app publishes
    app = create_app(Settings.from_site(load_site(write_site(tmp_path))))
    published = {(m.upper(), path) for path, ops_ in app.openapi()["paths"].items() for m in ops_}
    assert published <= {(m, p) for m, p, _ in _TABLE}


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PARAMS[m.group(1)], path)


PROTECTED = [(m, p, r) for m, p, r in _TABLE if r]


@pytest.mark.parametrize(
    ("method", "path", "role"), PROTECTED, ids=[f"{m} {p}" for m, p, _ in PROTECTED]
)
def test_route_refuses_anonymous_and_lower_roles(
    gw: Gateway, method: str, path: str, role: str
) -> None:
    url = _url(path)
    with gw.client() as anon:
        r = anon.request(method, url, headers={"Accept": "application/json"})
        assert r.status_code == 401, (method, url, r.text)
        bad = anon.request(method, url, headers={"Authorization": "Bearer sft_not-a-token"})
        assert bad.status_code == 401
    for lower in ROLES[: ROLE_RANK[role]]:
        with gw.client(lower) as c:
            r = c.request(method, url)
            assert r.status_code == 403, (method, url, lower, r.text)
            assert role in r.json()["detail"]


def test_pages_redirect_anonymous_browsers_to_login(gw: Gateway) -> None:
    with gw.client() as c:
        r = c.get("/machine/cnc1", headers={"Accept": "text/html"})
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=/machine/cnc1"


def _login(c: httpx.Client, user: str, password: str = PASSWORD, nxt: str = "/") -> httpx.Response:
    form = c.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf is not None
    return c.post(
        "/login",
        data={"username": user, "password": password, "csrf_token": csrf.group(1), "next": nxt},
    )


def test_login_sets_strict_httponly_cookie_and_csrf_guards_posts(gw: Gateway) -> None:
    with gw.client() as c:
        r = _login(c, "applicant", nxt="//evil.example/x")
        assert r.status_code == 303
        assert r.headers["location"] == "/", "no open redirect after login"
        cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("sf_session="))
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
        me = c.get("/api/v1/me").json()
        assert me["username"] == "applicant"
        assert me["via"] == "session"
        body = {"baseline": "2025-01-01..2025-12-31", "current": "2026-01-01..2026-12-31"}
        no_csrf = c.post("/api/v1/export", json=body)
        assert no_csrf.status_code == 403
        assert "CSRF" in no_csrf.json()["detail"]
        wrong = c.post("/api/v1/export", json=body, headers={"X-CSRF-Token": "nope"})
        assert wrong.status_code == 403
        ok = c.post("/api/v1/export", json=body, headers={"X-CSRF-Token": me["csrf_token"]})
        assert ok.status_code not in (401, 403)
        page = c.get("/", headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert "applicant" in page.text
        out = c.post("/logout", data={"csrf_token": me["csrf_token"]})
        assert out.status_code == 303
        assert c.get("/api/v1/me").status_code == 401


def test_login_form_needs_its_csrf_token_and_right_password(gw: Gateway) -> None:
    with gw.client() as c:
        r = c.post("/login", data={"username": "admin", "password": PASSWORD})
        assert r.status_code == 403
        bad = _login(c, "admin", "wrong password!")
        assert bad.status_code == 401
        assert "sf_session" not in c.cookies
        assert PASSWORD not in bad.text


def test_tokens_via_api_are_shown_once_and_revocable(gw: Gateway) -> None:
    with gw.client("admin") as admin:
        r = admin.post("/api/v1/tokens", json={"username": "viewer", "name": "probe"})
        assert r.status_code == 201
        created = r.json()
        token = created["token"]
        listed = admin.get("/api/v1/tokens").json()
        assert all("token" not in t for t in listed)
        assert token not in admin.get("/api/v1/tokens").text
    with httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {token}"}) as c:
        assert c.get("/api/v1/site").status_code == 200
        with gw.client("admin") as admin:
            assert admin.delete(f"/api/v1/tokens/{created['id']}").status_code == 204
        # the service caches token lookups for at most 5 s
        import time

        deadline = time.monotonic() + 8
        while c.get("/api/v1/site").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert c.get("/api/v1/site").status_code == 401


def test_secrets_never_appear_in_logs(gw: Gateway) -> None:
    log = gw.log()
    assert PASSWORD not in log
    for token in gw.tokens.values():
        assert token not in log


def test_repeated_failed_logins_are_throttled(gw: Gateway) -> None:
    with gw.client() as c:
        codes = [_login(c, "mallory", "wrong password!").status_code for _ in range(6)]
    assert codes[:5] == [401] * 5
    assert codes[5] == 429
