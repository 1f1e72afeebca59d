"""One OneBot WebSocket connection (reference/onebot11.md §1.4), whichever adapter accepted it.

Roles: `api` answers action frames only; `event` pushes events only; `universal` does both. An
event connection's bus subscription carries all it is sent, `lifecycle.connect` first, then
events and heartbeats, and its one sender writes them in order: on a server connection whose
socket keeps up, the bus hands them to the connection once per loop iteration and they are
written at once (`WsConnection.write`, no task switch per event); otherwise, and whenever the
socket pushes back, the connection's sender task writes them, with backpressure. Action frames run
concurrently, each answered with its request's `echo` unchanged, at most `max_inflight` at once:
at the limit the connection is not read until a call is answered (TCP backpressure; nothing is
dropped). On shutdown a connection runs no new call, lets running ones answer until the shared
deadline, then closes with 1001. A client frame without a mask closes it with 1002 (RFC 6455
§5.1). A stream action's packets (napcat-network.md §8) are frames with its call's echo, each
written (and drained) before the next is read, then its final envelope.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import struct
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from aiohttp import ClientWebSocketResponse, WSCloseCode, WSMsgType, web
from aiohttp.http_websocket import WebSocketError, WebSocketReader

from gateway.accounts import Account, AccountFilter, OneAccount
from gateway.bus import AckFrame, EventBus, SubscriberOptions, Subscription, SubscriptionClosed
from gateway.config import DEFAULT_MAX_INFLIGHT
from gateway.event_filter import compile_filter
from gateway.front import Caller, EntryFront
from gateway.logging import bind_call_frame, bind_log_context, reset_log_context
from gateway.network.binding import bind, split_account_path
from gateway.network.body_parser import INLINE_LIMIT, BodyParser
from gateway.network.handshake import handshake_refusal
from gateway.protocol import envelope, events, jsonio

log = structlog.get_logger("gateway.ws")

Role = Literal["api", "event", "universal"]
AnyWebSocket = web.WebSocketResponse | ClientWebSocketResponse
SLOW_CLOSE_TIMEOUT = 1.0
SHUTTING_DOWN = "the gateway is shutting down: this call was not run"
_SHORT_TEXT_HEADERS = tuple(bytes((0x81, length)) for length in range(126))
_JOIN_LIMIT = 64 * 1024
"""Frames written together up to this size are joined into one buffer; larger ones are handed
to the transport as they are (no copy)."""


def text_frame_header(length: int) -> bytes:
    """The header of an unmasked, final, uncompressed text frame with a `length`-byte payload
    (RFC 6455 §5.2), as a server sends it."""
    if length < 126:
        return _SHORT_TEXT_HEADERS[length]
    if length < 65536:
        return struct.pack("!BBH", 0x81, 126, length)
    return struct.pack("!BBQ", 0x81, 127, length)


class MetaFrame(bytes):
    """An encoded meta event (lifecycle, heartbeat) the gateway made for its own subscribers.

    It goes through subscriptions like any event but belongs to the connection it was made for:
    a reverse WebSocket client's buffer never carries one into its next connection (a failed
    write is not put back, and one queued before the connection began is skipped).
    """

    made: float
    """`time.monotonic()` when it was made."""


def meta_frame(event: Mapping[str, Any]) -> MetaFrame:
    """Encode a meta event built by `gateway.protocol.events`."""
    frame = MetaFrame(jsonio.dumps(event))
    frame.made = time.monotonic()
    return frame


def is_upgrade(request: web.BaseRequest) -> bool:
    """Whether a request asks to become a WebSocket."""
    return request.headers.get("Upgrade", "").lower() == "websocket"


def role_of(path: str) -> Role:
    """`/api` → api, `/event` → event, anything else → universal (trailing slash allowed)."""
    trimmed = path.rstrip("/")
    if trimmed == "/api":
        return "api"
    if trimmed == "/event":
        return "event"
    return "universal"


class OneBotWebSocket(web.WebSocketResponse):
    """A WebSocketResponse whose over-limit close (1009) carries a reason, and that refuses
    unmasked client frames (1002), which aiohttp's frame parser accepts."""

    async def close(
        self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True
    ) -> bool:
        if code == WSCloseCode.MESSAGE_TOO_BIG and not message:
            message = b"frame exceeds the size limit of this server"
        return await super().close(code=code, message=message, drain=drain)

    def _post_start(self, request: web.BaseRequest, protocol: str | None, writer: Any) -> None:
        # aiohttp's hook where the upgraded connection gets its frame parser: the parser is
        # wrapped in a mask check. Bytes that came right behind the upgrade request (before
        # any parser existed) are held back from aiohttp and fed through the check as well.
        handler = request.protocol
        early, handler._message_tail = handler._message_tail, b""
        super()._post_start(request, protocol, writer)
        parser = handler._payload_parser
        assert parser is not None
        assert self._reader is not None
        checked = MaskedFramesOnly(parser, self._reader)
        handler._payload_parser = checked
        if early and checked.feed_data(early)[0]:
            handler.close()


