"""The relay backend: the account is an upstream OneBot 11 implementation over one WebSocket.

Actions go upstream with the gateway's own echo ids (the client's echo never leaves the
gateway), many in flight at once, each bounded by `callTimeout`. While upstream is away, actions
fail at once with 1200 "upstream unavailable" and downstream connections stay open. Upstream
events are normalised to the array message form and published on the bus, so every downstream
subscriber gets its own format, filter and self-message choice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from gateway.actions.catalog import Params
from gateway.bus import EventBus
from gateway.config import RelayBackendConfig
from gateway.network.auth import request_token, token_matches
from gateway.network.backoff import Backoff
from gateway.protocol import jsonio
from gateway.protocol.envelope import ActionError, ActionFailed, ActionNotFound
from gateway.protocol.message import parse_cq, raw_message

log = structlog.get_logger("gateway.relay")

Socket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse
MAX_FRAME = 64 * 1024 * 1024


class UpstreamError(ActionError):
    """A failed envelope from upstream: its retcode and message are passed through."""

    def __init__(self, retcode: int, message: str) -> None:
        super().__init__(message)
        self.retcode = retcode


def outgoing(action: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Translate a call to NapCat's registered form (the catalog already maps names to NapCat's
    registered ones; parameters that differ are converted here)."""
    if action == "translate_en2zh" and "words" not in params and "word" in params:
        params = {**{k: v for k, v in params.items() if k != "word"}, "words": [params["word"]]}
    if action == "set_self_longnick" and "longNick" not in params:
        for spelling in ("long_nick", "longnick"):
            if spelling in params:
                params = {**params, "longNick": params.pop(spelling)}
    return action, params


def incoming(action: str, sent: dict[str, Any], data: Any) -> Any:
    """Translate a result back to the shape the caller's parameter form expects."""
    if action == "translate_en2zh" and "word" in sent and isinstance(data, dict):
        words = data.get("words") or []
        return {**data, "word": sent["word"], "translation": words[0] if words else ""}
    return data


def normalise_event(event: dict[str, Any]) -> dict[str, Any]:
    """Array message form, whatever format upstream posts in; `raw_message` stays the CQ string."""
    message = event.get("message")
    if isinstance(message, str):
        segments = parse_cq(message)
        return {
            **event,
            "message": segments,
            "message_format": "array",
            "raw_message": event.get("raw_message", raw_message(segments)),
        }
    return event


