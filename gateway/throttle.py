"""Failed-login throttling per user name and per client address.

A user name is locked after ``per_user`` failures within ``window_s`` (guessing one account's
password); a client address after ``per_address`` failures (spraying many user names from one
place). Blocked attempts are refused before any password is checked and are not counted.
Kept in memory: a restart forgets, and the tables are emptied when they grow past ``max_keys``
(a flood of fresh names cannot exhaust memory).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class LoginThrottle:
    per_user: int = 5
    per_address: int = 20
    window_s: float = 300.0
    max_keys: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _users: dict[str, list[float]] = field(default_factory=dict)
    _addresses: dict[str, list[float]] = field(default_factory=dict)

    def _recent(self, table: dict[str, list[float]], key: str) -> int:
        now = self.clock()
        recent = [t for t in table.get(key, ()) if now - t < self.window_s]
        if recent:
            table[key] = recent
        else:
            table.pop(key, None)
        return len(recent)

    def blocked(self, username: str, address: str) -> bool:
        """True when the user name or the address has too many recent failures."""
        return (
            self._recent(self._users, username) >= self.per_user
            or self._recent(self._addresses, address) >= self.per_address
        )

    def failed(self, username: str, address: str) -> None:
        now = self.clock()
        for table, key in ((self._users, username), (self._addresses, address)):
            if len(table) > self.max_keys:
                table.clear()
            table.setdefault(key, []).append(now)
