"""Find machines on an OPC UA server by their companion-specification types and write the
site-file fragment that collects them (``shopfloor discover opcua URL``).

An object is recognised by its type definition (HasTypeDefinition, then HasSubtype up to the
specification's type, so vendor subtypes count), never by its browse name. The mapping table
is data: :mod:`connectors.opcua.companion` (``companion.yaml``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from asyncua import Client, ua

from config.opcua import OpcUaConnection
from connectors.base import ConnectorError
from connectors.opcua.companion import Anchor, Row, Table, load_table
from connectors.opcua.select import NotSelected, Selector, load_structures, select
from connectors.opcua.session import close_client, configure, explain, make_client

_BASE_OBJECT_TYPE = ua.NodeId(ua.ObjectIds.BaseObjectType)
_SKIP = {ua.NodeId(ua.ObjectIds.Server)}
MAX_OBJECTS = 20_000
"""Objects visited at most (a large address space is walked this far, then reported)."""


@dataclass(frozen=True, slots=True)
class Hop:
    node_id: ua.NodeId
    name: str  # browse name
    ns: int


@dataclass
class Found:
    """One discovered point (or a row that cannot be collected, kept as a comment)."""

    row: Row
    anchor: Anchor
    browse_path: str
    value: object = None
    element: tuple[str, int | str] | None = None  # the array element (a row's element_key)
    label: str = ""  # what the element is (its Name)
    missing: str = ""  # why a structure row gave no point (written as a comment)
    follow: str = ""  # a pointer row: the path from the object pointed to, server indexes

    @property
    def pid(self) -> str:
        if self.element is None:
            return self.row.id
        return ident(f"{self.row.id}_{self.element[1]}")


@dataclass
class Machine:
    path: tuple[Hop, ...]
    anchors: list[tuple[Anchor, tuple[Hop, ...]]] = field(default_factory=list)
    points: list[Found] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path[-1].name


@dataclass
class Discovery:
    endpoint: str
    specs: list[str]  # namespace URIs of the table found on the server
    machines: list[Machine]
    truncated: bool = False


def browse_path_of(path: Sequence[Hop]) -> str:
    return "0:Objects/" + "/".join(f"{h.ns}:{h.name}" for h in path)


class _Types:
    """Is a type (a subtype of) another? Supertype chains read once per type."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.chains: dict[ua.NodeId, list[ua.NodeId]] = {}

    async def chain(self, type_id: ua.NodeId) -> list[ua.NodeId]:
        if type_id in self.chains:
            return self.chains[type_id]
        out = [type_id]
        current = type_id
        while current != _BASE_OBJECT_TYPE and len(out) < 32:
            refs = await self.client.get_node(current).get_references(
                refs=ua.ObjectIds.HasSubtype, direction=ua.BrowseDirection.Inverse
            )
            if not refs:
                break
            t = refs[0].NodeId
            current = ua.NodeId(t.Identifier, t.NamespaceIndex, t.NodeIdType)
            if current in self.chains:
                out.extend(self.chains[current])
                break
            out.append(current)
        self.chains[type_id] = out
        return out


def _machine_of(
    path: tuple[Hop, ...], selves: set[tuple[Hop, ...]], containers: frozenset[str]
) -> tuple[Hop, ...]:
    for i in range(len(path) - 1, 0, -1):
        if path[:i] in selves:
            return path[:i]
    end = len(path) - 1
    while end > 1 and path[end - 1].name in containers:
        end -= 1
    return path[:end] if end > 0 else path


async def _walk(
    client: Client, wanted: dict[ua.NodeId, Anchor], depth: int
) -> tuple[list[tuple[Anchor, tuple[Hop, ...]]], bool]:
    """Anchors found below the Objects folder: (anchor, path of the object)."""
    types = _Types(client)
    hits: list[tuple[Anchor, tuple[Hop, ...]]] = []
    seen: set[ua.NodeId] = set()
    todo: list[tuple[ua.NodeId, tuple[Hop, ...]]] = [(ua.NodeId(ua.ObjectIds.ObjectsFolder), ())]
    visited = 0
    while todo:
        node_id, path = todo.pop(0)
        if len(path) >= depth:
            continue
        refs = await client.get_node(node_id).get_children_descriptions(
            nodeclassmask=ua.NodeClass.Object
        )
        for ref in sorted(refs, key=lambda r: (r.BrowseName.NamespaceIndex, r.BrowseName.Name)):
            child = ua.NodeId(
                ref.NodeId.Identifier, ref.NodeId.NamespaceIndex, ref.NodeId.NodeIdType
            )
            if child in _SKIP or child in seen:
                continue
            seen.add(child)
            visited += 1
            if visited > MAX_OBJECTS:
                return hits, True
            hop = Hop(child, ref.BrowseName.Name, ref.BrowseName.NamespaceIndex)
            td = ref.TypeDefinition
            tid = ua.NodeId(td.Identifier, td.NamespaceIndex, td.NodeIdType)
            for t in await types.chain(tid):
                if t in wanted:
                    hits.append((wanted[t], (*path, hop)))
                    break
            todo.append((child, (*path, hop)))
    return hits, False


