"""The KPI snapshot: the payload of the DSSE envelope (pure).

``application/vnd.shopfloor.kpi-snapshot.v1+json``, RFC 8785 JSON (floats and large integers
as decimal strings), with:

* ``site_file``: the configuration of the current period as canonical JSON (``canonical``,
  :func:`metrics.evidence.configlog.config_content`) and its SHA-256 (``sha256``);
* ``configuration``: per period (``baseline``, ``current``) the ``config`` leaves of the log in
  force over it, ``{index, config_sha256, from_ns, to_ns}`` each: the verifier recomputes each
  period with the configuration the log holds for that time;
* ``periods``: baseline and current ``{start_ns, end_ns, label, imported}``;
* ``kpi_table``: ``metrics.engine.KpiTable.to_dict()``;
* ``formulas``: id and version of every KPI's formula (and the variant the table used);
* ``factors``: the conversion factors with id, value, unit, source and year;
* ``provenance``: per KPI, measured / declared / imported / mixed;
* ``log``: origin, size and root of the checkpoint the references are proven against;
* ``batches``: log index, leaf hash, source, seq, first/last ts and count of every batch used;
* ``special_leaves``: log index, leaf hash and kind of the config / formula / key rotation /
  clock / gap leaves shipped with the bundle;
* ``files``: SHA-256 of the human-readable files of the bundle (report, CSV, XLSX, README).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from config.models import SiteConfig
from metrics.evidence import canonical, configlog

SNAPSHOT_KIND = "shopfloor.kpi-snapshot"
SNAPSHOT_VERSION = 1


class SnapshotError(ValueError):
    """A snapshot payload that lacks what the verifier needs (the message says what)."""


@dataclass(frozen=True)
class LeafRef:
    index: int
    leaf_hash: str
    kind: str
    source: str | None = None
    seq: int | None = None
    first_ts: int | None = None
    last_ts: int | None = None
    count: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"index": self.index, "leaf_hash": self.leaf_hash, "kind": self.kind}
        if self.kind == "batch":
            d.update(
                source=self.source,
                seq=self.seq,
                first_ts=str(self.first_ts),
                last_ts=str(self.last_ts),
                count=self.count,
            )
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LeafRef:
        try:
            if d["kind"] == "batch":
                return cls(
                    int(d["index"]),
                    str(d["leaf_hash"]),
                    "batch",
                    str(d["source"]),
                    int(d["seq"]),
                    int(d["first_ts"]),
                    int(d["last_ts"]),
                    int(d["count"]),
                )
            return cls(int(d["index"]), str(d["leaf_hash"]), str(d["kind"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"leaf reference {dict(d)!r}: {exc}") from None


def site_json(site: SiteConfig) -> Any:
    """The site's configuration as JSON-safe data: its canonical content as the ledger's
    ``config`` leaves hold it (no file paths, no storage / evidence / gateway sections)."""
    return configlog.config_content(site)


def site_from_json(obj: Any) -> SiteConfig:
    return SiteConfig.model_validate(obj)


def table_rows(table: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    rows = table.get("rows")
    if not isinstance(rows, list):
        raise SnapshotError("kpi_table has no rows list")
    return rows


def formulas_of(table: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for r in table_rows(table):
        out.append(
            {
                "kpi": r.get("id"),
                "formula_id": r.get("formula_id"),
                "formula_version": r.get("formula_version"),
                "variant": r.get("variant"),
            }
        )
    return out


def build_payload(
    *,
    site: SiteConfig,
    baseline: Mapping[str, Any],
    current: Mapping[str, Any],
    table: Mapping[str, Any],
    log: Mapping[str, Any],
    batches: Sequence[LeafRef],
    special_leaves: Sequence[LeafRef],
    files: Mapping[str, str],
    created_s: int,
    generator: str = "shopfloor",
    configuration: Mapping[str, Sequence[configlog.InForce]] | None = None,
) -> dict[str, Any]:
    sj = site_json(site)
    tj = canonical.jsonable(dict(table))
    extra: dict[str, Any] = {}
    if configuration is not None:
        extra["configuration"] = {
            k: [sp.to_dict() for sp in v] for k, v in sorted(configuration.items())
        }
    return {
        **extra,
        "type": SNAPSHOT_KIND,
        "version": SNAPSHOT_VERSION,
        "generator": generator,
        "created": dt.datetime.fromtimestamp(created_s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "created_unix": created_s,
        "site": {
            "id": site.site.id,
            "name": site.site.name,
            "enterprise": site.site.enterprise,
            "credit_code": site.site.credit_code,
        },
        "site_file": {
            "sha256": canonical.sha256_hex(canonical.canonical_json(sj)),
            "canonical": sj,
        },
        "periods": {
            "baseline": canonical.jsonable(dict(baseline)),
            "current": canonical.jsonable(dict(current)),
        },
        "kpi_table": tj,
        "formulas": canonical.jsonable(formulas_of(tj)),
        "factors": canonical.jsonable(site.kpi.factors.model_dump(mode="json")),
        "provenance": [
            {"kpi": r.get("id"), "provenance": r.get("provenance")} for r in table_rows(tj)
        ],
        "log": canonical.jsonable(dict(log)),
        "batches": [b.to_dict() for b in batches],
        "special_leaves": [s.to_dict() for s in special_leaves],
        "files": dict(sorted(files.items())),
    }


def payload_bytes(payload: Mapping[str, Any]) -> bytes:
    return canonical.canonical_json(payload)


REQUIRED = (
    "type",
    "version",
    "created_unix",
    "site",
    "site_file",
    "periods",
    "kpi_table",
    "formulas",
    "factors",
    "provenance",
    "log",
    "batches",
    "special_leaves",
    "files",
)


def check_payload(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise SnapshotError("snapshot payload is not a JSON object")
    missing = [k for k in REQUIRED if k not in obj]
    if missing:
        raise SnapshotError(f"snapshot payload lacks {', '.join(missing)}")
    if obj["type"] != SNAPSHOT_KIND or obj["version"] != SNAPSHOT_VERSION:
        raise SnapshotError(
            f"snapshot payload is {obj['type']!r} v{obj['version']}, "
            f"expected {SNAPSHOT_KIND} v{SNAPSHOT_VERSION}"
        )
    return obj
