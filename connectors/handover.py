"""Handing a :class:`SampleBlock` to a sink, columnar where the sink takes blocks.

A sink with ``put_block(block)`` gets the block itself; any other sink gets its rows as
:class:`Sample` objects through ``put_many``. (Interim: once ``Sink.put_block`` is part of the
contract, callers can call it directly.)
"""

from __future__ import annotations

from connectors.base import SampleBlock, Sink


def _hand(sink: Sink, block: SampleBlock) -> None:
    """Give ``block`` to ``sink`` (``put_block`` when it has one, else ``put_many``)."""
    put_block = getattr(sink, "put_block", None)
    if put_block is not None:
        put_block(block)
    else:
        sink.put_many(block.samples())
