"""A server of the 1.03 era describes its structures only in a DataTypeDictionary (OPC
10000-5 D.5, the "OPC Binary" type system), without the DataTypeDefinition attribute of 1.04:
a point selecting a field of such a structure is decoded from the dictionary, not left
``BadDataTypeIdUnknown``."""

from __future__ import annotations

import struct

import pytest
from asyncua import Server, ua
from asyncua.common.type_dictionary_builder import DataTypeDictionaryBuilder

from connectors.opcua import OpcUaConnector
from tests.opcua.helpers import RecordingSink, device, running, site_of
from tests.support.net import free_port

pytestmark = pytest.mark.asyncio


async def test_a_structure_known_only_from_a_datatype_dictionary_is_decoded() -> None:
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/dict"
    server = Server()
    await server.init()
    server.set_endpoint(endpoint)
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    urn = "urn:test:legacy-dictionary"
    idx = await server.register_namespace(urn)
    builder = DataTypeDictionaryBuilder(server, idx, urn, "LegacyTypes")
    await builder.init()
    count_type = await builder.create_data_type("LegacyCountType")
    count_type.add_field("ID", ua.VariantType.Int32)
    count_type.add_field("AccCount", ua.VariantType.Int32)
    await builder.set_dict_byte_string()
    # the value as the old server sends it: an ExtensionObject with its binary encoding's id
    # and the body (two Int32), which this process has no class for
    encoding = count_type.node_ids[-1]  # the type's "Default Binary" encoding object
    assert (await server.get_node(encoding).read_browse_name()).Name == "Default Binary"
    body = struct.pack("<ii", 7, 1234)
    var = await server.nodes.objects.add_variable(
        ua.NodeId("Filler.Count", idx),
        ua.QualifiedName("Count", idx),
        ua.Variant(ua.ExtensionObject(TypeId=encoding, Body=body), ua.VariantType.ExtensionObject),
        datatype=count_type.data_type,
    )
    assert encoding not in ua.extension_objects_by_typeid  # nothing decodes it yet
    await server.start()
    points = [
        {
            "id": "acc",
            "role": "count_total",
            "opcua": {"node_id": var.nodeid.to_string(), "field": "AccCount"},
        },
        {
            "id": "acc_polled",
            "opcua": {"node_id": var.nodeid.to_string(), "field": "AccCount", "mode": "poll"},
            "interval_ms": 50,
        },
    ]
    dev = site_of([device("f", endpoint, points, publishing_interval_ms=50)]).devices[0]
    sink = RecordingSink()
    try:
        async with running(OpcUaConnector(dev.opcua, (dev,)), sink):  # type: ignore[arg-type]
            await sink.wait(
                lambda: all(sink.of("f", p) for p in ("acc", "acc_polled")), what="samples"
            )
    finally:
        await server.stop()
    for p in ("acc", "acc_polled"):
        got = sink.of("f", p)[-1]
        assert (got.value, got.status) == (1234.0, ""), got
