"""Keeping heavy optional imports out of nightlab's start: every command and the TUI's first data wait on them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def hidden_module(name: str) -> Iterator[None]:
    """While inside, `import name` raises ImportError unless the module is loaded already. For a library that imports
    an optional package only to support its types (sqlite_utils and pandas: half a second of CPU at every start,
    for a timestamp type the store never writes). Afterwards the package imports as usual."""
    if name in sys.modules:
        yield
        return
    sys.modules[name] = None  # type: ignore[assignment]  # the import system's "not importable" mark
    try:
        yield
    finally:
        if sys.modules.get(name, 0) is None:
            del sys.modules[name]
