"""MTConnect connection and data-item address models, and the reviewed vocabulary table.

The table below is the one place where MTConnect's controlled vocabularies become numbers and
machine states (docs/connectors/mtconnect.md explains each choice). Values cite *MTConnect
Standard Part 3.0 — Observation Information Model* (v1.3 - v2.x, section "Event" ->
``Execution``, ``ControllerMode``, ``Availability``; the enumerations are unchanged since 1.3).

- An enumerated observation is stored as its code from :data:`ENUMS` (a float, like an
  enumerated PLC state); an unknown word is a malformed value (counted, never stored).
- ``Execution`` and ``ControllerMode`` combine into one *state code*
  ``100 * mode_code + execution_code`` (:func:`state_code`): a machine in ``MANUAL`` whose
  execution is ``ACTIVE`` is jogging (setup), not producing. :data:`DEFAULT_STATE_MAP` maps every
  combination to a machine state; a state point of an MTConnect device that gives no
  ``state_map`` gets it (config.models fills it in, so the evidence records the map in force).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

from pydantic import Field, model_validator

from config.base import Frozen

# ---- the reviewed table (MTConnect Part 3, Observation Information Model) ----------------------
#: Execution (Part 3, 9.1 "Execution"): the operating state of a program-controlled component.
EXECUTION: Final[dict[str, int]] = {
    "READY": 1,  # ready to execute instructions; currently idle
    "ACTIVE": 2,  # operating and executing its program
    "INTERRUPTED": 3,  # suspended by an interruption (e.g. single block, operator action)
    "FEED_HOLD": 4,  # axis motion commanded to stop at the current position
    "STOPPED": 5,  # stopped (a fault, an emergency stop or reset)
    "OPTIONAL_STOP": 6,  # M01 optional stop reached (operator check)
    "PROGRAM_STOPPED": 7,  # M00 program stop reached
    "PROGRAM_COMPLETED": 8,  # end of program (M02/M30)
    "WAIT": 9,  # waiting for an external event (material, loader, bar feeder) (v1.5+)
    "PROGRAM_OPTIONAL_STOP": 10,  # program-level optional stop (v1.5+, deprecated 2.0)
}
#: ControllerMode (Part 3, "ControllerMode"): 0 is AUTOMATIC (and "no mode data item").
CONTROLLER_MODE: Final[dict[str, int]] = {
    "AUTOMATIC": 0,
    "MANUAL": 1,  # jog, hand wheel
    "MANUAL_DATA_INPUT": 2,  # MDI: single blocks typed at the control
    "SEMI_AUTOMATIC": 3,  # single-block execution of a program
    "EDIT": 4,  # program edit
}
#: Availability (Part 3, "Availability"); UNAVAILABLE itself becomes a link_lost marker.
AVAILABILITY: Final[dict[str, int]] = {"AVAILABLE": 1, "UNAVAILABLE": 0}
#: EmergencyStop (Part 3, "EmergencyStop")
EMERGENCY_STOP: Final[dict[str, int]] = {"ARMED": 0, "TRIGGERED": 1}

ENUMS: Final[dict[str, dict[str, int]]] = {
    "EXECUTION": EXECUTION,
    "CONTROLLER_MODE": CONTROLLER_MODE,
    "AVAILABILITY": AVAILABILITY,
    "EMERGENCY_STOP": EMERGENCY_STOP,
}

#: machine state of each Execution value in AUTOMATIC / SEMI_AUTOMATIC mode
EXECUTION_STATE: Final[dict[str, str]] = {
    "ACTIVE": "producing",
    "READY": "idle",
    "PROGRAM_COMPLETED": "idle",  # waiting for the next cycle start
    "WAIT": "idle",  # waiting for material / a loader: not a machine fault
    "OPTIONAL_STOP": "idle",  # a programmed pause for an operator check
    "PROGRAM_STOPPED": "idle",
    "PROGRAM_OPTIONAL_STOP": "idle",
    "INTERRUPTED": "down",  # the cycle was broken off: lost time until resumed
    "FEED_HOLD": "down",
    "STOPPED": "down",
}
#: modes in which the machine is being set up whatever its execution says
SETUP_MODES: Final = frozenset({"MANUAL", "MANUAL_DATA_INPUT", "EDIT"})

UNAVAILABLE: Final = "UNAVAILABLE"
PART_COUNT_SUBTYPES: Final = ("ALL", "GOOD", "BAD", "TOTAL", "TARGET", "REMAINING")


def state_code(execution: str, mode: str | None) -> int | None:
    """The stored code of an (Execution, ControllerMode) pair; None for an unknown word."""
    e = EXECUTION.get(execution)
    m = 0 if mode is None else CONTROLLER_MODE.get(mode)
    if e is None or m is None:
        return None
    return 100 * m + e


def _default_state_map() -> dict[str, str]:
    out: dict[str, str] = {}
    for mode in CONTROLLER_MODE:
        for execution, state in EXECUTION_STATE.items():
            code = state_code(execution, mode)
            assert code is not None
            out[str(code)] = "setup" if mode in SETUP_MODES else state
    return out


#: state code (as text) -> machine state, for a state point that gives no state_map
DEFAULT_STATE_MAP: Final[dict[str, str]] = _default_state_map()


# ---- site-file models ---------------------------------------------------------------------------
class MtconnectConnection(Frozen):
    url: str = Field(pattern=r"^https?://", description="agent base URL, e.g. http://cnc:5000")
    device: str | None = Field(
        default=None, description="the agent's device name (or uuid); absent: its only device"
    )
    streaming: bool = Field(
        default=True, description="sample?interval= stream (else sample requests in a loop)"
    )
    interval_ms: int = Field(
        default=1000, ge=10, description="streaming interval, or pause between sample requests"
    )
    count: int = Field(default=1000, ge=1, le=100_000, description="observations per request")
    timeout_s: float = Field(default=10.0, gt=0)
    resume_file: Path | None = Field(
        default=None,
        description="where the next sequence is kept across restarts "
        "(default data/mtconnect-<device id>.json beside the site file)",
    )


class MtconnectAddress(Frozen):
    data_item: str | None = Field(default=None, description="the DataItem id of the probe")
    type: str | None = Field(
        default=None, pattern=r"^[A-Z][A-Z_]*$", description="DataItem type, e.g. PART_COUNT"
    )
    sub_type: str | None = Field(default=None, pattern=r"^[A-Z][A-Z_]*$", description="e.g. GOOD")
    component: str | None = Field(
        default=None, description="id or name of the component holding the data item"
    )
    mode_item: Literal["auto", "none"] = Field(
        default="auto",
        description="EXECUTION only: combine with the component's ControllerMode ('auto')",
    )

    @model_validator(mode="after")
    def _one(self) -> MtconnectAddress:
        if (self.data_item is None) == (self.type is None):
            raise ValueError("give exactly one of 'data_item' or 'type'")
        if self.sub_type is not None and self.type is None:
            raise ValueError("sub_type goes with type")
        return self
