"""Cluster events through a real nats-server: node A hosts a sandbox account whose events its
EventPublisher publishes from its bus; node B consumes them for an entry (a real reverse
WebSocket client writing to a bot, or plain bus subscriptions) with a durable consumer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from gateway.bus import AckFrame, EventBus, SubscriberOptions, Subscription
from gateway.cluster.consumers import EntryConsumer, consumer_name
from gateway.cluster.events import EventPublisher, Outgoing
from gateway.cluster.link import ClusterLink, events_stream
from gateway.config import ClusterConfig
from gateway.event_filter import compile_filter
from tests.conftest import RunningGateway, run_gateway
from tests.nats_server import NatsServer

PREFIX = "onebot"
SELF_ID = 10001
WAIT = 30.0
"""Seconds any awaited condition may take before the test fails (never a measured bound)."""


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def cluster_config(server: NatsServer, node: str) -> ClusterConfig:
    return ClusterConfig.model_validate({"nats": {"url": server.url}, "node": node})


@contextlib.asynccontextmanager
async def cluster_link(server: NatsServer, node: str) -> AsyncIterator[ClusterLink]:
    link = ClusterLink(cluster_config(server, node))
    await link.start()
    try:
        await asyncio.wait_for(link.wait_ready(), WAIT)
        yield link
    finally:
        await link.stop()


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait until `condition()` holds (state that lives in another process or task); fail
    after WAIT seconds."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def host_document() -> dict[str, Any]:
    """Node A: one sandbox account (10001) with the benchmark hook, an HTTP API to drive it."""
    return {
        "network": {
            "httpServers": [{"name": "api", "enable": True, "host": "127.0.0.1", "port": 0}]
        },
        "backend": {"type": "sandbox", "database": ":memory:", "benchHook": True},
    }


async def emit(gw: RunningGateway, http: aiohttp.ClientSession, count: int, run: str) -> None:
    """Make the sandbox publish `count` numbered private messages (`bench_seq` 0..count-1)."""
    async with http.post(
        gw.url("api", "/sandbox_emit_bench"), json={"count": count, "run": run}
    ) as response:
        body = await response.json()
    assert body["retcode"] == 0, body


class Bot:
    """A bot's reverse WebSocket endpoint: records every event frame it receives."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.connected = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def seqs(self, run: str) -> list[int]:
        return [e["bench_seq"] for e in self.events if e.get("bench_run") == run]

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connected.set()
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                event = orjson.loads(message.data)
                if event.get("post_type") != "meta_event":
                    self.events.append(event)
        return ws


def edge_document(bot: Bot) -> dict[str, Any]:
    """Node B: a reverse WebSocket entry `bot`. Its own sandbox account has the same QQ number
    as node A's (the default world), so the entry's link for it is the one remote events of
    10001 go to, through the real writer path (nothing here makes node B's account emit)."""
    entry = {
        "name": "bot",
        "enable": True,
        "url": bot.url,
        "heartInterval": 0,
        "reconnectInterval": 100,
        "reportSelfMessage": True,
    }
    return {
        "network": {"websocketClients": [entry]},
        "backend": {"type": "sandbox", "database": ":memory:"},
    }


class Only:
    """An account filter taking one QQ number."""

    def __init__(self, self_id: int) -> None:
        self.self_id = self_id

    def serves(self, self_id: int) -> bool:
        return self_id == self.self_id


def first_occurrences(seqs: list[int]) -> tuple[list[int], int]:
    """The sequence with repeats removed (first copy kept) and how many repeats there were."""
    seen: set[int] = set()
    order = []
    for seq in seqs:
        if seq not in seen:
            seen.add(seq)
            order.append(seq)
    return order, len(seqs) - len(order)


async def stream_messages(link: ClusterLink) -> int:
    assert link.js is not None
    info = await link.js.stream_info(events_stream(PREFIX))
    return int(info.state.messages)


