"""A sandbox gateway started in this event loop as a test harness for a bot.

The harness runs a fresh in-memory sandbox (`:memory:`, the built-in world or a given world
file) behind one transport entry named `bot`, the way the bot will be connected in production,
plus an HTTP API entry named `api` that any bot may call. It taps the event bus directly, so it
records every event the bot is sent and every message the bot sends (`message_sent`), in order,
without a socket of its own; simulated users act through the dispatcher, as a client would.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

import orjson

from gateway.bus import EventBus, SubscriberOptions, Subscription, SubscriptionClosed
from gateway.config import ConfigError, parse_config
from gateway.protocol import jsonio
from gateway.protocol.envelope import Envelope
from gateway.supervisor import StartupError, Supervisor

Transport = Literal["ws", "ws-reverse", "http-post"]
"""How the bot is connected: `ws` (the bot connects to the gateway's WebSocket server),
`ws-reverse` (the gateway connects to the bot's WebSocket URL), `http-post` (the gateway POSTs
events to the bot's URL). In every mode the bot may also call the HTTP API (`ONEBOT_HTTP_URL`)."""
TRANSPORTS: tuple[str, ...] = get_args(Transport)

BOT_ENTRY, API_ENTRY = "bot", "api"
RECORDED_EVENTS = 100_000
"""Events the harness's own subscription holds before the oldest is dropped."""


class FixedTimeBus(EventBus):
    """An event bus that publishes every event with `time` = `fixed`: every producer
    (messages, notices, requests, raw `sandbox_emit`) is covered alike. What the store keeps
    (`get_msg`, histories) still has the real time."""

    def __init__(self, fixed: int) -> None:
        super().__init__()
        self.fixed = fixed

    def publish(self, event: Mapping[str, Any]) -> None:
        super().publish({**event, "time": self.fixed} if "time" in event else event)


class HarnessError(Exception):
    """The harness could not be set up (bad options, a bot that never connected)."""


@dataclass(frozen=True)
class HarnessOptions:
    """What the harness starts. `bot_url` is required for `ws-reverse` and `http-post`."""

    transport: Transport = "ws"
    bot_url: str | None = None
    token: str = ""
    world: str | None = None
    """A JSON5 world file; the built-in world (self 10001, friends 20001-20003, groups 30001
    and 30002) when absent."""
    fixed_time: int | None = None
    """When set, every event's `time` field is this Unix time (deterministic transcripts)."""

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise HarnessError(
                f"unknown transport {self.transport!r}; expected one of {', '.join(TRANSPORTS)}"
            )
        if self.transport != "ws" and not self.bot_url:
            raise HarnessError(f"transport {self.transport!r} needs the bot's URL")
        schemes = {"ws-reverse": ("ws", "wss"), "http-post": ("http", "https")}.get(self.transport)
        if schemes and urlsplit(self.bot_url or "").scheme not in schemes:
            raise HarnessError(
                f"transport {self.transport!r} needs a {' or '.join(schemes)} URL, got "
                f"{self.bot_url!r}"
            )


def gateway_document(options: HarnessOptions) -> dict[str, Any]:
    """The config document for `options`: loopback entries on free ports, fast reconnects."""
    common = {"name": BOT_ENTRY, "enable": True, "token": options.token}
    network: dict[str, list[dict[str, Any]]] = {
        "httpServers": [
            {
                "name": API_ENTRY,
                "enable": True,
                "host": "127.0.0.1",
                "port": 0,
                "token": options.token,
            }
        ],
    }
    if options.transport == "ws":
        network["websocketServers"] = [
            {**common, "host": "127.0.0.1", "port": 0, "heartInterval": 0}
        ]
    elif options.transport == "ws-reverse":
        # The bot may still be starting: retry its URL often, never back off far.
        network["websocketClients"] = [
            {
                **common,
                "url": options.bot_url,
                "reconnectInterval": 50,
                "reconnectMaxInterval": 250,
                "heartInterval": 0,
            }
        ]
    else:
        network["httpClients"] = [
            {
                **common,
                "url": options.bot_url,
                "retryInterval": 50,
                "retryMaxInterval": 250,
                "maxRetries": 40,
            }
        ]
    backend: dict[str, Any] = {"type": "sandbox", "database": ":memory:"}
    if options.world is not None:
        backend["world"] = options.world
    return {"network": network, "backend": backend, "api": {"shutdownGrace": 2}}


@dataclass
class Recorded:
    """Everything published since the harness started, in order, and a way to wait for more."""

    events: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self.changed.set()

    async def wait_beyond(self, count: int, deadline: float) -> bool:
        """Wait until more than `count` events are recorded or the loop time passes
        `deadline`; true when there are more."""
        loop = asyncio.get_running_loop()
        while len(self.events) <= count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        return True


class SandboxHarness:
    """`async with SandboxHarness(options) as harness:` a running gateway on a fresh world."""

    def __init__(self, options: HarnessOptions) -> None:
        self.options = options
        bus = EventBus() if options.fixed_time is None else FixedTimeBus(options.fixed_time)
        try:
            config = parse_config(gateway_document(options), env={})
        except ConfigError as error:  # such as a bot URL that is not ws:// or http://
            raise HarnessError(f"invalid harness options: {error}") from None
        self.supervisor = Supervisor(config, bus)
        self.recorded = Recorded()
        self._subscription: Subscription | None = None
        self._recorder: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SandboxHarness:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the gateway and the recorder (before any adapter can publish)."""
        bus = self.supervisor.bus
        self._subscription = bus.subscribe(
            "testing", SubscriberOptions(report_self_message=True, queue_size=RECORDED_EVENTS)
        )
        self._recorder = asyncio.create_task(self._record(self._subscription), name="recorder")
        try:
            await self.supervisor.start()
        except (ConfigError, StartupError) as error:  # a world file that does not load
            bus.unsubscribe(self._subscription)
            await asyncio.wait([self._recorder])
            raise HarnessError(f"the sandbox did not start: {error}") from None

    async def stop(self) -> None:
        await self.supervisor.stop()
        if self._subscription is not None:
            self.supervisor.bus.unsubscribe(self._subscription)
        if self._recorder is not None:
            await asyncio.wait([self._recorder])

    async def settle(self) -> None:
        """Return once every event published so far is recorded (the recorder runs as its own
        task, one loop iteration behind the publisher)."""
        subscription = self._subscription
        while subscription is not None and len(subscription) and self._recorder is not None:
            if self._recorder.done():
                return
            self.recorded.changed.clear()
            await self.recorded.changed.wait()

    async def _record(self, subscription: Subscription) -> None:
        with contextlib.suppress(SubscriptionClosed):
            while True:
                self.recorded.add(orjson.loads(await subscription.get()))

    @property
    def self_id(self) -> int:
        return self.supervisor.backend.self_id

    def port(self, entry: str) -> int:
        adapter: Any = self.supervisor.adapters[entry]
        return int(adapter.port)

    @property
    def http_url(self) -> str:
        """The HTTP API root every bot may call."""
        return f"http://127.0.0.1:{self.port(API_ENTRY)}"

    @property
    def ws_url(self) -> str | None:
        """The universal WebSocket URL of `ws` transport (None in the other modes)."""
        if self.options.transport != "ws":
            return None
        return f"ws://127.0.0.1:{self.port(BOT_ENTRY)}/"

    def bot_environment(self) -> dict[str, str]:
        """The connection settings a bot started by the harness finds in its environment.

        `ONEBOT_TRANSPORT`, `ONEBOT_HTTP_URL` (HTTP API), `ONEBOT_ACCESS_TOKEN`, and
        `ONEBOT_WS_URL` (ws), or `ONEBOT_BOT_URL`, `ONEBOT_LISTEN_HOST`, `ONEBOT_LISTEN_PORT`
        and `ONEBOT_LISTEN_PATH` (ws-reverse, http-post: where the bot must listen). The
        settings NoneBot2 reads are set too, so `nb run` needs no config: `ONEBOT_WS_URLS`,
        or `HOST` and `PORT`, `ONEBOT_SECRET` (the token, which signs HTTP POST events) and
        `ONEBOT_API_ROOTS` (its HTTP POST mode calls the API there)."""
        env = {
            "ONEBOT_TRANSPORT": self.options.transport,
            "ONEBOT_HTTP_URL": self.http_url,
            "ONEBOT_ACCESS_TOKEN": self.options.token,
            "ONEBOT_SECRET": self.options.token,
            "ONEBOT_API_ROOTS": jsonio.dumps({str(self.self_id): self.http_url}).decode(),
        }
        if self.ws_url is not None:
            env["ONEBOT_WS_URL"] = self.ws_url
            env["ONEBOT_WS_URLS"] = jsonio.dumps([self.ws_url]).decode()
        if self.options.bot_url:
            url = urlsplit(self.options.bot_url)
            default_port = 443 if url.scheme in ("https", "wss") else 80
            env["ONEBOT_BOT_URL"] = self.options.bot_url
            env["ONEBOT_LISTEN_HOST"] = env["HOST"] = url.hostname or "127.0.0.1"
            env["ONEBOT_LISTEN_PORT"] = env["PORT"] = str(url.port or default_port)
            env["ONEBOT_LISTEN_PATH"] = url.path or "/"
        return env

    async def call(self, action: str, **params: Any) -> Envelope:
        """Run an action as a client would (validated, answered with an envelope)."""
        return await self.supervisor.dispatcher.call(action, params)

    def bot_connected(self) -> bool:
        """Whether the bot is connected: a subscriber on its WebSocket entry, the reverse
        connection up, or (HTTP POST) nothing to connect."""
        if self.options.transport == "ws":
            subscribers, _, _ = self.supervisor.bus.entry_stats().get(BOT_ENTRY, (0, 0, 0))
            return subscribers > 0
        if self.options.transport == "ws-reverse":
            return bool(getattr(self.supervisor.adapters[BOT_ENTRY], "connected", False))
        return True

    async def wait_for_bot(
        self, seconds: float, alive: Callable[[], str | None] = lambda: None
    ) -> None:
        """Wait until the bot is connected (HTTP POST: its port accepts connections).

        `alive` returns why the bot cannot connect any more (it exited), or None. Raises
        HarnessError after `seconds` or as soon as `alive` gives a reason."""
        deadline = time.monotonic() + seconds
        while True:
            if self.options.transport == "http-post":
                if await self._bot_port_open():
                    return
            elif self.bot_connected():
                return
            reason = alive()
            if reason is not None:
                raise HarnessError(f"the bot did not connect: {reason}")
            if time.monotonic() >= deadline:
                raise HarnessError(
                    f"the bot did not connect within {seconds:g}s "
                    f"(transport {self.options.transport})"
                )
            await asyncio.sleep(0.05)  # polling a connection state no event announces

    async def _bot_port_open(self) -> bool:
        url = urlsplit(self.options.bot_url or "")
        try:
            _, writer = await asyncio.open_connection(url.hostname, url.port or 80)
        except OSError:
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
