"""Working calendar: shifts, planned downtime and holidays (gives ISO 22400 POT and PBT)."""

from __future__ import annotations

import datetime as dt

from pydantic import Field, model_validator

from config.base import Frozen, Identifier


class Shift(Frozen):
    name: str
    start: dt.time
    end: dt.time = Field(description="may be earlier than start: the shift crosses midnight")
    weekdays: tuple[int, ...] = Field(
        default=(1, 2, 3, 4, 5, 6, 7), description="ISO weekdays 1=Mon..7=Sun of the shift start"
    )

    @model_validator(mode="after")
    def _check(self) -> Shift:
        if self.start == self.end:
            raise ValueError("a shift needs a start different from its end")
        if not self.weekdays or any(d < 1 or d > 7 for d in self.weekdays):
            raise ValueError("weekdays are ISO numbers 1..7")
        return self


class Break(Frozen):
    """A recurring planned stop inside shifts (meal break, daily maintenance)."""

    name: str
    start: dt.time
    end: dt.time
    weekdays: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)


class PlannedDowntime(Frozen):
    """A one-off planned stop (maintenance, trial), local time of the site."""

    start: dt.datetime
    end: dt.datetime
    reason: str
    devices: tuple[Identifier, ...] | None = Field(
        default=None, description="devices concerned; absent = the whole site"
    )

    @model_validator(mode="after")
    def _order(self) -> PlannedDowntime:
        if self.end <= self.start:
            raise ValueError("planned downtime must end after it starts")
        return self


class Calendar(Frozen):
    shifts: tuple[Shift, ...] = Field(
        default=(), description="absent or empty = the plant runs around the clock"
    )
    breaks: tuple[Break, ...] = ()
    planned_downtime: tuple[PlannedDowntime, ...] = ()
    holidays: tuple[dt.date, ...] = ()
