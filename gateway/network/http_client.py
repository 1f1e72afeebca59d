"""`httpClients[]`: HTTP POST event reporting (reference/onebot11.md §1.3).

Each event is POSTed once its predecessors are done, from this client's own bounded queue, so a
slow or dead receiver delays nobody else. An entry serving several accounts keeps a queue per
account: each event goes with its account's `X-Self-ID`, and a quick operation in the answer
runs on that account. Connection errors and 5xx answers are retried with
backoff; every attempt carries the same `X-OneBot-Event-Id`, so receivers can drop duplicates.
A JSON object in the answer is a quick operation, applied through the dispatcher; 204, an empty
or a non-JSON body is no operation. Heartbeats (`heartInterval`) go through the same queue, but
none while an event is being retried: they would only pile up behind it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from collections.abc import Iterable
from typing import Any

import aiohttp
import structlog

from gateway.accounts import Account, OneAccount
from gateway.bus import AckFrame, Subscription
from gateway.config import HttpClientConfig
from gateway.network.account_links import stop_links, sync_links
from gateway.network.backoff import Backoff
from gateway.network.listener import Heartbeat, Services
from gateway.network.ws_connection import cancel_and_wait, subscriber_options
from gateway.protocol import jsonio

log = structlog.get_logger("gateway.http_client")


class RetryableError(Exception):
    """A failed POST worth retrying (connection error, timeout, 5xx)."""


class HttpClient:
    """One `httpClients` entry: a delivery queue per account it serves (see `PostLink`)."""

    def __init__(self, entry: HttpClientConfig, services: Services) -> None:
        self.name = entry.name
        self.entry = entry
        self.services = services
        self.outcomes: dict[str, int] = {"delivered": 0, "retried": 0, "rejected": 0, "gave_up": 0}
        """Outcomes of every account's posts so far."""
        self.links: dict[str, PostLink] = {}
        """Each served account's delivery, by account name."""
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.entry.timeout / 1000)
        self._session = aiohttp.ClientSession(timeout=timeout)
        await self.accounts_changed()

    async def accounts_changed(self) -> None:
        """Start a delivery for each account served now that has none; stop those of accounts
        no longer served (the others keep their queues)."""
        session = self._session
        assert session is not None

        def make(account: Account) -> PostLink:
            return PostLink(self, account, session)

        await sync_links(self.links, self.services.dispatcher.accounts(), make)

    async def stop(self) -> None:
        # Stop delivering (an in-flight POST is cancelled), then release the queues and session.
        await stop_links(self.links)
        if self._session is not None:
            await self._session.close()

    def describe(self) -> str:
        return self.entry.url

    def state(self) -> str:
        """`delivering`, or `retrying` while an event is being retried (for the console)."""
        return "retrying" if any(link.retrying for link in self.links.values()) else "delivering"

    @property
    def subscription(self) -> Subscription | None:
        """The first account's queue (the only one's on a one-account entry)."""
        return next(iter(self.links.values())).subscription if self.links else None


class PostLink:
    """The delivery of one account's events to an `httpClients` entry's URL: its own queue,
    posted in order with its `X-Self-ID`; the quick operation in an answer goes to it."""

    def __init__(
        self, client: HttpClient, account: Account, session: aiohttp.ClientSession
    ) -> None:
        self.client = client
        self.name = client.name
        self.entry = client.entry
        self.services = client.services
        self.account = account
        self.caller = client.services.dispatcher.bind(account)
        self.outcomes = client.outcomes
        self.subscription: Subscription | None = None
        self._delivery: asyncio.Task[None] | None = None
        self.retrying = False
        self._session = session
        self.heartbeat = Heartbeat(
            self.caller.accounts, self.entry.heart_interval, self._meta_subscribers, self.name
        )

    def start(self) -> None:
        self.subscription = self.services.bus.subscribe(
            self.name,
            subscriber_options(self.entry, OneAccount(self.account), persistent=True),
        )
        self._delivery = asyncio.create_task(self._deliver(), name=f"http-post:{self.name}")
        self.heartbeat.start()

    async def stop(self) -> None:
        await self.heartbeat.stop()
        delivery, self._delivery = self._delivery, None
        await cancel_and_wait(delivery)
        if self.subscription is not None:
            self.services.bus.unsubscribe(self.subscription)

    def _meta_subscribers(self) -> Iterable[Subscription]:
        if self.retrying or self.subscription is None:
            return ()
        return (self.subscription,)

    async def _deliver(self) -> None:
        assert self.subscription is not None
        while True:
            frame = await self.subscription.get()
            await self._post_with_retries(frame, str(uuid.uuid4()))

    async def _post_with_retries(self, body: bytes, event_id: str) -> None:
        backoff = Backoff(self.entry.retry_interval / 1000, self.entry.retry_max_interval / 1000)
        for attempt in range(self.entry.max_retries + 1):
            try:
                await self._post(body, event_id)
                self.retrying = False
                if type(body) is AckFrame:
                    body.ack()  # answered 2xx or 4xx: its delivery is over
                return
            except RetryableError as error:
                if attempt == self.entry.max_retries:
                    self.outcomes["gave_up"] += 1
                    log.error(
                        "http_post_gave_up",
                        client=self.name,
                        event_id=event_id,
                        attempts=attempt + 1,
                        error=str(error),
                    )
                    if type(body) is AckFrame:
                        # Given up, as a local event is: a remote one is not redelivered
                        # forever, holding back the entry's consumer.
                        body.ack()
                    return
                self.outcomes["retried"] += 1
                self.retrying = True
                delay = backoff.next_delay()
                log.warning(
                    "http_post_retry",
                    client=self.name,
                    event_id=event_id,
                    attempt=attempt + 1,
                    delay=round(delay, 3),
                    error=str(error),
                )
                await asyncio.sleep(delay)

    async def _post(self, body: bytes, event_id: str) -> None:
        assert self._session is not None
        try:
            async with self._session.post(
                self.entry.url, data=body, headers=self._headers(body, event_id)
            ) as response:
                if response.status >= 500:
                    raise RetryableError(f"HTTP {response.status}")
                answer = await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise RetryableError(str(error) or type(error).__name__) from error
        if response.status >= 400:
            self.outcomes["rejected"] += 1
            log.warning(
                "http_post_rejected", client=self.name, event_id=event_id, status=response.status
            )
            return
        self.outcomes["delivered"] += 1
        await self._apply_quick_operation(body, answer)

    def _headers(self, body: bytes, event_id: str) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "X-Self-ID": str(self.account.self_id),
            "X-OneBot-Event-Id": event_id,
            "User-Agent": "OneBot/11",
        }
        if self.entry.token:
            digest = hmac.new(self.entry.token.encode(), body, hashlib.sha1).hexdigest()
            headers["X-Signature"] = f"sha1={digest}"
        return headers

    async def _apply_quick_operation(self, event_body: bytes, answer: bytes) -> None:
        if not answer.strip():
            return
        try:
            operation = jsonio.loads(answer)
        except jsonio.JsonError:
            return  # a non-JSON answer ("OK") means no operation
        if not isinstance(operation, dict) or not operation:
            return
        # bytes(): an AckFrame is a bytes subclass, which the JSON parser reads only slowly.
        context: Any = jsonio.loads(bytes(event_body))
        result = await self.caller.call(
            ".handle_quick_operation", {"context": context, "operation": operation}
        )
        if result["retcode"] != 0:
            log.warning(
                "quick_operation_failed",
                client=self.name,
                retcode=result["retcode"],
                error=result["message"],
            )
