"""Frozen config models kept as columns (issue 16: the site's points were ~1 KB each).

A pydantic model keeps its fields in a ``__dict__`` of its own: a Modbus point (``Point`` and
its ``ModbusAddress``, 17 + 6 entries) costs about 900 bytes, 90 MB per 100,000 points,
although most of its fields hold the same default on every point. :class:`ModelColumns` keeps
the validated field values of many models of one class by field instead:

* a field holding the same value on every row is kept once (:class:`Const`);
* a field of exact ``int``s (``float``s) is an ``array`` of 8 bytes a row;
* a field of sub-models of one class (``ModbusAddress``) is itself kept as columns;
* a field of strings (point ids, node ids) is one text and the end of each row's
  (:class:`Texts`);
* any other field is a list; its equal strings, dicts and tuples share one object (a point id
  repeated on every device, an enum map repeated on every point).

:meth:`ModelColumns.row` builds the model of a row again, equal to the validated one (same
field values, same "fields set" record, nothing re-validated). Only models without extra or
private attributes are kept this way; :meth:`ModelColumns.of` returns None for others.

"Same value" is strict: same type and same ``repr`` (``1`` and ``1.0`` and ``True``, ``0.0``
and ``-0.0`` differ), so a row's dump is byte-identical to the original model's.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence
from typing import Any, Generic, TypeVar, overload

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

_PLAIN = (str, int, float, bool, type(None))
_SHARED = (dict, tuple, frozenset)
_INT64 = (-(2**63), 2**63 - 1)
_EXACT = (str, int, bool, type(None))


class Const:
    """A column whose every row holds ``value``."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Const) and _key(self.value) == _key(other.value)

    def __hash__(self) -> int:
        return hash(_key(self.value))


def _key(value: Any) -> object:
    """What makes two values interchangeable in a model: identity, or for plain data the
    type and ``repr`` (which tell ``1``, ``1.0``, ``True``, ``0.0`` and ``-0.0`` apart)."""
    if isinstance(value, _PLAIN + _SHARED):
        return (type(value), repr(value))
    return ("id", id(value))


class _Pool:
    """One object per distinct plain value (strings, dicts, tuples) among the rows."""

    __slots__ = ("objects",)

    def __init__(self) -> None:
        self.objects: dict[object, Any] = {}

    def share(self, value: Any) -> Any:
        if type(value) is str:
            return sys.intern(value)
        if type(value) in _SHARED:
            return self.objects.setdefault(_key(value), value)
        return value


Column = Any  # Const | array | list | ModelColumns (each indexable by row but Const)


def _column(values: list[Any], pool: _Pool) -> Column:
    first = values[0]
    k0 = _key(first)
    t0 = type(first)
    if t0 in _EXACT:  # equal str/int/bool of the same type are the same value
        same = all(v is first or (type(v) is t0 and v == first) for v in values)
    else:
        same = all(v is first or _key(v) == k0 for v in values)
    if same:
        return Const(first)
    kinds = {type(v) for v in values}
    if kinds == {int} and all(_INT64[0] <= v <= _INT64[1] for v in values):
        return array("q", values)
    if kinds == {float}:
        return array("d", values)  # keeps -0.0, NaN and every bit of the value
    if kinds == {str}:
        return Texts(values)
    models = kinds - {type(None)}
    if len(models) == 1:
        (cls,) = models
        if issubclass(cls, BaseModel):
            sub = ModelColumns.of(cls, values, pool)
            if sub is not None:
                return sub
    return [pool.share(v) for v in values]