async def test_events_reach_a_bot_on_another_node_in_order_and_acked_after_the_write(
    nats_server: NatsServer, http: aiohttp.ClientSession
) -> None:
    bot = Bot()
    await bot.start()
    try:
        async with (
            run_gateway(host_document()) as host,
            cluster_link(nats_server, "a") as link_a,
            run_gateway(edge_document(bot)) as edge,
            cluster_link(nats_server, "b") as link_b,
        ):
            publisher = EventPublisher(link_a, host.supervisor.bus, PREFIX, 1000)
            await publisher.start()
            consumer = EntryConsumer(
                link_b, edge.supervisor.bus, PREFIX, "b", "bot", [SELF_ID], ack_on_write=True
            )
            await consumer.start()
            await asyncio.wait_for(bot.connected.wait(), WAIT)
            await consumer.wait_bound()
            await emit(host, http, 300, "r1")
            await until(lambda: len(bot.seqs("r1")) >= 300, "300 events at the bot")
            assert bot.seqs("r1") == list(range(300))
            await until(lambda: consumer.acked == 300, "every event acked")
            assert link_b.js is not None
            info = await link_b.js.consumer_info(events_stream(PREFIX), consumer.name)
            assert info.num_ack_pending == 0
            assert info.name == "b_bot"
            assert publisher.published == 300 and publisher.dropped == 0
            assert await stream_messages(link_a) == 300
            # The stream keeps the debug array form; the entry (not debug) gets no `raw`.
            assert all("raw" not in event for event in bot.events)
            await consumer.stop()
            await publisher.stop()
    finally:
        await bot.stop()


async def test_a_publish_retried_with_the_same_id_is_stored_once(
    nats_server: NatsServer,
) -> None:
    async with cluster_link(nats_server, "a") as link:
        bus = EventBus()
        publisher = EventPublisher(link, bus, PREFIX, 100)
        event = {"self_id": SELF_ID, "post_type": "notice", "notice_type": "custom", "n": 1}
        item = Outgoing(f"{PREFIX}.v11.{SELF_ID}.event.notice", orjson.dumps(event), "fixed-id")
        assert await publisher._publish([item]) == 1
        assert await publisher._publish([item]) == 1  # the retry of a publish whose answer was lost
        assert publisher.published == 2 and publisher.duplicates == 1
        assert await stream_messages(link) == 1
        other = Outgoing(item.subject, item.payload, "another-id")
        assert await publisher._publish([other]) == 1
        assert await stream_messages(link) == 2


async def test_a_durable_consumer_resumes_after_its_node_restarts(
    nats_server: NatsServer, http: aiohttp.ClientSession
) -> None:
    bot = Bot()
    await bot.start()
    try:
        async with (
            run_gateway(host_document()) as host,
            cluster_link(nats_server, "a") as link_a,
            run_gateway(edge_document(bot)) as edge,
        ):
            publisher = EventPublisher(link_a, host.supervisor.bus, PREFIX, 10_000)
            await publisher.start()
            await asyncio.wait_for(bot.connected.wait(), WAIT)
            window = 32
            async with cluster_link(nats_server, "b") as link_b:
                consumer = EntryConsumer(
                    link_b,
                    edge.supervisor.bus,
                    PREFIX,
                    "b",
                    "bot",
                    [SELF_ID],
                    ack_on_write=True,
                    window=window,
                )
                await consumer.start()
                await consumer.wait_bound()
                await emit(host, http, 300, "r")
                await until(lambda: len(bot.seqs("r")) >= 100, "100 events at the bot")
                # The node "restarts": its consumer and its link stop mid-stream.
                await consumer.stop()
                assert link_b.js is not None
                before = await link_b.js.consumer_info(events_stream(PREFIX), consumer.name)
            unacked = before.num_ack_pending or 0
            await until(lambda: publisher.published == 300, "the first 300 published")
            await emit(host, http, 200, "s")
            await until(lambda: publisher.published == 500, "200 more published")
            async with cluster_link(nats_server, "b") as link_b:
                consumer = EntryConsumer(
                    link_b,
                    edge.supervisor.bus,
                    PREFIX,
                    "b",
                    "bot",
                    [SELF_ID],
                    ack_on_write=True,
                    window=window,
                )
                await consumer.start()
                await until(lambda: len(set(bot.seqs("s"))) == 200, "the 200 published meanwhile")
                await until(lambda: consumer.in_flight == 0, "everything written")
                await consumer.stop()
            seqs = [
                e["bench_seq"] + (300 if e["bench_run"] == "s" else 0)
                for e in bot.events
                if e.get("bench_run") in ("r", "s")
            ]
            order, duplicates = first_occurrences(seqs)
            assert order == list(range(500))
            # Only events delivered and not acked at the stop come twice (at most the window).
            assert duplicates <= unacked <= window
            print(f"restart: {unacked} in flight at the stop, {duplicates} arrived twice")
            await publisher.stop()
    finally:
        await bot.stop()


