"""`websocketClients[]`: the reverse WebSocket client (reference/onebot11.md §1.5), Universal role.

One connection per account the entry serves, each announcing its account's `X-Self-ID` (as
OneBot 11 implementations do, one per account), with its own lifecycle, buffer and backoff; a
reload that adds or removes accounts opens or closes only theirs. For each, one subscription
lives as long as the link, so events published while the bot is away wait in
its bounded queue (count `queueSize`, age `bufferMaxAge`) and are delivered in order after the
next connect, right after `lifecycle.connect`. Heartbeats go into it only while connected, so
none pile up for a bot that is away. Reconnects back off exponentially with full jitter;
WebSocket pings catch half-open connections. On stop, calls the bot has running are answered
(within `api.shutdownGrace`) before the connection closes with 1001.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import aiohttp
import structlog

from gateway.accounts import Account, OneAccount
from gateway.bus import Subscription
from gateway.config import DEFAULT_MAX_BODY as DEFAULT_MAX_FRAME
from gateway.config import WebsocketClientConfig
from gateway.network.account_links import stop_links, sync_links
from gateway.network.backoff import Backoff
from gateway.network.listener import Heartbeat, Services
from gateway.network.ws_connection import (
    WsConnection,
    WsSettings,
    cancel_and_wait,
    subscriber_options,
)

log = structlog.get_logger("gateway.ws_client")


class WsClient:
    """One `websocketClients` entry: one connection to `url` per account it serves, each kept
    up for as long as it runs (its own `X-Self-ID`, buffer, backoff and lifecycle)."""

    def __init__(self, entry: WebsocketClientConfig, services: Services) -> None:
        self.name = entry.name
        self.entry = entry
        self.services = services
        self.links: dict[str, ReverseLink] = {}
        """The connection of each account served, by account name."""
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        await self.accounts_changed()

    async def accounts_changed(self) -> None:
        """Open a link for each account served now that has none; stop the links of accounts
        no longer served (the others keep their connections)."""
        session = self._session
        assert session is not None

        def make(account: Account) -> ReverseLink:
            return ReverseLink(self.entry, self.services, account, session)

        await sync_links(self.links, self.services.dispatcher.accounts(), make)

    async def stop(self) -> None:
        """Stop every link within `api.shutdownGrace` seconds (see `ReverseLink.stop`)."""
        await stop_links(self.links)
        if self._session is not None:
            await self._session.close()

    def describe(self) -> str:
        return self.entry.url

    def state(self) -> str:
        """`connected`, or `reconnecting in N s` (for the console); with several accounts, each
        account's as `name: state`."""
        links = list(self.links.values())
        if len(links) == 1:
            return links[0].state()
        return ", ".join(f"{link.account.name}: {link.state()}" for link in links) or "idle"

    @property
    def connected(self) -> bool:
        """Whether every account's connection is up (and there is at least one)."""
        return bool(self.links) and all(link.connected for link in self.links.values())

    @property
    def reconnects(self) -> int:
        """Reconnects of every link so far."""
        return sum(link.reconnects for link in self.links.values())

    @property
    def subscription(self) -> Subscription | None:
        """The first link's subscription (the only one's on a one-account entry)."""
        return next(iter(self.links.values())).subscription if self.links else None


