"""Publishing the events of this node's accounts to the cluster's JetStream stream.

`EventPublisher` is one subscriber of the node's event bus (every post type, self messages
included, the debug array form: each consuming entry re-encodes for its own options). Its frames
go, in order, to `<prefix>.v11.<self_id>.event.<post_type>`, each with a `Nats-Msg-Id` made once
for it (this publisher's random run id and a counter), so a publish retried after a lost
answer is stored once (the stream's duplicate window).

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

import orjson
import structlog
from nats.aio.msg import Msg

from gateway.bus import EventBus, SubscriberOptions, Subscription, SubscriptionClosed
from gateway.network.backoff import Backoff

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
        self._run_id = uuid.uuid4().hex
        """With a counter, each frame's Nats-Msg-Id: unique across nodes and restarts, and
        cheaper than a uuid per frame."""
        self._sequence = 0
        self._inbox = ""
        self._inbox_of: object = None
        """The connection `_inbox` is subscribed on (nats-py keeps it across reconnects)."""
        self._generation = 0
        """The batch being published: answers to earlier ones are ignored."""
        self._answers: list[bool | None] = []
        self._unanswered = 0
        self._answered = asyncio.Event()
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
        self.link.on_disconnect(self._link_lost)
        self._task = asyncio.create_task(self._run(), name="cluster-publisher")

    async def stop(self, grace: float = 0.0) -> None:
        """Stop publishing, after up to `grace` seconds spent publishing what is held; what is
        still held then is lost (logged with its count)."""
        self.link.remove_listener(self._link_lost)
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
                self._sequence += 1
                batch.append(Outgoing(subject, frame, f"{self._run_id}-{self._sequence}"))
        return batch

    def _subject_of(self, frame: bytes) -> str | None:
        try:
            # orjson straight: the bus's frames are exact JSON, and only two fields matter.
            event: Any = orjson.loads(frame)
            self_id = event["self_id"]
            post_type = event["post_type"]
            valid = (
                type(self_id) is int
                and self_id > 0
                and isinstance(post_type, str)
                and post_type
                and not _SUBJECT_TOKEN_BAD.intersection(post_type)
            )
        except (orjson.JSONDecodeError, KeyError, TypeError):
            valid = False
        if not valid:
            self.rejected += 1
            self.bus.reject("cluster_unroutable", frame=frame[:200])
            return None
        return event_subject(self.prefix, self_id, post_type)

    async def _publish(self, batch: list[Outgoing]) -> int:
        """Send `batch` and wait for its acknowledgements; how many from the start of it the
        stream acknowledged (the rest is sent again).

        Each frame is a plain publish whose reply subject names its batch and index, answered
        on one inbox subscription: per frame, no future, no lock and no task (what a JetStream
        client's own asynchronous publish costs)."""
        nc = self.link.nc
        if nc is None:
            return 0
        if self._inbox_of is not nc:
            self._inbox = nc.new_inbox()
            await nc.subscribe(f"{self._inbox}.*.*", cb=self._on_answer)
            self._inbox_of = nc
        self._generation += 1
        prefix = f"{self._inbox}.{self._generation}."
        answers: list[bool | None] = [None] * len(batch)
        self._answers, self._unanswered = answers, len(batch)
        answered = self._answered = asyncio.Event()
        try:
            for index, item in enumerate(batch):
                await nc.publish(
                    item.subject,
                    item.payload,
                    reply=prefix + str(index),
                    headers={"Nats-Msg-Id": item.msg_id},
                )
        except Exception as error:  # the connection closed under us, a full buffer...
            self.last_error = str(error) or type(error).__name__
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(answered.wait(), self.timeout)
        self._answers = []
        done = 0
        for answer in answers:
            if not answer:
                if answer is None:
                    self.last_error = self.last_error or "no acknowledgement in time"
                break
            done += 1
        self.published += done
        if done == len(batch):
            self.last_error = None
        return done

    def _link_lost(self) -> None:
        """The connection went: the batch in flight gets no more answers on it. End its wait
        now, so it is sent again (same ids) as soon as the link is back, not after `timeout`."""
        if self._unanswered and not self._answered.is_set():
            self.last_error = "the link to NATS was lost with the batch in flight"
            self._answered.set()

    async def _on_answer(self, msg: Msg) -> None:
        """The stream's answer to one publish of the current batch (older ones are ignored)."""
        _, generation, index = msg.subject.rsplit(".", 2)
        answers = self._answers
        if int(generation) != self._generation or answers[int(index)] is not None:
            return
        try:
            answer = orjson.loads(msg.data) if msg.data else {}
        except orjson.JSONDecodeError:
            answer = {}
        if not isinstance(answer, dict) or "error" in answer or "seq" not in answer:
            # An error, or a status without a body (503: no stream takes the subject yet).
            error = answer.get("error") if isinstance(answer, dict) else None
            status = (msg.headers or {}).get("Status")
            self.last_error = f"JetStream refused the event: {error or status or msg.data!r}"
            answers[int(index)] = False
        else:
            answers[int(index)] = True
            if answer.get("duplicate"):
                self.duplicates += 1
        self._unanswered -= 1
        if self._unanswered == 0:
            self._answered.set()
