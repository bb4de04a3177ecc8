"""Energy (tce) and CO2 (t) of metered carriers with the configured conversion factors.

综合能耗 = Σ carrier amount x conversion coefficient (GB/T 2589-2020), 1 tce = 1000 kgce.
碳排放 = electricity x grid factor + natural gas x its factor (steam bought in is not converted:
its emissions belong to the supplier's grid/boiler factor, which is not configured by default).
Every factor's id, value, unit, source and year goes into the output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from config.kpi import Factor, Factors

# meter role -> (carrier, unit)
CARRIER_ROLES: dict[str, tuple[str, str]] = {
    "energy_kwh": ("electricity", "kWh"),
    "gas_m3": ("natural_gas", "m3"),
    "steam_mj": ("steam", "MJ"),
    "steam_t": ("steam", "t"),
}


@dataclass(frozen=True)
class Carriers:
    electricity_kwh: float = 0.0
    gas_m3: float = 0.0
    steam_mj: float = 0.0
    steam_t: float = 0.0

    def add(self, role: str, amount: float) -> Carriers:
        field = {
            "energy_kwh": "electricity_kwh",
            "gas_m3": "gas_m3",
            "steam_mj": "steam_mj",
            "steam_t": "steam_t",
        }[role]
        values = {
            "electricity_kwh": self.electricity_kwh,
            "gas_m3": self.gas_m3,
            "steam_mj": self.steam_mj,
            "steam_t": self.steam_t,
        }
        values[field] += amount
        return Carriers(**values)


def factor_dict(f: Factor) -> dict[str, Any]:
    return {"id": f.id, "value": f.value, "unit": f.unit, "source": f.source, "year": f.year}


def energy_tce(c: Carriers, f: Factors) -> tuple[float, list[dict[str, Any]]]:
    """Total tce and each carrier's part with the factor used."""
    parts = [
        ("electricity", c.electricity_kwh, "kWh", f.electricity_kgce_per_kwh),
        ("natural_gas", c.gas_m3, "m3", f.gas_kgce_per_m3),
        ("steam", c.steam_mj, "MJ", f.steam_kgce_per_mj),
        ("steam", c.steam_t, "t", f.steam_kgce_per_t),
    ]
    out: list[dict[str, Any]] = []
    kgce = 0.0
    for carrier, amount, unit, factor in parts:
        if amount == 0:
            continue
        k = amount * factor.value
        kgce += k
        out.append(
            {
                "carrier": carrier,
                "amount": amount,
                "unit": unit,
                "kgce": k,
                "factor": factor_dict(factor),
            }
        )
    return kgce / 1000.0, out


def co2_t(c: Carriers, f: Factors) -> tuple[float, list[dict[str, Any]]]:
    parts = [
        ("electricity", c.electricity_kwh, "kWh", f.grid_co2_kg_per_kwh),
        ("natural_gas", c.gas_m3, "m3", f.gas_co2_kg_per_m3),
    ]
    out: list[dict[str, Any]] = []
    kg = 0.0
    for carrier, amount, unit, factor in parts:
        if amount == 0:
            continue
        k = amount * factor.value
        kg += k
        out.append(
            {
                "carrier": carrier,
                "amount": amount,
                "unit": unit,
                "kgco2": k,
                "factor": factor_dict(factor),
            }
        )
    return kg / 1000.0, out