class ReverseLink:
    """The reverse WebSocket connection of one account of a `websocketClients` entry.

    Its subscription lives as long as the link, so events of the account published while the
    bot is away wait in its bounded queue and are delivered in order after the next connect.
    """

    def __init__(
        self,
        entry: WebsocketClientConfig,
        services: Services,
        account: Account,
        session: aiohttp.ClientSession,
    ) -> None:
        self.name = entry.name
        self.entry = entry
        self.services = services
        self.account = account
        self.caller = services.dispatcher.bind(account)
        self.settings = WsSettings(
            server=entry.name,
            options=subscriber_options(entry, OneAccount(account), persistent=True),
            max_frame=DEFAULT_MAX_FRAME,
            debug=entry.debug,
            max_inflight=entry.max_inflight,
        )
        self.subscription: Subscription | None = None
        self.heartbeat = Heartbeat(
            self.caller.accounts, entry.heart_interval, self._meta_subscribers, self.name
        )
        self._connection: WsConnection | None = None
        self._stopping = False
        self.backoff = Backoff(entry.reconnect_interval / 1000, entry.reconnect_max_interval / 1000)
        self.connected = False
        self.reconnects = 0
        self.next_attempt_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._session = session

    def start(self) -> None:
        # Named after the entry: its queue, drops and subscribers count as the entry's.
        self.subscription = self.services.bus.subscribe(self.entry.name, self.settings.options)
        self._task = asyncio.create_task(self._keep_connected(), name=f"ws-client:{self.name}")
        self.heartbeat.start()

    async def stop(self) -> None:
        """Stop within `api.shutdownGrace` seconds: no reconnect; a connected bot's running calls
        answer (until then), the connection closes with 1001; then the buffer goes."""
        deadline = asyncio.get_running_loop().time() + self.services.shutdown_grace
        self._stopping = True
        await self.heartbeat.stop()
        if self._connection is not None:
            await self._connection.shut_down(deadline)
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if self.subscription is not None:
            self.services.bus.unsubscribe(self.subscription)

    def state(self) -> str:
        """`connected`, or `reconnecting in N s` (for the console)."""
        if self.connected:
            return "connected"
        wait = max(0.0, self.next_attempt_at - time.monotonic())
        return f"reconnecting in {wait:.1f} s" if wait else "connecting"

    def _meta_subscribers(self) -> Iterable[Subscription]:
        # Only while connected: a bot that is away gets no heartbeats from that time.
        if self._connection is None or self.subscription is None:
            return ()
        return (self.subscription,)

    async def _keep_connected(self) -> None:
        while not self._stopping:
            started = time.monotonic()
            try:
                await self._connect_once()
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                log.warning(
                    "ws_client_connect_failed",
                    client=self.name,
                    error=str(error) or type(error).__name__,
                )
            if self._stopping:
                return
            if time.monotonic() - started >= self.entry.stable_after / 1000 and self.connected:
                self.backoff.reset()
            self.connected = False
            delay = self.backoff.next_delay()
            self.reconnects += 1
            log.info(
                "ws_client_reconnecting",
                client=self.name,
                delay=round(delay, 3),
                attempt=self.backoff.failures,
            )
            self.next_attempt_at = time.monotonic() + delay
            await asyncio.sleep(delay)

    async def _connect_once(self) -> None:
        assert self._session is not None
        assert self.subscription is not None
        entry = self.entry
        ping = entry.ping_interval / 1000 if entry.ping_interval > 0 else None
        async with asyncio.timeout(entry.handshake_timeout / 1000):
            ws = await self._session.ws_connect(
                entry.url,
                headers=self._headers(),
                heartbeat=ping,
                ssl=self.entry.verify_certificate,
                max_msg_size=DEFAULT_MAX_FRAME,
                autoping=True,
            )
        self.connected = True
        log.info(
            "ws_client_connected", client=self.name, url=entry.url, self_id=self.account.self_id
        )
        self._connection = WsConnection(
            ws,
            "universal",
            self.settings,
            self.caller,
            self.services.bus,
            subscription=self.subscription,
            parser=self.services.parser,
        )
        try:
            await self._connection.run()
        finally:
            self._connection = None
            await ws.close()
            log.info("ws_client_disconnected", client=self.name, close_code=ws.close_code)

    def _headers(self) -> dict[str, str]:
        headers = {
            "X-Self-ID": str(self.account.self_id),
            "X-Client-Role": "Universal",
            "User-Agent": "OneBot/11",
        }
        if self.entry.token:
            headers["Authorization"] = f"Bearer {self.entry.token}"
        return headers
