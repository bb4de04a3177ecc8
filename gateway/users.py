"""Users, roles and API tokens in the gateway's own SQLite file (``site.gateway.users_db``).

Passwords are hashed with scrypt (hashlib), API tokens are random and only their SHA-256 is
stored, so a copy of the file gives neither. The file also keeps the secret that signs login
cookies (created on first use) and the open login sessions (their id's SHA-256), so sessions
survive a restart of the service and a logout ends a session for good. The file is created
readable by its owner only (0600).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Role = Literal["viewer", "engineer", "applicant", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "engineer", "applicant", "admin")
ROLE_RANK: dict[str, int] = {r: i for i, r in enumerate(ROLES)}

TOKEN_PREFIX = "sft_"
_SCRYPT_N = 2**14
_SCRYPT_R = 8
_SCRYPT_P = 1
_USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-@")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    sha256 TEXT NOT NULL UNIQUE,
    created_ts INTEGER NOT NULL,
    expires_ts INTEGER
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    sha256 TEXT PRIMARY KEY,
    username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    expires_ts INTEGER NOT NULL
);
"""
log = logging.getLogger("shopfloor.gateway.users")


class UserError(ValueError):
    """A user or token operation that cannot be done (the message is safe to show)."""


@dataclass(frozen=True, slots=True)
class User:
    username: str
    role: Role
    disabled: bool = False
    via: Literal["session", "token"] = "session"

    def has(self, role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    name: str
    username: str
    created_ts: int
    expires_ts: int | None


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64), the form stored in the users table."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt_b64, hash_b64 = stored.split("$")
        if kind != "scrypt":
            return False
        salt = base64.b64decode(salt_b64)
        want = base64.b64decode(hash_b64)
        got = hashlib.scrypt(
            password.encode("utf-8"), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(want)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


@functools.cache
def dummy_hash() -> str:
    """A stored-password look-alike (same scrypt parameters) that no password matches: an
    unknown user name costs one scrypt, exactly like a known one (no timing oracle)."""
    return hash_password(secrets.token_urlsafe(32))


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def validate_username(username: str) -> str:
    if not 1 <= len(username) <= 64 or not set(username) <= _USERNAME_CHARS:
        raise UserError("a user name is 1-64 characters of letters, digits and _ . - @")
    return username


def validate_password(password: str) -> str:
    if len(password) < 8:
        raise UserError("a password has at least 8 characters")
    if len(password) > 1024:
        raise UserError("a password has at most 1024 characters")
    return password


def validate_role(role: str) -> Role:
    if role not in ROLE_RANK:
        raise UserError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    return role  # type: ignore[return-value]


def _private_file(path: Path) -> None:
    """Create ``path`` readable and writable by its owner only (it holds password hashes and
    the cookie signing secret); an existing file open to others is narrowed to 0600."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        mode = os.fstat(fd).st_mode & 0o777
        if mode & 0o077:
            os.fchmod(fd, 0o600)
            log.warning("users file was open to others; now 0600", extra={"file": str(path)})
    finally:
        os.close(fd)


class UserDB:
    """The users file. Each call opens its own short connection: safe from any thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        _private_file(path)
        with self._conn() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        try:
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("PRAGMA busy_timeout = 10000")
            yield db
        finally:
            db.close()

    # -- the cookie signing secret -------------------------------------------------------
    def signing_secret(self) -> bytes:
        with self._conn() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT value FROM meta WHERE key = 'session_secret'").fetchone()
            if row is None:
                secret = secrets.token_bytes(32)
                db.execute("INSERT INTO meta VALUES ('session_secret', ?)", (secret,))
            else:
                secret = bytes(row[0])
            db.execute("COMMIT")
        return secret

    # -- users -----------------------------------------------------------------------
    def add_user(self, username: str, role: str, password: str) -> User:
        validate_username(username)
        r = validate_role(role)
        validate_password(password)
        with self._conn() as db:
            try:
                db.execute(
                    "INSERT INTO users (username, role, password, created_ts) VALUES (?,?,?,?)",
                    (username, r, hash_password(password), int(time.time())),
                )
            except sqlite3.IntegrityError:
                raise UserError(f"user {username!r} already exists") from None
        return User(username, r)

    def set_password(self, username: str, password: str) -> None:
        validate_password(password)
        with self._conn() as db:
            cur = db.execute(
                "UPDATE users SET password = ? WHERE username = ?",
                (hash_password(password), username),
            )
            if cur.rowcount == 0:
                raise UserError(f"no user {username!r}")
            db.execute("DELETE FROM sessions WHERE username = ?", (username,))

    def set_role(self, username: str, role: str) -> None:
        r = validate_role(role)
        with self._conn() as db:
            cur = db.execute("UPDATE users SET role = ? WHERE username = ?", (r, username))
            if cur.rowcount == 0:
                raise UserError(f"no user {username!r}")

    def set_disabled(self, username: str, disabled: bool) -> None:
        with self._conn() as db:
            cur = db.execute(
                "UPDATE users SET disabled = ? WHERE username = ?", (int(disabled), username)
            )
            if cur.rowcount == 0:
                raise UserError(f"no user {username!r}")
            if disabled:
                db.execute("DELETE FROM sessions WHERE username = ?", (username,))

    def remove_user(self, username: str) -> None:
        with self._conn() as db:
            cur = db.execute("DELETE FROM users WHERE username = ?", (username,))
            if cur.rowcount == 0:
                raise UserError(f"no user {username!r}")

    def get(self, username: str) -> User | None:
        with self._conn() as db:
            row = db.execute(
                "SELECT username, role, disabled FROM users WHERE username = ?", (username,)
            ).fetchone()
        if row is None:
            return None
        return User(row[0], validate_role(row[1]), bool(row[2]))

    def users(self) -> list[User]:
        with self._conn() as db:
            rows = db.execute("SELECT username, role, disabled FROM users ORDER BY username")
            return [User(u, validate_role(r), bool(d)) for u, r, d in rows]

    def authenticate(self, username: str, password: str) -> User | None:
        """The user when the password matches and the account is enabled, else None. Every
        call hashes the password once with the same parameters, known user or not."""
        with self._conn() as db:
            row = db.execute(
                "SELECT role, password, disabled FROM users WHERE username = ?", (username,)
            ).fetchone()
        ok = check_password(password, row[1] if row is not None else dummy_hash())
        if row is None or not ok or row[2]:
            return None
        return User(username, validate_role(row[0]))

    # -- login sessions (the cookie carries the id; the file keeps its SHA-256) -------------
    def add_session(self, session_id: str, username: str, expires_ts: int) -> None:
        now = int(time.time())
        with self._conn() as db:
            db.execute("DELETE FROM sessions WHERE expires_ts <= ?", (now,))
            db.execute(
                "INSERT INTO sessions (sha256, username, expires_ts) VALUES (?,?,?)",
                (token_digest(session_id), username, expires_ts),
            )

    def session_user(self, session_id: str) -> User | None:
        """The enabled user of an open, unexpired session; None once it ended (logout)."""
        if not session_id:
            return None
        with self._conn() as db:
            row = db.execute(
                "SELECT u.username, u.role, u.disabled, s.expires_ts FROM sessions s "
                "JOIN users u ON u.username = s.username WHERE s.sha256 = ?",
                (token_digest(session_id),),
            ).fetchone()
        if row is None or row[2] or row[3] <= time.time():
            return None
        return User(row[0], validate_role(row[1]))

    def end_session(self, session_id: str) -> None:
        with self._conn() as db:
            db.execute("DELETE FROM sessions WHERE sha256 = ?", (token_digest(session_id),))

    def end_sessions(self, username: str) -> None:
        """Sign ``username`` out everywhere (a new password, a disabled account)."""
        with self._conn() as db:
            db.execute("DELETE FROM sessions WHERE username = ?", (username,))

    # -- tokens ----------------------------------------------------------------------
    def create_token(self, username: str, name: str, *, ttl_days: float | None = None) -> str:
        """A new API token for ``username``; the clear token is returned once, never stored."""
        if not 1 <= len(name) <= 100:
            raise UserError("a token name is 1-100 characters")
        if self.get(username) is None:
            raise UserError(f"no user {username!r}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = int(time.time())
        expires = None if ttl_days is None else now + int(ttl_days * 86400)
        with self._conn() as db:
            db.execute(
                "INSERT INTO tokens (name, username, sha256, created_ts, expires_ts) "
                "VALUES (?,?,?,?,?)",
                (name, username, token_digest(token), now, expires),
            )
        return token

    def tokens(self, username: str | None = None) -> list[TokenInfo]:
        q = "SELECT id, name, username, created_ts, expires_ts FROM tokens"
        args: tuple[str, ...] = ()
        if username is not None:
            q += " WHERE username = ?"
            args = (username,)
        with self._conn() as db:
            return [TokenInfo(*row) for row in db.execute(q + " ORDER BY id", args)]

    def revoke_token(self, token_id: int) -> None:
        with self._conn() as db:
            cur = db.execute("DELETE FROM tokens WHERE id = ?", (token_id,))
            if cur.rowcount == 0:
                raise UserError(f"no token with id {token_id}")

    def user_for_token(self, token: str) -> User | None:
        with self._conn() as db:
            row = db.execute(
                "SELECT u.username, u.role, u.disabled, t.expires_ts FROM tokens t "
                "JOIN users u ON u.username = t.username WHERE t.sha256 = ?",
                (token_digest(token),),
            ).fetchone()
        if row is None or row[2]:
            return None
        if row[3] is not None and row[3] <= time.time():
            return None
        return User(row[0], validate_role(row[1]), via="token")