async def _resolve(
    client: Client, start: ua.NodeId, row: Row, index: dict[str, int]
) -> tuple[ua.NodeId, str] | None:
    """The row's variable below ``start`` and its relative path with server indexes."""
    if any(alias not in index for alias, _ in row.path):
        return None
    rel = "/".join(f"{index[a]}:{n}" for a, n in row.path)
    bp = ua.BrowsePath()
    bp.StartingNode = start
    bp.RelativePath = ua.RelativePath.from_string("/" + rel)
    [res] = await client.uaclient.translate_browsepaths_to_nodeids([bp])
    if not res.StatusCode.is_good() or not res.Targets:
        return None
    t = res.Targets[0].TargetId
    return ua.NodeId(t.Identifier, t.NamespaceIndex, t.NodeIdType), rel


async def _check_target(client: Client, pointer: object, follow: str) -> str:
    """Why an optional follow target cannot be taken ("" when the object pointed to at
    discovery has it)."""
    name = follow.rsplit("/", 1)[-1].split(":", 1)[-1]
    if not isinstance(pointer, ua.NodeId) or pointer.is_null():
        return (
            f"nothing pointed to at discovery (no active job) to check that the job has "
            f"{name}, optional in the specification: discover again while a job runs"
        )
    bp = ua.BrowsePath()
    bp.StartingNode = pointer
    bp.RelativePath = ua.RelativePath.from_string("/" + follow)
    [res] = await client.uaclient.translate_browsepaths_to_nodeids([bp])
    if res.StatusCode.is_good() and res.Targets:
        return ""
    return f"the job pointed to at discovery ({pointer.to_string()}) has no {name}"


def _structured(row: Row, anchor: Anchor, where: str, value: object) -> list[Found]:
    """The points of one resolved row: the variable itself, its structure's ``field``, or one
    point per element of an array of structures (``element_key``), named by that key."""
    if row.field is None:
        return [Found(row, anchor, where, value)]
    field = Selector(tuple(row.field.split(".")))
    if row.element_key is None:
        try:
            return [Found(row, anchor, where, select(value, field))]
        except NotSelected as exc:
            return [Found(row, anchor, where, missing=str(exc))]
    if not isinstance(value, list) or not value:
        return [Found(row, anchor, where, missing="no element at discovery")]
    out: list[Found] = []
    key = Selector((row.element_key,))
    name = Selector(("Name",))
    for item in value:
        try:
            ident_value = select(item, key)
            got = select(item, field)
        except NotSelected as exc:
            return [Found(row, anchor, where, missing=str(exc))]
        if not isinstance(ident_value, int | str) or isinstance(ident_value, bool):
            return [Found(row, anchor, where, missing=f"{row.element_key} is not a number")]
        try:
            label = str(select(item, name) or "")
        except NotSelected:
            label = ""
        out.append(Found(row, anchor, where, got, (row.element_key, ident_value), label))
    return out


async def discover_on(
    client: Client, endpoint: str, depth: int = 8, table: Table | None = None
) -> Discovery:
    table = table or load_table()
    namespaces: list[str] = await client.get_namespace_array()
    index = {
        alias: namespaces.index(uri) for alias, uri in table.namespaces.items() if uri in namespaces
    }
    wanted = {
        ua.NodeId(a.type_id, index[a.namespace]): a for a in table.anchors if a.namespace in index
    }
    specs = sorted({table.namespaces[a.namespace] for a in wanted.values()})
    hits, truncated = await _walk(client, wanted, depth) if wanted else ([], False)
    selves = {path for a, path in hits if a.machine == "self"}
    machines: dict[tuple[Hop, ...], Machine] = {}
    structures = False  # the server's structure definitions loaded
    order = {a.id: i for i, a in enumerate(table.anchors)}
    for anchor, path in sorted(hits, key=lambda h: (order[h[0].id], browse_path_of(h[1]))):
        mpath = path if anchor.machine == "self" else _machine_of(path, selves, table.containers)
        machine = machines.setdefault(mpath, Machine(mpath))
        machine.anchors.append((anchor, path))
        for row in anchor.points:
            if not row.collect:
                machine.points.append(Found(row, anchor, browse_path_of(path)))
                continue
            found = await _resolve(client, path[-1].node_id, row, index)
            if found is None:
                continue
            var, rel = found
            if row.field is not None and not structures:
                structures = True
                await load_structures(client)  # a failure shows as an undecoded value
            dv = (await client.uaclient.read_attributes([var], ua.AttributeIds.Value))[0]
            value = dv.Value.Value if dv.Value is not None else None
            where = f"{browse_path_of(path)}/{rel}"
            if row.follow is not None:
                if any(alias not in index for alias, _ in row.follow):
                    continue
                follow = "/".join(f"{index[a]}:{n}" for a, n in row.follow)
                point = Found(row, anchor, where, value, follow=follow)
                if row.target_optional:
                    point.missing = await _check_target(client, value, follow)
                machine.points.append(point)
                continue
            machine.points.extend(_structured(row, anchor, where, value))
    ordered = sorted(machines.values(), key=lambda m: browse_path_of(m.path))
    return Discovery(endpoint, specs, ordered, truncated)


