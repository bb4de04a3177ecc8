"""The gateway's (or a witness's) signing key on disk.

A key directory (mode 0700) holds ``signing.key`` (mode 0600: the C2SP signer key string
``PRIVATE+KEY+<name>+<id>+<base64>``), ``signing.pub`` (the verifier key string) and
``retired/<id>.pub`` for every key rotated out. Rotation generates a new key and records a
statement ``{"old": <verifier>, "new": <verifier>, "ts": ...}`` signed as a note by the old key
(and the new one) as a ``key_rotation`` ledger leaf; the old private key is deleted.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from metrics.evidence import canonical
from metrics.evidence.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    NoteError,
    Signer,
    Verifier,
    sign_note,
    verify_note,
)

KEY_FILE = "signing.key"
PUB_FILE = "signing.pub"


class KeyDirError(Exception):
    """A key directory that cannot be used (the message says why; never the key itself)."""


@dataclass(frozen=True)
class Rotation:
    old: Verifier
    new: Verifier
    statement: str  # signed note


def _check_private(path: Path) -> None:
    st = path.stat()
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyDirError(
            f"{path}: private key is readable by others (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"run chmod 600 {path}"
        )


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode("ascii") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def init_key(key_dir: Path, name: str, *, witness: bool = False) -> Signer:
    """Create a key directory with a new Ed25519 key (refuses to overwrite one)."""
    if (key_dir / KEY_FILE).exists():
        raise KeyDirError(f"{key_dir / KEY_FILE} exists already; use 'keys rotate' to replace it")
    key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(key_dir, 0o700)
    try:
        signer = Signer.generate(name, ALG_COSIGNATURE_V1 if witness else ALG_ED25519)
    except NoteError as exc:
        raise KeyDirError(str(exc)) from None
    _write_private(key_dir / KEY_FILE, str(signer))
    (key_dir / PUB_FILE).write_text(str(signer.verifier) + "\n", encoding="ascii")
    return signer


def load_key(key_dir: Path) -> Signer:
    path = key_dir / KEY_FILE
    if not path.exists():
        raise KeyDirError(f"no signing key in {key_dir}; run 'shopfloor keys init' first")
    dmode = stat.S_IMODE(key_dir.stat().st_mode)
    if dmode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyDirError(
            f"{key_dir}: key directory is open to others (mode {dmode:04o}); chmod 700"
        )
    _check_private(path)
    try:
        return Signer.parse(path.read_text(encoding="ascii"))
    except (NoteError, UnicodeDecodeError) as exc:
        raise KeyDirError(f"{path}: not a signer key ({exc})") from None


def load_public(key_dir: Path) -> Verifier:
    path = key_dir / PUB_FILE
    try:
        return Verifier.parse(path.read_text(encoding="ascii"))
    except FileNotFoundError:
        raise KeyDirError(f"no public key in {key_dir}") from None
    except (NoteError, UnicodeDecodeError) as exc:
        raise KeyDirError(f"{path}: not a verifier key ({exc})") from None


def retired(key_dir: Path) -> list[Verifier]:
    out = []
    for p in sorted((key_dir / "retired").glob("*.pub")):
        out.append(Verifier.parse(p.read_text(encoding="ascii")))
    return out


def rotation_statement(old: Signer, new: Signer, ts_ns: int) -> str:
    body = canonical.canonical_json(
        {
            "type": "shopfloor.key-rotation",
            "old": str(old.verifier),
            "new": str(new.verifier),
            "ts": ts_ns,
        }
    ).decode()
    return sign_note(body + "\n", [old, new])


def check_rotation(statement: str, old: Verifier) -> Verifier:
    """Verify a rotation statement signed by ``old``; return the new key it names."""
    note, _ = verify_note(statement, [old])
    obj = canonical.parse_canonical(note.text[:-1].encode(), "rotation statement")
    if not isinstance(obj, dict) or obj.get("old") != str(old):
        raise NoteError("rotation statement does not name the old key")
    return Verifier.parse(str(obj["new"]))


def rotate_key(key_dir: Path) -> Rotation:
    """Replace the key: the new key is written first, the old public key is kept in
    ``retired/``, the old private key is removed. Returns the signed rotation statement."""
    old = load_key(key_dir)
    new = Signer.generate(old.name, old.alg)
    statement = rotation_statement(old, new, time.time_ns())
    rdir = key_dir / "retired"
    rdir.mkdir(exist_ok=True, mode=0o700)
    (rdir / f"{old.verifier.key_hash}.pub").write_text(str(old.verifier) + "\n", encoding="ascii")
    (rdir / f"{old.verifier.key_hash}.rotation").write_text(statement, encoding="utf-8")
    _write_private(key_dir / KEY_FILE, str(new))
    (key_dir / PUB_FILE).write_text(str(new.verifier) + "\n", encoding="ascii")
    return Rotation(old.verifier, new.verifier, statement)
