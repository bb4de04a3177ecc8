"""DSSE envelopes (https://github.com/secure-systems-lab/dsse) signed with Ed25519 (pure).

The signature covers ``PAE(payloadType, payload)`` =
``"DSSEv1" SP LEN(type) SP type SP LEN(payload) SP payload``. The envelope is written as
RFC 8785 JSON ``{"payload": b64, "payloadType": T, "signatures": [{"keyid": K, "sig": b64}]}``
where ``keyid`` is the note key name and key id, ``<name>+<8 hex>``.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import rfc8785

from metrics.evidence.canonical import CanonicalError, parse_canonical
from metrics.evidence.note import NoteError, Signer, Verifier, b64decode_strict

SNAPSHOT_TYPE = "application/vnd.shopfloor.kpi-snapshot.v1+json"


class DsseError(ValueError):
    """An envelope that is malformed, of the wrong type, or not signed by a trusted key."""


def pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def keyid_of(v: Verifier) -> str:
    return f"{v.name}+{v.key_hash}"


def sign_envelope(payload: bytes, payload_type: str, signers: Sequence[Signer]) -> bytes:
    sigs = [
        {
            "keyid": keyid_of(s.verifier),
            "sig": base64.b64encode(s.sign_raw(pae(payload_type, payload))).decode(),
        }
        for s in signers
    ]
    env: dict[str, Any] = {
        "payload": base64.b64encode(payload).decode(),
        "payloadType": payload_type,
        "signatures": sigs,
    }
    return rfc8785.dumps(env)


@dataclass(frozen=True)
class OpenedEnvelope:
    payload: bytes
    payload_type: str
    signed_by: tuple[Verifier, ...]


def open_envelope(
    data: bytes, trusted: Sequence[Verifier], expected_type: str = SNAPSHOT_TYPE
) -> OpenedEnvelope:
    """Check the envelope: canonical JSON, payload type, and at least one trusted signature.

    Signatures whose keyid names no trusted key are ignored; a trusted key's signature that
    does not verify is an error; so is an envelope no trusted key signed.
    """
    try:
        env: Any = parse_canonical(data, "DSSE envelope")
    except CanonicalError as exc:
        raise DsseError(str(exc)) from None
    if not isinstance(env, dict) or set(env) != {"payload", "payloadType", "signatures"}:
        raise DsseError("DSSE envelope: needs exactly payload, payloadType and signatures")
    ptype, sigs = env["payloadType"], env["signatures"]
    if ptype != expected_type:
        raise DsseError(f"DSSE envelope: payload type {ptype!r}, expected {expected_type!r}")
    if not isinstance(env["payload"], str) or not isinstance(sigs, list) or not sigs:
        raise DsseError("DSSE envelope: payload must be base64 text and signatures a list")
    try:
        payload = b64decode_strict(env["payload"], "DSSE payload")
    except NoteError as exc:
        raise DsseError(str(exc)) from None
    message = pae(ptype, payload)
    by_id = {keyid_of(v): v for v in trusted}
    ok: list[Verifier] = []
    for i, sig in enumerate(sigs):
        if not isinstance(sig, dict) or set(sig) != {"keyid", "sig"}:
            raise DsseError(f"DSSE signature {i}: needs exactly keyid and sig")
        v = by_id.get(sig["keyid"]) if isinstance(sig["keyid"], str) else None
        if v is None:
            continue
        try:
            raw = b64decode_strict(str(sig["sig"]), f"DSSE signature {i}")
        except NoteError as exc:
            raise DsseError(str(exc)) from None
        if not v.verify_raw(message, raw):
            raise DsseError(f"DSSE signature of {sig['keyid']} does not verify")
        ok.append(v)
    if not ok:
        raise DsseError("DSSE envelope: no trusted key signed it")
    return OpenedEnvelope(payload, ptype, tuple(ok))
