"""Arguments of ``shopfloor kpi`` and ``shopfloor import`` (the commands are :mod:`edge.cli.kpi`).

Kept apart so that building the parser does not import the KPI engine (numpy), the store and
the config models: :mod:`edge.cli.kpi` loads only when one of its commands runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from edge.cli.lazy import handler


def register(sub: Any) -> None:
    p = sub.add_parser(
        "kpi",
        help="the form's before/after KPI table (建设前 / 建成后), one period, per-machine "
        "figures, tiers, declared import",
    )
    p.add_argument("-c", "--config", help="site file")
    p.add_argument("--period", help="one period FROM..TO (no baseline): every KPI of it")
    p.add_argument(
        "--machines",
        action="store_true",
        help="per-machine figures of --period (availability ... OEE, times, MTBF/MTTR, coverage)",
    )
    p.add_argument(
        "--machine",
        action="append",
        metavar="ID",
        help="only this machine (repeatable; implies --machines)",
    )
    p.add_argument("--baseline", help="建设前 period FROM..TO (dates inclusive)")
    p.add_argument("--current", help="建成后 period FROM..TO (dates inclusive)")
    p.add_argument("--lang", choices=("zh", "en"), default="zh")
    p.add_argument("--csv", help="write the table as CSV")
    p.add_argument("--xlsx", help="write the table as XLSX")
    p.add_argument("--json", action="store_true", help="print the full table as JSON")
    p.add_argument("--notes", action="store_true", help="show the notes column")
    p.add_argument(
        "--baseline-imported",
        action="store_true",
        help="deprecated, ignored: provenance comes from the recorded batches",
    )
    p.add_argument(
        "--current-imported",
        action="store_true",
        help="deprecated, ignored: provenance comes from the recorded batches",
    )
    p.add_argument("--declared", action="append", help="CSV/XLSX of declared figures (repeatable)")
    p.set_defaults(func=handler("edge.cli.kpi:table_cmd"))
    ksub = p.add_subparsers(dest="kpi_command", metavar="ACTION")
    ksub.required = False
    t = ksub.add_parser("tiers", help="tier check: maturity, sections, AI scenario ratio")
    t.add_argument("-c", "--config", dest="config", default=argparse.SUPPRESS, required=True)
    t.add_argument("--at", help="count scenarios built by this date (default: all)")
    t.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    t.set_defaults(func=handler("edge.cli.kpi:tiers_cmd"))
    i = ksub.add_parser("import", help="validate a CSV/XLSX of declared figures")
    i.add_argument("file")
    i.add_argument("-c", "--config", dest="config", default=argparse.SUPPRESS)
    i.set_defaults(func=handler("edge.cli.kpi:import_declared_cmd"))

    imp = sub.add_parser("import", help="import historical data into the store")
    isub = imp.add_subparsers(dest="import_command", metavar="KIND")
    isub.required = True
    m = isub.add_parser("meters", help="CSV of device,point,ts,value (source import:<device>)")
    m.add_argument("file")
    m.add_argument("-c", "--config", required=True)
    m.add_argument(
        "--end",
        help="end of the file's range (date or datetime, exclusive; default: 1 ns after the "
        "file's latest timestamp): every imported point is unknown from then on",
    )
    m.set_defaults(func=handler("edge.cli.kpi:import_meters_cmd"))
