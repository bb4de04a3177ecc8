"""Browse a server's address space: the node tree with NodeIds, browse names and data types,
ready to copy into a site file (``shopfloor browse opcua URL``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from asyncua import Client, ua

from config.opcua import OpcUaConnection
from connectors.base import ConnectorError
from connectors.opcua.session import close_client, configure, explain, make_client

_SKIP = {ua.NodeId(ua.ObjectIds.Server)}  # the server's own diagnostics: large, not machine data
_CLASSES = ua.NodeClass.Object | ua.NodeClass.Variable


@dataclass(frozen=True, slots=True)
class BrowsedNode:
    depth: int
    node_id: str
    browse_name: str  # "2:State"
    node_class: str  # "Object" / "Variable"
    data_type: str | None
    browse_path: str  # "0:Objects/2:cnc1/2:State", as a site file's opcua.browse_path


def _qualified(name: ua.QualifiedName) -> str:
    return f"{name.NamespaceIndex}:{name.Name}"


def _type_name(node_id: ua.NodeId, names: dict[ua.NodeId, str]) -> str:
    if node_id in names:
        return names[node_id]
    if node_id.NamespaceIndex == 0 and isinstance(node_id.Identifier, int):
        return str(ua.ObjectIdNames.get(node_id.Identifier, node_id.to_string()))
    return str(node_id.to_string())


async def browse_tree(client: Client, depth: int) -> list[BrowsedNode]:
    """Objects and variables below the Objects folder, ``depth`` levels deep, depth-first."""
    out: list[BrowsedNode] = []
    type_names: dict[ua.NodeId, str] = {}

    async def walk(node_id: ua.NodeId, path: str, level: int) -> None:
        if level > depth:
            return
        refs = await client.get_node(node_id).get_children_descriptions(nodeclassmask=_CLASSES)
        children = [r for r in refs if r.NodeId not in _SKIP]
        children.sort(key=lambda r: (r.BrowseName.NamespaceIndex, r.BrowseName.Name))
        variables = [r.NodeId for r in children if r.NodeClass == ua.NodeClass.Variable]
        types: dict[ua.NodeId, str] = {}
        if variables:
            dvs = await client.uaclient.read_attributes(variables, ua.AttributeIds.DataType)
            for nid, dv in zip(variables, dvs, strict=True):
                if dv.Value is not None and isinstance(dv.Value.Value, ua.NodeId):
                    types[nid] = _type_name(dv.Value.Value, type_names)
        for ref in children:
            child = ua.NodeId(
                ref.NodeId.Identifier, ref.NodeId.NamespaceIndex, ref.NodeId.NodeIdType
            )
            child_path = f"{path}/{_qualified(ref.BrowseName)}"
            out.append(
                BrowsedNode(
                    depth=level,
                    node_id=child.to_string(),
                    browse_name=_qualified(ref.BrowseName),
                    node_class=ref.NodeClass.name,
                    data_type=types.get(ref.NodeId),
                    browse_path=child_path,
                )
            )
            if ref.NodeClass == ua.NodeClass.Object:
                await walk(child, child_path, level + 1)

    await walk(ua.NodeId(ua.ObjectIds.ObjectsFolder), "0:Objects", 1)
    return out


async def browse(
    conn: OpcUaConnection, depth: int = 3, pki_dir: Path | None = None
) -> list[BrowsedNode]:
    """Open a session as the connector would (security, user, trust list) and browse."""
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
            return await browse_tree(client, depth)
        except (TimeoutError, Exception) as exc:
            raise ConnectorError(explain(exc, conn.endpoint)) from exc
    finally:
        await close_client(client)


def format_tree(nodes: list[BrowsedNode]) -> str:
    """One line per node: indented browse name, class, NodeId, data type and browse path."""
    lines = []
    width = max((len("  " * (n.depth - 1) + n.browse_name) for n in nodes), default=10)
    for n in nodes:
        name = "  " * (n.depth - 1) + n.browse_name
        dtype = n.data_type or "-"
        kind = "Var" if n.node_class == "Variable" else "Obj"
        lines.append(f"{name:<{width}}  {kind}  {n.node_id:<28}  {dtype:<10}  {n.browse_path}")
    return "\n".join(lines)


def first_certificate(blob: bytes) -> bytes:
    """The leaf of an endpoint's ServerCertificate (which may be a chain of DER certificates
    one after the other): the first DER element."""
    if len(blob) < 2:
        return blob
    if blob[1] & 0x80:
        n = blob[1] & 0x7F
        return blob[: 2 + n + int.from_bytes(blob[2 : 2 + n], "big")]
    return blob[: 2 + blob[1]]


async def server_certificates(conn: OpcUaConnection) -> list[tuple[bytes, list[str]]]:
    """The distinct certificates the server's endpoints present (GetEndpoints on an
    unsecured channel, as every OPC UA client does first), each with the policies using it."""
    client = make_client(conn)
    try:
        endpoints = await client.connect_and_get_server_endpoints()
    except (TimeoutError, Exception) as exc:
        raise ConnectorError(explain(exc, conn.endpoint)) from exc
    found: dict[bytes, list[str]] = {}
    for ep in endpoints:
        if not ep.ServerCertificate or ep.SecurityMode == ua.MessageSecurityMode.None_:
            continue
        der = first_certificate(ep.ServerCertificate)
        policy = str(ep.SecurityPolicyUri).rsplit("#", 1)[-1]
        label = f"{policy}-{ep.SecurityMode.name}"
        found.setdefault(der, [])
        if label not in found[der]:
            found[der].append(label)
    return list(found.items())
