"""``shopfloor probe modbus HOST:PORT --unit U --address A --count N [--table ...]``.

Reads a block of registers and prints them decoded as every type in all four byte/word orders,
so an engineer can see which reading is right before writing the site file. A Modbus
exception, a timeout or a refused connection gets a clear message and exit code 1.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _probe_modbus(args: argparse.Namespace) -> int:
    # imported here: registering the command must not load pymodbus for every other command
    import asyncio

    from connectors.modbus.probe import ProbeError, Target, read_block, render, render_bits

    try:
        target = Target.parse(args.target)
        data = asyncio.run(
            read_block(
                target,
                unit=args.unit,
                table=args.table,
                address=args.address,
                count=args.count,
                timeout_s=args.timeout,
                baudrate=args.baudrate,
                parity=args.parity,
            )
        )
    except ProbeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"Modbus {target} unit {args.unit} {args.table} address {args.address} count {args.count}"
    )
    if args.table in ("coil", "discrete"):
        print(render_bits([bool(b) for b in data], args.address))
    else:
        print(render([int(r) for r in data], args.address))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("probe", help="read a device directly to find the right point settings")
    psub = p.add_subparsers(dest="probe_command", metavar="PROTOCOL")
    psub.required = True
    m = psub.add_parser(
        "modbus",
        help="read registers and show them as every type in every byte/word order",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    m.add_argument("target", help="HOST:PORT (Modbus TCP) or a serial port such as /dev/ttyUSB0")
    m.add_argument("--unit", type=int, default=1, help="unit (slave) id, default 1")
    m.add_argument("--address", type=int, required=True, help="0-based first register or bit")
    m.add_argument("--count", type=int, default=4, help="registers (or bits) to read, default 4")
    m.add_argument(
        "--table",
        choices=("holding", "input", "coil", "discrete"),
        default="holding",
        help="holding (FC3, default), input (FC4), coil (FC1), discrete (FC2)",
    )
    m.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the answer")
    m.add_argument("--baudrate", type=int, default=9600, help="RTU only")
    m.add_argument("--parity", choices=("N", "E", "O"), default="N", help="RTU only")
    m.set_defaults(func=_probe_modbus)
