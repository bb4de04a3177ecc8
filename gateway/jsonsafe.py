"""Turn domain results (dataclasses, numpy, enums) into JSON-safe values; NaN/inf become None."""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np


def jsonable(obj: Any, _depth: int = 0) -> Any:
    if _depth > 40:
        raise ValueError("structure too deep to serialise")
    d = _depth + 1
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, enum.Enum):
        return obj.value if isinstance(obj.value, str | int) else obj.name
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, np.generic):
        return jsonable(obj.item(), d)
    if isinstance(obj, np.ndarray):
        return [jsonable(x, d) for x in obj.tolist()]
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict) and not isinstance(obj, Mapping):
        return jsonable(to_dict(), d)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name), d) for f in dataclasses.fields(obj)}
    model_dump = getattr(obj, "model_dump", None)
    if callable(model_dump):
        return jsonable(model_dump(mode="json"), d)
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v, d) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [jsonable(x, d) for x in obj]
    if hasattr(obj, "_asdict"):
        return jsonable(obj._asdict(), d)
    return str(obj)
