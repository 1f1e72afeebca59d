"""The event bus: one published event fans out to every subscriber without waiting for any of them.

`publish()` is synchronous and never raises for a bad event. Each subscriber owns a bounded queue
of encoded frames with a named overflow policy (`drop_oldest` or `disconnect`), so a slow subscriber
only ever hurts itself, and memory is bounded by subscribers × queue size. An event is encoded once
per variant (message format × debug) and the same bytes object is queued for every subscriber of
that variant. A variant that cannot be encoded is withheld from its subscribers and counted in
`EventBus.rejected` (`onebot_events_rejected_total{reason}`).

A subscriber is served by one reader: a task awaiting `Subscription.get()`, or, for a connection
that can take frames without waiting (a `FrameSink`: a WebSocket whose socket keeps up), the bus
itself, which hands it every frame queued since the last loop iteration in one call. The sink is
the fast path (no task switch and no future per event and subscriber); the moment it cannot take
frames at once, the reader task is woken and writes them with backpressure, in the same order.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import orjson
import structlog

from gateway.event_filter import EventFilter
from gateway.protocol import jsonio
from gateway.protocol.events import string_form
from gateway.protocol.message import MessageError

if TYPE_CHECKING:
    from gateway.accounts import AccountFilter

log = structlog.get_logger("gateway.bus")

OverflowPolicy = Literal["drop_oldest", "disconnect"]
DROP_LOG_INTERVAL = 1.0
REJECT_LOG_INTERVAL = 1.0
DEBUG_ONLY_FIELDS = ("raw",)
LOGGED_TEXT_LIMIT = 200


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
    accounts: AccountFilter | None = None
    """The accounts whose events it takes (by the event's `self_id`); None: every account."""


class AckFrame(bytes):
    """A frame whose delivery someone waits for: whoever writes it to the bot calls `ack()` once
    it is written (a WebSocket frame handed to the transport, an HTTP POST answered 2xx or 4xx).
    A frame dropped on the way (overflow, expiry, a closed subscription) is never acked.

    Writers check `type(frame) is AckFrame`, so ordinary frames cost one comparison."""

    ack: Callable[[], None]


class SubscriptionClosed(Exception):
    """Raised by `Subscription.get()` once the subscription is closed; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FrameSink(Protocol):
    """A connection that takes a subscription's frames synchronously (see `Subscription.attach`)."""

    def room(self) -> int:
        """Bytes the connection takes now without waiting for its peer; 0 or less when it takes
        none (or a frame of this subscription is being written elsewhere)."""

    def write(self, frames: list[bytes]) -> None:
        """Write `frames` in order, without waiting (the transport buffers them)."""


class Flusher:
    """Hands the frames queued for subscriptions with a sink to their sinks, once per event loop
    iteration: one scheduled callback for however many subscriptions and events."""

    __slots__ = ("_handle", "_loop", "_pending")

    def __init__(self) -> None:
        self._pending: list[Subscription] = []
        self._handle: asyncio.Handle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def schedule(self, subscription: Subscription) -> None:
        """Flush `subscription` in the next loop iteration (the caller schedules it once)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # A loop that ended with a flush pending never runs it: start over on this one.
            self._loop, self._handle, self._pending = loop, None, []
        self._pending.append(subscription)
        if self._handle is None:
            self._handle = loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._handle = None
        pending, self._pending = self._pending, []
        for subscription in pending:
            subscription.flush()


class Subscription:
    """One subscriber's bounded queue of encoded frames."""

    __slots__ = (
        "_dropped_since_log",
        "_flusher",
        "_last_drop_log",
        "_queue",
        "_scheduled",
        "_sink",
        "_waiter",
        "closed_reason",
        "delivered",
        "dropped",
        "name",
        "on_close",
        "options",
    )

    def __init__(
        self, name: str, options: SubscriberOptions, flusher: Flusher | None = None
    ) -> None:
        self.name = name
        self.options = options
        self.dropped = 0
        self.delivered = 0
        self.closed_reason: str | None = None
        # (queued at, frame); the time only matters with `max_age`, and is 0.0 without it.
        self._queue: deque[tuple[float, bytes]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._dropped_since_log = 0
        self._last_drop_log = 0.0
        self.on_close: Callable[[str], None] | None = None
        self._flusher = flusher
        self._sink: FrameSink | None = None
        self._scheduled = False
        """Whether a flush is pending (at most one per loop iteration)."""

    def __len__(self) -> int:
        return len(self._queue)

    def offer(self, frame: bytes) -> None:
        """Queue a frame without waiting; apply the overflow policy when full."""
        if self.closed_reason is not None:
            return
        queue = self._queue
        if len(queue) >= self.options.queue_size:
            if self.options.overflow == "disconnect":
                self.close("subscriber too slow: event queue overflowed")
                return
            queue.popleft()
            self._count_drop("overflow")
        queue.append((0.0 if self.options.max_age is None else time.monotonic(), frame))
        if self._sink is None:
            self._wake()
        elif not self._scheduled:
            self._schedule()

    def take(self) -> bytes | None:
        """The next queued frame without waiting, or None when none is queued (or closed).
        Frames past `max_age` are dropped (counted) on the way."""
        queue = self._queue
        max_age = self.options.max_age
        while queue and self.closed_reason is None:
            queued_at, frame = queue.popleft()
            if max_age is not None and time.monotonic() - queued_at > max_age:
                self._count_drop("expired")
                continue
            self.delivered += 1
            return frame
        return None

    def holds(self, frame: bytes) -> bool:
        """Whether this very frame object is still queued (not yet taken, nor dropped). Walks
        the queue: for rare checks only."""
        return any(queued is frame for _, queued in self._queue)

    def requeue(self, frame: bytes) -> None:
        """Put back a frame whose delivery failed, so it is the next one delivered."""
        if self.closed_reason is None:
            self._queue.appendleft((time.monotonic(), frame))

    def push_front(self, frame: bytes) -> None:
        """Queue a frame ahead of everything queued (a connection's `lifecycle.connect`, before
        what a reverse client buffered while away). Not counted against `queue_size`."""
        if self.closed_reason is None:
            self._queue.appendleft((time.monotonic(), frame))
            self._queued()

    def attach(self, sink: FrameSink | None) -> None:
        """Deliver through `sink` whenever it has room (None: only through `get()` again).

        Frames then go to the sink once per loop iteration, all those queued (as many bytes as
        it has room for, at least one frame); when it has no room, or frames are left over, the
        task waiting in `wait()` or `get()` is woken instead. Each frame is delivered once, in
        queue order.
        """
        self._sink = sink
        if sink is not None and self._queue:
            self._queued()

    @property
    def attached(self) -> bool:
        """Whether a sink is attached (see `attach`)."""
        return self._sink is not None

    def flush(self) -> None:
        """Hand queued frames to the sink; wake the reader for what it could not take (called by
        the `Flusher`, or by the reader once the connection takes more). Never raises."""
        self._scheduled = False
        sink = self._sink
        if not self._queue or self.closed_reason is not None:
            return
        frames: list[bytes] = []
        try:
            room = 0 if sink is None else sink.room()
            if room > 0:
                queue = self._queue
                if len(queue) == 1 and self.options.max_age is None:
                    frames = [queue.popleft()[1]]  # the common case: one event since the last
                    self.delivered += 1
                else:
                    frames = self._take(room)
                if frames:
                    assert sink is not None
                    sink.write(frames)
        except Exception:
            # A sink that fails is detached and the frames put back: the reader task takes
            # them through `get()` and meets the error itself.
            log.exception("subscription_sink_failed", subscriber=self.name)
            self._sink = None
            self.delivered -= len(frames)
            now = time.monotonic()
            self._queue.extendleft((now, frame) for frame in reversed(frames))
        if self._queue:
            self._wake()

    async def wait(self) -> None:
        """Return once a frame is queued (without taking it); SubscriptionClosed once closed."""
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

    async def get(self) -> bytes:
        """The next frame, waiting if the queue is empty; SubscriptionClosed once closed."""
        while True:
            await self.wait()
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

    def _queued(self) -> None:
        """A frame was queued: schedule a flush to the sink, or wake the reader."""
        if self._sink is None:
            self._wake()
        elif not self._scheduled:
            self._schedule()

    def _schedule(self) -> None:
        self._scheduled = True
        flusher = self._flusher
        if flusher is None:
            flusher = self._flusher = Flusher()
        flusher.schedule(self)

    def _take(self, room: int) -> list[bytes]:
        """Pop queued frames until they add up to `room` bytes or more (at least one), dropping
        those past `max_age`; counted as delivered."""
        queue = self._queue
        max_age = self.options.max_age
        oldest = 0.0 if max_age is None else time.monotonic() - max_age
        frames = []
        size = 0
        while queue and size < room:
            queued_at, frame = queue.popleft()
            if queued_at < oldest:
                self._count_drop("expired")
                continue
            frames.append(frame)
            size += len(frame)
        self.delivered += len(frames)
        return frames

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
        self._general: list[Subscription] = []
        """Subscriptions that may take events of more than one account."""
        self._by_account: dict[int, list[Subscription]] = {}
        """Subscriptions bound to one account, by its QQ number: an event is offered to its
        account's list only, so a connection bound to one account costs the others' events
        nothing (measured before: ~0.8 µs per event and bound connection)."""
        self._flusher = Flusher()
        self.published = 0
        self.retired_drops: dict[str, int] = {}
        """Drops of subscriptions already gone, per subscriber name (for metrics)."""
        self.rejected: dict[str, int] = {}
        """Events refused since start, per reason: the bus's own (`unencodable`, `no_cq_form`,
        `encode_failed`) and those producers report through `reject()` (for metrics)."""
        self._rejected_since_log: dict[str, int] = {}
        self._last_reject_log: dict[str, float] = {}

    def subscribe(self, name: str, options: SubscriberOptions) -> Subscription:
        """Register a subscriber; it receives events published from now on."""
        subscription = Subscription(name, options, self._flusher)
        self._subscriptions.append(subscription)
        self._partition(subscription).append(subscription)
        return subscription

    def _partition(self, subscription: Subscription) -> list[Subscription]:
        """The list `publish` finds `subscription` in: its account's, when it takes one
        account's events only (a filter with an `only` QQ number, known now), else the
        general one. (A bound account that learns another number later is not followed.)"""
        only = getattr(subscription.options.accounts, "only", None)
        if not only:
            return self._general
        return self._by_account.setdefault(only, [])

    def unsubscribe(self, subscription: Subscription) -> None:
        """Remove a subscriber (idempotent) and close it."""
        subscription.close("unsubscribed")
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
            for partition in (self._general, *self._by_account.values()):
                if subscription in partition:
                    partition.remove(subscription)
            self._by_account = {key: subs for key, subs in self._by_account.items() if subs}
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
        """Queue `event` (array message form) for every subscriber that wants it. Never awaits,
        never raises: a variant that cannot be encoded is withheld from the subscribers of that
        variant, counted and logged (`event_rejected`), and the producer carries on."""
        self.published += 1
        is_self = event.get("post_type") == "message_sent"
        is_message = event.get("post_type") in ("message", "message_sent")
        # Per variant: its bytes, or b"" once it failed (an encoded event is never empty), so
        # the hot path stays one lookup per subscriber and a failure is counted once.
        frames: dict[tuple[str, bool], bytes] = {}
        # Per options object: the frame its subscribers get, or b"" for none. The connections of
        # one entry share their options, so its filter runs once per event, not per connection;
        # consecutive subscribers mostly share them, so the last decision is checked first.
        decided: dict[int, bytes] = {}
        counted: set[str] = set()
        last_options: SubscriberOptions | None = None
        frame = b""
        subscriptions: Iterable[Subscription] = self._general
        if self._by_account:
            bound = self._by_account.get(event.get("self_id", 0))
            if bound:
                subscriptions = itertools.chain(self._general, bound)
        for subscription in subscriptions:
            options = subscription.options
            if options is not last_options:
                last_options = options
                known = decided.get(id(options))
                if known is not None:
                    frame = known
                elif (
                    (is_self and not options.report_self_message)
                    or (
                        options.accounts is not None
                        and not options.accounts.serves(event.get("self_id", 0))
                    )
                    or (options.event_filter is not None and not options.event_filter(event))
                ):
                    frame = decided[id(options)] = b""
                else:
                    variant = (options.message_format if is_message else "array", options.debug)
                    known = frames.get(variant)
                    if known is None:
                        known = frames[variant] = self._encode(event, variant, counted)
                    frame = decided[id(options)] = known
            if frame:
                subscription.offer(frame)
        # Closed subscriptions (overflow under `disconnect`) are removed by their adapter.

    def _encode(
        self, event: Mapping[str, Any], variant: tuple[str, bool], counted: set[str]
    ) -> bytes:
        """One variant of `event`, or b"" if it cannot be encoded (rejected, and counted once
        per event and reason in `counted`, however many variants failed alike)."""
        # Per variant, not all or nothing: whether a subscriber gets an event depends only on
        # the event and its own options, never on which other subscribers happen to be
        # connected. A subscriber never gets a partial or mangled copy: the variant it wants is
        # complete or withheld.
        try:
            return encode_variant(event, *variant)
        except Exception as error:  # whatever the failure, only this event is refused
            reason = _rejection_reason(error)
            if reason not in counted:
                counted.add(reason)
                self.reject(reason, error=str(error), post_type=event.get("post_type"))
            return b""

    def reject(self, reason: str, **details: Any) -> None:
        """Count one refused event (or upstream frame) under `reason` and log it, at most once a
        second per reason so a flood of bad input cannot flood the log. `details` are logged
        as text, escaped so that the log line itself is always encodable."""
        total = self.rejected[reason] = self.rejected.get(reason, 0) + 1
        since = self._rejected_since_log[reason] = self._rejected_since_log.get(reason, 0) + 1
        now = time.monotonic()
        last = self._last_reject_log.get(reason)
        if last is None or now - last >= REJECT_LOG_INTERVAL:
            log.warning(
                "event_rejected",
                reason=reason,
                rejected=since,
                rejected_total=total,
                **{key: loggable(value) for key, value in details.items()},
            )
            self._last_reject_log[reason] = now
            self._rejected_since_log[reason] = 0


def _rejection_reason(error: Exception) -> str:
    if isinstance(error, MessageError):
        return "no_cq_form"  # a segment with no CQ spelling, for a string-format subscriber
    if isinstance(error, orjson.JSONEncodeError):
        return "unencodable"  # lone surrogates, integers beyond 64 bits, non-JSON values
    return "encode_failed"


def loggable(value: Any) -> str | int | float | bool | None:
    """`value` as a log field that any renderer can encode: scalars as they are, anything else
    as text cut to LOGGED_TEXT_LIMIT characters, lone surrogates escaped."""
    if value is None or isinstance(value, bool | float):
        return value
    if type(value) is int and -(2**63) <= value < 2**63:
        return value
    text = value if isinstance(value, str) else repr(value)
    return text[:LOGGED_TEXT_LIMIT].encode("utf-8", "backslashreplace").decode("utf-8")


def encode_variant(event: Mapping[str, Any], message_format: str, debug: bool) -> bytes:
    """Serialise one variant of an event. Raises MessageError when a string-format variant has a
    segment with no CQ spelling, orjson.JSONEncodeError when the event is not encodable JSON."""
    body: Mapping[str, Any] = event
    if not debug and any(field in event for field in DEBUG_ONLY_FIELDS):
        body = {k: v for k, v in event.items() if k not in DEBUG_ONLY_FIELDS}
    if message_format == "string":
        body = string_form(body)
    return jsonio.dumps(body)
