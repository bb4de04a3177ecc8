"""Handlers imported when their command runs, not when the parser is built.

``shopfloor --help`` and ``shopfloor config check`` run on small gateways: building the parser
must not import asyncua, pymodbus, paho, numpy or the runtime. A command whose implementation
module is heavy registers its arguments in a light module and names its handler as
``"package.module:function"``; :func:`handler` imports that module only on the call.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import cast

Handler = Callable[[argparse.Namespace], int]


def resolve(target: str) -> Handler:
    """The function named by ``"package.module:function"`` (imports the module)."""
    module, sep, name = target.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"handler target {target!r} is not 'package.module:function'")
    func = getattr(importlib.import_module(module), name, None)
    if not callable(func):
        raise ValueError(f"handler target {target!r}: {module} has no function {name}")
    return cast(Handler, func)


class LazyHandler:
    """A handler that imports its target on the first call (the parser stays light)."""

    def __init__(self, target: str) -> None:
        module, sep, name = target.partition(":")
        if not sep or not module or not name:
            raise ValueError(f"handler target {target!r} is not 'package.module:function'")
        self.target = target

    def __call__(self, args: argparse.Namespace) -> int:
        return resolve(self.target)(args)

    def __repr__(self) -> str:
        return f"LazyHandler({self.target!r})"


def handler(target: str) -> LazyHandler:
    return LazyHandler(target)
