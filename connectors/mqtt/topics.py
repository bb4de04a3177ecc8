"""Pure MQTT topic handling: filter matching (``+`` and ``#``) and the device named by a topic.

Matching follows MQTT 3.1.1 section 4.7: ``+`` matches exactly one level (possibly empty),
``#`` matches the parent level and any number of levels below it, and a filter starting with a
wildcard never matches a topic starting with ``$`` (``$SYS/...``).
"""

from __future__ import annotations

import re
from functools import lru_cache

# a device id taken from a topic must be a valid Identifier of the site file
_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class TopicError(ValueError):
    """A topic filter or a device-level setting that cannot work."""


def has_wildcard(topic_filter: str) -> bool:
    return "+" in topic_filter or "#" in topic_filter


@lru_cache(maxsize=4096)
def _levels(text: str) -> tuple[str, ...]:
    return tuple(text.split("/"))


def matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` (a concrete topic name) matches ``topic_filter``."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    flt = _levels(topic_filter)
    top = topic.split("/")
    for i, level in enumerate(flt):
        if level == "#":
            return True
        if i >= len(top):
            return False
        if level != "+" and level != top[i]:
            return False
    return len(flt) == len(top)


def device_level_ok(topic_filter: str, level: int) -> bool:
    """Whether level ``level`` of topics matching ``topic_filter`` can name a device.

    True when that level is a ``+`` of the filter or lies under its ``#``; a literal level
    would name the same device for every message, which is never what a template means.
    """
    flt = _levels(topic_filter)
    for i, part in enumerate(flt):
        if part == "#":
            return True
        if i == level:
            return part == "+"
    return False


def device_from_topic(topic: str, level: int) -> str | None:
    """The device id at ``level`` (0-based) of ``topic``; None when absent or not an id."""
    parts = topic.split("/")
    if level >= len(parts):
        return None
    name = parts[level]
    return name if _DEVICE_ID.match(name) else None


def concrete_topic(topic_filter: str, device: str | None, level: int | None) -> str:
    """A topic that ``topic_filter`` matches, with ``device`` at ``level`` when given.

    Used by the simulated station to publish where a template subscribes: ``+`` at the device
    level becomes the device id, any other ``+`` becomes ``sim``, and ``#`` becomes ``sim``.
    """
    out: list[str] = []
    for i, part in enumerate(_levels(topic_filter)):
        if part == "#":
            out.append(device if (device is not None and level == i) else "sim")
            if device is not None and level is not None and level > i:
                out.extend(["sim"] * (level - i - 1))
                out.append(device)
            break
        if part == "+":
            out.append(device if (device is not None and level == i) else "sim")
        else:
            out.append(part)
    return "/".join(out)
