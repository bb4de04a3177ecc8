"""Dependencies: the service state, the signed-in user, and role checks."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Depends, HTTPException, Request

from gateway.auth import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, Session, Signer, bearer_token
from gateway.auth import csrf_ok as _csrf_ok
from gateway.data import ReaderPool
from gateway.settings import Settings
from gateway.throttle import LoginThrottle
from gateway.users import ROLE_RANK, Role, User, UserDB

if TYPE_CHECKING:
    from gateway.live import LiveHub
    from gateway.metrics_prom import ApiMetrics

_TOKEN_CACHE_S = 5.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class State:
    settings: Settings
    users: UserDB
    signer: Signer
    pool: ReaderPool
    hub: LiveHub
    api_metrics: ApiMetrics
    started: float = field(default_factory=time.time)
    token_cache: dict[str, tuple[float, User | None]] = field(default_factory=dict)
    logins: LoginThrottle = field(default_factory=LoginThrottle)


def get_state(request: Request) -> State:
    state: State = request.app.state.gw
    return state


def get_settings(request: Request) -> Settings:
    return get_state(request).settings


class AuthRequired(HTTPException):
    """401 for the API; pages turn it into a redirect to the login form."""

    def __init__(self) -> None:
        super().__init__(401, "sign in or send an API token", {"WWW-Authenticate": "Bearer"})


def _user_for_token(state: State, token: str) -> User | None:
    now = time.monotonic()
    hit = state.token_cache.get(token)
    if hit is not None and now - hit[0] < _TOKEN_CACHE_S:
        return hit[1]
    user = state.users.user_for_token(token)
    if len(state.token_cache) > 10_000:
        state.token_cache.clear()
    state.token_cache[token] = (now, user)
    return user


def session_of(request: Request) -> Session | None:
    """The caller's login session when it is valid and still open on the server."""
    optional_user(request)
    session: Session | None = getattr(request.state, "session", None)
    return session


def optional_user(request: Request) -> User | None:
    """The caller: API token first, else the login session (signed, and still open in the
    users file: a logged-out cookie is refused); None when neither is valid."""
    cached: User | None = getattr(request.state, "user", None)
    if cached is not None:
        return cached
    state = get_state(request)
    token = bearer_token(request.headers.get("authorization"))
    user: User | None = None
    if token is not None:
        user = _user_for_token(state, token)
    else:
        session = state.signer.read_session(request.cookies.get(SESSION_COOKIE))
        if session is not None:
            found = state.users.session_user(session.sid)
            if found is not None and found.username == session.username:
                user = found
                request.state.session = session
    request.state.user = user
    return user


async def _csrf_from_request(request: Request) -> str | None:
    given = request.headers.get(CSRF_HEADER)
    if given:
        return given
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


def require(role: Role) -> Callable[[Request], Awaitable[User]]:
    """Dependency: the caller has at least ``role`` (401 when anonymous, 403 when lower).
    A session (cookie) request that changes something must carry its CSRF token."""

    async def dependency(request: Request) -> User:
        user = optional_user(request)
        if user is None:
            raise AuthRequired()
        if ROLE_RANK[user.role] < ROLE_RANK[role]:
            raise HTTPException(403, f"this needs the role {role} (you have {user.role})")
        if user.via == "session" and request.method not in SAFE_METHODS:
            session: Session | None = getattr(request.state, "session", None)
            given = await _csrf_from_request(request)
            if session is None or not _csrf_ok(session, given):
                raise HTTPException(403, "missing or wrong CSRF token")
        return user

    dependency.__name__ = f"require_{role}"
    dependency.required_role = role  # type: ignore[attr-defined]
    return dependency


Viewer = Depends(require("viewer"))
Engineer = Depends(require("engineer"))
Applicant = Depends(require("applicant"))
Admin = Depends(require("admin"))
