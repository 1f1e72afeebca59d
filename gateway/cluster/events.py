"""Publishing the events of this node's accounts to the cluster's JetStream stream.

`EventPublisher` is one subscriber of the node's event bus (every post type, self messages
included, the debug array form: each consuming entry re-encodes for its own options). Its frames
go, in order, to `<prefix>.v11.<self_id>.event.<post_type>`, each with a `Nats-Msg-Id` made once
for it, so a publish retried after a lost answer is stored once (the stream's duplicate window).

Publishes are pipelined: up to `window` frames are sent before their acknowledgements are
awaited. A batch whose acknowledgements do not all come (the link went down, a timeout, an
error) is sent again from the first one that failed, with the same ids, after a backoff and once
the link is up; later frames wait behind it in the subscription's queue. While NATS is
unreachable no frame is taken from that queue, so what waits is bounded by `buffer_size` (the
queue's size: the oldest are dropped beyond it, counted in `dropped`) plus the batch that was
being published when the link went (at most `window`).

Guarantee: an event that reached this publisher while it runs is stored in the stream at least
once and, unless dropped by the bound above, in order per account (a batch resent after a lost
connection may land behind frames of the same batch that the server stored before the loss;
the ids make the resent copies of those duplicates that the stream drops). Events still held
when the publisher stops are lost, unless `stop(grace)` could publish them in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from gateway.bus import EventBus, SubscriberOptions, Subscription, SubscriptionClosed
from gateway.network.backoff import Backoff
from gateway.protocol import jsonio

if TYPE_CHECKING:
    from gateway.accounts import AccountFilter
    from gateway.cluster.link import ClusterLink

log = structlog.get_logger("gateway.cluster.events")

PUBLISH_WINDOW = 256
"""Frames sent to JetStream before their acknowledgements are awaited."""
PUBLISH_TIMEOUT = 5.0
"""Seconds a batch's acknowledgements may take before it is sent again."""
RETRY_BASE = 0.05
RETRY_CAP = 2.0
SUBSCRIBER_NAME = "cluster-publisher"
"""The bus subscriber's name (its queue and drops show under it in metrics)."""
_SUBJECT_TOKEN_BAD = frozenset(".*> \t\r\n")


def event_subject(prefix: str, self_id: int, post_type: str) -> str:
    """The subject an event of the account `self_id` is published to."""
    return f"{prefix}.v11.{self_id}.event.{post_type}"


def events_filter(prefix: str, self_id: int) -> str:
    """The subject filter matching every event of the account `self_id`."""
    return f"{prefix}.v11.{self_id}.event.>"


@dataclass(slots=True)
class Outgoing:
    """One frame on its way to the stream: its subject and its id, made once."""

    subject: str
    payload: bytes
    msg_id: str


