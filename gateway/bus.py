"""The event bus: one published event fans out to every subscriber without waiting for any of them.

`publish()` is synchronous. Each subscriber owns a bounded queue of encoded frames with a named
overflow policy (`drop_oldest` or `disconnect`), so a slow subscriber only ever hurts itself, and
memory is bounded by subscribers × queue size. An event is encoded once per variant (message format
× debug) and the same bytes object is queued for every subscriber of that variant.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from gateway.event_filter import EventFilter
from gateway.protocol import jsonio
from gateway.protocol.events import string_form

log = structlog.get_logger("gateway.bus")

OverflowPolicy = Literal["drop_oldest", "disconnect"]
DROP_LOG_INTERVAL = 1.0
DEBUG_ONLY_FIELDS = ("raw",)


@dataclass(frozen=True, slots=True)
class SubscriberOptions:
    """What one subscriber wants; derived from its adapter entry."""

    message_format: Literal["array", "string"] = "array"
    report_self_message: bool = False
    debug: bool = False
    event_filter: EventFilter | None = None
    queue_size: int = 1024
    overflow: OverflowPolicy = "drop_oldest"
    max_age: float | None = None
    """Seconds a frame may wait; older frames are dropped (counted) instead of delivered."""


class SubscriptionClosed(Exception):
    """Raised by `Subscription.get()` once the subscription is closed; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Subscription:
    """One subscriber's bounded queue of encoded frames."""

    def __init__(self, name: str, options: SubscriberOptions) -> None:
        self.name = name
        self.options = options
        self.dropped = 0
        self.delivered = 0
        self.closed_reason: str | None = None
        self._queue: deque[tuple[float, bytes]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._dropped_since_log = 0
        self._last_drop_log = 0.0
        self.on_close: Callable[[str], None] | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def offer(self, frame: bytes) -> None:
        """Queue a frame without waiting; apply the overflow policy when full."""
        if self.closed_reason is not None:
            return
        if len(self._queue) >= self.options.queue_size:
            if self.options.overflow == "disconnect":
                self.close("subscriber too slow: event queue overflowed")
                return
            self._queue.popleft()
            self._count_drop("overflow")
        self._queue.append((time.monotonic(), frame))
        self._wake()

    def requeue(self, frame: bytes) -> None:
        """Put back a frame whose delivery failed, so it is the next one delivered."""
        if self.closed_reason is None:
            self._queue.appendleft((time.monotonic(), frame))

    async def get(self) -> bytes:
        """The next frame, waiting if the queue is empty; SubscriptionClosed once closed."""
        while True:
            while not self._queue:
                if self.closed_reason is not None:
                    raise SubscriptionClosed(self.closed_reason)
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
            if self.closed_reason is not None:
                raise SubscriptionClosed(self.closed_reason)
            queued_at, frame = self._queue.popleft()
            max_age = self.options.max_age
            if max_age is not None and time.monotonic() - queued_at > max_age:
                self._count_drop("expired")
                continue
            self.delivered += 1
            return frame

    def close(self, reason: str) -> None:
        """Stop accepting frames and wake the reader, which then sees SubscriptionClosed."""
        if self.closed_reason is None:
            self.closed_reason = reason
            self._queue.clear()
            self._wake()
            if self.on_close is not None:
                self.on_close(reason)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _count_drop(self, why: str) -> None:
        self.dropped += 1
        self._dropped_since_log += 1
        now = time.monotonic()
        # Logged at most once a second per subscriber, so a stalled client cannot flood the log.
        if now - self._last_drop_log >= DROP_LOG_INTERVAL:
            log.warning(
                "subscriber_dropped_events",
                subscriber=self.name,
                reason=why,
                dropped=self._dropped_since_log,
                dropped_total=self.dropped,
                queue_size=self.options.queue_size,
            )
            self._last_drop_log = now
            self._dropped_since_log = 0


class EventBus:
    """Fans events out to subscriptions; owned by the supervisor, shared by every adapter."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self.published = 0
        self.retired_drops: dict[str, int] = {}
        """Drops of subscriptions already gone, per subscriber name (for metrics)."""

    def subscribe(self, name: str, options: SubscriberOptions) -> Subscription:
        """Register a subscriber; it receives events published from now on."""
        subscription = Subscription(name, options)
        self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Remove a subscriber (idempotent) and close it."""
        subscription.close("unsubscribed")
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
            if subscription.dropped:
                name = subscription.name
                self.retired_drops[name] = self.retired_drops.get(name, 0) + subscription.dropped

    def entry_stats(self) -> dict[str, tuple[int, int, int]]:
        """Per subscriber name: (subscribers, queued frames, dropped frames so far, including
        subscriptions already gone). For metrics and the console."""
        stats = {name: [0, 0, dropped] for name, dropped in self.retired_drops.items()}
        for subscription in self._subscriptions:
            row = stats.setdefault(subscription.name, [0, 0, 0])
            row[0] += 1
            row[1] += len(subscription)
            row[2] += subscription.dropped
        return {name: (row[0], row[1], row[2]) for name, row in stats.items()}

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """Current subscriptions, for metrics and tests."""
        return tuple(self._subscriptions)

    def publish(self, event: Mapping[str, Any]) -> None:
        """Queue `event` (array message form) for every subscriber that wants it. Never awaits."""
        self.published += 1
        is_self = event.get("post_type") == "message_sent"
        is_message = event.get("post_type") in ("message", "message_sent")
        frames: dict[tuple[str, bool], bytes] = {}
        for subscription in self._subscriptions:
            options = subscription.options
            if is_self and not options.report_self_message:
                continue
            if options.event_filter is not None and not options.event_filter(event):
                continue
            variant = (options.message_format if is_message else "array", options.debug)
            frame = frames.get(variant)
            if frame is None:
                frame = frames[variant] = encode_variant(event, *variant)
            subscription.offer(frame)
        # Closed subscriptions (overflow under `disconnect`) are removed by their adapter.


def encode_variant(event: Mapping[str, Any], message_format: str, debug: bool) -> bytes:
    """Serialise one variant of an event."""
    body: Mapping[str, Any] = event
    if not debug and any(field in event for field in DEBUG_ONLY_FIELDS):
        body = {k: v for k, v in event.items() if k not in DEBUG_ONLY_FIELDS}
    if message_format == "string":
        body = string_form(body)
    return jsonio.dumps(body)
