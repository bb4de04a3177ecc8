"""The companion-specification mapping table (``companion.yaml``), loaded and checked.

The table is data: which ObjectTypes of which specification mark a machine (or a part of
one), and which variables below such an object become which points. See the file's header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

TABLE = Path(__file__).with_name("companion.yaml")
STATES = frozenset({"producing", "setup", "idle", "down", "planned_stop", "offline"})
_SEGMENT = re.compile(r"^([a-z]+):([A-Za-z0-9_]+)$")


@dataclass(frozen=True, slots=True)
class Row:
    id: str
    path: tuple[tuple[str, str], ...]  # (namespace alias, browse name) from the anchor
    spec: str
    role: str = "measurement"
    state_map: dict[str, str] | None = None
    unit: str | None = None
    note: str | None = None
    collect: bool = True
    why: str | None = None
    field: str | None = None  # the structure's field that is the value (e.g. AccCount)
    element_key: str | None = None  # an array of structures: one point per value of this field
    follow: tuple[tuple[str, str], ...] | None = None  # the variable is a pointer: path from it
    yields_to: tuple[str, ...] = ()  # rows of the machine that take this row's role when found
    needs: tuple[str, ...] = ()  # rows that must be found too, else this row is a measurement
    target_optional: bool = False  # a follow row whose target is optional: checked at discovery


@dataclass(frozen=True, slots=True)
class Anchor:
    id: str
    namespace: str  # alias
    type_id: int  # numeric id of the ObjectType in the specification's NodeSet
    spec: str
    machine: str  # "self" or "part"
    points: tuple[Row, ...]


@dataclass(frozen=True, slots=True)
class Table:
    namespaces: dict[str, str]  # alias -> namespace URI
    anchors: tuple[Anchor, ...]
    containers: frozenset[str]  # folder names skipped when looking for a part's machine


class TableError(ValueError):
    """The companion mapping table is malformed (the message names the row)."""


def _path(text: str, aliases: dict[str, str], where: str) -> tuple[tuple[str, str], ...]:
    out = []
    for seg in text.split("/"):
        m = _SEGMENT.match(seg)
        if m is None or m.group(1) not in aliases:
            raise TableError(f"{where}: path segment {seg!r} is not <alias>:<BrowseName>")
        out.append((m.group(1), m.group(2)))
    return tuple(out)


def _row(raw: dict[str, Any], aliases: dict[str, str], where: str) -> Row:
    collect = bool(raw.get("collect", True))
    role = str(raw.get("role", "measurement"))
    state_map = raw.get("state_map")
    if collect and role == "state":
        if not isinstance(state_map, dict) or not state_map:
            raise TableError(f"{where}: a state row needs a state_map")
        bad = [v for v in state_map.values() if v not in STATES]
        if bad or not all(isinstance(k, str) for k in state_map):
            raise TableError(f"{where}: state_map keys must be quoted numbers, states {STATES}")
    if not collect and not raw.get("why"):
        raise TableError(f"{where}: a row with collect: false says why")
    if not raw.get("spec"):
        raise TableError(f"{where}: every row cites its specification (spec:)")
    if raw.get("element_key") is not None and raw.get("field") is None:
        raise TableError(f"{where}: element_key (one point per array element) needs field:")
    if raw.get("target_optional") and not raw.get("follow"):
        raise TableError(f"{where}: target_optional is for a follow row")
    return Row(
        id=str(raw["id"]),
        path=_path(str(raw["path"]), aliases, where),
        spec=str(raw["spec"]),
        role=role,
        state_map={str(k): str(v) for k, v in state_map.items()} if state_map else None,
        unit=raw.get("unit"),
        note=raw.get("note"),
        collect=collect,
        why=raw.get("why"),
        field=raw.get("field"),
        element_key=raw.get("element_key"),
        follow=_path(str(raw["follow"]), aliases, where) if raw.get("follow") else None,
        yields_to=tuple(str(x) for x in raw.get("yields_to", ())),
        needs=tuple(str(x) for x in raw.get("needs", ())),
        target_optional=bool(raw.get("target_optional", False)),
    )


def load_table(path: Path = TABLE) -> Table:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    aliases = {str(k): str(v) for k, v in data["namespaces"].items()}
    anchors = []
    for i, raw in enumerate(data["anchors"]):
        where = f"{path.name}: anchors[{i}] ({raw.get('id')})"
        alias, _, num = str(raw.get("type", "")).partition(":")
        if alias not in aliases or not num.isdigit():
            raise TableError(f"{where}: type must be <alias>:<numeric id>")
        if raw.get("machine") not in ("self", "part") or not raw.get("spec"):
            raise TableError(f"{where}: needs machine: self|part and spec:")
        rows = tuple(_row(r, aliases, f"{where} points[{j}]") for j, r in enumerate(raw["points"]))
        anchors.append(
            Anchor(str(raw["id"]), alias, int(num), str(raw["spec"]), raw["machine"], rows)
        )
    ids = {r.id for a in anchors for r in a.points}
    for a in anchors:
        for r in a.points:
            unknown = sorted(set(r.yields_to + r.needs) - ids)
            if unknown:
                where = f"{path.name}: {a.id}.{r.id}"
                raise TableError(f"{where}: yields_to/needs name no row: {unknown}")
    containers = frozenset(str(c) for c in data.get("containers", ()))
    return Table(aliases, tuple(anchors), containers)