class EventPublisher:
    """Publishes the bus's events of `accounts` (None: every account whose events reach this
    node's bus) to the event stream, in order, at least once (see the module docstring)."""

    def __init__(
        self,
        link: ClusterLink,
        bus: EventBus,
        prefix: str,
        buffer_size: int,
        accounts: AccountFilter | None = None,
        *,
        window: int = PUBLISH_WINDOW,
        timeout: float = PUBLISH_TIMEOUT,
    ) -> None:
        self.link = link
        self.bus = bus
        self.prefix = prefix
        self.options = SubscriberOptions(
            message_format="array",
            report_self_message=True,
            debug=True,
            queue_size=buffer_size,
            overflow="drop_oldest",
            accounts=accounts,
        )
        self.window = window
        self.timeout = timeout
        self.subscription: Subscription | None = None
        self.published = 0
        """Frames the stream acknowledged (duplicates included)."""
        self.duplicates = 0
        """Acknowledgements saying the stream already had the frame (a resent one)."""
        self.retried = 0
        """Frames sent again after their batch failed."""
        self.rejected = 0
        """Frames that name no account or post type a subject can carry (logged, skipped)."""
        self.last_error: str | None = None
        self._batch: list[Outgoing] = []
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()

    @property
    def dropped(self) -> int:
        """Frames dropped because more than `buffer_size` waited (NATS away too long)."""
        return 0 if self.subscription is None else self.subscription.dropped

    @property
    def held(self) -> int:
        """Frames waiting to be published (queued plus the batch in hand)."""
        queued = 0 if self.subscription is None else len(self.subscription)
        return queued + len(self._batch)

    async def start(self) -> None:
        """Subscribe to the bus and publish from now on (NATS may be away: frames wait)."""
        self.subscription = self.bus.subscribe(SUBSCRIBER_NAME, self.options)
        self._task = asyncio.create_task(self._run(), name="cluster-publisher")

    async def stop(self, grace: float = 0.0) -> None:
        """Stop publishing, after up to `grace` seconds spent publishing what is held; what is
        still held then is lost (logged with its count)."""
        if grace > 0 and self._task is not None and self.held:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.flushed(), grace)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.held:
            log.warning("cluster_events_unpublished", events=self.held)
        self._batch = []
        if self.subscription is not None:
            self.bus.unsubscribe(self.subscription)

    async def flushed(self) -> None:
        """Return once nothing is held (every frame so far acknowledged by the stream)."""
        while self.held:
            self._idle.clear()
            await self._idle.wait()

    async def _run(self) -> None:
        subscription = self.subscription
        assert subscription is not None
        backoff = Backoff(RETRY_BASE, RETRY_CAP)
        try:
            while True:
                if not self._batch:
                    self._idle.set()
                    await subscription.wait()
                await self.link.wait_ready()
                if not self._batch:
                    self._batch = self._take(subscription)
                    if not self._batch:
                        continue
                done = await self._publish(self._batch)
                if done == len(self._batch):
                    self._batch = []
                    backoff.reset()
                    continue
                self._batch = self._batch[done:]
                self.retried += len(self._batch)
                delay = backoff.next_delay()
                log.warning(
                    "cluster_publish_retry",
                    events=len(self._batch),
                    delay=round(delay, 3),
                    error=self.last_error,
                )
                await asyncio.sleep(delay)
        except SubscriptionClosed:
            return

    def _take(self, subscription: Subscription) -> list[Outgoing]:
        """Up to `window` queued frames, with their subjects and new ids."""
        batch: list[Outgoing] = []
        while len(batch) < self.window:
            frame = subscription.take()
            if frame is None:
                break
            subject = self._subject_of(frame)
            if subject is not None:
                batch.append(Outgoing(subject, frame, uuid.uuid4().hex))
        return batch

    def _subject_of(self, frame: bytes) -> str | None:
        try:
            event: Any = jsonio.loads(frame)
            self_id = event["self_id"]
            post_type = event["post_type"]
            valid = (
                type(self_id) is int
                and self_id > 0
                and isinstance(post_type, str)
                and post_type
                and not _SUBJECT_TOKEN_BAD.intersection(post_type)
            )
        except (jsonio.JsonError, KeyError, TypeError):
            valid = False
        if not valid:
            self.rejected += 1
            self.bus.reject("cluster_unroutable", frame=frame[:200])
            return None
        return event_subject(self.prefix, self_id, post_type)

    async def _publish(self, batch: list[Outgoing]) -> int:
        """Send `batch` and wait for its acknowledgements; how many from the start of it the
        stream acknowledged (the rest is sent again)."""
        js = self.link.js
        if js is None:
            return 0
        futures: list[asyncio.Future[Any]] = []
        try:
            for item in batch:
                futures.append(
                    await js.publish_async(
                        item.subject, item.payload, headers={"Nats-Msg-Id": item.msg_id}
                    )
                )
        except Exception as error:  # the connection closed under us, a full buffer...
            self.last_error = str(error) or type(error).__name__
        if futures:
            await asyncio.wait(futures, timeout=self.timeout)
        done = 0
        for future in futures:
            if not future.done() or future.cancelled():
                self.last_error = self.last_error or "no acknowledgement in time"
                break
            failure = future.exception()
            if failure is not None:
                self.last_error = str(failure) or type(failure).__name__
                break
            done += 1
            self.published += 1
            if getattr(future.result(), "duplicate", False):
                self.duplicates += 1
        for future in futures[done:]:
            future.cancel()
        if done == len(batch):
            self.last_error = None
        return done
