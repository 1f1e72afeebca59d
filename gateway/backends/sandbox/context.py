"""What a sandbox action handler may use: the narrow context, and the shape of a handler table.

Handlers take a `Sandbox` (the store, the account's identity, event publishing, media fetching,
and calling another action), never the backend class itself, so a module of handlers depends on
these few things only. Each handler module exports its table as `HANDLERS`; the backend composes
the tables explicitly (`compose`), so which module serves which action is read in one place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gateway.backends.sandbox.store import Store
from gateway.fetcher import Fetcher

if TYPE_CHECKING:
    from gateway.backends.sandbox.exchange import SandboxExchange


class Sandbox(Protocol):
    """The simulated account as its handlers see it."""

    store: Store
    fetcher: Fetcher
    nickname: str
    shared_world: SandboxExchange | None
    """The exchange while another sandbox account shares the world, else None: a message the
    bot sent and stored is handed to it (`SandboxExchange.sent`), after its own event."""

    @property
    def self_id(self) -> int: ...

    @property
    def media_max_size(self) -> int:
        """The largest media file the account accepts, in bytes (`mediaMaxSize`)."""
        ...

    @property
    def local_file_roots(self) -> tuple[Path, ...] | None:
        """The directories local paths must be in (`localFileRoots`, resolved); None: any."""
        ...

    @property
    def started_at(self) -> float:
        """When the account last started (`time.time()`), for `get_status`'s uptime."""
        ...

    def publish(self, event: dict[str, Any]) -> None:
        """Publish an event on the bus; never raises."""
        ...

    def event(self, post_type: str, **fields: Any) -> dict[str, Any]:
        """A new event of this account: `time` and `self_id` filled in."""
        ...

    def notice(self, notice_type: str, **fields: Any) -> None:
        """Publish a `notice` event of this account."""
        ...

    async def invoke(self, action: str, params: dict[str, Any]) -> Any:
        """Run another catalog action, its parameters validated like a client's."""
        ...

    async def reopen(self) -> None:
        """Stop and start the account (`set_restart`): the database is closed and opened again
        (seeded from the world anew when it is `:memory:`) and `started_at` is reset. The
        caller may have replaced `store` meanwhile, so that calls wait for the new one."""
        ...


Handler = Callable[[Sandbox, Any], Awaitable[Any]]
HandlerTable = Mapping[str, Handler]


def compose(*tables: HandlerTable) -> dict[str, Handler]:
    """One table from several; an action served by two modules is a programming error."""
    composed: dict[str, Handler] = {}
    for table in tables:
        for name, fn in table.items():
            if name in composed:
                raise ValueError(f"sandbox action {name!r} is served by two handler tables")
            composed[name] = fn
    return composed
