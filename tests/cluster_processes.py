"""Cluster nodes as separate gateway processes (`python -m gateway run`) on one real nats-server,
for tests that kill, stop and restart them: config documents for account and edge nodes, a
restartable node process, a bot endpoint that records every event it is sent, and a probe that
asks NATS directly whether an account's host answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import nats
from aiohttp import web

from tests.conftest import GatewayProcess

GUARD = 60.0
"""Seconds after which a wait that should end on a condition fails the test instead of hanging."""
POLL = 0.05
"""Seconds between two checks of a condition nothing announces (another process's state)."""


def cluster_section(nats_url: str, node: str, **fields: Any) -> dict[str, Any]:
    """A `cluster` section: a short directory TTL so a killed node's accounts go offline soon."""
    return {"nats": {"url": nats_url}, "node": node, "directoryTtl": 1500, **fields}


def account_node(
    nats_url: str, node: str, name: str, self_id: int, database: Path, **cluster: Any
) -> dict[str, Any]:
    """A node hosting one sandbox account on a database file (kept across restarts), with an
    HTTP entry (`api`) for the simulated users and the benchmark hook on (numbered events)."""
    return {
        "accounts": [
            {
                "name": name,
                "backend": {"database": str(database), "selfId": self_id, "benchHook": True},
            }
        ],
        "cluster": cluster_section(nats_url, node, **cluster),
        "network": {"httpServers": [{"name": "api", "enable": True, "port": 0}]},
        "admin": {"port": 0},
    }


def edge_node(
    nats_url: str,
    accounts: list[int],
    bot_url: str | None = None,
    node: str = "edge",
    **cluster: Any,
) -> dict[str, Any]:
    """A node hosting no account: an HTTP entry (`api`) and, with `bot_url`, a reverse
    WebSocket entry (`bot`) serving `accounts` (hosted by other nodes)."""
    network: dict[str, Any] = {
        "httpServers": [{"name": "api", "enable": True, "port": 0, "accounts": accounts}]
    }
    if bot_url is not None:
        network["websocketClients"] = [
            {
                "name": "bot",
                "enable": True,
                "url": bot_url,
                "accounts": accounts,
                "reconnectInterval": 50,
                "reconnectMaxInterval": 200,
                "heartInterval": 0,
            }
        ]
    return {
        "accounts": [],
        "cluster": cluster_section(nats_url, node, **cluster),
        "network": network,
        "admin": {"port": 0},
    }


class NodeProcess:
    """One gateway process of a test cluster, from a config file it keeps: `start`, `kill`
    (SIGKILL), `terminate` (SIGTERM), and `start` again with the same config."""

    def __init__(self, name: str, document: dict[str, Any], workdir: Path) -> None:
        self.name = name
        self.workdir = workdir
        self.config = workdir / f"{name}.json"
        self.config.write_text(json.dumps(document))
        self.process: GatewayProcess | None = None
        self.runs: list[GatewayProcess] = []
        """Every process started for this node, in order (each is killed at cleanup)."""

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.proc.poll() is None

    def spawn(self) -> None:
        """Start the process (`ready()` waits until it serves)."""
        assert self.process is None or self.process.proc.poll() is not None, "still running"
        self.process = GatewayProcess(self.config, self.workdir)
        self.runs.append(self.process)

    async def ready(self) -> None:
        """Until the process logged `gateway_ready` (every entry and the admin listen)."""
        process = self._running()
        await asyncio.to_thread(process.wait_for, "gateway_ready", GUARD)

    async def start(self) -> None:
        self.spawn()
        await self.ready()

    async def wait_logged(self, event: str) -> dict[str, Any]:
        """The first log line with this event of the running process, read up to it if need be."""
        if lines := self.logged(event):
            return lines[0]
        process = self._running()
        return await asyncio.to_thread(process.wait_for, event, GUARD)

    def kill(self) -> None:
        """`kill -9` by its PID, and wait for its exit."""
        self._running().kill()

    def terminate(self) -> int:
        """SIGTERM (a clean stop) and its exit status."""
        return self._running().terminate(GUARD)

    def port(self, entry: str) -> int:
        return self._running().port_of(entry)

    def url(self, entry: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port(entry)}{path}"

    def admin_url(self, path: str) -> str:
        for line in self._running().lines:
            if line.get("event") == "admin_started":
                return f"{line['address']}{path}"
        raise AssertionError(f"{self.name}: the admin server did not start")

    def logged(self, event: str) -> list[dict[str, Any]]:
        """The log lines with this event read so far (`ready` reads up to `gateway_ready`)."""
        return [line for line in self._running().lines if line.get("event") == event]

    def cleanup(self) -> None:
        for process in self.runs:
            process.kill()

    def _running(self) -> GatewayProcess:
        assert self.process is not None, f"{self.name} was never started"
        return self.process


@contextlib.contextmanager
def cleaning(*nodes: NodeProcess) -> Any:
    """Kill every process of these nodes on exit (by PID), whatever the test did."""
    try:
        yield nodes
    finally:
        for node in nodes:
            node.cleanup()


async def call(http: aiohttp.ClientSession, url: str, **params: Any) -> dict[str, Any]:
    """POST an action's parameters to an HTTP entry URL; the envelope."""
    async with http.post(url, json=params) as response:
        body: dict[str, Any] = await response.json()
        return body


async def get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with http.get(url) as response:
        body: dict[str, Any] = await response.json()
        return response.status, body


async def poll(check: Callable[[], Any], what: str, seconds: float = GUARD) -> Any:
    """Until `await check()` is truthy (polled: the state is another process's); its value."""
    deadline = time.monotonic() + seconds
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        await asyncio.sleep(POLL)


async def host_answers(nats_url: str, self_id: int, prefix: str = "onebot") -> None:
    """Until a call sent straight to NATS for `self_id` is answered by its host (the node
    subscribed its action subject): the cluster's call wire format, without a gateway."""
    nc = await nats.connect(servers=[nats_url])
    try:
        request = json.dumps({"action": "get_login_info", "params": {}, "echo": None}).encode()

        async def answered() -> bool:
            try:
                reply = await nc.request(f"{prefix}.v11.{self_id}.action", request, timeout=2)
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                return False
            final = json.loads(reply.data).get("final", {})
            return bool(final.get("retcode") == 0)

        await poll(answered, f"account {self_id}'s host answers on NATS")
    finally:
        await nc.close()


@dataclass
class Received:
    """One frame a bot connection got: the account (X-Self-ID), which connection of that
    account it was (0, 1, ... in connection order), and the frame."""

    self_id: int
    connection: int
    frame: dict[str, Any]


@dataclass
class RecordingBot:
    """A bot's reverse WebSocket endpoint (`/ws`) that records every frame, in arrival order."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    connections: dict[int, int] = field(default_factory=dict)
    """Connections opened so far per account."""
    open: dict[int, web.WebSocketResponse] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    refused: set[int] = field(default_factory=set)
    """Accounts whose connections are refused (403), as a bot that is away."""

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        self_id = int(request.headers["X-Self-ID"])
        if self_id in self.refused:
            raise web.HTTPForbidden(text=f"the bot of {self_id} is away")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        connection = self.connections.get(self_id, 0)
        self.connections[self_id] = connection + 1
        self.open[self_id] = ws
        self.changed.set()
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.received.append(Received(self_id, connection, message.json()))
                self.changed.set()
        if self.open.get(self_id) is ws:
            del self.open[self_id]
        self.changed.set()
        return ws

    def bench(self, run: str, self_id: int | None = None) -> list[Received]:
        """The benchmark events of `run` received (of one account or all), in arrival order."""
        return [
            r
            for r in self.received
            if r.frame.get("bench_run") == run and (self_id is None or r.self_id == self_id)
        ]

    async def until(self, check: Callable[[], bool], what: str, seconds: float = GUARD) -> None:
        """Until `check()` holds, re-checked on each frame or connection change."""
        try:
            async with asyncio.timeout(seconds):
                while not check():
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise AssertionError(f"not within {seconds} s: {what}") from None


@contextlib.asynccontextmanager
async def recording_bot() -> AsyncIterator[RecordingBot]:
    bot = RecordingBot()
    app = web.Application()
    app.router.add_get("/ws", bot.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    bot.port = runner.addresses[0][1]
    try:
        yield bot
    finally:
        await runner.cleanup()


def order_report(seqs: list[int], count: int) -> tuple[list[int], int]:
    """Check a per-account arrival order of numbered events 0..count-1 delivered at least once:
    each event is either the next new one or a repeat of an earlier one. Returns the events
    missing (none when all came) and the number of repeats; raises if a new event came before
    an earlier new one (out of order)."""
    highest = -1
    repeats = 0
    for position, seq in enumerate(seqs):
        if seq == highest + 1:
            highest = seq
        elif seq <= highest:
            repeats += 1
        else:
            raise AssertionError(
                f"event {seq} arrived (position {position}) before event {highest + 1} "
                "(out of order, or that one was lost)"
            )
    return list(range(highest + 1, count)), repeats


@dataclass
class ConsumerState:
    """A durable consumer as JetStream has it: the last stream sequence delivered, the one below
    which every event was acknowledged (its ack floor), and the events delivered and not acked."""

    delivered: int
    ack_floor: int
    ack_pending: int
    pending: int
    """Events matching its filter not delivered yet."""

    @property
    def past_floor(self) -> int:
        """Stream sequences delivered above the ack floor: everything a restart from the floor
        can deliver again (acked out of order or not acked)."""
        return self.delivered - self.ack_floor


async def consumer_state(nats_url: str, stream: str, consumer: str) -> ConsumerState:
    nc = await nats.connect(servers=[nats_url])
    try:
        info = await nc.jetstream().consumer_info(stream, consumer)
    finally:
        await nc.close()
    assert info.delivered is not None and info.ack_floor is not None
    return ConsumerState(
        delivered=info.delivered.stream_seq or 0,
        ack_floor=info.ack_floor.stream_seq or 0,
        ack_pending=info.num_ack_pending or 0,
        pending=info.num_pending or 0,
    )


async def metric(http: aiohttp.ClientSession, node: NodeProcess, name: str) -> float:
    """A Prometheus metric of a node (`/metrics`), summed over its labels."""
    async with http.get(node.admin_url("/metrics")) as response:
        text = await response.text()
    total = 0.0
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == name or sample.startswith(name + "{"):
            total += float(value)
    return total