class Texts(Sequence[str]):
    """A column of strings (point ids, node ids) as one text and each row's end in it.

    One allocation instead of a ``str`` object a row; above all, the strings a site file's
    parser made are not kept: they lie scattered among the parse's and the validation's
    transient objects, and a few kept on each of the allocator's pages kept the pages (100,000
    OPC UA points: ~90 MB of resident memory left after loading the site). A row read is the
    interned ``str`` equal to the validated one (a point id repeated on every device is one
    object in the store's, the deduplicator's and the plans' maps)."""

    __slots__ = ("_ends", "_text")

    def __init__(self, values: Sequence[str]) -> None:
        self._text = "".join(values)
        ends = array("q")
        end = 0
        for v in values:
            end += len(v)
            ends.append(end)
        self._ends = ends

    def __len__(self) -> int:
        return len(self._ends)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        ends = self._ends
        end = ends[index]  # IndexError out of range; negative indexes as a list's
        if index < 0:
            index += len(ends)
        # interned: the equal ids of many devices ('r0' on each) are one object wherever kept
        return sys.intern(self._text[ends[index - 1] if index else 0 : end])


class ModelColumns(Generic[M]):
    """The rows (models of class ``cls``, or None where absent) as columns."""

    __slots__ = ("_cls", "_fset", "_n", "_present", "_template", "_varying")

    def __init__(
        self,
        cls: type[M],
        n: int,
        template: dict[str, Any],
        varying: tuple[tuple[str, Column], ...],
        fset: Column,
        present: Column,
    ) -> None:
        self._cls = cls
        self._n = n
        self._template = template  # every field in order; the value every row holds, if any
        self._varying = varying  # (field, column) of the fields whose value varies
        self._fset = fset  # the "fields set" records (Const, or the shared set of each row)
        self._present = present  # Const(True), or a bytearray (0: the row is None)

    @classmethod
    def of(
        cls, model: type[M], rows: Sequence[M | None], pool: _Pool | None = None
    ) -> ModelColumns[M] | None:
        """``rows`` (models of exactly ``model``, or None) as columns; None when a row has
        extra or private attributes or is of another class, or when every row is None."""
        pool = pool or _Pool()
        given = [r for r in rows if r is not None]
        if not given:
            return None
        names = tuple(given[0].__dict__)
        for r in given:
            if (
                type(r) is not model
                or r.__pydantic_extra__ is not None
                or r.__pydantic_private__ is not None
                or tuple(r.__dict__) != names
            ):
                return None
        # an absent row (None) stores the first row's values (never read back)
        full = given if len(given) == len(rows) else [r or given[0] for r in rows]
        template: dict[str, Any] = {}
        varying: list[tuple[str, Column]] = []
        for name in names:
            col = _column([r.__dict__[name] for r in full], pool)
            if isinstance(col, Const):
                template[name] = col.value
            else:
                template[name] = None
                varying.append((name, col))
        fsets = [r.__pydantic_fields_set__ for r in full]
        f0 = fsets[0]
        fset: Column = Const(f0) if all(f is f0 or f == f0 for f in fsets) else fsets
        present: Column = (
            Const(True) if len(given) == len(rows) else bytearray(r is not None for r in rows)
        )
        return cls(model, len(rows), template, tuple(varying), fset, present)

    def __len__(self) -> int:
        return self._n

    def values(self, name: str) -> Sequence[Any] | None:
        """Every row's value of field ``name`` (None: a field of sub-models, or no field)."""
        for field, col in self._varying:
            if field == name:
                return None if isinstance(col, ModelColumns) else col
        if name in self._template:
            return [self._template[name]] * self._n
        return None

    def row(self, i: int) -> M | None:
        """The model of row ``i`` (None for an absent row)."""
        present = self._present
        if not isinstance(present, Const) and not present[i]:
            return None
        values = self._template.copy()  # keeps the order of the fields
        for name, col in self._varying:
            values[name] = col.row(i) if isinstance(col, ModelColumns) else col[i]
        fset = self._fset
        cls = self._cls
        m = cls.__new__(cls)
        object.__setattr__(m, "__dict__", values)
        object.__setattr__(
            m, "__pydantic_fields_set__", fset.value if isinstance(fset, Const) else fset[i]
        )
        object.__setattr__(m, "__pydantic_extra__", None)
        object.__setattr__(m, "__pydantic_private__", None)
        return m
