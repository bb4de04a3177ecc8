"""Shared building blocks of the site-file models."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# one set object per distinct "fields given in the file" (see Frozen.model_post_init)
_FIELDS_SETS: dict[frozenset[str], set[str]] = {}


class Frozen(BaseModel):
    """Base of every config model: immutable, unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def model_post_init(self, context: Any, /) -> None:
        """Share the record of the fields set in the file between the models that set the
        same ones: 216 bytes per model otherwise (two per Modbus point: 21 MB per 50,000
        points). Safe because a frozen model never changes it in place (pydantic's copies
        take their own copy)."""
        fields = self.__pydantic_fields_set__
        key = frozenset(fields)
        shared = _FIELDS_SETS.get(key)
        if shared is None:
            if len(_FIELDS_SETS) >= 4096:  # a bound, for a process that validates much else
                return
            shared = _FIELDS_SETS[key] = fields
        object.__setattr__(self, "__pydantic_fields_set__", shared)


Identifier = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"),
]


class SecretError(ValueError):
    """A secret reference could not be resolved (the value itself is never shown)."""


class SecretRef(Frozen):
    """A secret taken from an environment variable or a file, never written in the site file.

    ``{env: MQTT_PASSWORD}`` or ``{file: /run/secrets/mqtt}``. The value is only read by
    :meth:`reveal`; ``repr``/``str`` and JSON dumps show the reference, never the value.
    """

    env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    file: Path | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' or 'file'")
        return self

    def reveal(self) -> str:
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise SecretError(f"environment variable {self.env} is not set")
            return value
        assert self.file is not None
        try:
            return self.file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretError(f"cannot read secret file {self.file}: {exc.strerror}") from None

    def __str__(self) -> str:
        return f"env:{self.env}" if self.env else f"file:{self.file}"

    def __repr__(self) -> str:
        return f"SecretRef({self})"


Quality = Literal["good", "uncertain", "bad"]
