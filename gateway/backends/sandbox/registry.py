"""The sandbox's action implementations, by canonical catalog name."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.backends.sandbox.backend import SandboxBackend

Handler = Callable[["SandboxBackend", Any], Awaitable[Any]]
HANDLERS: dict[str, Handler] = {}


def handler(name: str) -> Callable[[Handler], Handler]:
    """Register the sandbox's implementation of the catalog action `name`."""

    def register(fn: Handler) -> Handler:
        if name in HANDLERS:
            raise ValueError(f"sandbox handler {name!r} registered twice")
        HANDLERS[name] = fn
        return fn

    return register
