"""The relay backend: the account is an upstream OneBot 11 implementation over one WebSocket.

Actions go upstream with the gateway's own echo ids (the client's echo never leaves the
gateway), many in flight at once, each bounded by `callTimeout`. While upstream is away, actions
fail at once with 1200 "upstream unavailable" and downstream connections stay open. Upstream
events are normalised to the array message form and published on the bus, so every downstream
subscriber gets its own format, filter and self-message choice.

A stream action that answers packets (`gateway.actions.stream.PACKET_ACTIONS`) is forwarded as
one call whose upstream frames with its echo are handed on as they come (`UpstreamStream`); it
ends with upstream's final envelope. At most `STREAM_BUFFER` packets wait for a slow caller: past
that, the upstream connection is not read until the caller takes one (backpressure reaches
upstream), for up to `callTimeout`, after which the call fails and its later packets are dropped.

In reverse mode the relay listens through `RelayListeners` (gateway.backends.relay_listener),
shared by every relay account of the gateway: accounts configured on the same `host:port` share
one listener, which hands each connecting upstream to its account by path and `X-Self-ID`. An
account sharing its listener keeps its configured `selfId` (its upstream speaks only for it:
events naming another account are dropped, counted); an account alone on its listener learns its
QQ number from the upstream, as a forward one does.

No single upstream frame can stop the relay: a frame that is not JSON, not an object, an answer
nobody waits for, or an event that cannot be published is dropped, counted on the bus
(`onebot_events_rejected_total{reason}`) and logged, and the connection goes on. A frame over
the size limit or a protocol error closes the connection, which is dialled again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import re
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import structlog
from aiohttp import web
from pydantic import AliasChoices, AliasPath
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python

from gateway.accounts import qq_number
from gateway.actions.catalog import Params
from gateway.actions.stream import PACKET_ACTIONS
from gateway.backends.relay_listener import RelayListeners
from gateway.bus import EventBus
from gateway.config import RelayBackendConfig
from gateway.network.backoff import Backoff
from gateway.network.listener import json_response
from gateway.protocol import jsonio
from gateway.protocol.envelope import (
    ActionError,
    ActionFailed,
    ActionNotFound,
    BadRequest,
    Retcode,
    failed,
)
from gateway.protocol.message import parse_cq, raw_message
from gateway.protocol.stream import STREAM_ACTION, Emit, PacketStream

log = structlog.get_logger("gateway.relay")

Socket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse
MAX_FRAME = 64 * 1024 * 1024
STREAM_BUFFER = 16
"""Upstream packets of one stream call held for a caller that has not taken them yet."""
_ECHO_IN_TEXT: Final = re.compile(r'"echo"\s*:\s*"(gw-[0-9]{1,20})"')
"""Finds the gateway's echo in an answer frame that does not parse, so its call fails at once."""

UPSTREAM_NAMES: Final[Mapping[tuple[str, str], str]] = {
    # (action, catalog field) -> the name NapCat registers for it: the property name of the
    # action's request schema in napcat-openapi-4.18.13.json. Every catalog field that has an
    # alias is listed (tests/test_relay.py checks both, against a copy of the schema's names);
    # the field goes upstream under this name only, its other spellings never leave the gateway.
    ("get_group_msg_history", "reverse_order"): "reverse_order",
    ("get_friend_msg_history", "reverse_order"): "reverse_order",
    # NapCat's schema has neither `sub_type` nor `type`: the OneBot 11 name, for other upstreams.
    ("set_group_add_request", "sub_type"): "sub_type",
    ("upload_group_file", "folder"): "folder",
    ("create_group_file_folder", "folder_name"): "folder_name",
    ("delete_group_folder", "folder_id"): "folder_id",
    ("get_group_files_by_folder", "folder_id"): "folder_id",
    ("set_self_longnick", "long_nick"): "longNick",
    ("set_group_add_option", "add_type"): "add_type",
    ("set_group_kick_members", "user_ids"): "user_id",
    ("fetch_emoji_like", "emojiId"): "emojiId",
    ("fetch_emoji_like", "emojiType"): "emojiType",
    ("click_inline_keyboard_button", "callback_data"): "callback_data",
    ("get_mini_app_ark", "appId"): "appId",
    ("send_ark_share", "phone_number"): "phone_number",
    ("upload_image_to_qun_album", "file"): "file",
    ("do_group_album_comment", "lloc"): "lloc",
    ("do_group_album_comment", "content"): "content",
    ("set_group_album_media_like", "lloc"): "lloc",
    ("cancel_group_album_media_like", "lloc"): "lloc",
    ("del_group_album_media", "lloc"): "lloc",
    ("ocr_image", "image"): "image",
    # NapCat takes `messages` too, but its schema documents `message`.
    ("send_forward_msg", "messages"): "message",
    ("send_group_forward_msg", "messages"): "message",
    ("send_private_forward_msg", "messages"): "message",
}


