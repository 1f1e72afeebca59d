"""This gateway as a node of a cluster: the parts of `gateway.cluster` composed for a supervisor.

A node hosts its local accounts for the others (their directory entries, their calls answered,
their events published to the stream) and reaches the accounts other nodes host: each QQ number
an entry names that no local account has becomes a remote `Account` (a `RemoteBackend` and a
`RemoteDispatcher`), routed like a local one; the events of the remote accounts an entry serves
come from that entry's durable consumers (`EntryConsumer`), one per remote account, named after
this node, the entry and the account.

NATS may be away at any time: `start()` never waits for it, local accounts and entries keep
working, remote calls fail fast with 1200, and hosted accounts' events wait (bounded) until it
returns.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from gateway.accounts import Account, Accounts
from gateway.actions.catalog import Catalog
from gateway.bus import EventBus
from gateway.cluster.calls import RemoteBackend, RemoteDispatcher, Responder
from gateway.cluster.consumers import EntryConsumer, account_consumer_name
from gateway.cluster.directory import Directory
from gateway.cluster.events import EventPublisher
from gateway.cluster.link import ClusterLink, end_task
from gateway.config import ClusterConfig

log = structlog.get_logger("gateway.cluster.node")

PERSISTENT_KINDS = frozenset({"websocketClients", "httpClients"})
"""Entry kinds whose subscriptions outlive connections: their events are acked once written."""


class HostedAccounts:
    """The events the node publishes: those of its local accounts (an `AccountFilter`)."""

    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts

    def serves(self, self_id: int) -> bool:
        # Every event published on this node's bus is a local account's (remote accounts'
        # events reach entries from their consumers, never through the bus), including those
        # of an account still starting, not registered yet; a remote number is refused all
        # the same, so an event can never loop back into the stream as another node's.
        account = self.accounts.with_self_id(self_id)
        return account is None or not account.remote


class ClusterNode:
    """One gateway's part of the cluster (see the module docstring)."""

    def __init__(
        self, config: ClusterConfig, bus: EventBus, accounts: Accounts, catalog: Catalog
    ) -> None:
        self.config = config
        self.bus = bus
        self.catalog = catalog
        self.link = ClusterLink(config)
        self.directory = Directory(self.link, config.node, config.directory_ttl / 1000)
        self.responder = Responder(self.link, config.prefix)
        self.publisher = EventPublisher(
            self.link, bus, config.prefix, config.buffer_size, HostedAccounts(accounts)
        )
        self._resync: asyncio.Task[None] | None = None
        self.consumers: dict[str, EntryConsumer] = {}
        """The durable consumer of each running entry that serves remote accounts."""

    async def start(self) -> None:
        """Connect (in the background) and start publishing, answering and watching."""
        await self.link.start()
        await self.directory.start()
        await self.responder.start()
        await self.publisher.start()
        self._resync = asyncio.create_task(self._resync_forever(), name="cluster-resync")

    async def _resync_forever(self) -> None:
        """Every directory period: answer calls for accounts that learned their QQ number
        since they were hosted (the directory puts them under it by itself)."""
        while True:
            await asyncio.sleep(self.directory.ttl / 3)
            try:
                await self.responder.resync()
            except Exception as error:  # the link went down meanwhile: the next round retries
                log.warning("cluster_resync_failed", error=str(error) or type(error).__name__)

    async def stop(self, grace: float = 0.0) -> None:
        """Stop consuming, publish what is held (for up to `grace` seconds, while NATS takes
        it), take this node's accounts out of the directory, stop answering, disconnect."""
        if self._resync is not None:
            await end_task(self._resync)
            self._resync = None
        for name in list(self.consumers):
            await self.consumers.pop(name).stop()
        # Without a link there is nothing to wait for: a shutdown is not held up by NATS.
        await self.publisher.stop(grace if self.link.connected else 0.0)
        await self.directory.stop(clean=True)
        await self.responder.stop()
        await self.link.stop()

    async def host(self, account: Account) -> None:
        """Offer a local account to the cluster: calls, then its directory entry (so no node
        sees it hosted before its calls are answered)."""
        await self.responder.serve(account)
        self.directory.host(account)

    async def unhost(self, account: Account) -> None:
        """Take a local account out of the cluster."""
        await self.responder.unserve(account.name)
        await self.directory.unhost(account.name)

    def remote_account(self, self_id: int) -> Account:
        """An `Account` for the QQ number `self_id`, hosted by another node (or by none yet:
        its calls then fail with 1200 saying so)."""
        backend = RemoteBackend(self_id, self.directory)
        dispatcher = RemoteDispatcher(
            self.link,
            self.config.prefix,
            self_id,
            self.config.request_timeout / 1000,
            directory=self.directory,
            catalog=self.catalog,
            backend=backend,
        )
        return Account(str(self_id), None, backend, dispatcher)

    async def entry_started(
        self, name: str, kind: str, accounts: tuple[Account, ...], pushes_events: bool
    ) -> None:
        """An entry started: consume the events of the remote accounts it serves, a durable
        consumer per account (`account_consumer_name`), if it pushes events at all."""
        if not pushes_events:
            return
        for account in accounts:
            if not account.remote:
                continue
            consumer = EntryConsumer(
                self.link,
                self.bus,
                self.config.prefix,
                self.config.node,
                name,
                [account.self_id],
                ack_on_write=kind in PERSISTENT_KINDS,
                durable=account_consumer_name(self.config.node, name, account.self_id),
            )
            self.consumers[consumer.name] = consumer
            await consumer.start()

    async def entry_stopped(self, name: str) -> None:
        """An entry stopped: its consumers stop (the durables stay, to resume)."""
        for key, consumer in list(self.consumers.items()):
            if consumer.entry == name:
                del self.consumers[key]
                await consumer.stop()

    def status(self) -> dict[str, Any]:
        """The link and what waits, for `/readyz`, the console and metrics."""
        return {
            **self.link.status(),
            "node": self.config.node,
            "held_events": self.publisher.held,
            "dropped_events": self.publisher.dropped,
            "consumers": {
                name: {
                    "in_flight": c.in_flight,
                    "behind": c.behind,
                    "received": c.received,
                    "acked": c.acked,
                }
                for name, c in self.consumers.items()
            },
        }
