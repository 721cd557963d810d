"""dataops runtime: recurring operational work as Git-backed definitions, tasks as state machines.

Embed it in a worker::

    import runtime

    rt = runtime.open(store="sqlite:///dataops.db", content="content", actor="worker")
    view = rt.create_bundle("podcast-episode", "2026-12-01")
    rt.start(view.tasks[0].task_id)

The facade is loaded on first use so that importing the package (and `dataops --help`) is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runtime.errors import (
    AuditChainBroken,
    ConflictError,
    DataopsError,
    DefinitionError,
    ExportFormatError,
    InputError,
    NotFoundError,
    ThrottledError,
    TransitionRejected,
)

if TYPE_CHECKING:
    from runtime.api import Runtime, open
    from runtime.clock import FixedClock, SystemClock
    from runtime.engine import BundleView

__all__ = [
    "AuditChainBroken",
    "BundleView",
    "ConflictError",
    "DataopsError",
    "DefinitionError",
    "ExportFormatError",
    "FixedClock",
    "InputError",
    "NotFoundError",
    "Runtime",
    "SystemClock",
    "ThrottledError",
    "TransitionRejected",
    "open",
]

_LAZY = {
    "open": "runtime.api",
    "Runtime": "runtime.api",
    "BundleView": "runtime.engine",
    "FixedClock": "runtime.clock",
    "SystemClock": "runtime.clock",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")