class UpstreamError(ActionError):
    """A failed envelope from upstream: its retcode and message are passed through."""

    def __init__(self, retcode: int, message: str) -> None:
        super().__init__(message)
        self.retcode = retcode


def spellings(name: str, field: FieldInfo) -> frozenset[str]:
    """Every top-level key a parameter model accepts for one field: its name and its aliases."""
    names = {name}
    if field.alias:
        names.add(field.alias)
    alias = field.validation_alias
    choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
    for choice in choices:
        if isinstance(choice, str):
            names.add(choice)
        elif isinstance(choice, AliasPath) and isinstance(choice.path[0], str):
            names.add(choice.path[0])
    return frozenset(names)


@dataclass(frozen=True, slots=True)
class UpstreamForm:
    """How one action's parameters are renamed for upstream."""

    names: Mapping[str, str]
    """Aliased field -> the name it goes upstream under."""
    spellings: frozenset[str]
    """Every spelling of the aliased fields: none of them goes upstream except `names`' values."""


@functools.cache
def upstream_form(action: str, model: type[Params]) -> UpstreamForm:
    """The renames of `action`'s aliased fields, from UPSTREAM_NAMES (the field's own name for
    one the table does not list)."""
    names: dict[str, str] = {}
    every: set[str] = set()
    for name, field in model.model_fields.items():
        accepted = spellings(name, field)
        if len(accepted) > 1:
            names[name] = UPSTREAM_NAMES.get((action, name), name)
            every |= accepted
    # An alias that is also another field's name belongs to that field, not to these.
    every -= model.model_fields.keys() - names.keys()
    return UpstreamForm(names, frozenset(every))


def upstream_params(action: str, params: Params) -> dict[str, Any]:
    """The parameters as upstream registers them: the fields the caller set, each aliased one
    under its UPSTREAM_NAMES name only, and unknown parameters unchanged (except other spellings
    of an aliased field, which the validated field replaces)."""
    dumped = params.model_dump(exclude_unset=True)
    form = upstream_form(action, type(params))
    if not form.names:
        return dumped
    for key in form.spellings.intersection(dumped):
        # model_dump lets an unknown key shadow a field of the same name (a caller that sent
        # both spellings), so every spelling goes and the validated values come back below.
        del dumped[key]
    given = params.model_fields_set
    for name, upstream in form.names.items():
        if name in given:
            dumped[upstream] = to_jsonable_python(getattr(params, name))
    return dumped


