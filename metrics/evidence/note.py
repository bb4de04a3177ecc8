"""C2SP signed notes, tlog checkpoints and cosignatures with Ed25519 (pure).

* signed-note (https://c2sp.org/signed-note): a UTF-8 text ending in a newline, a blank line,
  then signature lines ``— <key name> <base64(key id || signature)>``. The key id of an
  Ed25519 key is the first 4 bytes of ``SHA-256(name || 0x0A || 0x01 || public key)``; verifier
  keys are written ``<name>+<hex key id>+<base64(0x01 || public key)>`` and signer keys
  ``PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || private seed)>``.
* tlog-checkpoint (https://c2sp.org/tlog-checkpoint): the text is ``<origin>\\n<size>\\n
  <base64 root>\\n`` plus optional extension lines; shopfloor adds ``time <unix seconds>``.
* tlog-cosignature (https://c2sp.org/tlog-cosignature): a witness signs
  ``cosignature/v1\\ntime <t>\\n`` + the checkpoint text with a key of type 0x04; the signature
  bytes are ``key id || u64 big-endian t || Ed25519 signature``.

Verification ignores signatures from unknown keys and rejects a note that no known key signs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
_DASH = "\u2014 "


class NoteError(ValueError):
    """A note, key or checkpoint that is malformed or does not verify."""


def b64decode_strict(text: str, what: str) -> bytes:
    """Standard base64 that must re-encode to exactly ``text`` (no slack bits, no junk)."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise NoteError(f"{what}: invalid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(f"{what}: non-canonical base64")
    return raw


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def check_key_name(name: str) -> str:
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise NoteError(f"key name {name!r}: must be non-empty, without spaces or '+'")
    return name


def key_id(name: str, alg: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([alg]) + public).digest()[:4]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Verifier:
    """A public key that checks note signatures (Ed25519, or a witness's cosignature key)."""

    name: str
    alg: int
    public: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.alg, self.public)

    @property
    def key_hash(self) -> str:
        return self.key_id.hex()

    def __str__(self) -> str:
        return f"{self.name}+{self.key_hash}+{b64(bytes([self.alg]) + self.public)}"

    @classmethod
    def parse(cls, text: str) -> Verifier:
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise NoteError("verifier key: expected <name>+<key id>+<base64 key>")
        name, hid, kb = parts
        check_key_name(name)
        raw = b64decode_strict(kb, "verifier key")
        if len(raw) != 33 or raw[0] not in (ALG_ED25519, ALG_COSIGNATURE_V1):
            raise NoteError("verifier key: not an Ed25519 (0x01) or cosignature/v1 (0x04) key")
        v = cls(name, raw[0], raw[1:])
        if v.key_hash != hid.lower() or len(hid) != 8:
            raise NoteError(f"verifier key: key id {hid} does not match the key")
        return v

    def _key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.public)

    def verify_raw(self, message: bytes, signature: bytes) -> bool:
        try:
            self._key().verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """An Ed25519 private key with its note name; ``alg`` 0x04 makes it a witness cosigner."""

    name: str
    seed: bytes
    alg: int = ALG_ED25519

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if len(self.seed) != 32:
            raise NoteError("an Ed25519 private key is 32 bytes")
        if self.alg not in (ALG_ED25519, ALG_COSIGNATURE_V1):
            raise NoteError(f"unknown key type 0x{self.alg:02x}")

    @classmethod
    def generate(cls, name: str, alg: int = ALG_ED25519) -> Signer:
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        key = Ed25519PrivateKey.generate()
        seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return cls(name, seed, alg)

    def _key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.alg, _raw_public(self._key().public_key()))

    @property
    def key_id(self) -> bytes:
        return self.verifier.key_id

    def sign_raw(self, message: bytes) -> bytes:
        return self._key().sign(message)

    def __str__(self) -> str:
        return (
            f"PRIVATE+KEY+{self.name}+{self.verifier.key_hash}+{b64(bytes([self.alg]) + self.seed)}"
        )

    def __repr__(self) -> str:  # never show the private key
        return f"Signer({self.name}+{self.verifier.key_hash})"

    @classmethod
    def parse(cls, text: str) -> Signer:
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise NoteError("signer key: expected PRIVATE+KEY+<name>+<key id>+<base64 key>")
        raw = b64decode_strict(parts[4], "signer key")
        if len(raw) != 33:
            raise NoteError("signer key: wrong length")
        s = cls(parts[2], raw[1:], raw[0])
        if s.verifier.key_hash != parts[3].lower():
            raise NoteError("signer key: key id does not match the key")
        return s


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_hash: int
    signature: bytes  # after the 4-byte key id

    def line(self) -> str:
        return f"{_DASH}{self.name} {b64(struct.pack('>I', self.key_hash) + self.signature)}\n"