class MaskedFramesOnly:
    """Feeds a server connection's frame parser only masked frames (RFC 6455 §5.1: a client
    masks every frame; the server closes the connection with 1002 when one is not).

    It reads the frame headers as bytes arrive (a few integer operations per frame; payloads
    are skipped, never copied). The frames before an unmasked one are parsed and answered; the
    unmasked one fails the connection.
    """

    __slots__ = ("_failed", "_head", "_parser", "_queue", "_skip")

    def __init__(self, parser: WebSocketReader, queue: Any) -> None:
        self._parser = parser
        self._queue = queue
        self._skip = 0
        """Bytes of the current frame still to come."""
        self._head = b""
        """The start of a frame header split across two reads."""
        self._failed = False

    def feed_eof(self) -> None:
        self._parser.feed_eof()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        """Parse `data` unless it holds an unmasked frame; `(True, b"")` once failed (as the
        parser answers after an error: the server then closes the transport)."""
        if self._failed:
            return True, b""
        # The common read: one whole small masked frame, no partial frame before it. (For a
        # masked frame `data[1] ^ 0x80` is its 7-bit length; unmasked, it is 128 or more.)
        if not self._skip and not self._head and len(data) > 1:
            length = data[1] ^ 0x80
            if length < 126 and length + 6 == len(data):
                result: tuple[bool, bytes] = self._parser.feed_data(data)
                return result
        bad = self._unmasked_at(data)
        if bad < 0:
            result = self._parser.feed_data(data)
            return result
        self._failed = True
        if bad > 0 and self._parser.feed_data(data[:bad])[0]:
            return True, b""
        self._queue.set_exception(
            WebSocketError(WSCloseCode.PROTOCOL_ERROR, "client frames must be masked")
        )
        return True, b""

    def _unmasked_at(self, data: bytes) -> int:
        """Where in `data` the first unmasked frame starts (0 if its header began in an
        earlier read), or -1 if every frame header in it is masked."""
        held = len(self._head)
        if held:
            data, self._head = self._head + data, b""
        pos, end = self._skip, len(data)
        while pos < end:
            if end - pos < 2:
                break
            second = data[pos + 1]
            if not second & 0x80:
                return max(pos - held, 0)
            length = second & 0x7F
            if length < 126:
                pos += 6 + length
            elif length == 126:
                if end - pos < 4:
                    break
                pos += 8 + (data[pos + 2] << 8 | data[pos + 3])
            else:
                if end - pos < 10:
                    break
                pos += 14 + int.from_bytes(data[pos + 2 : pos + 10], "big")
        else:
            self._skip = pos - end
            return -1
        self._skip, self._head = 0, data[pos:]
        return -1