async def discover(conn: OpcUaConnection, depth: int = 8, pki_dir: Path | None = None) -> Discovery:
    """Open a session as the connector would (security, user, trust list) and discover."""
    client = make_client(conn)
    try:
        try:
            await configure(client, conn, pki_dir)
            await client.connect()
        except ConnectorError:
            raise
        except (TimeoutError, Exception) as exc:
            raise ConnectorError(explain(exc, conn.endpoint)) from exc
        try:
            return await discover_on(client, conn.endpoint, depth)
        except (TimeoutError, Exception) as exc:
            raise ConnectorError(explain(exc, conn.endpoint)) from exc
    finally:
        await close_client(client)


# ---- the site-file fragment -------------------------------------------------------------


def ident(text: str) -> str:
    """A site-file identifier from a browse name: ``Press 1`` -> ``press_1``."""
    out = re.sub(r"[^A-Za-z0-9_.\-]+", "_", text).strip("_.-").lower()
    return (out or "machine")[:64]


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _wrap(text: str, indent: str) -> list[str]:
    words, lines, cur = " ".join(text.split()).split(" "), [], ""
    for w in words:
        if cur and len(indent) + len(cur) + len(w) + 3 > 99:
            lines.append(f"{indent}# {cur}")
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    if cur:
        lines.append(f"{indent}# {cur}")
    return lines


def _state_map(m: dict[str, str]) -> str:
    items = sorted(m.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 1 << 30)
    return "{" + ", ".join(f"{_q(k)}: {v}" for k, v in items) + "}"


def _address(f: Found, example: bool = False) -> str:
    """The point's ``opcua:`` flow mapping (``example``: with a placeholder element)."""
    parts = [f"browse_path: {_q(f.browse_path)}"]
    if f.row.element_key is not None:
        if f.element is not None:
            wanted = f.element[1]
            shown = _q(wanted) if isinstance(wanted, str) else str(wanted)
            parts.append(f"element: {{{f.element[0]}: {shown}}}")
        elif example:
            parts.append(f"element: {{{f.row.element_key}: <its value>}}")
    if f.row.field is not None:
        parts.append(f"field: {f.row.field}")
    if f.follow:
        parts.append(f"follow: {_q(f.follow)}")
        parts.append("mode: poll")
    return "{" + ", ".join(parts) + "}"


def _demoted(machine: Machine) -> dict[str, str]:
    """Rows of the machine written as measurements, with the reason: a row it ``yields_to``
    is found and keeps its own role, or a row it ``needs`` is not found."""
    rows = {f.row.id: f.row for f in machine.points if f.row.collect and not f.missing}
    why: dict[str, str] = {}
    done: dict[str, bool] = {}

    def keeps(rid: str, seen: frozenset[str] = frozenset()) -> bool:
        if rid in done:
            return done[rid]
        if rid in seen:  # a cycle of yields_to in the table: keep the role
            return True
        row = rows[rid]
        reason = ""
        for y in row.yields_to:
            if y in rows and keeps(y, seen | {rid}):
                reason = f"{row.role} taken from {y}: this one is a measurement"
                break
        if not reason:
            for n in row.needs:
                if n not in rows:
                    reason = f"{row.role} only beside {n}, which this machine does not have"
                    break
        if reason:
            why[rid] = reason
        done[rid] = not reason
        return done[rid]

    for rid, row in rows.items():
        if row.role != "state":
            keeps(rid)
    return why