class Deduper:
    """Remembers (post_type, id, time) keys for `window` seconds."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._seen: OrderedDict[tuple[Any, ...], float] = OrderedDict()

    def is_duplicate(self, event: dict[str, Any]) -> bool:
        ident = event.get("message_id", event.get("flag"))
        if self.window <= 0 or ident is None:
            return False
        now = time.monotonic()
        while self._seen and next(iter(self._seen.values())) < now - self.window:
            self._seen.popitem(last=False)
        key = (event.get("post_type"), event.get("notice_type"), ident, event.get("time"))
        if key in self._seen:
            return True
        self._seen[key] = now
        return False


class RelayBackend:
    """Forwards actions to an upstream implementation and republishes its events."""

    kind = "relay"
    passes_through = True
    """Actions the catalog does not know are forwarded unchanged."""

    def __init__(self, config: RelayBackendConfig, bus: EventBus) -> None:
        self.config = config
        self.bus = bus
        self._self_id = config.self_id
        self._socket: Socket | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._echo = itertools.count(1)
        self._upstream_online = True
        self._connected = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._deduper = Deduper(config.dedupe_window_ms / 1000)
        self.reconnects = 0
        self.down_reason = "upstream has not connected yet"

    @property
    def self_id(self) -> int:
        return self._self_id

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        if self.config.mode == "forward":
            self._session = aiohttp.ClientSession()
            self._tasks.append(asyncio.create_task(self._dial_forever(), name="relay-dial"))
        else:
            await self._listen()
        # Wait a little for upstream, so self_id is known when the adapters start.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), self.config.connect_timeout / 1000)
        if self._socket is None:
            log.warning("upstream_not_connected", reason=self.down_reason)

    async def stop(self) -> None:
        # Stop dialling, close the upstream socket, then the listener or the client session.
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._socket is not None:
            await self._socket.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def status(self) -> dict[str, Any]:
        connected = self._socket is not None and not self._socket.closed
        return {"online": connected and self._upstream_online, "good": connected}

    def supports(self, action: str) -> bool:
        return not action.startswith("sandbox_")

    # --- actions --------------------------------------------------------------------------------

    def bind(self, action: str) -> Callable[[Params], Awaitable[Any]]:
        return functools.partial(self.call, action)

    async def call(self, action: str, params: Params) -> Any:
        sent = params.model_dump(exclude_unset=True)
        name, upstream_params = outgoing(action, sent)
        envelope = await self.request(name, upstream_params)
        if envelope.get("status") in ("ok", "async"):
            return incoming(name, sent, envelope.get("data"))
        if envelope.get("retcode") == 1404:
            raise ActionNotFound(str(envelope.get("message") or f"upstream does not know {name}"))
        raise UpstreamError(
            int(envelope.get("retcode", 1200)),
            str(envelope.get("message") or envelope.get("wording") or "failed"),
        )

    async def request(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """One upstream call with a gateway-owned echo; 1200 when down or too slow."""
        socket = self._socket
        if socket is None or socket.closed:
            raise ActionFailed(f"upstream unavailable: {self.down_reason}")
        echo = f"gw-{next(self._echo)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[echo] = future
        try:
            frame = {"action": action, "params": params, "echo": echo}
            await socket.send_frame(jsonio.dumps(frame), aiohttp.WSMsgType.TEXT)
            return await asyncio.wait_for(future, self.config.call_timeout / 1000)
        except TimeoutError:
            raise ActionFailed(
                f"upstream did not answer {action} within {self.config.call_timeout} ms"
            ) from None
        except ConnectionError:
            raise ActionFailed("upstream unavailable: the connection closed") from None
        finally:
            self._pending.pop(echo, None)

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
            except (aiohttp.ClientError, OSError) as error:
                self.down_reason = f"cannot connect to {self.config.url}: {error}"
            else:
                backoff.reset()
                await self._serve(socket)
            self.reconnects += 1
            await asyncio.sleep(backoff.next_delay())

    async def _listen(self) -> None:
        app = web.Application()
        app.router.add_get(self.config.path, self._accept)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        log.info(
            "relay_listening",
            address=f"{self.config.host}:{self.config.port}",
            path=self.config.path,
        )

    async def _accept(self, request: web.Request) -> web.StreamResponse:
        # Checked before the upgrade: a wrong peer never gets a socket.
        if not token_matches(self.config.token, request_token(request)):
            log.warning("upstream_auth_failed", peer=request.remote)
            return web.json_response({"message": "access token is missing or wrong"}, status=403)
        self_id = request.headers.get("X-Self-ID", "")
        if not self_id.isdigit():
            return web.json_response({"message": "X-Self-ID header is required"}, status=400)
        self._self_id = int(self_id)
        if self._socket is not None and not self._socket.closed:
            await self._socket.close(
                code=aiohttp.WSCloseCode.GOING_AWAY,
                message=b"replaced by a new upstream connection",
            )
        socket = web.WebSocketResponse(
            max_msg_size=MAX_FRAME, heartbeat=self.config.ping_interval / 1000 or None
        )
        await socket.prepare(request)
        await self._serve(socket)
        return socket

    async def _serve(self, socket: Socket) -> None:
        self._socket = socket
        self._upstream_online = True
        log.info("upstream_connected", mode=self.config.mode)
        learn = asyncio.create_task(self._learn_self_id())
        try:
            async for message in socket:
                if message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    self._on_frame(message.data)
        finally:
            learn.cancel()
            with contextlib.suppress(asyncio.CancelledError, ActionError):
                await learn
            with contextlib.suppress(Exception):
                await socket.close()
            if self._socket is socket:
                self._socket = None
                self._connected.clear()
            self.down_reason = f"the upstream connection closed (code {socket.close_code})"
            log.warning("upstream_disconnected", close_code=socket.close_code)
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("upstream connection lost"))

    async def _learn_self_id(self) -> None:
        info = await self.request("get_login_info", {})
        user_id = (info.get("data") or {}).get("user_id")
        if isinstance(user_id, int | str) and str(user_id).isdigit():
            self._self_id = int(user_id)
        self._connected.set()

    def _on_frame(self, data: str | bytes) -> None:
        try:
            frame = jsonio.loads(data)
        except jsonio.JsonError:
            log.warning("upstream_bad_frame")
            return
        if not isinstance(frame, dict):
            return
        if "post_type" in frame:
            self._on_event(frame)
            return
        future = self._pending.get(str(frame.get("echo")))
        if future is not None and not future.done():
            future.set_result(frame)

    def _on_event(self, event: dict[str, Any]) -> None:
        if isinstance(event.get("self_id"), int) and event["self_id"]:
            self._self_id = event["self_id"]
        if event.get("post_type") == "meta_event":
            # The gateway sends its own lifecycle and heartbeats; upstream's feed liveness.
            status = event.get("status")
            if isinstance(status, dict) and "online" in status:
                self._upstream_online = bool(status["online"])
            return
        if self._deduper.is_duplicate(event):
            log.info("upstream_duplicate_dropped", post_type=event.get("post_type"))
            return
        self.bus.publish(normalise_event(event))