def entry_subscription(bus: EventBus, name: str, **options: Any) -> Subscription:
    return bus.subscribe(name, SubscriberOptions(accounts=Only(SELF_ID), **options))


async def test_an_event_is_acked_only_once_written_and_comes_again_if_never_written(
    nats_server: NatsServer,
) -> None:
    async with cluster_link(nats_server, "a") as link_a, cluster_link(nats_server, "b") as link_b:
        bus_a, bus_b = EventBus(), EventBus()
        publisher = EventPublisher(link_a, bus_a, PREFIX, 100)
        await publisher.start()
        waiting = entry_subscription(bus_b, "persistent", queue_size=100)
        consumer = EntryConsumer(
            link_b, bus_b, PREFIX, "b", "persistent", [SELF_ID], ack_on_write=True, ack_wait=0.5
        )
        await consumer.start()
        await consumer.wait_bound()
        for n in range(5):
            bus_a.publish({"self_id": SELF_ID, "post_type": "notice", "notice_type": "x", "n": n})
        await until(lambda: len(waiting) == 5, "five frames queued")
        # Queued, not written: nothing acked, and a redelivery is not queued a second time.
        await until(lambda: consumer.kept >= 5, "redeliveries of the queued frames")
        assert len(waiting) == 5 and consumer.acked == 0
        assert link_b.js is not None
        info = await link_b.js.consumer_info(events_stream(PREFIX), consumer.name)
        assert info.num_ack_pending == 5
        # A writer takes them and never writes them: they come again, once ack_wait ran out.
        taken = [waiting.take() for _ in range(5)]
        assert all(type(frame) is AckFrame for frame in taken)
        await until(lambda: len(waiting) == 5, "the five delivered again")
        again = [waiting.take() for _ in range(5)]
        assert [orjson.loads(bytes(f))["n"] for f in again if f] == [0, 1, 2, 3, 4]
        for frame in again:
            assert isinstance(frame, AckFrame)
            frame.ack()  # written now
        await until(lambda: consumer.acked == 5, "five acks")
        await until(lambda: consumer.in_flight == 0, "nothing in flight")

        async def acked() -> bool:
            assert link_b.js is not None
            info = await link_b.js.consumer_info(events_stream(PREFIX), consumer.name)
            return info.num_ack_pending == 0

        deadline = asyncio.get_running_loop().time() + WAIT
        while not await acked():
            assert asyncio.get_running_loop().time() < deadline, "acks never reached JetStream"
            await asyncio.sleep(0.01)
        await consumer.stop()
        await publisher.stop()


async def test_events_published_while_nats_is_down_are_held_and_published_when_it_returns(
    nats_server: NatsServer,
) -> None:
    async with cluster_link(nats_server, "a") as link_a, cluster_link(nats_server, "b") as link_b:
        bus_a, bus_b = EventBus(), EventBus()
        publisher = EventPublisher(link_a, bus_a, PREFIX, 50)
        await publisher.start()
        received = entry_subscription(bus_b, "server", queue_size=1000)
        consumer = EntryConsumer(
            link_b, bus_b, PREFIX, "b", "server", [SELF_ID], ack_on_write=False
        )
        await consumer.start()
        await consumer.wait_bound()
        down = asyncio.Event()
        link_a.on_disconnect(down.set)
        nats_server.stop()
        await asyncio.wait_for(down.wait(), WAIT)
        for n in range(120):
            bus_a.publish({"self_id": SELF_ID, "post_type": "notice", "notice_type": "x", "n": n})
        assert publisher.held == 50 and publisher.dropped == 70
        nats_server.start()
        await until(lambda: len(received) == 50, "the 50 held events delivered")
        ns = [orjson.loads(received.take() or b"")["n"] for _ in range(50)]
        assert ns == list(range(70, 120))
        assert publisher.held == 0 and publisher.published == 50
        await consumer.stop()
        await publisher.stop()


