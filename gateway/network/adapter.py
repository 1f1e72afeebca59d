"""What the supervisor needs from every network adapter."""

from __future__ import annotations

from typing import Protocol


class Adapter(Protocol):
    """One started config entry: a server that listens or a client that dials."""

    name: str
    """The entry's `name` (unique across kinds)."""

    async def start(self) -> None:
        """Begin serving; raises OSError when the address cannot be bound."""

    async def stop(self) -> None:
        """Stop accepting, let in-flight work finish within the grace period, release sockets."""

    def describe(self) -> str:
        """A one-line address for logs, such as `http://127.0.0.1:3000`."""
        ...
