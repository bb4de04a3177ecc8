"""ISO 22400-2 OEE and its companions for one machine, and for a fleet from summed parts.

Formulas (times in seconds, quantities in units; a ratio with a zero denominator is ``None``):

- availability = APT / PBT (``include`` reading: offline time stays in PBT) or
  APT / PBT_covered with PBT_covered = PBT - offline (``exclude`` reading, the default of
  ``kpi.oee_offline``: the ISO 22400 times over the covered part of the planned busy window);
  coverage is reported beside it either way
- effectiveness = PRU x PQ / APT (PRU: ideal cycle time per unit); above 1 is flagged, not clipped;
  with a PRU by program or product (``ideal_cycle``, :class:`ProductMix`) the numerator is the
  sum over the count steps of PRU(program in force at the step) x the step's units; units made
  while the program is unknown have no PRU, are left out of the numerator and reported
- quality ratio = GQ / PQ
- OEE = availability x effectiveness x quality ratio
- setup rate = ASUT / AUPT with AUPT = APT + ASUT; technical efficiency = APT / (APT + ADET)
- scrap ratio = SQ / PQ; rework ratio = RQ / PQ
- MTBF = APT / (FE + 1); MTTR = ADET / FE (FE: failure events, i.e. ``down`` episodes; the
  FE failures split APT into FE + 1 running intervals, as ISO 22400-2 counts them)
- fleet: the same formulas on summed times and quantities; fleet effectiveness sums PRU x PQ
  per machine. The plain mean of the machines' OEE is reported beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from metrics.timemodel import TIME_FIELDS, MachineTimes

NS = 1e9
FORMULA_VERSION = 1


def ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


@dataclass(frozen=True)
class Quantities:
    """Quantities of a machine inside its planned busy window (OEE) and over the period."""

    pq: float  # produced quantity in the window
    gq: float
    sq: float
    rq: float
    pq_period: float  # over the whole period
    gq_period: float
    sq_period: float
    rq_period: float
    has_good: bool
    has_total: bool
    # no scrap counter, total and good counted: SQ = PQ - GQ - RQ (ISO 22400-2: PQ = GQ + SQ +
    # RQ); without a rework counter the nonconforming units are not split into scrap and rework
    scrap_derived: bool = False


@dataclass(frozen=True)
class ProductMix:
    """The units of a machine's planned busy window by program (ISO 22400 PRU per product).

    ``units``: program text -> units counted while it was in force; ``unknown``: units counted
    while the program was unknown (offline, a marker, an unknown text, or a program without a
    PRU in ``ideal_cycle.by``), which have no ideal time."""

    point: str
    pru: dict[str, float]
    units: dict[str, float]
    unknown: float

    @property
    def ideal_time_s(self) -> float:
        return sum(self.pru[p] * n for p, n in self.units.items())

    @property
    def known(self) -> float:
        return sum(self.units.values())

    @property
    def coverage(self) -> float | None:
        """Share of the counted units whose program (and so PRU) is known."""
        return ratio(self.known, self.known + self.unknown)

    def mean_pru(self) -> float:
        """Ideal time per counted unit (unknown ones included, at 0): PRU x PQ of the mix."""
        total = self.known + self.unknown
        if total > 0:
            return self.ideal_time_s / total
        return sum(self.pru.values()) / len(self.pru)

    def to_dict(self) -> dict[str, Any]:
        return {
            "point": self.point,
            "by_program": {
                p: {"units": n, "pru_s": pru, "ideal_s": pru * n}
                for p, pru in sorted(self.pru.items())
                for n in (self.units.get(p, 0.0),)
            },
            "unknown_units": self.unknown,
            "ideal_time_s": self.ideal_time_s,
            "coverage": self.coverage,
        }


def product_mix(
    point: str,
    pru: dict[str, float],
    programs: Sequence[str | None],
    units: Sequence[float],
) -> ProductMix:
    """The :class:`ProductMix` of count steps: ``programs[i]`` is the program in force at step
    ``i`` (``None``: unknown), ``units[i]`` its increment."""
    by: dict[str, float] = {}
    unknown = 0.0
    for prog, n in zip(programs, units, strict=True):
        if prog is None or prog not in pru:
            unknown += n
        else:
            by[prog] = by.get(prog, 0.0) + n
    return ProductMix(point, dict(pru), by, unknown)


@dataclass(frozen=True)
class MachineOee:
    device: str
    ideal_cycle_s: float | None
    times: MachineTimes
    qty: Quantities
    flags: tuple[str, ...] = field(default=())
    exclude_offline: bool = False
    mix: ProductMix | None = None  # PRU by program: ideal_cycle_s is then its mean_pru()

    @property
    def pbt_basis(self) -> float:
        """The availability denominator in ns: PBT, or PBT - offline when offline is excluded."""
        return (
            covered_pbt(self.times.pbt, self.times.offline)
            if self.exclude_offline
            else self.times.pbt
        )

    @property
    def ideal_time_s(self) -> float | None:
        """PRU x PQ, the time the produced quantity needs at the ideal rate (by program: the
        sum of PRU x units of each program)."""
        if self.mix is not None:
            return self.mix.ideal_time_s
        return None if self.ideal_cycle_s is None else self.ideal_cycle_s * self.qty.pq

    def availability(self) -> float | None:
        return ratio(self.times.apt, self.pbt_basis)

    def effectiveness(self) -> float | None:
        ideal = self.ideal_time_s
        return None if ideal is None else ratio(ideal, self.times.apt / NS)

    def quality(self) -> float | None:
        return ratio(self.qty.gq, self.qty.pq)

    def oee(self) -> float | None:
        return _product(self.availability(), self.effectiveness(), self.quality())

    def to_dict(self) -> dict[str, Any]:
        return details(
            self.device,
            [self.times],
            self.qty.pq,
            self.qty.gq,
            self.qty.sq,
            self.qty.rq,
            self.ideal_time_s,
            self.flags,
            exclude_offline=self.exclude_offline,
        ) | {
            "ideal_cycle_s": self.ideal_cycle_s,
            **({} if self.mix is None else {"product_mix": self.mix.to_dict()}),
        }


def covered_pbt(pbt: float, offline: float) -> float:
    """PBT minus the offline time (offline lies inside the window and outside planned_stop)."""
    return max(pbt - offline, 0)


def _product(*parts: float | None) -> float | None:
    out = 1.0
    for p in parts:
        if p is None:
            return None
        out *= p
    return out


def details(
    name: str,
    times: Sequence[MachineTimes],
    pq: float,
    gq: float,
    sq: float,
    rq: float,
    ideal_time_s: float | None,
    flags: Sequence[str],
    *,
    exclude_offline: bool = False,
) -> dict[str, Any]:
    """Every figure of the time model and its ratios, JSON-safe (seconds, units, fractions).

    ``exclude_offline``: availability over PBT_covered = PBT - offline (``times_s.pbt_covered``)."""
    t = {k: sum(getattr(m, k) for m in times) / NS for k in TIME_FIELDS}
    t["pbt_covered"] = covered_pbt(t["pbt"], t["offline"])
    fe = sum(m.failures for m in times)
    availability = ratio(t["apt"], t["pbt_covered"] if exclude_offline else t["pbt"])
    effectiveness = None if ideal_time_s is None else ratio(ideal_time_s, t["apt"])
    quality = ratio(gq, pq)
    return {
        "name": name,
        "times_s": t,
        "quantities": {"pq": pq, "gq": gq, "sq": sq, "rq": rq},
        "availability": availability,
        "effectiveness": effectiveness,
        "quality_ratio": quality,
        "oee": _product(availability, effectiveness, quality),
        "setup_rate": ratio(t["asut"], t["apt"] + t["asut"]),
        "technical_efficiency": ratio(t["apt"], t["apt"] + t["adet"]),
        "scrap_ratio": ratio(sq, pq),
        "rework_ratio": ratio(rq, pq),
        "failures": fe,
        "mtbf_s": t["apt"] / (fe + 1) if t["pbt"] > 0 else None,
        "mttr_s": ratio(t["adet"], fe),
        "coverage": ratio(t["window"] - t["offline"], t["window"]),
        "oee_offline": "exclude" if exclude_offline else "include",
        "flags": list(flags),
    }


def machine_flags(m: MachineOee) -> tuple[str, ...]:
    out: list[str] = []
    eff = m.effectiveness()
    if eff is not None and eff > 1:
        out.append(f"effectiveness {eff:.3f} > 1: check ideal_cycle_s of {m.device}")
    if m.ideal_cycle_s is None:
        out.append(f"{m.device}: no ideal_cycle_s, effectiveness and OEE not computable")
    if m.mix is not None and m.mix.unknown > 0:
        cov = m.mix.coverage or 0.0
        out.append(
            f"{m.device}: {m.mix.unknown:g} units counted while program {m.mix.point!r} was "
            f"unknown (offline, unknown text or no PRU in ideal_cycle.by): no ideal time, "
            f"effectiveness understated; PRU coverage {cov:.1%} of the units"
        )
    if m.times.offline > 0 and m.times.window > 0:
        cov = 1 - m.times.offline / m.times.window
        out.append(f"{m.device}: data coverage {cov:.1%} of the planned busy window")
        out.append(offline_note(m.device, m.times.offline, cov, m.exclude_offline))
    if m.times.unmapped:
        out.append(f"{m.device}: {m.times.unmapped} state samples with unmapped raw values")
    if m.qty.scrap_derived:
        out.append(
            f"{m.device}: scrap = total - good - rework (no scrap counter; without a rework "
            "counter scrap and rework are not told apart)"
        )
    outside = m.times.producing_total - m.times.apt
    if outside > 0:
        out.append(f"{m.device}: {outside / 3.6e12:.2f} h producing outside planned busy time")
    return tuple(out)


def offline_note(name: str, offline_ns: float, coverage: float, exclude: bool) -> str:
    """How the OEE treated the offline time: "offline X h excluded, coverage Y %"."""
    how = "excluded from PBT" if exclude else "included in PBT (counted as lost time)"
    return f"{name}: offline {offline_ns / 3.6e12:.2f} h {how}, coverage {coverage:.1%}"


@dataclass(frozen=True)
class FleetOee:
    machines: tuple[MachineOee, ...]
    exclude_offline: bool = False

    def summed(self) -> dict[str, Any]:
        """Fleet figures from summed times and quantities (machines without PRU excluded from
        effectiveness and OEE, listed in the flags)."""
        ms = self.machines
        with_pru = [m for m in ms if m.ideal_cycle_s is not None]
        flags = [f for m in ms for f in m.flags]
        d = details(
            "fleet",
            [m.times for m in ms],
            sum(m.qty.pq for m in ms),
            sum(m.qty.gq for m in ms),
            sum(m.qty.sq for m in ms),
            sum(m.qty.rq for m in ms),
            None,
            flags,
            exclude_offline=self.exclude_offline,
        )
        if with_pru and len(with_pru) == len(ms):
            ideal = sum(m.ideal_time_s or 0.0 for m in ms)
            d["effectiveness"] = ratio(ideal, d["times_s"]["apt"])
            d["oee"] = _product(d["availability"], d["effectiveness"], d["quality_ratio"])
        d["machines"] = len(ms)
        return d

    def mean_oee(self) -> float | None:
        vals = [m.oee() for m in self.machines]
        got = [v for v in vals if v is not None]
        return sum(got) / len(got) if got else None