async def test_each_entry_gets_events_in_its_own_encoding_and_filter(
    nats_server: NatsServer,
) -> None:
    async with cluster_link(nats_server, "a") as link_a, cluster_link(nats_server, "b") as link_b:
        bus_a, bus_b = EventBus(), EventBus()
        publisher = EventPublisher(link_a, bus_a, PREFIX, 100)
        await publisher.start()
        string = entry_subscription(
            bus_b, "string", message_format="string", report_self_message=True
        )
        no_self = entry_subscription(bus_b, "noself", report_self_message=False, debug=True)
        filtered = entry_subscription(
            bus_b,
            "filtered",
            report_self_message=True,
            event_filter=compile_filter({"post_type": "notice"}),
        )
        other_account = bus_b.subscribe("string", SubscriberOptions(accounts=Only(99)))
        consumers = [
            EntryConsumer(link_b, bus_b, PREFIX, "b", name, [SELF_ID], ack_on_write=False)
            for name in ("string", "noself", "filtered")
        ]
        for consumer in consumers:
            await consumer.start()
        for consumer in consumers:
            await consumer.wait_bound()
        message = [{"type": "text", "data": {"text": "hi "}}, {"type": "face", "data": {"id": "1"}}]
        base = {"self_id": SELF_ID, "user_id": 20001, "message_type": "private"}
        bus_a.publish({**base, "post_type": "message", "message": message, "raw": {"k": 1}})
        bus_a.publish({**base, "post_type": "message_sent", "message": message})
        bus_a.publish({"self_id": SELF_ID, "post_type": "notice", "notice_type": "x"})
        await until(lambda: len(string) == 3, "three events for the string entry")
        await until(lambda: len(filtered) == 1 and len(no_self) == 2, "the others' events")
        first = orjson.loads(string.take() or b"")
        assert first["message"] == "hi [CQ:face,id=1]" and "raw" not in first
        assert orjson.loads(string.take() or b"")["post_type"] == "message_sent"
        assert [orjson.loads(no_self.take() or b"")["post_type"] for _ in range(2)] == [
            "message",
            "notice",
        ]
        assert orjson.loads(filtered.take() or b"")["post_type"] == "notice"
        assert len(other_account) == 0  # a subscription of the entry for another account
        for consumer in consumers:
            await consumer.stop()
        await publisher.stop()


def test_consumer_names_are_valid_and_distinct() -> None:
    assert consumer_name("edge-1", "bot_a") == "edge-1_bot_a"
    dotted, underscored = consumer_name("n", "a.b"), consumer_name("n", "a_b")
    assert dotted != underscored
    assert all(c.isalnum() or c in "_-" for c in dotted + consumer_name("n", "机器人 *>"))


