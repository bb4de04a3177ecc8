"""Where samples are stored: the embedded SQLite store (default) or InfluxDB."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from config.base import Frozen, Identifier, SecretRef


class InfluxRetention(Frozen):
    """How long InfluxDB keeps the samples: checked (and on 1.x created) when the store starts,
    never silently assumed."""

    duration: str = Field(
        pattern=r"^(INF|[1-9][0-9]*[hdw])$",
        description="how long samples are kept: e.g. 400d, 52w, 8760h, or INF (forever)",
    )
    shard_duration: str | None = Field(
        default=None,
        pattern=r"^[1-9][0-9]*[hdw]$",
        description="1.x: shard group duration of a created policy (InfluxDB chooses when unset)",
    )
    create: bool = Field(
        default=True,
        description="1.x: create the retention policy (retention_policy, or 'shopfloor' when "
        "unset, made the default) when the database has none of that name",
    )
    strict: bool = Field(
        default=False,
        description="a mismatch stops sending (rows kept in the outbox, an error in health) "
        "instead of one warning line",
    )


class SqliteStorage(Frozen):
    kind: Literal["sqlite"] = "sqlite"
    path: Path = Field(default=Path("data/shopfloor.db"), description="relative to the site file")
    synchronous: Literal["full", "normal"] = Field(
        default="full",
        description="full: an acknowledged batch survives power loss (fsync per commit); "
        "normal: survives a crash or kill -9, may lose the last commits on power loss",
    )
    raw_retention_days: float | None = Field(
        default=None,
        gt=0,
        description="days raw samples stay in the store; older ones are removed once the "
        "evidence ledger holds their batches (per-minute aggregates stay); unset: keep all",
    )


class InfluxStorage(Frozen):
    kind: Literal["influxdb"] = "influxdb"
    url: str = Field(pattern=r"^https?://")
    api: Literal["v1", "v2"] = "v1"
    database: str | None = Field(default=None, description="v1: database (or DBRP mapping)")
    retention_policy: str | None = None
    username: str | None = None
    password: SecretRef | None = None
    token: SecretRef | None = Field(default=None, description="v2 token, or v1-compat token")
    org: str | None = None
    bucket: str | None = None
    ca_file: Path | None = None
    verify_tls: bool = True
    measurement: str = Field(default="samples", pattern=r"^[A-Za-z0-9_.\-]+$")
    gateway: Identifier | None = Field(
        default=None,
        description="gateway tag of every point (default: the site id); give each gateway of "
        "one site its own when several write one database or bucket",
    )
    read_untagged: bool = Field(
        default=True,
        description="reads also return points without a site tag (written before the tag "
        "existed, so an upgraded gateway keeps its history); false: only this site's tagged "
        "points (see docs/influxdb.md, migration)",
    )
    retention: InfluxRetention | None = Field(
        default=None,
        description="the retention InfluxDB must apply; unset: it is only read and logged",
    )
    v2_reads: Literal["flux", "influxql"] = Field(
        default="flux",
        description="v2 API reads: Flux (2.x) or InfluxQL on /query (3.x; 2.x with DBRP mapping)",
    )
    timeout_s: float = Field(default=10.0, gt=0)
    outbox_path: Path = Field(default=Path("data/outbox.db"), description="durable local outbox")
    outbox_max_samples: int = Field(default=5_000_000, ge=1000)
    outbox_drop: Literal["drop_oldest", "drop_newest"] = "drop_oldest"
    outbox_synchronous: Literal["full", "normal"] = Field(
        default="full",
        description="SQLite synchronous mode of the outbox: full survives power loss, "
        "normal only a crash of the process",
    )
    batch_max_samples: int = Field(
        default=5000, ge=1, description="most samples sent in one HTTP write"
    )
    read_chunk_points: int = Field(
        default=100_000, ge=1, description="most points fetched per query when reading a range"
    )
    replay_backoff_max_s: float = Field(default=30.0, gt=0)
    local_cache: Path | None = Field(
        default=None, description="also keep an embedded SQLite copy for the gateway and ledger"
    )
    reads: Literal["influxdb", "local_cache"] = Field(
        default="influxdb",
        description="where read() gets samples for the KPI engine: InfluxDB, or the local_cache "
        "(faster, includes samples still in the outbox, but only what this gateway wrote)",
    )

    @model_validator(mode="after")
    def _flavour(self) -> InfluxStorage:
        if self.api == "v1" and not self.database:
            raise ValueError("the v1 API needs 'database'")
        if self.api == "v2" and not (self.org and self.bucket and self.token):
            raise ValueError("the v2 API needs 'org', 'bucket' and 'token'")
        if self.token is not None and (self.username or self.password):
            raise ValueError("give either 'token' or 'username'/'password', not both")
        if (self.username is None) != (self.password is None):
            raise ValueError("'username' and 'password' go together")
        if self.reads == "local_cache" and self.local_cache is None:
            raise ValueError("reads: local_cache needs 'local_cache' (the path of the copy)")
        return self


Storage = Annotated[SqliteStorage | InfluxStorage, Field(discriminator="kind")]


class DiskBudget(Frozen):
    """The room the gateway's own files may take (store, outbox, local cache, evidence ledger,
    each with its WAL): sizes, growth and time to full are reported in health and /metrics."""

    budget_mb: float | None = Field(
        default=None,
        gt=0,
        description="MB the gateway's files may use together; unset: sizes and the file "
        "system's free room are still reported, only the budget alarms are off",
    )
    alarm_fraction: float = Field(
        default=0.8, gt=0, le=1, description="alarm when this share of the budget is used"
    )
    alarm_horizon_h: float = Field(
        default=168.0,
        gt=0,
        description="alarm when the budget or the disk is full within this many hours at the "
        "growth of the last hours",
    )
    min_free_mb: float = Field(
        default=100.0, ge=0, description="alarm when the file system has less free room"
    )
    growth_window_h: float = Field(
        default=6.0, gt=0, description="growth is measured over this many hours (or since start)"
    )


class Runtime(Frozen):
    """Edge pipeline tuning."""

    disk: DiskBudget = DiskBudget()
    alive_file: Path | None = Field(
        default=None,
        description="touched by the collector every health interval (a liveness probe checks "
        "its age; the Helm chart sets it)",
    )

    queue_size: int = Field(default=200_000, ge=100)
    overflow: Literal["drop_oldest", "drop_newest"] = "drop_oldest"
    batch_max_samples: int = Field(default=5000, ge=1)
    flush_interval_ms: int = Field(default=200, ge=1)
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    healthy_after_s: float = Field(
        default=30.0, gt=0, description="a run this long resets the restart backoff"
    )
    heartbeat_s: float = Field(
        default=300.0, gt=0, description="deadbanded points are stored at least this often"
    )
    health_interval_s: float = Field(default=5.0, gt=0)
    gil_switch_ms: float = Field(
        default=0.5,
        gt=0,
        le=100,
        description="the collector process's thread switch interval (sys.setswitchinterval): "
        "how long a thread waiting for the GIL waits at most; 0.5 ms stores about 50 % more "
        "Modbus samples per second than Python's 5 ms (docs/BENCHMARKS.md, sizing)",
    )
    workers: int | Literal["auto"] = Field(
        default=0,
        description="connector worker processes (edge.workers): 0 = every connector in the "
        "collector process (default); N = the connectors sharded by endpoint over N processes "
        "feeding the collector's one writer; auto = one per core but one (0 on one core)",
    )

    @field_validator("workers", mode="before")
    @classmethod
    def _workers(cls, value: object) -> object:
        if value == "auto":
            return value
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 64:
            raise ValueError(
                f"workers: give 0 (off), a number of worker processes up to 64, or auto "
                f"(not {value!r})"
            )
        return value