def _points_of(machine: Machine) -> list[tuple[str, Found, str]]:
    """(point id, found, role) with unique ids; the first state row is the state."""
    out: list[tuple[str, Found, str]] = []
    used: set[str] = set()
    have_state = False
    demoted = _demoted(machine)
    for f in machine.points:
        if not f.row.collect or f.missing:
            continue
        role = f.row.role
        if f.row.id in demoted:
            role = "measurement"  # another row of the machine is its counter
        if role == "state":
            if have_state:
                role = "measurement"
            have_state = True
        pid = f.pid
        if pid in used:
            # a second channel (or another instance of the same part): prefix its own name
            owner = f.browse_path.split("/")[len(machine.path) + 1].split(":", 1)[-1]
            pid = ident(f"{owner}_{f.pid}")
        n = 2
        base = pid
        while pid in used:
            pid = f"{base}_{n}"
            n += 1
        used.add(pid)
        out.append((pid, f, role))
    return out


def format_fragment(found: Discovery) -> str:
    """A commented ``devices:`` block, ready to paste into a site file."""
    lines = [
        f"# discovered on {found.endpoint} by its OPC UA companion specifications",
        f"# specifications on this server: {', '.join(found.specs) or 'none of the table'}",
        "# check every state_map and counter against the machine before collecting; the",
        "# ideal cycle time is not in any companion specification: set ideal_cycle_s",
    ]
    if found.truncated:
        lines.append(
            f"# WARNING: the walk stopped after {MAX_OBJECTS} objects; some may be missing"
        )
    if not found.machines:
        lines.append("# no machine instance of the table's types was found")
        lines.append("devices: []")
        return "\n".join(lines) + "\n"
    lines.append("devices:")
    ids: set[str] = set()
    for machine in found.machines:
        dev_id = ident(machine.name)
        n = 2
        while dev_id in ids:
            dev_id = f"{ident(machine.name)}_{n}"
            n += 1
        ids.add(dev_id)
        lines.append(f"  # {browse_path_of(machine.path)}")
        for anchor, path in machine.anchors:
            lines.extend(_wrap(f"{anchor.spec} at {browse_path_of(path)}", "  "))
        lines += [
            f"  - id: {dev_id}",
            f"    name: {_q(machine.name)}",
            f"    opcua: {{endpoint: {_q(found.endpoint)}}}",
            "    key_equipment: true  # 关键设备: counted in the OEE; false for an auxiliary unit",
            "    # ideal_cycle_s: 30.0  # s per unit: from the process sheet",
            "    points:",
        ]
        points = _points_of(machine)
        demoted = _demoted(machine)
        for pid, f, role in points:
            lines.extend(_wrap(f.row.spec, "      "))
            if f.row.note:
                lines.extend(_wrap(f.row.note, "      "))
            if f.row.id in demoted:
                lines.extend(_wrap(demoted[f.row.id], "      "))
            if f.row.role == "state" and role != "state" and f.row.state_map:
                lines.append(
                    f"      # another state source; its map: {_state_map(f.row.state_map)}"
                )
            if f.element is not None:
                lines.append(f"      # {f.element[0]} {f.element[1]!r}: {f.label or '(no Name)'}")
            if f.follow:
                pointed = f.value if isinstance(f.value, ua.NodeId) else None
                lines.append(
                    f"      # points at discovery to: {pointed.to_string()}"
                    if pointed is not None and not pointed.is_null()
                    else "      # points at discovery to: nothing (no active job)"
                )
            elif f.value is not None:
                lines.append(f"      # value at discovery: {f.value!r}")
            lines.append(f"      - id: {pid}")
            lines.append(f"        role: {role}")
            if f.row.unit:
                lines.append(f"        unit: {_q(f.row.unit)}")
            lines.append(f"        opcua: {_address(f)}")
            if role == "state" and f.row.state_map:
                lines.append(f"        state_map: {_state_map(f.row.state_map)}")
        if not points:
            lines.append("      []")
        for f in machine.points:
            if not f.row.collect:
                lines.extend(
                    _wrap(f"not collected: {f.row.id} ({f.row.spec}): {f.row.why}", "      ")
                )
            elif f.missing and f.follow:
                lines.extend(
                    _wrap(
                        f"not collected: {f.row.id} ({f.row.spec}): {f.missing}; where the "
                        f"jobs have it: role {f.row.role}, opcua: {_address(f)}",
                        "      ",
                    )
                )
            elif f.missing:
                lines.extend(
                    _wrap(
                        f"not collected: {f.row.id} ({f.row.spec}): {f.missing}; when it has "
                        f"elements, one point each: opcua: {_address(f, example=True)}",
                        "      ",
                    )
                )
    return "\n".join(lines) + "\n"
