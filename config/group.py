"""The group file of ``shopfloor serve --group``: the sites of a group (集团) and the central
InfluxDB their gateways write to.

Example::

    version: 1
    group: {id: acme, name: ACME 集团}
    sites:                        # the sites' own site files (relative to this file)
      - plants/north/site.yaml
      - plants/south/site.yaml
    influxdb:                     # the central store (InfluxQL reads)
      url: http://influxdb:8086
      database: shopfloor
      username: group_reader
      password: {env: INFLUX_PASSWORD}
    auth:
      tokens_file: tokens.txt     # read-only: "<sha256 of the token> <role> <name>" per line
    server: {host: 0.0.0.0, port: 8090}

The group view keeps no state of its own: everything is read from InfluxDB and the files named
here, which it never writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from config.base import Frozen, Identifier, SecretRef


class GroupError(ValueError):
    """A group file that cannot be used (the message names the file and the problem)."""


class GroupInfo(Frozen):
    id: Identifier
    name: str = Field(min_length=1, max_length=200)


class CentralInflux(Frozen):
    """The central InfluxDB, read with InfluxQL: 1.x (``api: v1``), 2.x through its v1
    compatibility API (``api: v1`` with a DBRP mapping and ``token``, or ``api: v2`` with
    ``bucket``), 3.x (``database`` = the bucket, ``token``)."""

    url: str = Field(pattern=r"^https?://")
    api: Literal["v1", "v2"] = "v1"
    database: str | None = Field(default=None, description="v1: database (or DBRP mapping)")
    bucket: str | None = Field(default=None, description="v2: the bucket (InfluxQL database)")
    retention_policy: str | None = None
    username: str | None = None
    password: SecretRef | None = None
    token: SecretRef | None = None
    ca_file: Path | None = None
    verify_tls: bool = True
    measurement: str = Field(default="samples", pattern=r"^[A-Za-z0-9_.\-]+$")
    timeout_s: float = Field(default=30.0, gt=0)
    read_chunk_points: int = Field(default=100_000, ge=1)

    @model_validator(mode="after")
    def _flavour(self) -> CentralInflux:
        if self.api == "v1" and not self.database:
            raise ValueError("the v1 API needs 'database'")
        if self.api == "v2" and not (self.bucket and self.token):
            raise ValueError("the v2 API needs 'bucket' and 'token'")
        if self.token is not None and (self.username or self.password):
            raise ValueError("give either 'token' or 'username'/'password', not both")
        if (self.username is None) != (self.password is None):
            raise ValueError("'username' and 'password' go together")
        return self

    @property
    def db(self) -> str:
        """The InfluxQL database: ``database`` (v1) or ``bucket`` (v2)."""
        name = self.database if self.api == "v1" else self.bucket
        assert name is not None  # the validator
        return name


class GroupAuth(Frozen):
    tokens_file: Path = Field(
        description="read-only file of API tokens: one '<sha256 hex> <role> <name>' per line "
        "(the token itself is never stored); relative to the group file"
    )


class GroupServer(Frozen):
    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=1, le=65535)
    kpi_cache_s: float = Field(default=10.0, ge=0)
    readers: int = Field(default=4, ge=1, le=64, description="queries run at once")


class GroupConfig(Frozen):
    version: Literal[1] = 1
    group: GroupInfo
    sites: tuple[Path, ...] = Field(min_length=1, description="site files, relative to this file")
    influxdb: CentralInflux
    auth: GroupAuth
    server: GroupServer = GroupServer()
    source_dir: Path | None = Field(default=None, exclude=True)

    def resolve(self, p: Path) -> Path:
        return p if p.is_absolute() or self.source_dir is None else self.source_dir / p


def load_group(path: str | Path) -> GroupConfig:
    """The group file at ``path`` (GroupError with one line per problem)."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GroupError(f"{p}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GroupError(f"{p}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise GroupError(f"{p}: YAML syntax: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict):
        raise GroupError(f"{p}: the group file must be a YAML mapping (group:, sites:, influxdb:)")
    try:
        cfg = GroupConfig.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{p}: {'.'.join(str(x) for x in e['loc']) or '(file)'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise GroupError("\n".join(lines)) from None
    return cfg.model_copy(update={"source_dir": p.resolve().parent})
