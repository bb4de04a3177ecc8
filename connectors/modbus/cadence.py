"""Honest poll scheduling (pure): when the next poll of a job is due, and how many were skipped.

Polls of a job are due on a fixed grid ``start + k * interval``. A poll that ends after its
next slot (an overrun: the device, the line or the gateway is too slow for the interval) does
not shift the grid: the missed slots are skipped and *counted*, and the next poll is due at the
next slot still ahead, so polls keep an even phase after an overrun. An *episode* is a run of
overrunning polls; it ends with the first poll that ends before its next slot.
"""

from __future__ import annotations

import math


class Cadence:
    """The poll grid of one job (see the module docstring); times in seconds, any clock."""

    __slots__ = ("due", "episodes", "interval_s", "overrunning", "polls", "skipped")

    def __init__(self, interval_s: float, start: float) -> None:
        if interval_s <= 0:
            raise ValueError("the poll interval must be positive")
        self.interval_s = interval_s
        self.due = start
        self.polls = 0
        self.skipped = 0
        self.episodes = 0  # overrun episodes started so far
        self.overrunning = False

    def done(self, now: float) -> int:
        """A poll (started at or after ``self.due``) ended at ``now``: move to the next slot
        ahead of ``now``; returns the slots skipped (0 when the poll kept its period)."""
        self.polls += 1
        self.due += self.interval_s
        missed = 0
        if self.due < now:
            missed = math.ceil((now - self.due) / self.interval_s)
            self.due += missed * self.interval_s
            self.skipped += missed
            if not self.overrunning:
                self.overrunning = True
                self.episodes += 1
        else:
            self.overrunning = False
        return missed
