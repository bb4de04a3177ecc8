"""The group table: the sites' machines summed into one fleet (pure functions).

Each site's KPI engine result lists its key machines with their ISO 22400 times (seconds) and
quantities. The group row is ``metrics.oee.FleetOee`` over every machine of every site: times
and quantities are summed (PBT, APT, offline, PRU x PQ per machine, PQ, GQ ...) and the ratios
are taken of the sums, never as a mean of the sites' or machines' percentages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from metrics.oee import NS, FleetOee, MachineOee, Quantities
from metrics.timemodel import TIME_FIELDS, MachineTimes


def _num(x: Any) -> float:
    return float(x) if isinstance(x, int | float) else 0.0


def machine_of(site_id: str, m: Mapping[str, Any]) -> MachineOee:
    """A machine of a site's period result (``PeriodResult.machines`` item) back as the
    engine's :class:`MachineOee` (times in ns), named ``site/device``."""
    t = m["times_s"]
    times = MachineTimes(
        **{k: round(_num(t.get(k)) * NS) for k in TIME_FIELDS},
        failures=int(_num(m.get("failures"))),
        unmapped=0,
        bad=0,
        samples=0,
    )
    q = m["quantities"]
    pq, gq, sq, rq = (_num(q.get(k)) for k in ("pq", "gq", "sq", "rq"))
    qty = Quantities(pq, gq, sq, rq, pq, gq, sq, rq, True, True)
    ideal = m.get("ideal_cycle_s")
    return MachineOee(
        f"{site_id}/{m['name']}",
        float(ideal) if isinstance(ideal, int | float) else None,
        times,
        qty,
        tuple(str(f) for f in m.get("flags", ())),
        m.get("oee_offline") == "exclude",
    )


def group_fleet(
    results: Sequence[tuple[str, Mapping[str, Any]]], exclude_offline: bool
) -> dict[str, Any]:
    """The group row over ``(site id, period result as a dict)``: ``FleetOee.summed()`` of every
    site's machines (times, quantities, ratios of the sums, ``machines``, ``sites``), and
    beside it, for comparison only, the plain mean of the machines' OEE."""
    machines = tuple(
        machine_of(site_id, m) for site_id, result in results for m in result.get("machines", ())
    )
    fleet = FleetOee(machines, exclude_offline)
    out = fleet.summed()
    out["name"] = "group"
    out["sites"] = len(results)
    out["ideal_time_s"] = (
        sum(m.ideal_time_s or 0.0 for m in machines)
        if machines and all(m.ideal_cycle_s is not None for m in machines)
        else None
    )
    out["mean_of_machines_oee"] = fleet.mean_oee()
    return out


def site_row(site_id: str, name: str, result: Mapping[str, Any]) -> dict[str, Any]:
    """One site's summed figures (the engine's own fleet row of that site)."""
    fleet = dict(result.get("fleet") or {})
    machines = [machine_of(site_id, m) for m in result.get("machines", ())]
    fleet["ideal_time_s"] = (
        sum(m.ideal_time_s or 0.0 for m in machines)
        if machines and all(m.ideal_cycle_s is not None for m in machines)
        else None
    )
    return {**fleet, "site": site_id, "name": name}
