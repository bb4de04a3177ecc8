"""A part of a node's value: one field of a structure, one element of an array, or the field of
the array element whose identifying field has a given value (site file ``field``, ``index``,
``element`` of an OPC UA point address).

Structures arrive decoded (asyncua builds a class per DataType from the server's
DataTypeDefinition, :func:`asyncua.Client.load_data_type_definitions`, which the connector calls
when a point selects a field; then from the server's DataTypeDictionaries for the structures of
servers that have no DataTypeDefinition). What cannot be selected is never a value:
:func:`select` raises :class:`NotSelected` with the status of the bad sample to store (see the
constants).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from asyncua import ua
from asyncua.common.structures import load_type_definitions

from config.opcua import OpcUaAddress

NO_ELEMENT = "no_element"
"""Status: the array has no element at ``index`` / none whose field has the ``element`` value."""
NO_FIELD = "no_field"
"""Status: the structure has no such field."""
NOT_ARRAY = "not_array"
"""Status: ``index`` or ``element`` on a value that is not an array."""
NOT_STRUCTURE = "not_structure"
"""Status: ``field`` on a value that is not a structure (or an element by field of one)."""
UNDECODED = "BadDataTypeIdUnknown"
"""Status: a structure the client could not decode (its DataType definition was not loaded)."""


class NotSelected(ValueError):
    """The selected part is not in the value; ``status`` names why."""

    def __init__(self, status: str, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status


@dataclass(frozen=True, slots=True)
class Selector:
    field: tuple[str, ...] = ()  # dotted path into nested structures
    index: int | None = None
    element: tuple[str, int | str] | None = None

    @classmethod
    def of(cls, addr: OpcUaAddress | None) -> Selector | None:
        """The selector of a point's address; None when the point is the whole value."""
        if addr is None or not addr.selects:
            return None
        element = next(iter(addr.element.items())) if addr.element else None
        path = tuple(addr.field.split(".")) if addr.field else ()
        return cls(path, addr.index, element)

    def __call__(self, raw: Any) -> Any:
        return select(raw, self)


def _field(value: Any, name: str) -> Any:
    if isinstance(value, ua.ExtensionObject):
        raise NotSelected(UNDECODED, f"structure of type {value.TypeId.to_string()} not decoded")
    if not hasattr(value, "__dataclass_fields__"):
        raise NotSelected(NOT_STRUCTURE, f"a {type(value).__name__} has no field {name!r}")
    if name not in value.__dataclass_fields__:
        raise NotSelected(NO_FIELD, f"{type(value).__name__} has no field {name!r}")
    return getattr(value, name)


def _same(have: Any, wanted: int | str) -> bool:
    if isinstance(have, ua.LocalizedText):
        have = have.Text
    if isinstance(have, bool):
        return False
    if isinstance(wanted, int):
        return isinstance(have, int) and have == wanted
    return isinstance(have, str) and have == wanted


def select(raw: Any, sel: Selector) -> Any:
    """The selected part of ``raw`` (a decoded value); raises :class:`NotSelected`."""
    value = raw
    if sel.index is not None or sel.element is not None:
        if not isinstance(value, Sequence) or isinstance(value, str | bytes):
            raise NotSelected(NOT_ARRAY, f"a {type(value).__name__} is not an array")
        if sel.index is not None:
            if sel.index >= len(value):
                raise NotSelected(
                    NO_ELEMENT, f"index {sel.index} of an array of {len(value)} elements"
                )
            value = value[sel.index]
        else:
            assert sel.element is not None
            key, wanted = sel.element
            match = [v for v in value if _same(_field(v, key), wanted)]
            if not match:
                raise NotSelected(NO_ELEMENT, f"no element with {key} = {wanted!r}")
            value = match[0]
    for name in sel.field:
        value = _field(value, name)
    return value


async def load_structures(client: Any) -> str | None:
    """Teach the client the server's structures (asyncua generates a class per DataType from
    its DataTypeDefinition, OPC 10000-3 5.8.3, and decodes values of them from then on). Types
    already known to this process are kept. Returns why it failed, None when done; a failure
    is not fatal: the points selecting a field then store :data:`UNDECODED` samples."""
    try:
        await client.load_data_type_definitions()
    except Exception as exc:  # a server's broken definition must not stop the collection
        return f"{type(exc).__name__}: {exc}"
    try:
        await _load_dictionaries(client)
    except Exception as exc:
        # the 1.04 definitions loaded above still decode: only dictionary-only types do not
        return f"DataTypeDictionary (structures with a DataTypeDefinition are decoded): {exc}"
    return None


async def _load_dictionaries(client: Any) -> None:
    """The structures a server describes only in a DataTypeDictionary (the "OPC Binary" type
    system of OPC UA 1.03, OPC 10000-5 D.5; servers of that era have no DataTypeDefinition
    attribute): asyncua's dictionary loader, keeping every class already registered (the 1.04
    definitions and types known before win; only the structures nothing decoded are added)."""
    import asyncua.ua as ua_module
    from asyncua.ua import uatypes

    names = dict(vars(ua_module))
    by_typeid = dict(uatypes.extension_objects_by_typeid)
    typeids = dict(uatypes.extension_object_typeids)
    try:
        await load_type_definitions(client)
    finally:
        for typeid, cls in by_typeid.items():
            uatypes.extension_objects_by_typeid[typeid] = cls
        uatypes.extension_object_typeids.update(typeids)
        for name, value in names.items():
            if vars(ua_module).get(name) is not value:
                setattr(ua_module, name, value)
