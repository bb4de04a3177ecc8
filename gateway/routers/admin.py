"""Who am I, users and API tokens (admin), and the sanitised site file (engineer)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request

from gateway.deps import Admin, Engineer, Viewer, get_state
from gateway.schemas import ErrorOut, MeOut, TokenCreated, TokenIn, TokenOut, UserIn, UserOut
from gateway.users import User, UserError

router = APIRouter(prefix="/api/v1", tags=["admin"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut},
    403: {"model": ErrorOut},
    404: {"model": ErrorOut},
    409: {"model": ErrorOut},
    422: {"model": ErrorOut},
}
Username = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-@]+$")]


@router.get("/me", response_model=MeOut, responses=_ERRORS)
async def me(request: Request, user: Annotated[User, Viewer]) -> MeOut:
    """The caller, its role, and (for a login session) the CSRF token its forms must send."""
    session = getattr(request.state, "session", None)
    return MeOut(
        username=user.username,
        role=user.role,
        via=user.via,
        csrf_token=session.csrf if session is not None else None,
    )


@router.get("/config", responses=_ERRORS, dependencies=[Engineer])
async def site_config(request: Request) -> dict[str, Any]:
    """The site file as loaded (secrets appear only as their env/file references)."""
    out: dict[str, Any] = get_state(request).settings.site.model_dump(mode="json")
    return out


@router.get("/users", response_model=list[UserOut], responses=_ERRORS, dependencies=[Admin])
async def list_users(request: Request) -> list[UserOut]:
    users = await asyncio.to_thread(get_state(request).users.users)
    return [UserOut(username=u.username, role=u.role, disabled=u.disabled) for u in users]


@router.post(
    "/users", response_model=UserOut, status_code=201, responses=_ERRORS, dependencies=[Admin]
)
async def add_user(request: Request, body: UserIn) -> UserOut:
    db = get_state(request).users
    try:
        u = await asyncio.to_thread(db.add_user, body.username, body.role, body.password)
    except UserError as exc:
        raise HTTPException(409, str(exc)) from None
    return UserOut(username=u.username, role=u.role, disabled=False)


@router.delete("/users/{username}", status_code=204, responses=_ERRORS)
async def remove_user(request: Request, username: Username, user: Annotated[User, Admin]) -> None:
    if username == user.username:
        raise HTTPException(409, "you cannot remove your own account")
    state = get_state(request)
    try:
        await asyncio.to_thread(state.users.remove_user, username)
    except UserError as exc:
        raise HTTPException(404, str(exc)) from None
    state.token_cache.clear()


@router.get("/tokens", response_model=list[TokenOut], responses=_ERRORS, dependencies=[Admin])
async def list_tokens(request: Request) -> list[TokenOut]:
    tokens = await asyncio.to_thread(get_state(request).users.tokens)
    return [
        TokenOut(
            id=t.id,
            name=t.name,
            username=t.username,
            created_ts=t.created_ts,
            expires_ts=t.expires_ts,
        )
        for t in tokens
    ]


@router.post(
    "/tokens",
    response_model=TokenCreated,
    status_code=201,
    responses=_ERRORS,
    dependencies=[Admin],
)
async def create_token(request: Request, body: TokenIn) -> TokenCreated:
    """A new API token; the clear token is in this response only (stored as SHA-256)."""
    db = get_state(request).users
    try:
        token = await asyncio.to_thread(
            db.create_token, body.username, body.name, ttl_days=body.ttl_days
        )
    except UserError as exc:
        raise HTTPException(404, str(exc)) from None
    newest = (await asyncio.to_thread(db.tokens, body.username))[-1]
    return TokenCreated(id=newest.id, name=newest.name, username=newest.username, token=token)


@router.delete("/tokens/{token_id}", status_code=204, responses=_ERRORS, dependencies=[Admin])
async def revoke_token(request: Request, token_id: Annotated[int, Path(ge=1, le=2**62)]) -> None:
    state = get_state(request)
    try:
        await asyncio.to_thread(state.users.revoke_token, token_id)
    except UserError as exc:
        raise HTTPException(404, str(exc)) from None
    state.token_cache.clear()