@dataclass(frozen=True)
class Note:
    text: str
    signatures: tuple[NoteSignature, ...]

    def render(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    for c in text:
        if c != "\n" and (ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0):
            raise NoteError("note text has a control character")


def parse_note(data: str | bytes) -> Note:
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("note is not valid UTF-8") from None
    cut = data.rfind("\n\n")
    if cut < 0:
        raise NoteError("note has no blank line before its signatures")
    text, sigpart = data[: cut + 1], data[cut + 2 :]
    _check_text(text)
    if not sigpart.endswith("\n"):
        raise NoteError("signature block must end with a newline")
    sigs: list[NoteSignature] = []
    for i, line in enumerate(sigpart[:-1].split("\n")):
        if not line.startswith(_DASH):
            raise NoteError(f"signature line {i + 1}: does not start with '— '")
        fields = line[len(_DASH) :].split(" ")
        if len(fields) != 2:
            raise NoteError(f"signature line {i + 1}: expected '— <name> <signature>'")
        name = check_key_name(fields[0])
        raw = b64decode_strict(fields[1], f"signature line {i + 1}")
        if len(raw) < 5:
            raise NoteError(f"signature line {i + 1}: too short")
        sigs.append(NoteSignature(name, struct.unpack(">I", raw[:4])[0], raw[4:]))
    if not sigs:
        raise NoteError("note has no signature")
    return Note(text, tuple(sigs))


def sign_note(text: str, signers: Iterable[Signer]) -> str:
    _check_text(text)
    sigs = []
    for s in signers:
        if s.alg != ALG_ED25519:
            raise NoteError("sign plain notes with an Ed25519 (0x01) key; witnesses use cosign()")
        sigs.append(
            NoteSignature(s.name, int.from_bytes(s.key_id, "big"), s.sign_raw(text.encode()))
        )
    return Note(text, tuple(sigs)).render()


@dataclass(frozen=True)
class Verified:
    """A signature that a known key verified; ``timestamp`` for cosignatures."""

    verifier: Verifier
    timestamp: int | None = None


def verify_note(data: str | bytes, known: Sequence[Verifier]) -> tuple[Note, list[Verified]]:
    """Parse ``data`` and check every signature of a known key.

    Signatures by unknown keys are ignored. A signature by a known key (same name and key id)
    that fails is an error, and so is a note that no known key verified.
    """
    note = parse_note(data)
    by_id = {(v.name, int.from_bytes(v.key_id, "big")): v for v in known}
    ok: list[Verified] = []
    for sig in note.signatures:
        v = by_id.get((sig.name, sig.key_hash))
        if v is None:
            continue
        if v.alg == ALG_ED25519:
            if not v.verify_raw(note.text.encode(), sig.signature):
                raise NoteError(f"signature of {v.name} ({v.key_hash}) does not verify")
            ok.append(Verified(v))
        else:
            if len(sig.signature) != 8 + 64:
                raise NoteError(f"cosignature of {v.name}: wrong length")
            (t,) = struct.unpack(">Q", sig.signature[:8])
            msg = cosignature_message(note.text, t)
            if not v.verify_raw(msg, sig.signature[8:]):
                raise NoteError(f"cosignature of {v.name} ({v.key_hash}) does not verify")
            ok.append(Verified(v, t))
    if not ok:
        raise NoteError("no trusted key signed this note")
    return note, ok


def cosignature_message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode()


def cosign(note_data: str, witness: Signer, timestamp: int) -> str:
    """Add a cosignature/v1 line of ``witness`` to a signed note (returned whole)."""
    if witness.alg != ALG_COSIGNATURE_V1:
        raise NoteError("a witness cosigns with a cosignature/v1 (0x04) key")
    note = parse_note(note_data)
    sig = struct.pack(">Q", timestamp) + witness.sign_raw(cosignature_message(note.text, timestamp))
    kept = tuple(
        s
        for s in note.signatures
        if not (s.name == witness.name and s.key_hash == int.from_bytes(witness.key_id, "big"))
    )
    line = NoteSignature(witness.name, int.from_bytes(witness.key_id, "big"), sig)
    return Note(note.text, (*kept, line)).render()


def merge_signatures(base: str, other: str) -> str:
    """The note ``base`` with the signature lines of ``other`` it lacks (same text required)."""
    a, b = parse_note(base), parse_note(other)
    if a.text != b.text:
        raise NoteError("cannot merge signatures of two different notes")
    seen = {(s.name, s.key_hash) for s in a.signatures}
    extra = tuple(s for s in b.signatures if (s.name, s.key_hash) not in seen)
    return Note(a.text, a.signatures + extra).render()


# --- checkpoints ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [self.origin, str(self.size), b64(self.root), *self.extensions]
        return "\n".join(lines) + "\n"

    @property
    def time(self) -> int | None:
        """The ``time <unix seconds>`` extension line shopfloor adds, when present."""
        for e in self.extensions:
            if e.startswith("time "):
                try:
                    return int(e[5:])
                except ValueError:
                    return None
        return None

    @classmethod
    def parse_text(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("checkpoint: needs origin, size and root hash lines")
        origin, size_s, root_s, *ext = lines[:-1]
        if not origin:
            raise NoteError("checkpoint: empty origin")
        if not size_s.isdigit() or (size_s.startswith("0") and size_s != "0"):
            raise NoteError(f"checkpoint: tree size {size_s!r} is not a decimal number")
        root = b64decode_strict(root_s, "checkpoint root hash")
        if len(root) != 32:
            raise NoteError("checkpoint: root hash is not 32 bytes")
        if any(not e for e in ext):
            raise NoteError("checkpoint: empty extension line")
        return cls(origin, int(size_s), root, tuple(ext))


def sign_checkpoint(cp: Checkpoint, signer: Signer) -> str:
    return sign_note(cp.text(), [signer])


def open_checkpoint(
    data: str | bytes, known: Sequence[Verifier]
) -> tuple[Checkpoint, Note, list[Verified]]:
    note, ok = verify_note(data, known)
    return Checkpoint.parse_text(note.text), note, ok


def encode_proof(kind: str, size1: int, size2: int, hashes: Sequence[bytes]) -> str:
    """Text form of a proof for files: ``<kind> <size1> <size2>`` then one base64 hash a line."""
    return f"{kind} {size1} {size2}\n" + "".join(b64(h) + "\n" for h in hashes)


def decode_proof(text: str, kind: str) -> tuple[int, int, list[bytes]]:
    lines = text.split("\n")
    if not lines or lines[-1] != "":
        raise NoteError(f"{kind} proof: must end with a newline")
    head = lines[0].split(" ")
    if len(head) != 3 or head[0] != kind or not head[1].isdigit() or not head[2].isdigit():
        raise NoteError(f"{kind} proof: first line must be '{kind} <size1> <size2>'")
    hashes = [b64decode_strict(x, f"{kind} proof line {i + 2}") for i, x in enumerate(lines[1:-1])]
    if any(len(h) != 32 for h in hashes):
        raise NoteError(f"{kind} proof: a hash is not 32 bytes")
    return int(head[1]), int(head[2]), hashes
