"""trust.json: the keys a reviewer trusts, obtained out of band (pure).

```json
{"version": 1,
 "keys": [
   {"role": "gateway", "key": "<name>+<id>+<base64>", "not_before": "2026-01-01T00:00:00Z",
    "not_after": null, "comment": "示例精密机械 gateway key"},
   {"role": "witness", "key": "<name>+<id>+<base64 0x04 key>", "not_before": "...",
    "not_after": "..."}],
 "witness_quorum": 1}
```

``not_before``/``not_after`` are RFC 3339 UTC times (``not_after`` may be null: open).
``witness_quorum`` (default: every witness listed) is how many listed witnesses must cosign.
Keys found inside a bundle are never trusted: only these.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from metrics.evidence.note import ALG_COSIGNATURE_V1, ALG_ED25519, NoteError, Verifier

Role = Literal["gateway", "witness"]


class TrustError(ValueError):
    """A trust.json that cannot be used (the message names the entry and field)."""


def parse_time(text: str, what: str) -> int:
    """RFC 3339 time with an explicit offset -> unix seconds."""
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise TrustError(f"{what}: {text!r} is not an RFC 3339 time") from None
    if t.tzinfo is None:
        raise TrustError(f"{what}: {text!r} needs a UTC offset (e.g. Z)")
    return int(t.timestamp())


def format_time(unix_s: int | None) -> str | None:
    if unix_s is None:
        return None
    return dt.datetime.fromtimestamp(unix_s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class TrustedKey:
    role: Role
    verifier: Verifier
    not_before: int | None = None
    not_after: int | None = None
    comment: str = ""

    def valid_at(self, unix_s: int) -> bool:
        if self.not_before is not None and unix_s < self.not_before:
            return False
        return not (self.not_after is not None and unix_s > self.not_after)

    def window(self) -> str:
        return f"{format_time(self.not_before) or '-∞'} .. {format_time(self.not_after) or '+∞'}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "key": str(self.verifier),
            "not_before": format_time(self.not_before),
            "not_after": format_time(self.not_after),
            "comment": self.comment,
        }


@dataclass(frozen=True)
class Trust:
    keys: tuple[TrustedKey, ...]
    witness_quorum: int = 0

    def of_role(self, role: Role) -> list[TrustedKey]:
        return [k for k in self.keys if k.role == role]

    def verifiers(self, role: Role | None = None) -> list[Verifier]:
        return [k.verifier for k in self.keys if role is None or k.role == role]

    def entry(self, v: Verifier) -> TrustedKey:
        for k in self.keys:
            if k.verifier == v:
                return k
        raise KeyError(str(v))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "keys": [k.to_dict() for k in self.keys],
            "witness_quorum": self.witness_quorum,
        }


def parse_trust(data: bytes | str) -> Trust:
    try:
        obj = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TrustError(f"trust.json: not valid JSON ({exc})") from None
    if not isinstance(obj, dict) or obj.get("version") != 1:
        raise TrustError('trust.json: expected an object with "version": 1')
    unknown = set(obj) - {"version", "keys", "witness_quorum", "comment"}
    if unknown:
        raise TrustError(f"trust.json: unknown field(s) {', '.join(sorted(unknown))}")
    raw_keys = obj.get("keys")
    if not isinstance(raw_keys, list) or not raw_keys:
        raise TrustError('trust.json: "keys" must be a non-empty list')
    keys: list[TrustedKey] = []
    for i, e in enumerate(raw_keys):
        where = f"trust.json keys[{i}]"
        if not isinstance(e, dict):
            raise TrustError(f"{where}: must be an object")
        extra = set(e) - {"role", "key", "not_before", "not_after", "comment"}
        if extra:
            raise TrustError(f"{where}: unknown field(s) {', '.join(sorted(extra))}")
        role = e.get("role")
        if role not in ("gateway", "witness"):
            raise TrustError(f'{where}.role: must be "gateway" or "witness"')
        try:
            v = Verifier.parse(str(e.get("key", "")))
        except NoteError as exc:
            raise TrustError(f"{where}.key: {exc}") from None
        want = ALG_ED25519 if role == "gateway" else ALG_COSIGNATURE_V1
        if v.alg != want:
            raise TrustError(
                f"{where}.key: a {role} key must be of type 0x{want:02x}, not 0x{v.alg:02x}"
            )
        nb = e.get("not_before")
        na = e.get("not_after")
        tb = parse_time(nb, f"{where}.not_before") if nb is not None else None
        ta = parse_time(na, f"{where}.not_after") if na is not None else None
        if tb is not None and ta is not None and ta < tb:
            raise TrustError(f"{where}: not_after is before not_before")
        keys.append(TrustedKey(role, v, tb, ta, str(e.get("comment", ""))))
    n_w = sum(1 for k in keys if k.role == "witness")
    q = obj.get("witness_quorum", n_w)
    if not isinstance(q, int) or isinstance(q, bool) or not 0 <= q <= n_w:
        raise TrustError(f"trust.json witness_quorum: must be an integer 0..{n_w}")
    if not any(k.role == "gateway" for k in keys):
        raise TrustError("trust.json: no gateway key")
    return Trust(tuple(keys), q)


def make_trust(keys: Sequence[TrustedKey], witness_quorum: int | None = None) -> Trust:
    n_w = sum(1 for k in keys if k.role == "witness")
    return Trust(tuple(keys), n_w if witness_quorum is None else witness_quorum)
