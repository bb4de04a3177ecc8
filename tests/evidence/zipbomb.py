"""Zip bombs for the size limits: a deflate stream of zeros that inflates ~1000:1, built from
one compressed chunk repeated (full flushes make the chunks independent), so making a 1 GiB
member costs compressing 32 MiB, not 1 GiB."""

from __future__ import annotations

import functools
import struct
import zlib

from metrics.evidence import bundle

CHUNK = 16 << 20


@functools.cache
def zeros_deflate(size: int) -> bytes:
    """Raw deflate stream of ``size`` zero bytes (``size`` a multiple of 16 MiB)."""
    assert size % CHUNK == 0
    assert size >= 2 * CHUNK
    z = b"\0" * CHUNK
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = comp.compress(z) + comp.flush(zlib.Z_FULL_FLUSH)
    steady = comp.compress(z) + comp.flush(zlib.Z_FULL_FLUSH)
    again = comp.compress(z) + comp.flush(zlib.Z_FULL_FLUSH)
    assert steady == again  # after a full flush every chunk compresses to the same bytes
    last = comp.compress(z) + comp.flush(zlib.Z_FINISH)
    n = size // CHUNK
    return first + steady * (n - 2) + last


def zip_raw(members: list[tuple[str, bytes, int, int]]) -> bytes:
    """A zip of ``(name, raw deflate bytes, declared uncompressed size, crc32)`` members."""
    out = bytearray()
    central = bytearray()
    for name, data, size, crc in members:
        nb = name.encode()
        off = len(out)
        out += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), size, len(nb), 0
        )
        out += nb + data
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            0,
            8,
            0,
            0x21,
            crc,
            len(data),
            size,
            len(nb),
            0,
            0,
            0,
            0,
            0,
            off,
        )
        central += nb
    cd_off = len(out)
    out += central
    out += struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), cd_off, 0
    )
    return bytes(out)


def small(name: str) -> tuple[str, bytes, int, int]:
    data = b"x"
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    return name, comp.compress(data) + comp.flush(), len(data), zlib.crc32(data)


def bomb(size: int = 1 << 30, *, declared: int | None = None) -> bytes:
    """A bundle-shaped zip whose ``log/samples.bin`` inflates to ``size`` zero bytes; its
    headers declare ``declared`` bytes (default: the truth)."""
    members = [small(n) for n in bundle.FILES if n != bundle.SAMPLES]
    members.append((bundle.SAMPLES, zeros_deflate(size), size if declared is None else declared, 0))
    return zip_raw(members)
