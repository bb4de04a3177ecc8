"""A minimal, fast Modbus TCP server for benchmarks (function codes 3 and 4 only).

Every unit 1..``units`` holds ``registers`` holding/input registers whose value is their
address (mod 65536); any other read answers exception 2 (illegal data address), another
function code exception 1. Answers are slices of prebuilt bytes, so one core serves far more
requests per second than the pymodbus simulator: what a benchmark measures is then the
gateway, not the simulator. Serves one listening port per ``--ports`` entry until killed.

    .venv/bin/python bench/fast_modbus_server.py --ports 5020 5021 --units 10 --registers 1000
"""

from __future__ import annotations

import argparse
import asyncio
import struct
from typing import Any

_HEAD = struct.Struct(">HHHBBHH")  # transaction, protocol, length, unit, function, address, count
_REPLY = struct.Struct(">HHHBBB")  # transaction, protocol, length, unit, function, byte count
_EXC = struct.Struct(">HHHBBB")  # transaction, protocol, length (3), unit, function|0x80, code


class _Server(asyncio.Protocol):
    def __init__(self, image: bytes, units: int) -> None:
        self.image = image
        self.units = units
        self.buf = b""
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        out: list[bytes] = []
        at = 0
        n = len(buf)
        image = self.image
        while n - at >= 12:
            tid, pid, length, unit, fc, addr, count = _HEAD.unpack_from(buf, at)
            at += 6 + length
            if fc not in (3, 4):
                out.append(_EXC.pack(tid, pid, 3, unit, fc | 0x80, 1))
            elif (
                not 1 <= unit <= self.units
                or count < 1
                or count > 125
                or 2 * (addr + count) > len(image)
            ):
                out.append(_EXC.pack(tid, pid, 3, unit, fc | 0x80, 2))
            else:
                out.append(_REPLY.pack(tid, pid, 3 + 2 * count, unit, fc, 2 * count))
                out.append(image[2 * addr : 2 * (addr + count)])
        self.buf = buf[at:]
        if out:
            self.transport.write(b"".join(out))


async def serve(ports: list[int], units: int, registers: int, ready: Any = None) -> None:
    image = b"".join(struct.pack(">H", a & 0xFFFF) for a in range(registers))
    loop = asyncio.get_running_loop()
    servers = [
        await loop.create_server(lambda: _Server(image, units), "127.0.0.1", p) for p in ports
    ]
    if ready is not None:
        ready.send("ready")
        ready.close()
    try:
        await asyncio.Event().wait()
    finally:
        for s in servers:
            s.close()


def run(ports: list[int], units: int, registers: int, ready: Any = None) -> None:
    asyncio.run(serve(ports, units, registers, ready))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ports", type=int, nargs="+", default=[5020])
    ap.add_argument("--units", type=int, default=10)
    ap.add_argument("--registers", type=int, default=1000)
    a = ap.parse_args()
    run(a.ports, a.units, a.registers)
