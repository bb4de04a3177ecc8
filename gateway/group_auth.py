"""API tokens of the group view, from a read-only file (the group view keeps no state).

One token per line: ``<sha256 hex of the token> <role> <name>``; ``#`` starts a comment. Only
the SHA-256 of a token is in the file, so a copy of it gives no token. The file is read again
when its modification time changes, so adding or removing a line takes effect on every replica
without a restart (mount it from one ConfigMap or Secret). Roles are the gateway's
(``gateway.users.ROLES``); every page and API route of the group view needs ``viewer``.
"""

from __future__ import annotations

import hmac
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from gateway.users import ROLES, Role, User, token_digest

_HEX = re.compile(r"^[0-9a-f]{64}$")


class TokenFileError(ValueError):
    """A tokens file that cannot be used (file, line and problem)."""


@dataclass(frozen=True, slots=True)
class TokenEntry:
    digest: str
    role: Role
    name: str


def parse_tokens(text: str, source: str = "<tokens>") -> tuple[TokenEntry, ...]:
    out: list[TokenEntry] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 3:
            raise TokenFileError(f"{source}:{n}: want '<sha256 hex> <role> <name>'")
        digest, role, name = parts
        if not _HEX.match(digest.lower()):
            raise TokenFileError(f"{source}:{n}: not a SHA-256 in hex (64 characters)")
        if role not in ROLES:
            raise TokenFileError(f"{source}:{n}: role {role!r} is not one of {', '.join(ROLES)}")
        out.append(TokenEntry(digest.lower(), role, name))
    return tuple(out)


class TokenFile:
    """The tokens of ``path``, re-read when the file changes (a file that became unreadable
    or invalid keeps the last good tokens and the error is reported by :attr:`error`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self.error: str | None = None
        self._entries: tuple[TokenEntry, ...] = ()
        self._load(strict=True)

    def _load(self, *, strict: bool) -> None:
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp == self._stamp:
                return
            entries = parse_tokens(self.path.read_text(encoding="utf-8"), str(self.path))
        except (OSError, UnicodeDecodeError, TokenFileError) as exc:
            msg = str(exc) if isinstance(exc, TokenFileError) else f"{self.path}: {exc}"
            if strict:
                raise TokenFileError(msg) from None
            self.error = msg
            return
        self._entries, self._stamp, self.error = entries, stamp, None

    def user_for_token(self, token: str) -> User | None:
        with self._lock:
            self._load(strict=False)
            entries = self._entries
        digest = token_digest(token)
        found: User | None = None
        for e in entries:  # compare every entry: no early exit
            if hmac.compare_digest(e.digest, digest):
                found = User(e.name, e.role, via="token")
        return found
