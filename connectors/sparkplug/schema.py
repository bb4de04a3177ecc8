"""The Sparkplug B payload schema for Google's protobuf runtime.

The message ``org.eclipse.tahu.protobuf.Payload`` of Eclipse Tahu's ``sparkplug_b.proto``
(the schema of the Sparkplug 3.0 specification), declared here field for field with the same
names, numbers and types instead of a generated ``_pb2`` module (no ``protoc`` step, no
generator/runtime version pinning). Only what a host application reads is declared: Payload
(timestamp 1, metrics 2, seq 3, uuid 4, body 5) and Metric (name 1, alias 2, timestamp 3,
datatype 4, is_historical 5, is_transient 6, is_null 7, and the scalar members of the ``value``
oneof 10-16). The parser skips the fields not declared (metadata 8, properties 9, DataSet 17,
Template 18, extensions), as protobuf does with any unknown field.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

__all__ = ["DecodeError", "Payload"]

_F = descriptor_pb2.FieldDescriptorProto
_OPT, _REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
PACKAGE = "org.eclipse.tahu.protobuf"

# Metric: (name, number, type, oneof index or None)
_METRIC = (
    ("name", 1, _F.TYPE_STRING, None),
    ("alias", 2, _F.TYPE_UINT64, None),
    ("timestamp", 3, _F.TYPE_UINT64, None),
    ("datatype", 4, _F.TYPE_UINT32, None),
    ("is_historical", 5, _F.TYPE_BOOL, None),
    ("is_transient", 6, _F.TYPE_BOOL, None),
    ("is_null", 7, _F.TYPE_BOOL, None),
    ("int_value", 10, _F.TYPE_UINT32, 0),
    ("long_value", 11, _F.TYPE_UINT64, 0),
    ("float_value", 12, _F.TYPE_FLOAT, 0),
    ("double_value", 13, _F.TYPE_DOUBLE, 0),
    ("boolean_value", 14, _F.TYPE_BOOL, 0),
    ("string_value", 15, _F.TYPE_STRING, 0),
    ("bytes_value", 16, _F.TYPE_BYTES, 0),
)


def _file() -> descriptor_pb2.FileDescriptorProto:
    f = descriptor_pb2.FileDescriptorProto(
        name="shopfloor/sparkplug_b.proto", package=PACKAGE, syntax="proto2"
    )
    payload = f.message_type.add(name="Payload")
    metric = payload.nested_type.add(name="Metric")
    metric.oneof_decl.add(name="value")
    for name, number, kind, oneof in _METRIC:
        field = metric.field.add(name=name, number=number, type=kind, label=_OPT)
        if oneof is not None:
            field.oneof_index = oneof
    payload.field.add(name="timestamp", number=1, type=_F.TYPE_UINT64, label=_OPT)
    payload.field.add(
        name="metrics",
        number=2,
        type=_F.TYPE_MESSAGE,
        label=_REP,
        type_name=f".{PACKAGE}.Payload.Metric",
    )
    payload.field.add(name="seq", number=3, type=_F.TYPE_UINT64, label=_OPT)
    payload.field.add(name="uuid", number=4, type=_F.TYPE_STRING, label=_OPT)
    payload.field.add(name="body", number=5, type=_F.TYPE_BYTES, label=_OPT)
    return f


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file())
#: the Payload message class (``Payload.FromString(data)``, ``Payload()`` to build one)
Payload: Any = message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{PACKAGE}.Payload"))
