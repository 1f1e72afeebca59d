"""In-process cluster nodes for tests and benchmarks: a ClusterLink, Directory and Responder per
node on one real nats-server, and sandbox accounts built as the supervisor builds them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gateway.accounts import Account
from gateway.actions import default_catalog
from gateway.backends.sandbox.backend import SandboxBackend
from gateway.backends.sandbox.exchange import SandboxExchange
from gateway.bus import EventBus
from gateway.cluster.calls import RemoteDispatcher, Responder
from gateway.cluster.directory import Directory
from gateway.cluster.link import ClusterLink
from gateway.config import ClusterConfig, SandboxBackendConfig
from gateway.dispatcher import Dispatcher

GUARD = 30.0
"""Seconds after which a wait that should end on an event fails the test instead of hanging."""


def cluster_config(url: str, node: str, **fields: Any) -> ClusterConfig:
    """A `cluster` section for a node on `url` (fields in their config spelling)."""
    return ClusterConfig.model_validate({"nats": {"url": url}, "node": node, **fields})


async def sandbox_account(name: str, self_id: int) -> Account:
    """A started sandbox account on `:memory:`, as `Supervisor._new_account` builds one."""
    config = SandboxBackendConfig(database=":memory:", self_id=self_id)
    backend = SandboxBackend(config, EventBus(), SandboxExchange())
    dispatcher = Dispatcher(default_catalog(), backend, rate_limit_interval=0)
    await backend.start()
    await dispatcher.start()
    return Account(name, config, backend, dispatcher)


async def stop_account(account: Account) -> None:
    await account.dispatcher.stop(0)
    await account.backend.stop()


class Node:
    """One gateway's cluster side: link, directory and responder (started by `start`)."""

    def __init__(self, url: str, name: str, **fields: Any) -> None:
        self.config = cluster_config(url, name, **fields)
        self.link = ClusterLink(self.config)
        self.directory = Directory(self.link, name, self.config.directory_ttl / 1000)
        self.responder = Responder(self.link, self.config.prefix)
        self.remotes: list[RemoteDispatcher] = []

    async def start(self) -> None:
        await self.directory.start()
        await self.responder.start()
        await self.link.start()
        async with asyncio.timeout(GUARD):
            await self.link.wait_ready()

    async def host(self, account: Account) -> None:
        await self.responder.serve(account)  # first: calls reach it once it is in the directory
        self.directory.host(account)

    async def remote(self, self_id: int, answer_within: float | None = None) -> RemoteDispatcher:
        """A started RemoteDispatcher for the account `self_id` (`answer_within`: its request
        timeout in seconds, the config's when None)."""
        timeout = self.config.request_timeout / 1000 if answer_within is None else answer_within
        dispatcher = RemoteDispatcher(
            self.link, self.config.prefix, self_id, timeout, directory=self.directory
        )
        await dispatcher.start()
        self.remotes.append(dispatcher)
        return dispatcher

    async def stop(self, clean: bool = True) -> None:
        """A clean stop (the directory's entries deleted), or with `clean=False` what a
        `kill -9` leaves: the connection closed, the entries still in the bucket."""
        for remote in self.remotes:
            await remote.stop(0)
        await self.responder.stop(0)
        await self.directory.stop(clean=clean)
        await self.link.stop()


async def until(directory: Directory, predicate: Callable[[], bool]) -> None:
    """Wait until `predicate()` holds, checking on each change the directory's watch sees."""
    async with asyncio.timeout(GUARD):
        while not predicate():
            directory.updated.clear()
            await directory.updated.wait()
