"""KPI engine settings: formula variants and conversion factors (all recorded in snapshots)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from config.base import Frozen


class Factor(Frozen):
    value: float = Field(gt=0)
    unit: str
    source: str
    year: int | None = None
    id: str = Field(description="stable id; the year is part of it, e.g. grid_co2_cn_2023")


def _f(fid: str, value: float, unit: str, source: str, year: int | None = None) -> Factor:
    return Factor(id=fid, value=value, unit=unit, source=source, year=year)


class Factors(Frozen):
    electricity_kgce_per_kwh: Factor = _f(
        "elec_kgce_gbt2589_2020", 0.1229, "kgce/kWh", "GB/T 2589-2020 Table A (当量值)", 2020
    )
    gas_kgce_per_m3: Factor = _f(
        "gas_kgce_gbt2589_2020", 1.2143, "kgce/m3", "GB/T 2589-2020 (range 1.1000-1.3300)", 2020
    )
    steam_kgce_per_mj: Factor = _f(
        "steam_kgce_mj_gbt2589_2020", 0.03412, "kgce/MJ", "GB/T 2589-2020 (by enthalpy)", 2020
    )
    steam_kgce_per_t: Factor = _f(
        "steam_kgce_t_legacy", 128.6, "kgce/t", "legacy low-pressure steam 0.1286 kgce/kg", None
    )
    grid_co2_kg_per_kwh: Factor = _f(
        "grid_co2_cn_2023", 0.5306, "kgCO2/kWh", "MEE/NBS 2023 national average", 2023
    )
    gas_co2_kg_per_m3: Factor = _f(
        "gas_co2_ipcc_2006", 2.162, "kgCO2/m3", "IPCC 2006 / GB/T 32150 default", 2006
    )


class KpiSettings(Frozen):
    network_min_coverage: float = Field(default=0.9, gt=0, le=1)
    defect_rate_includes_rework: bool = True
    apc_rate_basis: Literal["time", "count"] = "time"
    apc_in_use_min_share: float = Field(
        default=0.5, gt=0, le=1, description="count basis: a loop is in use above this share"
    )
    labour_productivity_basis: Literal["value_added", "output_value"] = "value_added"
    operating_cost_basis: Literal["absolute", "per_output_value"] = "absolute"
    output_value_source: Literal["auto", "declared", "measured"] = Field(
        default="auto",
        description="auto: the declared figure when one covers the period, else good counts x "
        "unit_price_wan",
    )
    quality_devices: tuple[str, ...] | None = Field(
        default=None,
        description="devices whose counters give the defect rate (e.g. the final inspection); "
        "absent = every device with quality counters",
    )
    stale_after_s: float | None = Field(
        default=None,
        gt=0,
        description="a value older than this counts as no data (offline); absent = 3 x the "
        "point's heartbeat",
    )
    oee_offline: Literal["exclude", "include"] = Field(
        default="exclude",
        description="exclude: OEE times over the covered part of the planned busy window "
        "(availability = APT / (PBT - offline)), coverage reported beside it; include: offline "
        "time stays in PBT (counted as lost time)",
    )
    max_hold_s: float | None = Field(
        default=86400.0,
        gt=0,
        description="a subscribed state value holds at most this long (wall time) without a new "
        "sample or a link_lost marker; after that the machine is offline; absent = no limit",
    )
    factors: Factors = Factors()
