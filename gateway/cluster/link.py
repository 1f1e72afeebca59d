"""One gateway's connection to NATS (JetStream): connect in the background, retrying; make the
stream and the bucket the cluster needs on every (re)connect; tell listeners when it comes up
and when it goes down.

`start()` never fails because NATS is unreachable: the gateway's local accounts and entries work
without it, and what needs the link asks `connected` (remote calls fail fast while it is down).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import nats
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError
from nats.js.kv import KeyValue

from gateway.config import ClusterConfig

log = structlog.get_logger("gateway.cluster")

RECONNECT_WAIT = 0.5
"""Seconds between two connection attempts to one server."""
ENSURE_RETRY = 0.5
"""Seconds before `ensure` is tried again after a failure (JetStream may still be starting)."""
END_RETRY = 0.1
"""Seconds `end_task` waits before cancelling a task that went on again."""
SETTLE_TIMEOUT = 10.0
"""Seconds `settle` waits for its own message (nats-py's TimeoutError after)."""
DUPLICATE_WINDOW = 120.0
"""Seconds within which JetStream drops an event published again with the same Nats-Msg-Id."""

Listener = Callable[[], Awaitable[None]]
"""Run after each (re)connect, once `ensure` succeeded, in the link's own task."""


def events_stream(prefix: str) -> str:
    """The event stream's name (stream names cannot contain dots)."""
    return f"{prefix}_EVENTS"


def directory_bucket(prefix: str) -> str:
    """The account directory's key-value bucket."""
    return f"{prefix}_accounts"


def action_subject(prefix: str, self_id: int) -> str:
    """Where calls for the account `self_id` go."""
    return f"{prefix}.v11.{self_id}.action"


class ClusterLink:
    """The NATS connection of one gateway.

    `nc` and `js` are None until the first connection succeeds; afterwards they stay (nats-py
    reconnects the same client), and `connected` says whether it is up now. `kv` is the
    directory bucket, set once `ensure` has run."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.prefix = config.prefix
        self.node = config.node
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self.kv: KeyValue | None = None
        self.last_error: str | None = None
        """Why the link is (or last was) down, for `/readyz` and messages."""
        self.reconnects = 0
        """Reconnections since start (the first connection is not one)."""
        self._listeners: list[Listener] = []
        self._down_listeners: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._came_up = asyncio.Event()
        self._ready = asyncio.Event()
        self._stopping = False

    @property
    def connected(self) -> bool:
        """Whether the connection to NATS is up now."""
        return self.nc is not None and self.nc.is_connected

    @property
    def ready(self) -> bool:
        """Connected, and the stream and bucket were ensured since the last (re)connect."""
        return self.connected and self._ready.is_set()

    def on_connect(self, listener: Listener) -> None:
        """Call `listener` after every (re)connect (and now, in the link's task, if it is up)."""
        self._listeners.append(listener)
        if self._ready.is_set():
            self._came_up.set()  # the loop runs the listeners again: idempotent by contract

    def on_disconnect(self, listener: Callable[[], None]) -> None:
        """Call `listener` (synchronously) whenever the connection is lost."""
        self._down_listeners.append(listener)

    def remove_listener(self, listener: object) -> None:
        """Forget a listener given to `on_connect` or `on_disconnect` (its owner stopped)."""
        for listeners in (self._listeners, self._down_listeners):
            with contextlib.suppress(ValueError):
                listeners.remove(listener)  # type: ignore[arg-type]  # either kind

    async def wait_ready(self) -> None:
        """Return once the link is connected and ensured."""
        await self._ready.wait()

    async def start(self) -> None:
        """Start connecting in the background (never raises because NATS is unreachable)."""
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="cluster-link")

    async def stop(self) -> None:
        """Close the connection and end the background task (nothing is deleted: what must be
        cleaned up, like the directory's entries, is done by its owner before)."""
        self._stopping = True
        if self._task is not None:
            await end_task(self._task)
            self._task = None
        nc, self.nc, self.js, self.kv = self.nc, None, None, None
        self._ready.clear()
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()

    async def settle(self) -> None:
        """Return once the server has processed everything this link sent before (a new
        subscription is live for other clients then).

        Not `nc.flush()`: nats-py writes that PING straight to the socket, ahead of commands
        still queued for its flusher, so its PONG can come back before a just-made
        subscription reached the server (measured: 12 of 300 requests from another client got
        "no responders" right after subscribe + flush). A message to ourselves goes through the
        same queue, after everything sent before it."""
        return await settle(self.nc) if self.nc is not None else None

    def status(self) -> dict[str, Any]:
        """`{"connected", "servers", "error"}` for `/readyz` and the console."""
        return {
            "connected": self.connected,
            "servers": list(self.config.nats.servers()),
            "error": None if self.connected else self.last_error or "not connected yet",
        }

    async def ensure(self) -> None:
        """Create the event stream and the directory bucket if missing (idempotent); a stream
        whose settings changed in the config is updated."""
        js = self.js
        assert js is not None, "ensure needs a connection"
        events = self.config.events
        stream = StreamConfig(
            name=events_stream(self.prefix),
            subjects=[f"{self.prefix}.v11.*.event.>"],
            retention=RetentionPolicy.LIMITS,
            discard=DiscardPolicy.OLD,
            storage=StorageType.FILE,
            max_age=events.max_age / 1000,
            max_bytes=events.max_bytes,
            num_replicas=events.replicas,
            duplicate_window=DUPLICATE_WINDOW,
        )
        try:
            await js.add_stream(stream)
        except BadRequestError:  # it exists with other settings
            await js.update_stream(stream)
        bucket = directory_bucket(self.prefix)
        try:
            self.kv = await js.create_key_value(
                bucket=bucket,
                history=1,
                ttl=self.config.directory_ttl / 1000,
                replicas=events.replicas,
            )
        except BadRequestError as error:
            # It exists with another TTL: a node configured otherwise made it. Readers apply
            # their own `directoryTtl`; the bucket's only bounds how long a dead entry is kept.
            log.warning("cluster_directory_settings_differ", bucket=bucket, error=str(error))
            self.kv = await js.key_value(bucket)

    async def _run(self) -> None:
        """Connect (retrying forever), then ensure and run the listeners after each
        (re)connect; retry `ensure` while it fails on a live connection."""
        nc = await self._connect()
        self.nc, self.js = nc, nc.jetstream()
        self.last_error = None
        log.info("cluster_link_connected", servers=self.config.nats.servers())
        self._came_up.set()
        while True:
            await self._came_up.wait()
            self._came_up.clear()
            if not self.connected:
                continue
            try:
                await self.ensure()
                self._ready.set()
                for listener in list(self._listeners):
                    await listener()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                message = f"JetStream setup failed: {error or type(error).__name__}"
                if message != self.last_error:
                    log.warning("cluster_setup_failed", error=message)  # once, not per retry
                self.last_error = message
                await asyncio.sleep(ENSURE_RETRY)
                self._came_up.set()

    async def _connect(self) -> Client:
        nats_config = self.config.nats
        options: dict[str, Any] = {}
        if nats_config.token:
            options["token"] = nats_config.token
        if nats_config.credentials:
            options["user_credentials"] = nats_config.credentials
        if nats_config.tls is not None:
            tls = nats_config.tls
            options["tls"] = _tls_context(tls.ca, tls.cert, tls.key)
        return await nats.connect(
            servers=nats_config.servers(),
            name=f"onebot-gateway:{self.node}",
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=RECONNECT_WAIT,
            connect_timeout=max(1, round(nats_config.connect_timeout / 1000)),
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
            **options,
        )

    async def _on_error(self, error: Exception) -> None:
        message = str(error) or type(error).__name__
        if message != self.last_error and not self._stopping:
            log.warning("cluster_link_error", error=message)  # once per kind, not per retry
        self.last_error = message

    async def _on_disconnected(self) -> None:
        self._ready.clear()
        if self._stopping:
            return
        if not self.last_error:
            self.last_error = "disconnected from NATS"
        log.warning("cluster_link_down", error=self.last_error)
        for listener in list(self._down_listeners):
            listener()

    async def _on_reconnected(self) -> None:
        self.reconnects += 1
        self.last_error = None
        log.info("cluster_link_reconnected", reconnects=self.reconnects)
        self._came_up.set()


async def end_task(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it has ended, cancelling again if it goes on.

    Python 3.11's `asyncio.wait_for` (nats-py uses it for every request) drops a cancellation
    that arrives as its future completes, so a single cancel of a task inside a NATS request
    can be lost and the task go on forever (seen: a stop hanging on the directory's refresher).
    A second cancel, once the task waits elsewhere, ends it."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=END_RETRY)
    if not task.cancelled() and task.exception() is not None:
        log.warning("cluster_task_failed", task=task.get_name(), error=str(task.exception()))


async def settle(nc: Client) -> None:
    """`ClusterLink.settle` for any nats-py client (tests use it on plain clients)."""
    inbox = nc.new_inbox()
    echo = await nc.subscribe(inbox, max_msgs=1)
    await nc.publish(inbox, b"")
    await echo.next_msg(SETTLE_TIMEOUT)


def _tls_context(ca: str | None, cert: str | None, key: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca)
    if cert:
        context.load_cert_chain(cert, key)
    return context