def outgoing(action: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Convert values upstream expects in another shape. `params` is already in upstream's
    names (`upstream_params`); the catalog already maps action names to NapCat's registered
    ones."""
    if action == "translate_en2zh" and "words" not in params and "word" in params:
        params = {**{k: v for k, v in params.items() if k != "word"}, "words": [params["word"]]}
    return action, params


def incoming(action: str, sent: dict[str, Any], data: Any) -> Any:
    """Translate a result back to the shape the caller's parameters (`sent`, before `outgoing`)
    ask for."""
    if action == "translate_en2zh" and "word" in sent and isinstance(data, dict):
        words = data.get("words") or []
        return {**data, "word": sent["word"], "translation": words[0] if words else ""}
    return data


def normalise_event(event: dict[str, Any]) -> dict[str, Any]:
    """Array message form, whatever format upstream posts in; `raw_message` stays the CQ string."""
    message = event.get("message")
    if isinstance(message, str):
        segments = parse_cq(message)
        raw = event.get("raw_message")
        return {
            **event,
            "message": segments,
            "message_format": "array",
            "raw_message": raw if isinstance(raw, str) else raw_message(segments),
        }
    return event


def retcode_of(envelope: Mapping[str, Any]) -> int:
    """A failed envelope's retcode; 1200 when upstream gave none that makes sense."""
    retcode = envelope.get("retcode")
    if type(retcode) is int and retcode not in (0, 1) and -(2**31) <= retcode < 2**31:
        return retcode
    return ActionFailed.retcode


def is_stream_packet(frame: Mapping[str, Any]) -> bool:
    """An intermediate packet of a stream action: ok, stream-marked, `data.type` "stream"."""
    data = frame.get("data")
    return (
        frame.get("stream") == STREAM_ACTION
        and frame.get("status") == "ok"
        and isinstance(data, dict)
        and data.get("type") == "stream"
    )


class UpstreamStream:
    """One stream call's upstream packets, in arrival order, and how it ended."""

    __slots__ = ("_arrived", "_room", "final", "packets", "patience", "socket")

    def __init__(self, socket: Socket, patience: float) -> None:
        self.socket = socket
        self.patience = patience
        """Seconds either side waits for the other (`callTimeout`)."""
        self.packets: deque[dict[str, Any]] = deque()
        self.final: dict[str, Any] | ActionError | None = None
        """Upstream's final envelope, or why the call ended without one."""
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()

    def push(self, data: dict[str, Any]) -> bool:
        """Keep a packet's data; True when the buffer is full."""
        if self.final is None:
            self.packets.append(data)
            self._arrived.set()
        return len(self.packets) >= STREAM_BUFFER

    def finish(self, end: dict[str, Any] | ActionError) -> None:
        if self.final is None:
            self.final = end
        self._arrived.set()
        self._room.set()

    async def room(self) -> None:
        """Wait (the upstream reader) until the caller took a packet; after `patience`, end the
        call and drop what it holds."""
        try:
            while len(self.packets) >= STREAM_BUFFER and self.final is None:
                self._room.clear()
                await asyncio.wait_for(self._room.wait(), self.patience)
        except TimeoutError:
            self.packets.clear()
            self.finish(
                ActionFailed(
                    f"the caller took no packet for {self.patience:g} s while upstream sent more; "
                    "the call was abandoned"
                )
            )

    async def next(self) -> dict[str, Any] | None:
        """The next packet's data, or None once the call has ended; TimeoutError when upstream
        sends nothing for `patience` seconds."""
        while not self.packets:
            if self.final is not None:
                return None
            self._arrived.clear()
            await asyncio.wait_for(self._arrived.wait(), self.patience)
        self._room.set()
        return self.packets.popleft()


class Deduper:
    """Remembers (post_type, id, time) keys for `window` seconds."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._seen: OrderedDict[tuple[Any, ...], float] = OrderedDict()

    def is_duplicate(self, event: dict[str, Any]) -> bool:
        """True when an identical key was seen within the window. An event without a usable
        key (no id, or parts that are not scalars) is never a duplicate."""
        ident = event.get("message_id", event.get("flag"))
        if self.window <= 0 or ident is None:
            return False
        key = (event.get("post_type"), event.get("notice_type"), ident, event.get("time"))
        if not all(part is None or isinstance(part, str | int | float) for part in key):
            return False
        now = time.monotonic()
        while self._seen and next(iter(self._seen.values())) < now - self.window:
            self._seen.popitem(last=False)
        if key in self._seen:
            return True
        self._seen[key] = now
        return False


class RelayBackend:
    """Forwards actions to an upstream implementation and republishes its events."""

    kind = "relay"
    passes_through = True
    """Actions the catalog does not know are forwarded unchanged."""

    def __init__(
        self, config: RelayBackendConfig, bus: EventBus, listeners: RelayListeners | None = None
    ) -> None:
        """`listeners` are the gateway's reverse-mode listeners, shared by its relay accounts
        (a reverse account given none listens alone)."""
        self.config = config
        self.bus = bus
        self._self_id = config.self_id
        self._pinned = False
        """The connected upstream shares its listener: `self_id` is the configured one, kept."""
        self._listeners = listeners if listeners is not None else RelayListeners()
        self._socket: Socket | None = None
        self._pending: dict[str, tuple[Socket, asyncio.Future[dict[str, Any]]]] = {}
        """Calls waiting for an answer, by echo, with the connection they were sent on."""
        self._streams: dict[str, UpstreamStream] = {}
        """Stream calls waiting for packets, by echo."""
        self._echo = itertools.count(1)
        self._upstream_online = True
        self._connected = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._deduper = Deduper(config.dedupe_window_ms / 1000)
        self.reconnects = 0
        self.down_reason = "upstream has not connected yet"
        self._stopping = False

    @property
    def self_id(self) -> int:
        return self._self_id

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        if self.config.mode == "forward":
            self._session = aiohttp.ClientSession()
            self._tasks.append(asyncio.create_task(self._dial_forever(), name="relay-dial"))
        else:
            await self._listeners.attach(self)
        # Wait a little for upstream, so self_id is known when the adapters start.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), self.config.connect_timeout / 1000)
        if self._socket is None:
            log.warning("upstream_not_connected", reason=self.down_reason)

    async def stop(self) -> None:
        """Stop dialling or listening, close the upstream socket and the client session. Never
        raises: a task that failed is logged, and the rest is still closed."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        outcomes = await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                log.error("relay_task_failed", exc_info=outcome)
        # The listener lets go of this account first: an upstream that redials once dropped is
        # refused, or finds no port when this was the listener's last account (the listener
        # then closes this upstream itself, after it stopped listening).
        await self._listeners.detach(self)
        await self.close_upstream()
        if self._session is not None:
            await self._session.close()

    async def close_upstream(self) -> None:
        """Close the connected upstream, if any (it is dialled again in forward mode unless
        stopping)."""
        socket = self._socket
        if socket is not None:
            with contextlib.suppress(Exception):
                await socket.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"shutting down")

    def status(self) -> dict[str, Any]:
        connected = self._socket is not None and not self._socket.closed
        return {"online": connected and self._upstream_online, "good": connected}

    def supports(self, action: str) -> bool:
        return not action.startswith("sandbox_")

    # --- actions --------------------------------------------------------------------------------

    def bind(self, action: str) -> Callable[[Params], Awaitable[Any]]:
        return functools.partial(self.call, action)

    async def call(self, action: str, params: Params) -> Any:
        sent = upstream_params(action, params)
        name, upstream = outgoing(action, sent)
        if name in PACKET_ACTIONS:
            return PacketStream(functools.partial(self._stream, name, upstream))
        return self._data(name, sent, await self.request(name, upstream))

    def _data(self, name: str, sent: dict[str, Any], envelope: dict[str, Any]) -> Any:
        """The data of upstream's answer, or its failure raised."""
        if envelope.get("status") in ("ok", "async"):
            return incoming(name, sent, envelope.get("data"))
        if envelope.get("retcode") == 1404:
            raise ActionNotFound(str(envelope.get("message") or f"upstream does not know {name}"))
        raise UpstreamError(
            retcode_of(envelope),
            str(envelope.get("message") or envelope.get("wording") or "failed"),
        )

    async def request(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """One upstream call with a gateway-owned echo; 1200 when down, too slow, or when the
        connection closes before the answer (at once, not after `callTimeout`)."""
        socket = self._socket
        if socket is None or socket.closed:
            raise ActionFailed(f"upstream unavailable: {self.down_reason}")
        echo = f"gw-{next(self._echo)}"
        try:
            frame = jsonio.dumps({"action": action, "params": params, "echo": echo})
        except TypeError as error:  # orjson.JSONEncodeError: a value JSON cannot carry
            raise BadRequest(f"{action}: parameters cannot be encoded as JSON: {error}") from None
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[echo] = (socket, future)
        try:
            await socket.send_frame(frame, aiohttp.WSMsgType.TEXT)
            return await asyncio.wait_for(future, self.config.call_timeout / 1000)
        except TimeoutError:
            raise ActionFailed(
                f"upstream did not answer {action} within {self.config.call_timeout} ms"
            ) from None
        except ConnectionError:
            raise ActionFailed("upstream unavailable: the connection closed") from None
        finally:
            self._pending.pop(echo, None)

    async def _stream(self, action: str, params: dict[str, Any], emit: Emit) -> Any:
        """One upstream stream call: each packet handed to `emit` as it comes, then the final
        envelope's data. 1200 when upstream is down, goes silent for `callTimeout` between
        two packets, or the connection closes."""
        socket = self._socket
        if socket is None or socket.closed:
            raise ActionFailed(f"upstream unavailable: {self.down_reason}")
        echo = f"gw-{next(self._echo)}"
        frame = jsonio.dumps({"action": action, "params": params, "echo": echo})
        call = self._streams[echo] = UpstreamStream(socket, self.config.call_timeout / 1000)
        try:
            try:
                await socket.send_frame(frame, aiohttp.WSMsgType.TEXT)
            except ConnectionError:
                raise ActionFailed("upstream unavailable: the connection closed") from None
            while True:
                try:
                    data = await call.next()
                except TimeoutError:
                    raise ActionFailed(
                        f"upstream sent nothing for {action} within {self.config.call_timeout} ms"
                    ) from None
                if data is None:
                    break
                await emit(data)
        finally:
            del self._streams[echo]
        if isinstance(call.final, ActionError):
            raise call.final
        assert call.final is not None
        return self._data(action, params, call.final)

    # --- the upstream socket --------------------------------------------------------------------

    async def _dial_forever(self) -> None:
        assert self._session is not None
        backoff = Backoff(
            self.config.reconnect_interval / 1000, self.config.reconnect_max_interval / 1000
        )
        headers = {"Authorization": f"Bearer {self.config.token}"} if self.config.token else {}
        ping = self.config.ping_interval / 1000 if self.config.ping_interval else None
        while True:
            try:
                socket = await self._session.ws_connect(
                    self.config.url, headers=headers, heartbeat=ping, max_msg_size=MAX_FRAME
                )
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                self.down_reason = f"cannot connect to {self.config.url}: {error}"
            except Exception as error:
                # Not a network failure (a bug, or a URL aiohttp cannot use): still retried, as
                # the loop must outlive any one attempt, but logged with its traceback.
                self.down_reason = f"cannot connect to {self.config.url}: {error!r}"
                log.error("upstream_dial_failed", exc_info=error)
            else:
                backoff.reset()
                self._socket = socket
                try:
                    await self._serve(socket)
                except Exception as error:
                    self.down_reason = f"the upstream connection failed: {error!r}"
                    log.error("upstream_connection_failed", exc_info=error)
            self.reconnects += 1
            await asyncio.sleep(backoff.next_delay())

    async def accept(
        self, request: web.Request, self_id: int, *, shared: bool
    ) -> web.StreamResponse:
        """A reverse upstream its listener admitted (token and X-Self-ID checked): upgrade it,
        replace the account's previous connection, and serve it until it closes."""
        if self._stopping:
            return json_response(failed(Retcode.FAILED, "the gateway is shutting down"), 503)
        socket = web.WebSocketResponse(
            max_msg_size=MAX_FRAME, heartbeat=self.config.ping_interval / 1000 or None
        )
        await socket.prepare(request)
        if self._stopping:  # stop() began during the upgrade and will not see this socket
            await socket.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"shutting down")
            return socket
        # Claimed before any await, so of two upgrades racing the later one wins.
        self._pinned = shared
        self._self_id = self_id
        previous, self._socket = self._socket, socket
        if previous is not None and not previous.closed:
            await previous.close(
                code=aiohttp.WSCloseCode.GOING_AWAY,
                message=b"replaced by a new upstream connection",
            )
        await self._serve(socket)
        return socket

    async def _serve(self, socket: Socket) -> None:
        """Read a connection the caller made current (`_socket`) until it closes."""
        self._upstream_online = True
        log.info("upstream_connected", mode=self.config.mode)
        learn = asyncio.create_task(self._learn_self_id())
        try:
            async for message in socket:
                if message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    try:
                        full = self._on_frame(message.data)
                        if full is not None:
                            # A stream call's caller is behind: read on once it catches up.
                            await full.room()
                    except Exception as error:
                        # A bug, not bad input (that is rejected where it is found): the frame
                        # is lost, the connection is not.
                        self.bus.reject("upstream_frame_failed", error=repr(error))
                        log.error("upstream_frame_failed", exc_info=error)
                elif message.type == aiohttp.WSMsgType.ERROR:
                    # aiohttp closes the connection after this; the loop then ends and we redial.
                    code = getattr(message.data, "code", None)
                    too_large = code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
                    reason = "upstream_frame_too_large" if too_large else "upstream_protocol_error"
                    self.bus.reject(reason, error=str(message.data), limit=MAX_FRAME)
        finally:
            current = self._socket is socket
            if current:
                self._socket = None
            self.down_reason = f"the upstream connection closed (code {socket.close_code})"
            log.warning("upstream_disconnected", close_code=socket.close_code)
            # Calls sent on this connection fail now, not after callTimeout; calls already sent
            # on a newer connection (a reverse upstream that replaced this one) keep waiting.
            for sent_on, future in self._pending.values():
                if sent_on is socket and not future.done():
                    future.set_exception(ConnectionError("upstream connection lost"))
            for stream in self._streams.values():
                if stream.socket is socket:
                    stream.finish(ActionFailed("upstream unavailable: the connection closed"))
            learn.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await learn
            if current:
                self._connected.clear()  # after `learn`, which sets it whatever its outcome
            with contextlib.suppress(Exception):
                await socket.close()

    async def _learn_self_id(self) -> None:
        """Ask upstream who it is; whatever it answers, the connection counts as established."""
        try:
            info = await self.request("get_login_info", {})
        except ActionError as error:
            log.warning("upstream_login_info_failed", error=error.message)
        else:
            data = info.get("data")
            user_id = qq_number(data.get("user_id")) if isinstance(data, dict) else None
            if user_id is None:
                log.warning("upstream_login_info_unusable", retcode=info.get("retcode"))
            elif self._pinned and user_id != self._self_id:
                log.warning("upstream_login_self_id_mismatch", self_id=self._self_id, login=user_id)
            else:
                self._self_id = user_id
        self._connected.set()

    def _on_frame(self, data: str | bytes) -> UpstreamStream | None:
        """Route one upstream frame; a stream call whose buffer it filled, if any."""
        try:
            frame = jsonio.loads(data)
        except jsonio.JsonError as error:
            self.bus.reject("upstream_undecodable", error=str(error), size=len(data))
            self._fail_undecodable_answer(data, error)
            return None
        if not isinstance(frame, dict):
            self.bus.reject("upstream_not_object", got=jsonio.type_name(frame))
            return None
        if "post_type" in frame:
            self._on_event(frame)
            return None
        echo = frame.get("echo")
        if self._streams and isinstance(echo, str) and (stream := self._streams.get(echo)):
            if not is_stream_packet(frame):
                stream.finish(frame)
                return None
            return stream if stream.push(frame["data"]) else None
        waiting = self._pending.get(echo) if isinstance(echo, str) else None
        if waiting is None:
            # No call waits for it: never sent, or already timed out.
            self.bus.reject("upstream_unknown_echo", echo=echo)
            return None
        future = waiting[1]
        if not future.done():
            future.set_result(frame)
        return None

    def _fail_undecodable_answer(self, data: str | bytes, error: jsonio.JsonError) -> None:
        # An answer that does not parse still names its call: fail that call now with the
        # reason, instead of letting it wait out callTimeout.
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        found = _ECHO_IN_TEXT.search(text)
        waiting = self._pending.get(found.group(1)) if found else None
        if waiting is not None and not waiting[1].done():
            waiting[1].set_exception(
                ActionFailed(f"upstream answered with a frame that is not valid JSON: {error}")
            )

    def _on_event(self, event: dict[str, Any]) -> None:
        self_id = qq_number(event.get("self_id"))
        if self._pinned:
            # The upstream was admitted as this account: it speaks for no other.
            if self_id is None:
                event = {**event, "self_id": self._self_id}
            elif self_id != self._self_id:
                self.bus.reject("upstream_foreign_self_id", self_id=self_id, account=self._self_id)
                return
        elif self_id is not None:
            self._self_id = self_id
        if event.get("post_type") == "meta_event":
            # The gateway sends its own lifecycle and heartbeats; upstream's feed liveness.
            status = event.get("status")
            online = status.get("online") if isinstance(status, dict) else None
            if isinstance(online, bool):
                self._upstream_online = online
            return
        if self._deduper.is_duplicate(event):
            log.info("upstream_duplicate_dropped", post_type=event.get("post_type"))
            return
        self.bus.publish(normalise_event(event))