async def test_http_post_acks_after_the_answer_and_a_forward_websocket_after_the_write(
    nats_server: NatsServer,
) -> None:
    posted: list[int] = []

    async def receive(request: web.Request) -> web.Response:
        n = (await request.json())["n"]
        posted.append(n)
        # 4xx ends an event's delivery as 2xx does (the bot refused it): acked either way.
        return web.Response(status=400 if n == 2 else 204)

    app = web.Application()
    app.router.add_post("/", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    document = {
        "network": {
            "httpClients": [{"name": "post", "enable": True, "url": f"http://127.0.0.1:{port}/"}],
            "websocketServers": [
                {"name": "ws", "enable": True, "host": "127.0.0.1", "port": 0, "heartInterval": 0}
            ],
        },
        "backend": {"type": "sandbox", "database": ":memory:"},
    }
    try:
        async with (
            cluster_link(nats_server, "a") as link_a,
            cluster_link(nats_server, "b") as link_b,
            run_gateway(document) as edge,
            aiohttp.ClientSession() as http,
            http.ws_connect(edge.url("ws", "/").replace("http://", "ws://")) as ws,
        ):
            assert (await ws.receive_json(timeout=WAIT))["meta_event_type"] == "lifecycle"
            bus_a = EventBus()
            publisher = EventPublisher(link_a, bus_a, PREFIX, 100)
            await publisher.start()
            # Both entries written to through AckFrames: HTTP POST after the answer, the
            # forward WebSocket (a server connection: written straight to its transport).
            consumers = [
                EntryConsumer(
                    link_b, edge.supervisor.bus, PREFIX, "b", name, [SELF_ID], ack_on_write=True
                )
                for name in ("post", "ws")
            ]
            for consumer in consumers:
                await consumer.start()
                await consumer.wait_bound()
            for n in range(5):
                bus_a.publish(
                    {"self_id": SELF_ID, "post_type": "notice", "notice_type": "x", "n": n}
                )
            got = [(await ws.receive_json(timeout=WAIT))["n"] for _ in range(5)]
            assert got == [0, 1, 2, 3, 4]
            await until(lambda: all(c.acked == 5 for c in consumers), "every event acked twice")
            assert posted == [0, 1, 2, 3, 4]
            assert all(c.in_flight == 0 for c in consumers)
            for consumer in consumers:
                await consumer.stop()
            await publisher.stop()
    finally:
        await runner.cleanup()


async def test_after_a_restart_exactly_the_events_in_flight_at_the_stop_come_twice(
    nats_server: NatsServer,
) -> None:
    async with cluster_link(nats_server, "a") as link_a:
        bus_a, bus_b = EventBus(), EventBus()
        publisher = EventPublisher(link_a, bus_a, PREFIX, 1000)
        await publisher.start()
        bot = entry_subscription(bus_b, "bot", queue_size=1000)
        seen: list[int] = []

        def publish(numbers: range) -> None:
            for n in numbers:
                bus_a.publish(
                    {"self_id": SELF_ID, "post_type": "notice", "notice_type": "x", "n": n}
                )

        def write(count: int) -> list[AckFrame]:
            """The bot's writer takes `count` frames; returns them unacked."""
            frames = []
            for _ in range(count):
                frame = bot.take()
                assert type(frame) is AckFrame
                seen.append(orjson.loads(bytes(frame))["n"])
                frames.append(frame)
            return frames

        async with cluster_link(nats_server, "b") as link_b:
            consumer = EntryConsumer(
                link_b, bus_b, PREFIX, "b", "bot", [SELF_ID], ack_on_write=True, window=64
            )
            await consumer.start()
            await consumer.wait_bound()
            publish(range(50))
            await until(lambda: len(bot) == 50, "50 events delivered")
            for frame in write(30):
                frame.ack()  # written
            write(20)  # taken by the writer, the node stops before they are written
            assert link_b.js is not None
            js_b = link_b.js

            async def acked_up_to(floor: int) -> None:
                for _ in range(int(WAIT / 0.01)):
                    info = await js_b.consumer_info(events_stream(PREFIX), consumer.name)
                    if info.ack_floor is not None and info.ack_floor.stream_seq == floor:
                        return
                    await asyncio.sleep(0.01)
                raise AssertionError(f"the ack floor never reached {floor}")

            await acked_up_to(30)
            await consumer.stop()
        publish(range(50, 250))
        await until(lambda: publisher.published == 250, "250 published")
        async with cluster_link(nats_server, "b") as link_b:
            consumer = EntryConsumer(
                link_b, bus_b, PREFIX, "b", "bot", [SELF_ID], ack_on_write=True, window=64
            )
            await consumer.start()
            while len(set(seen)) < 250:
                await until(lambda: len(bot) > 0, "more events")
                for frame in write(len(bot)):
                    frame.ack()
            assert consumer.rewound == 1
            await consumer.stop()
        order, duplicates = first_occurrences(seen)
        assert order == list(range(250))
        assert duplicates == 20  # exactly those in flight (delivered, not acked) at the stop
        assert seen[50:70] == list(range(30, 50))  # and they come first, in order
        await publisher.stop()
