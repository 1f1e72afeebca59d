"""Feeding one entry's bots the events of accounts hosted on other nodes.

An `EntryConsumer` is a durable JetStream pull consumer named `<node>_<entry>`, filtered to the
events of the remote accounts the entry serves (`<prefix>.v11.<self_id>.event.>` each). Each
event is offered to the entry's current bus subscriptions (those named after the entry whose
account filter takes its `self_id`), re-encoded per subscription options as the bus would
(message format, debug, `report_self_message`, event filter): the stream holds the debug array
form, passed on as it is to a subscriber that wants exactly that.

Acknowledgement, per entry kind:
- `ack_on_write` (reverse WebSocket, HTTP POST: their subscriptions outlive connections): the
  frame is an `AckFrame`, acked once the writer wrote it (WebSocket) or the bot answered the POST
  (2xx/4xx); an event offered to several subscriptions is acked once all wrote it. An event no
  subscription of the entry takes (its link is not running yet) is handed back (nak) to come
  again a second later. At most `window` events are delivered and not yet acked
  (`max_ack_pending`), so a bot that is away holds back its consumer instead of filling memory.
- otherwise (forward WebSocket, SSE: connections come and go): acked once offered, as the local
  bus does for them (no connection, no delivery).

A frame dropped on the way (overflow, `bufferMaxAge`) is not acked: JetStream delivers it again
after `ack_wait`. A redelivered event whose frame is still queued in its subscription is not
offered twice.

Resuming: the consumer outlives the process. When it starts and finds events delivered but not
acked (a crash or a stop with events in flight), it is recreated from its acknowledged floor, so
the entry gets everything after the last contiguous ack again, in stream order: duplicates are
then those in flight at the stop (delivered, not acked; at most `window` when acks came in order)
and nothing is skipped within the stream's retention. (Recreation deletes and re-adds the
durable: a crash between the two starts it over at new events.)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from gateway.bus import DEBUG_ONLY_FIELDS, AckFrame, EventBus, Subscription, encode_variant
from gateway.cluster.events import events_filter
from gateway.cluster.link import events_stream
from gateway.network.backoff import Backoff
from gateway.protocol import jsonio

if TYPE_CHECKING:
    from gateway.cluster.link import ClusterLink

log = structlog.get_logger("gateway.cluster.consumers")

WINDOW = 256
"""Events delivered to an entry and not yet acknowledged (the consumer's `max_ack_pending`):
what can arrive twice after a crash."""
ACK_WAIT = 30.0
"""Seconds before JetStream delivers an unacknowledged event again."""
PULL_EXPIRES = 5.0
"""Seconds one pull request waits for events before it expires (and is made again)."""
PULL_TICK = 0.5
"""Seconds between two checks, while no event comes, that the pull requests are still alive."""
NO_TARGET_DELAY = 1.0
"""Seconds before an event that no subscription took is delivered again (`ack_on_write`)."""
RETRY_BASE = 0.1
RETRY_CAP = 5.0
_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]")
_ACK = b"+ACK"


def consumer_name(node: str, entry: str) -> str:
    """The durable consumer's name for `entry` on `node`: `<node>_<entry>`, an entry name with
    characters a consumer name cannot hold spelled with `_` plus a hash of the original (so two
    entries that differ only there get two consumers)."""
    clean = _NAME_BAD.sub("_", entry)
    if clean != entry:
        clean = f"{clean}_{hashlib.blake2s(entry.encode(), digest_size=4).hexdigest()}"
    return f"{node}_{clean}"


def account_consumer_name(node: str, entry: str, self_id: int) -> str:
    """The durable consumer of one remote account for `entry` on `node`:
    `<node>_<entry>_<self_id>`. One per account, so each account has its own acknowledged floor
    and in-flight window: a bot that is behind or away holds back only its own account, and a
    restart repeats only that account's events in flight."""
    return f"{consumer_name(node, entry)}_{self_id}"


class _Delivery:
    """One delivered event waiting for its writers: acked once every frame offered is written."""

    __slots__ = ("consumer", "msg", "offered", "remaining", "seq")

    def __init__(self, consumer: EntryConsumer, msg: Msg, seq: int) -> None:
        self.consumer = consumer
        self.msg = msg
        self.seq = seq
        self.remaining = 0
        self.offered: list[tuple[Subscription, AckFrame]] = []

    def written(self) -> None:
        """An `AckFrame.ack`: one more writer wrote it; acked when none is left."""
        self.remaining -= 1
        if self.remaining == 0:
            self.consumer._written(self)

    def still_queued(self) -> bool:
        """Whether a frame of it still waits in an open subscription (so a redelivery is not
        offered again)."""
        return any(sub.closed_reason is None and sub.holds(frame) for sub, frame in self.offered)


class EntryConsumer:
    """The events of remote accounts for one entry (see the module docstring)."""

    def __init__(
        self,
        link: ClusterLink,
        bus: EventBus,
        prefix: str,
        node: str,
        entry: str,
        accounts: Iterable[int],
        *,
        ack_on_write: bool,
        window: int = WINDOW,
        ack_wait: float = ACK_WAIT,
        durable: str | None = None,
    ) -> None:
        """`durable`: the consumer's name (`consumer_name(node, entry)` when None; a node gives
        each remote account of an entry its own, see `account_consumer_name`)."""
        self.link = link
        self.bus = bus
        self.prefix = prefix
        self.entry = entry
        self.name = consumer_name(node, entry) if durable is None else durable
        self.stream = events_stream(prefix)
        self.accounts = frozenset(accounts)
        self.ack_on_write = ack_on_write
        self.window = window
        self.ack_wait = ack_wait
        self.received = 0
        """Events delivered by JetStream (redeliveries included)."""
        self.redelivered = 0
        """Deliveries JetStream marked as a repeat (not acked in time, or handed back)."""
        self.kept = 0
        """Repeats not offered because the first copy still waits in its subscription."""
        self.acked = 0
        self.handed_back = 0
        """Events no subscription took (handed back to come again, `ack_on_write` only)."""
        self.rejected = 0
        """Stream messages that are not an event object (acked and skipped, logged)."""
        self.behind = 0
        """Events of its accounts in the stream not yet delivered to it, as of the last one
        delivered (the consume lag in events)."""
        self.rewound = 0
        """Times the consumer was recreated from its acknowledged floor."""
        self.last_error: str | None = None
        self._pending: dict[int, _Delivery] = {}
        self._acks: list[tuple[str, bytes]] = []
        """(reply subject, payload) of acks and naks not sent yet."""
        self._ack_wake = asyncio.Event()
        self._accounts_changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ack_task: asyncio.Task[None] | None = None
        self._bound = False
        self._bound_once = asyncio.Event()
        self._running = False
        self._outstanding = 0
        """Events requested from JetStream and not arrived yet."""
        self._arrived = asyncio.Event()

    @property
    def in_flight(self) -> int:
        """Events offered and not yet written."""
        return len(self._pending)

    async def start(self) -> None:
        """Consume from now on (NATS may be away: it starts when the link is ready)."""
        self._running = True
        self._task = asyncio.create_task(self._run(), name=f"cluster-consumer:{self.entry}")
        self._ack_task = asyncio.create_task(self._send_acks(), name=f"cluster-acks:{self.entry}")

    async def stop(self) -> None:
        """Stop consuming; acks of frames written so far are sent. The durable consumer stays
        (the next start resumes it); frames still queued are not acked even if written later
        (JetStream delivers them again)."""
        self._running = False
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        ack_task, self._ack_task = self._ack_task, None
        if ack_task is not None:
            ack_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ack_task
        await self._flush_acks()
        self._pending.clear()

    async def wait_bound(self) -> None:
        """Return once the durable consumer exists with this entry's filter (events published
        from then on reach the entry)."""
        await self._bound_once.wait()

    def set_accounts(self, accounts: Iterable[int]) -> None:
        """The remote accounts the entry serves now: the consumer's filter follows."""
        accounts = frozenset(accounts)
        if accounts != self.accounts:
            self.accounts = accounts
            self._accounts_changed.set()  # the running fetch loop ends and binds again

    async def _run(self) -> None:
        backoff = Backoff(RETRY_BASE, RETRY_CAP)
        while self._running:
            self._accounts_changed.clear()
            if not self.accounts:
                await self._accounts_changed.wait()
                continue
            await self.link.wait_ready()
            try:
                await self._bind()
                backoff.reset()
                self.last_error = None
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.last_error = str(error) or type(error).__name__
                delay = backoff.next_delay()
                log.warning(
                    "cluster_consumer_retry",
                    consumer=self.name,
                    error=self.last_error,
                    delay=round(delay, 3),
                )
                await asyncio.sleep(delay)

    async def _bind(self) -> None:
        """Make the durable consumer match the accounts served (create, update or, on the first
        bind with events in flight, recreate from the acked floor) and subscribe to it."""
        js = self.link.js
        assert js is not None
        subjects = sorted(events_filter(self.prefix, self_id) for self_id in self.accounts)
        try:
            info = await js.consumer_info(self.stream, self.name)
        except NotFoundError:
            info = None
        config = ConsumerConfig(
            durable_name=self.name,
            deliver_policy=DeliverPolicy.NEW,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_ack_pending=self.window,
            filter_subjects=subjects,
        )
        if info is None:
            await js.add_consumer(self.stream, config)
            log.info("cluster_consumer_created", consumer=self.name, subjects=subjects)
        elif not self._bound and info.num_ack_pending and info.ack_floor is not None:
            # Events were in flight when this consumer last ran: deliver everything after the
            # last contiguous ack again, in order, rather than the in-flight ones after newer
            # events once their ack_wait ran out.
            start = info.ack_floor.stream_seq + 1
            await js.delete_consumer(self.stream, self.name)
            config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = start
            await js.add_consumer(self.stream, config)
            self.rewound += 1
            log.info(
                "cluster_consumer_rewound",
                consumer=self.name,
                from_seq=start,
                in_flight=info.num_ack_pending,
            )
        else:
            current = info.config
            if (
                sorted(current.filter_subjects or [current.filter_subject or ""]) != subjects
                or current.ack_wait != self.ack_wait
                or current.max_ack_pending != self.window
            ):
                # The deliver policy of an existing consumer cannot change: keep it.
                config.deliver_policy = current.deliver_policy
                config.opt_start_seq = current.opt_start_seq
                await js.add_consumer(self.stream, config)
                log.info("cluster_consumer_updated", consumer=self.name, subjects=subjects)
        self._bound = True
        self._bound_once.set()

    async def _consume(self) -> None:
        """Pull continuously: a request for `window` events is outstanding whenever fewer than
        half of the last one are still to come, so events flow without a round trip per batch
        (JetStream itself stops at `max_ack_pending`). Returns when stopping or when the
        accounts changed (the consumer is bound again)."""
        nc = self.link.nc
        assert nc is not None
        inbox = nc.new_inbox()
        next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self.name}"
        request = jsonio.dumps({"batch": self.window, "expires": int(PULL_EXPIRES * 1e9)})
        self._outstanding = 0
        arrived = self._arrived = asyncio.Event()
        subscription = await nc.subscribe(inbox, cb=self._on_message)
        reconnects = self.link.reconnects
        idle = 0.0
        try:
            # `_running` is checked as well as cancellation: nats-py can swallow a cancel.
            while self._running and not self._accounts_changed.is_set():
                if self._outstanding <= self.window // 2:
                    await nc.publish(next_subject, request, reply=inbox)
                    self._outstanding += self.window
                    idle = 0.0
                arrived.clear()
                try:
                    await asyncio.wait_for(arrived.wait(), PULL_TICK)
                except TimeoutError:
                    idle += PULL_TICK
                    # Requests expired, or died with the server the link reconnected to.
                    if idle >= PULL_EXPIRES or self.link.reconnects != reconnects:
                        reconnects = self.link.reconnects
                        self._outstanding = 0
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def _on_message(self, msg: Msg) -> None:
        """A message on the pull inbox: an event, or a status (a request expired, or the
        consumer was deleted or changed), after which a new request is made."""
        if not msg.reply:
            self._outstanding = 0
        else:
            self._outstanding -= 1
            if self._running:
                # The entry's subscriptions now: one pass over the bus's list per event.
                self._deliver(
                    msg, [sub for sub in self.bus.subscriptions if sub.name == self.entry]
                )
        self._arrived.set()

    def _deliver(self, msg: Msg, targets: list[Subscription]) -> None:
        self.received += 1
        metadata = msg.metadata
        self.behind = metadata.num_pending
        seq = metadata.sequence.stream
        if metadata.num_delivered > 1:
            self.redelivered += 1
            earlier = self._pending.get(seq)
            if earlier is not None:
                if earlier.still_queued():
                    self.kept += 1
                    return
                del self._pending[seq]
        try:
            # orjson straight: publishers store exact JSON made by orjson.
            event: Any = orjson.loads(msg.data)
            self_id = event["self_id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.rejected += 1
            self.bus.reject("cluster_not_an_event", subject=msg.subject, data=msg.data[:200])
            self._ack(msg)
            return
        post_type = event.get("post_type")
        is_message = post_type in ("message", "message_sent")
        is_self = post_type == "message_sent"
        delivery = _Delivery(self, msg, seq) if self.ack_on_write else None
        frames: dict[tuple[str, bool], bytes] = {}
        serving = 0
        for sub in targets:
            options = sub.options
            if sub.closed_reason is not None or (
                options.accounts is not None and not options.accounts.serves(self_id)
            ):
                continue
            serving += 1
            if (is_self and not options.report_self_message) or (
                options.event_filter is not None and not options.event_filter(event)
            ):
                continue
            variant = (options.message_format if is_message else "array", options.debug)
            frame = frames.get(variant)
            if frame is None:
                frame = frames[variant] = self._encode(msg, event, variant)
            if not frame:
                continue
            if delivery is None:
                sub.offer(frame)
                continue
            ack_frame = AckFrame(frame)
            ack_frame.ack = delivery.written
            delivery.remaining += 1
            delivery.offered.append((sub, ack_frame))
            sub.offer(ack_frame)
        if delivery is not None and delivery.remaining:
            self._pending[seq] = delivery
        elif delivery is not None and not serving:
            # No link of this entry serves the account (yet): the event comes again later.
            self.handed_back += 1
            self._send(msg.reply, b"-NAK " + jsonio.dumps({"delay": int(NO_TARGET_DELAY * 1e9)}))
        else:
            self._ack(msg)

    def _encode(self, msg: Msg, event: Any, variant: tuple[str, bool]) -> bytes:
        """The frame for `variant` (the stored bytes for the debug array form), or b"" when
        it cannot be encoded (counted on the bus as for a local event)."""
        if variant[0] == "array" and (variant[1] or not any(f in event for f in DEBUG_ONLY_FIELDS)):
            return bytes(msg.data)  # the stored form is the one wanted
        try:
            return encode_variant(event, *variant)
        except Exception as error:
            self.bus.reject("cluster_unencodable", error=str(error), subject=msg.subject)
            return b""

    def _written(self, delivery: _Delivery) -> None:
        if self._pending.get(delivery.seq) is delivery:
            del self._pending[delivery.seq]
        self._ack(delivery.msg)

    def _ack(self, msg: Msg) -> None:
        self.acked += 1
        self._send(msg.reply, _ACK)

    def _send(self, reply: str, payload: bytes) -> None:
        if not self._running:
            return  # stopped: JetStream delivers it again to the next run
        self._acks.append((reply, payload))
        self._ack_wake.set()

    async def _send_acks(self) -> None:
        while True:
            await self._ack_wake.wait()
            self._ack_wake.clear()
            await self._flush_acks()

    async def _flush_acks(self) -> None:
        acks, self._acks = self._acks, []
        nc = self.link.nc
        if nc is None or not acks:
            return
        try:
            for reply, payload in acks:
                await nc.publish(reply, payload)
        except Exception as error:  # the link is gone: JetStream delivers them again
            log.warning("cluster_acks_lost", consumer=self.name, error=str(error))