@dataclass(frozen=True, slots=True)
class WsSettings:
    """Per-entry settings a connection needs."""

    server: str
    options: SubscriberOptions
    max_frame: int
    debug: bool = False
    max_inflight: int = DEFAULT_MAX_INFLIGHT
    """Calls running at once on one connection before it stops being read."""
    _bound: dict[str, WsSettings] = field(default_factory=dict, compare=False, repr=False)

    def bound_to(self, account: Account) -> WsSettings:
        """These settings for a connection bound to `account`: its subscription takes that
        account's events only. One object per account, so the bus decides once per event for
        every connection bound to it."""
        bound = self._bound.get(account.name)
        if bound is None or bound.options.accounts != OneAccount(account):
            options = dataclasses.replace(self.options, accounts=OneAccount(account))
            bound = self._bound[account.name] = dataclasses.replace(self, options=options)
        return bound


class WsConnection:
    """Serves one accepted WebSocket until either side closes it."""

    __slots__ = (
        "_answers",
        "_calls",
        "_closing",
        "_direct_answers",
        "_drain",
        "_high_water",
        "_owns_subscription",
        "_packets",
        "_since",
        "_wake",
        "_writing",
        "bus",
        "dispatcher",
        "parser",
        "role",
        "running",
        "settings",
        "subscription",
        "transport",
        "ws",
    )

    def __init__(
        self,
        ws: AnyWebSocket,
        role: Role,
        settings: WsSettings,
        dispatcher: Caller,
        bus: EventBus,
        transport: asyncio.Transport | None = None,
        subscription: Subscription | None = None,
        parser: BodyParser | None = None,
        drain: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.ws = ws
        self.parser = parser
        """Parses large frames off the event loop; without one, every frame is parsed inline."""
        self.transport = transport
        self._drain = drain
        """Waits until the transport takes more (`ws.prepare()`'s writer); with `transport`,
        it lets the bus write events straight to this connection."""
        self._high_water = 0
        self._writing = False
        self.role = role
        self.settings = settings
        self.dispatcher = dispatcher
        self.bus = bus
        # A reverse WebSocket client keeps one subscription across connections (its buffer while
        # disconnected); a server connection owns a fresh one.
        self.subscription = subscription
        self._owns_subscription = subscription is None
        self._calls: set[asyncio.Task[None]] = set()
        self.running = 0
        """Calls started and not answered yet (at most `settings.max_inflight`)."""
        self._wake: asyncio.Future[None] | None = None
        """Resolved when a call ends (see `_call_ended`); created by whoever waits for one."""
        self._closing = False
        self._since = 0.0
        self._packets = self._send_packet
        """Bound once: the dispatcher gets the same callable for every call."""
        self._answers: list[bytes] = []
        """Answers waiting for the end of this loop iteration (see `_queue_answer`)."""
        self._direct_answers = False

    async def run(self) -> None:
        """Subscribe (event roles) with `lifecycle.connect` first, then read frames until the
        socket closes; clean up."""
        sender = None
        subscription = None
        self._direct_answers = self._writes_directly()
        if self.role != "api":
            if self.subscription is None:
                self.subscription = self.bus.subscribe(self.settings.server, self.settings.options)
            subscription = self.subscription
            self._since = time.monotonic()
            # First on this connection, ahead of what a reverse client buffered while away: one
            # per account it serves, in order.
            for account in reversed(self.dispatcher.accounts()):
                subscription.push_front(meta_frame(events.lifecycle(account.self_id)))
            direct = self._writes_directly()
            sender = asyncio.create_task(
                self._send_direct() if direct else self._send_events(), name="ws-sender"
            )
            # The sender may be stuck writing to a peer that stopped reading; an overflow under
            # `disconnect` cancels that write so the disconnect happens at once.
            subscription.on_close = lambda reason: self._interrupt_write(sender, reason)
            if direct:
                subscription.attach(self)
        try:
            await self._receive()
        finally:
            if subscription is not None:
                subscription.on_close = None
                subscription.attach(None)
                if self._owns_subscription:
                    self.bus.unsubscribe(subscription)
            await cancel_and_wait(*self._calls, sender)
            del self._packets  # a bound method of this connection: no cycle left behind

    def _writes_directly(self) -> bool:
        """Whether the bus may write events straight to this connection: a server connection
        (a client one masks its frames) without permessage-deflate (aiohttp's compressor keeps
        state per connection; compressed frames go through `send_frame`)."""
        transport = self.transport
        if self._drain is None or transport is None or transport.is_closing():
            return False
        if not isinstance(self.ws, web.WebSocketResponse) or self.ws.compress:
            return False
        self._high_water = transport.get_write_buffer_limits()[1]
        return True

    def room(self) -> int:
        """Bytes this connection takes now without waiting (`FrameSink`): up to the transport's
        high-water mark, none while the sender waits for the peer or once closing."""
        transport = self.transport
        if self._writing or self.ws.closed or transport is None or transport.is_closing():
            return 0
        return self._high_water - transport.get_write_buffer_size() + 1

    def write(self, frames: list[bytes]) -> None:
        """Write event frames at once (`FrameSink`); the transport buffers what the socket does
        not take. Only called while `room()` is positive."""
        since = self._since
        transport = self.transport
        assert transport is not None
        if len(frames) == 1:
            frame = frames[0]
            if type(frame) is MetaFrame and frame.made < since:
                return  # made for an earlier connection of a reverse client
            if len(frame) <= _JOIN_LIMIT:
                transport.write(text_frame_header(len(frame)) + frame)
            else:
                transport.writelines((text_frame_header(len(frame)), frame))
            if type(frame) is AckFrame:
                frame.ack()  # written: its sender may forget it
            return
        parts = []
        size = 0
        written: list[AckFrame] | None = None
        for frame in frames:
            if type(frame) is MetaFrame and frame.made < since:
                continue
            parts.append(text_frame_header(len(frame)))
            parts.append(frame)
            size += len(frame)
            if type(frame) is AckFrame:
                if written is None:
                    written = []
                written.append(frame)
        if size <= _JOIN_LIMIT:
            transport.write(b"".join(parts))
        else:
            transport.writelines(parts)
        for frame in written or ():
            frame.ack()

    def stop_calls(self) -> None:
        """Run no new call from now on: frames that still arrive are answered 1200."""
        self._closing = True

    async def shut_down(self, deadline: float, reason: str = "gateway shutting down") -> None:
        """Close for shutdown: run no new call (see `stop_calls`), let running calls answer
        until `deadline` (event loop time), then close with 1001 and `reason`."""
        self._closing = True
        loop = asyncio.get_running_loop()
        while self.running and (remaining := deadline - loop.time()) > 0:
            await asyncio.wait((self._call_ended(),), timeout=remaining)
        if self.running:
            log.warning("ws_calls_cut_at_shutdown", calls=self.running)
        self._write_answers()
        await close_going_away(self.ws, self.transport, reason)

    async def _send_direct(self) -> None:
        """The sender of a connection the bus writes to (see `write`): it steps in when the
        socket takes no more, waits until it drains, then hands the frames over itself."""
        subscription = self.subscription
        assert subscription is not None
        assert self._drain is not None
        assert self.transport is not None
        drain, transport = self._drain, self.transport
        try:
            while subscription.attached:
                await subscription.wait()
                self._writing = True
                try:
                    await drain()
                except asyncio.CancelledError:
                    reason = subscription.closed_reason
                    if reason in (None, "unsubscribed"):
                        raise
                    await self.disconnect_slow(reason)
                    return
                finally:
                    self._writing = False
                if self.ws.closed or transport.is_closing():
                    return  # the receive loop sees the close and ends the connection
                subscription.flush()
        except SubscriptionClosed as closed:
            if closed.reason != "unsubscribed":
                await self.disconnect_slow(closed.reason)
            return
        except ConnectionError:
            return
        # The sink failed (see `Subscription.flush`): frames go through `send_frame` from now.
        await self._send_events()

    async def _send_events(self) -> None:
        subscription = self.subscription
        assert subscription is not None
        since = self._since
        try:
            while True:
                frame = await subscription.get()
                if type(frame) is MetaFrame and frame.made < since:
                    continue  # made for an earlier connection of a reverse client
                self._writing = True
                try:
                    await self.ws.send_frame(frame, WSMsgType.TEXT)
                    if type(frame) is AckFrame:
                        frame.ack()  # written: its sender may forget it
                except asyncio.CancelledError:
                    reason = subscription.closed_reason
                    if reason in (None, "unsubscribed"):
                        raise
                    await self.disconnect_slow(reason)
                    return
                except ConnectionError:
                    # Not written: an event goes first on the next connection (reverse
                    # clients); a meta event belonged to this one.
                    if type(frame) is not MetaFrame:
                        subscription.requeue(frame)
                    raise
                finally:
                    self._writing = False
        except SubscriptionClosed as closed:
            if closed.reason != "unsubscribed":
                await self.disconnect_slow(closed.reason)
        except ConnectionError:
            pass  # the receive loop sees the close and ends the connection

    def _interrupt_write(self, sender: asyncio.Task[None], reason: str) -> None:
        if reason != "unsubscribed" and self._writing:
            sender.cancel()

    async def disconnect_slow(self, reason: str) -> None:
        """Close a subscriber that overflowed under `disconnect`: 1013, then abort if stuck.

        A peer that stopped reading never completes the closing handshake, so after a short wait
        the transport is aborted and the receive loop ends.
        """
        log.warning("subscriber_disconnected", reason=reason)
        code, message = WSCloseCode.TRY_AGAIN_LATER, reason.encode()
        closing = (
            self.ws.close(code=code, message=message, drain=False)
            if isinstance(self.ws, web.WebSocketResponse)
            else self.ws.close(code=code, message=message)
        )
        with contextlib.suppress(Exception):
            await asyncio.wait_for(closing, SLOW_CLOSE_TIMEOUT)
        if self.transport is not None:
            self.transport.abort()

    async def _receive(self) -> None:
        calls = self._calls
        limit = self.settings.max_inflight
        async for message in self.ws:
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                if self._closing:
                    await self._refuse(message.data)
                    continue
                task = asyncio.create_task(self._answer(message.data))
                calls.add(task)
                task.add_done_callback(calls.discard)
                self.running += 1
                # At the limit, stop reading until a call ends: the peer's writes then wait
                # (TCP backpressure) instead of its frames piling up here.
                while self.running >= limit:
                    await self._call_ended()
            elif message.type == WSMsgType.ERROR:
                log.info("ws_closed_on_error", error=str(self.ws.exception()))

    def _call_ended(self) -> asyncio.Future[None]:
        """A future resolved when the next running call ends (shared by every waiter)."""
        wake = self._wake
        if wake is None or wake.done():
            wake = self._wake = asyncio.get_running_loop().create_future()
        return wake

    async def _answer(self, data: str | bytes) -> None:
        # One task per frame, so this runs in a copy of the connection's context: the call's
        # frame is bound without a reset.
        try:
            reply: envelope.Envelope | None
            try:
                if self.parser is not None and len(data) > INLINE_LIMIT:
                    frame = await self.parser.loads(data)
                else:
                    frame = jsonio.loads(data)
            except jsonio.JsonError as error:
                reply = envelope.failed(
                    1400, f"invalid JSON frame: {error}", jsonio.salvage_echo(error)
                )
            else:
                if self.settings.debug:
                    log.info("ws_request", frame=frame)
                reply = self._refusal(frame)
                if reply is None:
                    echo = frame.get("echo")
                    action = frame["action"]
                    bind_call_frame(frame)
                    params = frame.get("params")
                    if "self_id" in frame:
                        params = with_self_id(params, frame["self_id"])
                    reply = await self.dispatcher.call(action, params, echo, self._packets)
            if self.settings.debug:
                log.info("ws_response", response=reply)
            if not self.ws.closed:
                frame = envelope.encode(reply, jsonio.dumps)
                if self._direct_answers and self.room() > 0:
                    self._queue_answer(frame)
                else:
                    # try/except, not contextlib.suppress: this runs once per call (suppress
                    # measured ~0.7 µs). A closed peer needs nothing: the receive loop ends
                    # the connection.
                    try:  # noqa: SIM105
                        await self.ws.send_frame(frame, WSMsgType.TEXT)
                    except ConnectionError:
                        pass
        finally:
            self.running -= 1
            wake = self._wake
            if wake is not None:
                self._wake = None
                if not wake.done():
                    wake.set_result(None)

    async def _send_packet(self, packet: envelope.Envelope) -> None:
        """Write a stream action's intermediate packet (`gateway.protocol.stream.Send`):
        `send_frame` waits for the socket to drain whenever aiohttp's writer holds more than its
        limit, so a slow reader slows the producer instead of the packets piling up here."""
        if self.ws.closed:
            raise ConnectionResetError("the WebSocket closed")
        await self.ws.send_frame(jsonio.dumps(packet), WSMsgType.TEXT)

    def _queue_answer(self, frame: bytes) -> None:
        """Write `frame` at the end of this loop iteration, with every other answer of this
        connection ready by then: one write (one system call) for all of them. Calls that
        finish together (a batch of sandbox writes commits at once; a client that sends
        several frames at a time) are common, and a system call per answer was the largest
        cost of a short call. Only while the transport has room: beyond it, `send_frame`
        waits for the peer (backpressure)."""
        answers = self._answers
        answers.append(frame)
        if len(answers) == 1:
            asyncio.get_running_loop().call_soon(self._write_answers)

    def _write_answers(self) -> None:
        """Write the queued answers now (before a close frame, or at the end of the loop
        iteration they were queued in)."""
        frames = self._answers
        if not frames:
            return
        self._answers = []
        transport = self.transport
        if self.ws.closed or transport is None or transport.is_closing():
            return  # the peer is gone or closing: as `send_frame` would, write nothing
        self.write(frames)

    async def _refuse(self, data: str | bytes) -> None:
        """Answer a frame that arrived after shutdown began: 1200, the call not run."""
        try:
            frame = jsonio.loads(data)
        except jsonio.JsonError as error:
            frame = {"echo": jsonio.salvage_echo(error)}
        echo = frame.get("echo") if isinstance(frame, dict) else None
        with contextlib.suppress(ConnectionError):
            await self.ws.send_frame(
                jsonio.dumps(envelope.failed(1200, SHUTTING_DOWN, echo)), WSMsgType.TEXT
            )

    def _refusal(self, frame: Any) -> envelope.Envelope | None:
        """The answer to a frame that cannot be an action call here, or None."""
        if not isinstance(frame, dict):
            return envelope.failed(
                1400, f"a frame must be a JSON object, got {jsonio.type_name(frame)}"
            )
        echo = frame.get("echo")
        if self.role == "event":
            return envelope.failed(
                1400, "this is an event-only connection (/event); send actions on /api or /", echo
            )
        action = frame.get("action")
        if not isinstance(action, str) or not action:
            return envelope.failed(1400, 'the frame has no "action" string', echo)
        return None


def with_self_id(params: Any, self_id: Any) -> Any:
    """A frame's `params` with the `self_id` written beside `action` (OneBot clients name the
    account either way); `params.self_id` wins when both are there (`gateway.front` routes by
    it). Parameters that are not an object are left for the dispatcher to refuse."""
    if params is None:
        return {"self_id": self_id}
    if type(params) is dict and "self_id" not in params:
        return {**params, "self_id": self_id}
    return params


Registry = dict[web.WebSocketResponse, WsConnection]
"""Open WebSockets of one listener and their connections."""


async def accept(
    request: web.BaseRequest,
    settings: WsSettings,
    front: EntryFront,
    bus: EventBus,
    registry: Registry,
    parser: BodyParser | None = None,
) -> web.StreamResponse:
    """Upgrade an (already authorised) request and serve it until it closes; a malformed
    opening handshake is refused (4xx + 1400) instead, as is a binding to an account the
    entry does not serve (`gateway.network.binding`: 400 + 1400, 403 + 1403)."""
    refusal = handshake_refusal(request)
    if refusal is not None:
        return refusal
    path_id, path = split_account_path(request.path)
    binding = bind(front, request, path_id)
    if isinstance(binding, envelope.ActionError):
        log.warning("ws_binding_refused", server=settings.server, error=binding.message)
        # Never 200: no socket was opened (403 for an account not served, else 400).
        status = binding.http_status if binding.http_status != 200 else 400
        return web.json_response(envelope.from_error(binding), status=status)
    dispatcher: Caller = binding.caller
    if binding.account is not None:
        settings = settings.bound_to(binding.account)
    # aiohttp refuses a message of `max_msg_size` bytes itself; the limit is what may pass.
    # permessage-deflate is not negotiated, as NapCat does not: bot frameworks offer it by
    # default, and it would deflate every event once per subscriber (per-connection compressor
    # state) instead of sending the bytes encoded once; measured 2.5-3x the server CPU per
    # delivery, and up to ~256 KiB of zlib state per connection.
    ws = OneBotWebSocket(max_msg_size=settings.max_frame + 1, autoping=True, compress=False)
    writer = await ws.prepare(request)
    role = role_of(path)
    connection = WsConnection(
        ws, role, settings, dispatcher, bus, request.transport, parser=parser, drain=writer.drain
    )
    registry[ws] = connection
    context = bind_log_context(server=settings.server, peer=request.remote, role=role)
    log.info("ws_connected")
    try:
        await connection.run()
    finally:
        registry.pop(ws, None)
        log.info("ws_disconnected", close_code=ws.close_code)
        reset_log_context(context)
    return ws


def subscriber_options(
    entry: Any, accounts: AccountFilter | None, *, persistent: bool = False
) -> SubscriberOptions:
    """A subscriber's options from its adapter entry; it takes the events of `accounts` (None:
    of every account).

    A `persistent` subscription (reverse WebSocket, HTTP POST) outlives connections and buffers
    across outages: it never disconnects, and frames older than `bufferMaxAge` expire.
    """
    max_age = getattr(entry, "buffer_max_age", 0)
    return SubscriberOptions(
        message_format=entry.message_post_format,
        report_self_message=entry.report_self_message,
        debug=entry.debug,
        event_filter=None if entry.event_filter is None else compile_filter(entry.event_filter),
        queue_size=entry.queue_size,
        overflow="drop_oldest" if persistent else entry.overflow_policy,
        max_age=max_age / 1000 if persistent and max_age else None,
        accounts=accounts,
    )


def settings_for(entry: Any, accounts: AccountFilter | None) -> WsSettings:
    """WsSettings from a server entry (httpServers, httpSseServers or websocketServers) whose
    unbound connections take the events of `accounts` (None: every account)."""
    return WsSettings(
        server=entry.name,
        options=subscriber_options(entry, accounts),
        max_frame=entry.max_body_size,
        debug=entry.debug,
        max_inflight=entry.max_inflight,
    )


async def close_all(registry: Registry, deadline: float) -> None:
    """Shut every connection down at once (see `WsConnection.shut_down`)."""
    connections = list(registry.values())
    if connections:
        await asyncio.gather(*(connection.shut_down(deadline) for connection in connections))


async def close_going_away(
    ws: AnyWebSocket, transport: asyncio.Transport | None, reason: str = "gateway shutting down"
) -> None:
    """Close with 1001 (going away) and `reason`. A peer that stopped reading cannot take the
    close frame; its transport is aborted after a short wait."""
    try:
        await asyncio.wait_for(
            ws.close(code=WSCloseCode.GOING_AWAY, message=reason.encode()[:120]),
            SLOW_CLOSE_TIMEOUT,
        )
    except (TimeoutError, ConnectionError):
        if transport is not None:
            transport.abort()


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel `tasks` and wait until they have ended; log any that failed.

    Unlike awaiting each inside `suppress(CancelledError)`, this never swallows a cancellation
    of the caller itself (which would leave, say, a reconnect loop running after its stop).
    """
    pending = [task for task in tasks if task is not None]
    if not pending:
        return
    for task in pending:
        task.cancel()
    await asyncio.wait(pending)
    for task in pending:
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("task_failed", task=task.get_name(), exc_info=error)
