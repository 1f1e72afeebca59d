"""The Backend protocol: the account behind the dispatcher."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from gateway.actions.catalog import Params


class Backend(Protocol):
    """What the dispatcher and supervisor need from a backend.

    `call` raises `ActionError` subclasses for failures the caller should see (ActionFailed → 1200);
    any other exception is reported as an internal error.
    """

    kind: str
    """Short name used in messages: `sandbox`, `relay`."""

    @property
    def self_id(self) -> int:
        """The account's QQ number."""
        ...

    async def start(self) -> None:
        """Open storage or connections; after this `self_id` is known."""

    async def stop(self) -> None:
        """Release everything `start` acquired."""

    def status(self) -> dict[str, Any]:
        """`{online, good}` for heartbeats, without I/O."""
        ...

    def supports(self, action: str) -> bool:
        """Whether `call` implements this canonical action name."""
        ...

    async def call(self, action: str, params: Params) -> Any:
        """Run one validated action and return its `data`."""

    def bind(self, action: str) -> Callable[[Params], Awaitable[Any]]:
        """`call` for one supported action, resolved once: the dispatcher keeps it per action
        name and calls it without going through `call` again."""
        ...
