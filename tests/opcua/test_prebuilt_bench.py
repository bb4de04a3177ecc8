"""The OPC UA bench server's prebuilt notifications (bench/bench_opcua.py, ``PrebuiltRound``)
decode, with asyncua's own decoder, to one change per item with the round's values and
timestamps."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import extensionobject_from_binary

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_opcua


def test_a_prebuilt_round_decodes_to_the_rounds_values() -> None:
    handles = [7, 8, 42]
    pre = bench_opcua.PrebuiltRound(handles)
    at = dt.datetime(2026, 12, 4, 20, 0, 0, 123456, tzinfo=dt.UTC)
    pre.fill(9, at)
    notif = extensionobject_from_binary(Buffer(pre.notification().wire))
    assert isinstance(notif, ua.DataChangeNotification)
    got = [
        (
            m.ClientHandle,
            m.Value.Value.Value,
            m.Value.Value.VariantType,
            m.Value.SourceTimestamp,
            m.Value.ServerTimestamp,
        )
        for m in notif.MonitoredItems
    ]
    assert got == [
        (7, 9.0, ua.VariantType.Double, at, at),
        (8, 9.001, ua.VariantType.Double, at, at),
        (42, 9.002, ua.VariantType.Double, at, at),
    ]
