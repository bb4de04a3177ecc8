"""Small site files built in code for pure engine tests."""

from __future__ import annotations

from typing import Any

from config.models import SiteConfig

STATE_MAP = {"0": "producing", "1": "setup", "2": "idle", "3": "down", "4": "planned_stop"}


def machine(
    dev_id: str, *, ideal: float | None = 60.0, key: bool = True, **extra: Any
) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": dev_id,
        "name": dev_id,
        "key_equipment": key,
        "control": "cnc",
        "opcua": {"endpoint": "opc.tcp://127.0.0.1:4841"},
        "points": [
            {
                "id": "state",
                "role": "state",
                "opcua": {"node_id": f"ns=2;s={dev_id}.s"},
                "state_map": STATE_MAP,
            },
            {"id": "good", "role": "count_good", "opcua": {"node_id": f"ns=2;s={dev_id}.g"}},
            {"id": "scrap", "role": "count_scrap", "opcua": {"node_id": f"ns=2;s={dev_id}.x"}},
        ],
    }
    if ideal is not None:
        d["ideal_cycle_s"] = ideal
    d.update(extra)
    return d


def site(devices: list[dict[str, Any]], **sections: Any) -> SiteConfig:
    data: dict[str, Any] = {
        "version": 1,
        "site": {"id": "t", "name": "test", "timezone": sections.pop("tz", "UTC")},
        "devices": devices,
    }
    data.update(sections)
    return SiteConfig.model_validate(data)
