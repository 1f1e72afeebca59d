"""The sandbox backend: actions read and change the simulated account's state in SQLite."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gateway.actions import default_catalog
from gateway.actions.catalog import Catalog, Params
from gateway.backends.sandbox import (
    albums,
    bench,
    cards,
    credentials,
    essence,
    extended_account,
    extended_group,
    extended_message,
    extended_system,
    faces,
    files,
    flash,
    friends,
    group_admin,
    groups,
    history,
    media,
    notices,
    online_files,
    quick,
    requests,
    sending,
    simulated,
    streams,
    system,
    todos,
)
from gateway.backends.sandbox.context import Handler, compose
from gateway.backends.sandbox.exchange import SandboxExchange
from gateway.backends.sandbox.seed import seed
from gateway.backends.sandbox.store import Store
from gateway.backends.sandbox.world import load_world
from gateway.bus import EventBus
from gateway.config import SandboxBackendConfig
from gateway.fetcher import Fetcher
from gateway.protocol.envelope import ActionNotFound

BENCH_HOOK = "sandbox_emit_bench"

HANDLERS: dict[str, Handler] = compose(
    system.HANDLERS,
    sending.HANDLERS,
    history.HANDLERS,
    simulated.HANDLERS,
    extended_message.HANDLERS,
    cards.HANDLERS,
    faces.HANDLERS,
    albums.HANDLERS,
    media.HANDLERS,
    files.HANDLERS,
    todos.HANDLERS,
    online_files.HANDLERS,
    flash.HANDLERS,
    friends.HANDLERS,
    requests.HANDLERS,
    groups.HANDLERS,
    group_admin.HANDLERS,
    extended_group.HANDLERS,
    notices.HANDLERS,
    essence.HANDLERS,
    credentials.HANDLERS,
    extended_account.HANDLERS,
    extended_system.HANDLERS,
    quick.HANDLERS,
    streams.HANDLERS,
    bench.HANDLERS,
)
"""Every action the sandbox serves, by canonical catalog name, composed from its modules' tables
(`BENCH_HOOK` is served only when the config enables it: see `supports`)."""


@functools.cache
def _catalog() -> Catalog:
    return default_catalog()


class SandboxBackend:
    """A simulated QQ account. `start()` opens the database and seeds it from the world once.

    It owns the media `fetcher` (loopback URLs in segments and uploads): `stop()` closes it.
    With an `exchange` (one per gateway, shared by its sandbox accounts) it takes part in the
    world the accounts share from `start()` to `stop()`: its bot's messages reach the other
    accounts, theirs reach it (exchange.py).
    """

    kind = "sandbox"

    def __init__(
        self, config: SandboxBackendConfig, bus: EventBus, exchange: SandboxExchange | None = None
    ) -> None:
        self.config = config
        self.bus = bus
        self.exchange = exchange
        self.shared_world: SandboxExchange | None = None
        self.online = True
        self.store = Store(config.database)
        self.fetcher = Fetcher(
            timeout=config.media_fetch_timeout / 1000, max_size=config.media_max_size
        )
        self.started_at = time.time()
        self._self_id = 0
        self.nickname = ""

    @property
    def self_id(self) -> int:
        return self._self_id

    @property
    def media_max_size(self) -> int:
        return self.config.media_max_size

    @functools.cached_property
    def local_file_roots(self) -> tuple[Path, ...] | None:
        roots = self.config.local_file_roots
        return None if roots is None else tuple(Path(root).resolve() for root in roots)

    async def start(self) -> None:
        """Open the database, seeding an empty one from the world (`selfId` and `nickname`
        in place of the world's own); ConfigError when a seeded database is another account
        than `selfId` says, or another account of the exchange has the same QQ number."""
        config = self.config
        world = load_world(config.world)
        await self.store.open()
        try:
            me = await self.store.run(
                lambda db: seed(db, world, config.self_id, config.nickname, config.database)
            )
            self._self_id, self.nickname = me.self_id, me.nickname
            self.online = await self.store.run(
                lambda db: bool(db.execute("SELECT online FROM account").fetchone()[0])
            )
            if self.exchange is not None:
                self.exchange.register(self)
        except BaseException:
            await self.store.close()
            raise

    async def stop(self) -> None:
        if self.exchange is not None:
            self.exchange.unregister(self)  # first: nothing more is delivered to this store
        await bench.stop_emitters(self)  # benchmark runs still publishing
        await self.fetcher.close()
        await self.store.close()

    async def reopen(self) -> None:
        """`stop()` then `start()` (the `set_restart` action); `started_at` is reset."""
        await self.stop()
        await self.start()
        self.started_at = time.time()

    async def invoke(self, action: str, params: dict[str, Any]) -> Any:
        """Run another catalog action from inside a handler, validated like a client call."""
        entry = _catalog().resolve(action)
        if entry is None:
            raise ActionNotFound(f"unknown action {action!r}")
        return await self.call(entry.name, entry.validate(params))

    def publish(self, event: dict[str, Any]) -> None:
        """Publish an event built by a handler on the bus."""
        self.bus.publish(event)

    def event(self, post_type: str, **fields: Any) -> dict[str, Any]:
        """A new event with `time` and `self_id` filled in."""
        return {"time": int(time.time()), "self_id": self.self_id, "post_type": post_type, **fields}

    def notice(self, notice_type: str, **fields: Any) -> None:
        """Publish a `notice` event."""
        self.publish(self.event("notice", notice_type=notice_type, **fields))

    def status(self) -> dict[str, Any]:
        return {"online": self.online, "good": True}

    def supports(self, action: str) -> bool:
        """Every action with a handler, but the benchmark hook only when the config enables it
        (`benchHook`): it can publish millions of events on behalf of any client."""
        if action == BENCH_HOOK and not self.config.bench_hook:
            return False
        return action in HANDLERS

    async def call(self, action: str, params: Params) -> Any:
        fn = HANDLERS.get(action)
        if fn is None:
            raise ActionNotFound(f"action {action!r} is not available on the sandbox backend")
        return await fn(self, params)

    def bind(self, action: str) -> Callable[[Params], Awaitable[Any]]:
        return functools.partial(HANDLERS[action], self)
