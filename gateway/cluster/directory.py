"""The cluster's account directory: which node hosts which `self_id`, and whether it is online.

A JetStream key-value bucket (`<prefix>_accounts`, key = the QQ number, value = JSON
`{"node", "name", "kind", "online", "at"}`, bucket TTL = `directory_ttl`). The hosting node puts
each of its accounts again every ttl/3 while the link is up (and right after a reconnect) and
deletes them on a clean stop. Every node watches the bucket. Expiry by the bucket's max age sends
no watch event, so a reader also treats an entry as offline once `now - at` passes the TTL: a
node killed without cleanup loses its accounts within the TTL (the nodes' clocks are assumed to
agree well within it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from gateway.accounts import Account
from gateway.cluster.link import ClusterLink, end_task

log = structlog.get_logger("gateway.cluster")


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """Where one account lives, as its node last wrote it."""

    self_id: int
    node: str
    name: str
    kind: str
    online: bool
    """What the node said: its backend is online."""
    at: float
    """When the node wrote it (unix seconds)."""

    def live(self, ttl: float, now: float | None = None) -> bool:
        """Online, and refreshed within `ttl` seconds."""
        return self.online and (time.time() if now is None else now) - self.at <= ttl


def parse_entry(key: str, value: bytes) -> DirectoryEntry | None:
    """The entry a bucket value holds, or None if it is not one (written by something else)."""
    if not key.isdigit():
        return None
    try:
        data = orjson.loads(value)
        return DirectoryEntry(
            int(key),
            str(data["node"]),
            str(data["name"]),
            str(data["kind"]),
            bool(data["online"]),
            float(data["at"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


class Directory:
    """This node's view of the directory, and the entries of the accounts it hosts.

    `ttl` is in seconds (`cluster.directoryTtl / 1000`)."""

    def __init__(self, link: ClusterLink, node: str, ttl: float) -> None:
        self.link = link
        self.node = node
        self.ttl = ttl
        self._hosted: dict[str, Account] = {}
        self._keys: dict[str, int] = {}
        """The key each hosted account was last put under (a relay learns its number late)."""
        self._entries: dict[int, DirectoryEntry] = {}
        self._refresher: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self.watched = asyncio.Event()
        """Set once the watch has read the whole bucket (after each (re)connect)."""
        self.updated = asyncio.Event()
        """Set on every change the watch sees (waiters clear it first; the console or a test
        can wait on it instead of polling)."""

    async def start(self) -> None:
        """Refresh the hosted accounts every ttl/3 and watch the bucket from each (re)connect."""
        self.link.on_connect(self._connected)
        self._refresher = asyncio.create_task(self._refresh_forever(), name="directory-refresh")

    async def stop(self, clean: bool = True) -> None:
        """Stop refreshing and watching; with `clean`, delete the hosted accounts' entries (their
        accounts are offline at once on every node). Call before the link stops."""
        self.link.remove_listener(self._connected)
        for task in (self._refresher, self._watcher):
            if task is not None:
                await end_task(task)
        self._refresher = self._watcher = None
        if clean:
            for name in list(self._keys):
                await self._delete(name)
        self._hosted.clear()

    def host(self, account: Account) -> None:
        """Publish `account` as hosted by this node (now, if the link is up, then every ttl/3)."""
        self._hosted[account.name] = account
        if self.link.ready:
            self._spawn_refresh()

    async def unhost(self, name: str) -> None:
        """Stop publishing the account `name` and delete its entry."""
        self._hosted.pop(name, None)
        await self._delete(name)

    async def refresh(self) -> None:
        """Put every hosted account's entry now (an account went online or offline)."""
        kv = self.link.kv
        if kv is None or not self.link.connected:
            return
        for account in list(self._hosted.values()):
            await self._put(kv, account)

    def lookup(self, self_id: int) -> DirectoryEntry | None:
        """The entry of the account `self_id` (None when no node has it, or it was deleted)."""
        return self._entries.get(self_id)

    def online(self, self_id: int) -> bool:
        """Whether the account `self_id` is hosted and live (online, refreshed within the TTL)."""
        entry = self._entries.get(self_id)
        return entry is not None and entry.live(self.ttl)

    def nodes(self) -> dict[str, list[dict[str, Any]]]:
        """Node → its accounts (`self_id`, `name`, `kind`, `online`), for the console."""
        now = time.time()
        nodes: dict[str, list[dict[str, Any]]] = {}
        for entry in sorted(self._entries.values(), key=lambda e: (e.node, e.self_id)):
            nodes.setdefault(entry.node, []).append(
                {
                    "self_id": entry.self_id,
                    "name": entry.name,
                    "kind": entry.kind,
                    "online": entry.live(self.ttl, now),
                }
            )
        return nodes

    async def _connected(self) -> None:
        """After each (re)connect: put the hosted accounts again, watch the bucket afresh (the
        watch's consumer may not have survived a server restart)."""
        await self.refresh()
        if self._watcher is not None:
            await end_task(self._watcher)
        self.watched.clear()
        kv = self.link.kv
        if kv is not None:
            self._watcher = asyncio.create_task(self._watch(kv), name="directory-watch")

    async def _watch(self, kv: KeyValue) -> None:
        watcher = await kv.watchall()
        try:
            fresh: dict[int, DirectoryEntry] | None = {}
            async for update in watcher:
                if update is None:  # the bucket as it was: replace what was known
                    if fresh is not None:
                        # Entries known and still live by their time are kept: the marker can
                        # come before the bucket's entries have (a second watch after a quick
                        # reconnect), and dropping them made a hosted account look offline for
                        # a moment. One deleted while this node was away ages out by the TTL.
                        now = time.time()
                        kept = {
                            self_id: entry
                            for self_id, entry in self._entries.items()
                            if entry.live(self.ttl, now)
                        }
                        self._entries, fresh = {**kept, **fresh}, None
                    self.watched.set()
                    self.updated.set()
                    continue
                entries = self._entries if fresh is None else fresh
                if not update.key.isdigit():
                    continue
                if update.operation in (KV_DEL, KV_PURGE):
                    entries.pop(int(update.key), None)
                else:
                    entry = parse_entry(update.key, update.value or b"")
                    if entry is not None:
                        entries[entry.self_id] = entry
                if fresh is None:
                    self.updated.set()
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]  # untyped in nats-py

    def _spawn_refresh(self) -> None:
        self._kick.set()  # the refresher puts at once instead of at the end of its period

    async def _refresh_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.ttl / 3):
                    await self._kick.wait()
            self._kick.clear()
            try:
                await self.refresh()
            except Exception as error:  # the link went down meanwhile: the next round retries
                log.warning("directory_refresh_failed", error=str(error) or type(error).__name__)

    async def _put(self, kv: KeyValue, account: Account) -> None:
        self_id = account.self_id
        if not self_id:
            return  # a relay that has not learned its number yet
        old = self._keys.get(account.name)
        if old is not None and old != self_id:
            await self._delete(account.name)
        value = {
            "node": self.node,
            "name": account.name,
            "kind": account.backend.kind,
            "online": account.online(),
            "at": time.time(),
        }
        await kv.put(str(self_id), orjson.dumps(value))
        self._keys[account.name] = self_id

    async def _delete(self, name: str) -> None:
        self_id = self._keys.pop(name, None)
        kv = self.link.kv
        if self_id is None or kv is None or not self.link.connected:
            return
        try:
            await kv.delete(str(self_id))
        except Exception as error:
            log.warning("directory_delete_failed", self_id=self_id, error=str(error))
