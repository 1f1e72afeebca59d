"""The sandbox backend: actions read and change the simulated account's state in SQLite."""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Awaitable, Callable
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
from gateway.backends.sandbox.store import Store
from gateway.backends.sandbox.world import World, load_world
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
    """

    kind = "sandbox"

    def __init__(self, config: SandboxBackendConfig, bus: EventBus) -> None:
        self.config = config
        self.bus = bus
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

    async def start(self) -> None:
        world = load_world(self.config.world)
        await self.store.open()
        self._self_id, self.nickname = await self.store.run(lambda db: _seed(db, world))
        self.online = await self.store.run(
            lambda db: bool(db.execute("SELECT online FROM account").fetchone()[0])
        )

    async def stop(self) -> None:
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


def _seed(db: sqlite3.Connection, world: World) -> tuple[int, str]:
    row = db.execute("SELECT self_id, nickname FROM account").fetchone()
    if row is not None:
        return int(row["self_id"]), str(row["nickname"])
    now = int(time.time())
    db.execute(
        "INSERT INTO account (self_id, nickname) VALUES (?, ?)",
        (world.self.user_id, world.self.nickname),
    )
    for friend in world.friends:
        db.execute(
            "INSERT INTO users (user_id, nickname, is_friend, remark, category) VALUES (?,?,1,?,?)",
            (friend.user_id, friend.nickname, friend.remark, friend.category),
        )
    for group in world.groups:
        db.execute(
            "INSERT INTO groups (group_id, group_name) VALUES (?, ?)",
            (group.group_id, group.group_name),
        )
        for member in group.members:
            db.execute(
                "INSERT OR IGNORE INTO users (user_id, nickname) VALUES (?, ?)",
                (member.user_id, member.nickname),
            )
            db.execute(
                "INSERT INTO members (group_id, user_id, role, card, title, join_time) "
                "VALUES (?,?,?,?,?,?)",
                (group.group_id, member.user_id, member.role, member.card, member.title, now),
            )
    return world.self.user_id, world.self.nickname
