"""Login sessions in signed cookies, CSRF tokens, and the role check.

A session cookie holds ``base64(json{u, exp, csrf, sid}) . base64(HMAC-SHA256)``; it is HttpOnly
and SameSite=Strict. The session id must also be open in the users file (``UserDB.add_session``):
logging out ends it there, so a copy of the cookie is worth nothing afterwards. The role is read
from the users file on every request, so a changed role or a disabled account takes effect at
once. Forms and fetch calls made with a session carry the
session's CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``); requests made with
an API token (``Authorization: Bearer sft_...``) are not ambient and need none.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

SESSION_COOKIE = "sf_session"
PRELOGIN_COOKIE = "sf_prelogin"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True, slots=True)
class Session:
    username: str
    expires: int
    csrf: str
    sid: str = ""  # the server-side id (UserDB sessions); a cookie without one is refused


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """HMAC-SHA256 signing of small JSON payloads with the gateway's secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the signing secret must have at least 16 bytes")
        self._secret = secret

    def _mac(self, purpose: str, body: str) -> str:
        msg = purpose.encode() + b"\n" + body.encode()
        return _b64(hmac.new(self._secret, msg, hashlib.sha256).digest())

    def sign(self, purpose: str, payload: dict[str, object]) -> str:
        body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{self._mac(purpose, body)}"

    def unsign(self, purpose: str, value: str) -> dict[str, object] | None:
        body, sep, mac = value.partition(".")
        if not sep or not hmac.compare_digest(mac, self._mac(purpose, body)):
            return None
        try:
            data = json.loads(_unb64(body))
        except (ValueError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def new_session(self, username: str, ttl_s: int) -> tuple[str, Session]:
        session = Session(
            username, int(time.time()) + ttl_s, secrets.token_urlsafe(24), secrets.token_urlsafe(32)
        )
        cookie = self.sign(
            "session",
            {"u": username, "exp": session.expires, "c": session.csrf, "s": session.sid},
        )
        return cookie, session

    def read_session(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        data = self.unsign("session", cookie)
        if data is None:
            return None
        user, exp, csrf, sid = data.get("u"), data.get("exp"), data.get("c"), data.get("s", "")
        if not isinstance(user, str) or not isinstance(exp, int) or not isinstance(csrf, str):
            return None
        if not isinstance(sid, str) or exp <= time.time():
            return None
        return Session(user, exp, csrf, sid)

    def prelogin(self) -> tuple[str, str]:
        """A cookie and the matching CSRF token for the login form (before any session)."""
        csrf = secrets.token_urlsafe(24)
        return self.sign("prelogin", {"c": csrf, "exp": int(time.time()) + 3600}), csrf

    def check_prelogin(self, cookie: str | None, csrf: str | None) -> bool:
        if not cookie or not csrf:
            return False
        data = self.unsign("prelogin", cookie)
        if data is None:
            return False
        want, exp = data.get("c"), data.get("exp")
        if not isinstance(want, str) or not isinstance(exp, int) or exp <= time.time():
            return False
        return hmac.compare_digest(want, csrf)


def csrf_ok(session: Session, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(session.csrf, given)


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
