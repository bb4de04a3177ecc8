"""Request and response models of the REST API (kept apart from the domain types)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RANGE_PATTERN = r"^[0-9T:+\-. ]{10,40}\.\.[0-9T:+\-. ]{10,40}$"


class Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class ErrorOut(Out):
    detail: str


class SiteOut(Out):
    id: str
    name: str
    enterprise: str | None
    timezone: str
    devices: int
    points: int
    storage: str


class HealthOut(Out):
    connected: bool
    last_good_ts: int | None = Field(description="ns UTC of the last good sample")
    last_sample_ts: int | None
    samples: int
    errors: dict[str, int]
    restarts: int
    drops: int
    updated_ts: int
    outbox_backlog: int | None = Field(description="batches waiting for InfluxDB, when known")
    stale: bool = Field(description="no health record for 3 health intervals")


class PointOut(Out):
    id: str
    name: str | None
    role: str
    unit: str | None
    datatype: str


class DeviceOut(Out):
    id: str
    name: str
    line: str | None
    protocol: str
    key_equipment: bool
    control: str
    rated_power_kw: float | None
    ideal_cycle_s: float | None
    points: list[PointOut]
    health: HealthOut | None


class SampleOut(Out):
    device: str
    point: str
    ts: int = Field(description="ns UTC")
    time: str = Field(description="ISO 8601 UTC")
    value: float | None = Field(description="null for a bad reading (NaN)")
    quality: Literal["good", "uncertain", "bad"]
    status: str
    state: str | None = Field(default=None, description="machine state for role 'state' points")
    text: str | None = Field(
        default=None, description="the text of a datatype text point's code (its enum)"
    )


class HistoryOut(Out):
    device: str
    point: str
    start: int
    end: int
    bucket_ns: int
    t: list[int] = Field(description="start of each bucket, ns UTC")
    count: list[int]
    bad: list[int]
    min: list[float | None]
    max: list[float | None]
    mean: list[float | None]
    last: list[float | None]
    prior: float | None = Field(
        default=None, description="the value in force at start (last sample before it)"
    )


class PeriodOut(Out):
    label: str
    start: int
    end: int
    result: dict[str, Any]


class MachinesOut(Out):
    """Per-machine figures of one period (``metrics.machine_table.view``): each figure with
    its value (percent, hours, units), text, coverage and, when it has no value, the reason."""

    label: str
    start: int
    end: int
    timezone: str
    oee_offline: str
    data_horizon_ns: int | None
    machines: list[dict[str, Any]]
    fleet: dict[str, Any]
    fleet_mean_oee: float | None


class TableOut(Out):
    baseline: str
    current: str
    table: dict[str, Any]


class ExportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    baseline: str = Field(pattern=RANGE_PATTERN, examples=["2025-01-01..2025-12-31"])
    current: str = Field(pattern=RANGE_PATTERN, examples=["2026-01-01..2026-12-31"])


class VerifyOut(Out):
    ok: bool = Field(description="integrity holds (plausibility findings may remain)")
    verdict: str = Field(
        description="passed (no finding) | findings (integrity holds, findings to review) | "
        "failed (integrity fails)"
    )
    findings: int = Field(description="plausibility findings for the reviewer")
    filename: str
    size: int
    trust: str = Field(description="where the trusted keys came from")
    report: dict[str, Any]


class MeOut(Out):
    username: str
    role: str
    via: str
    csrf_token: str | None


class UserOut(Out):
    username: str
    role: str
    disabled: bool


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-@]+$")
    role: Literal["viewer", "engineer", "applicant", "admin"]
    password: str = Field(min_length=8, max_length=1024)


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-@]+$")
    name: str = Field(min_length=1, max_length=100)
    ttl_days: float | None = Field(default=None, gt=0, le=3650)


class TokenOut(Out):
    id: int
    name: str
    username: str
    created_ts: int
    expires_ts: int | None


class TokenCreated(Out):
    id: int
    name: str
    username: str
    token: str = Field(description="shown once; only its SHA-256 is stored")


class ReadyOut(Out):
    ready: bool
    checks: dict[str, str]
