"""Events handed straight to connections (a subscription's sink): once per loop iteration, in
order, and back to the reader task whenever the connection takes no more. With a fake sink, and
over real loopback sockets."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson

from gateway.bus import EventBus, SubscriberOptions, Subscription
from gateway.event_filter import EventFilter
from gateway.network.ws_connection import WsConnection, text_frame_header
from tests.conftest import RunningGateway, capture_logs, http_entry, run_gateway, sandbox_config
from tests.robustness.wsframes import TEXT, RawWebSocket, frame
from tests.test_ws_server import lifecycle_of, message_event, receive_json, ws_entry, ws_url


def notice(seq: int) -> dict[str, Any]:
    return {"time": 1, "self_id": 1, "post_type": "notice", "notice_type": "n", "seq": seq}


def seqs(frames: list[bytes]) -> list[int]:
    return [orjson.loads(frame)["seq"] for frame in frames]


class FakeSink:
    """Takes frames while `space` is positive; `fail` makes `write` raise."""

    def __init__(self, space: int = 1 << 20) -> None:
        self.space = space
        self.fail = False
        self.writes: list[list[bytes]] = []

    def room(self) -> int:
        return self.space

    def write(self, frames: list[bytes]) -> None:
        if self.fail:
            raise RuntimeError("the sink broke")
        self.writes.append(list(frames))


def attached(space: int = 1 << 20) -> tuple[EventBus, Subscription, FakeSink]:
    bus = EventBus()
    subscription = bus.subscribe("s", SubscriberOptions())
    sink = FakeSink(space)
    subscription.attach(sink)
    return bus, subscription, sink


# --- the subscription and its sink ---------------------------------------------------------


async def test_frames_published_in_one_loop_iteration_reach_the_sink_in_one_write() -> None:
    bus, subscription, sink = attached()
    for seq in range(3):
        bus.publish(notice(seq))
    assert sink.writes == []  # publishing never writes: the flush comes in the next iteration
    await asyncio.sleep(0)
    assert [seqs(write) for write in sink.writes] == [[0, 1, 2]]
    assert (len(subscription), subscription.delivered) == (0, 3)
    bus.publish(notice(3))
    await asyncio.sleep(0)
    assert [seqs(write) for write in sink.writes] == [[0, 1, 2], [3]]


async def test_a_sink_without_room_leaves_the_frames_to_the_reader_in_order() -> None:
    bus, subscription, sink = attached(space=0)
    waiting = asyncio.create_task(subscription.wait())
    await asyncio.sleep(0)
    bus.publish(notice(0))
    bus.publish(notice(1))
    await asyncio.wait_for(waiting, 5)
    assert sink.writes == []
    assert [orjson.loads(await subscription.get())["seq"] for _ in range(2)] == [0, 1]


async def test_a_sink_takes_frames_up_to_its_room_and_at_least_one() -> None:
    bus, subscription, sink = attached(space=1)
    waiting = asyncio.create_task(subscription.wait())
    await asyncio.sleep(0)
    for seq in range(3):
        bus.publish(notice(seq))
    await asyncio.wait_for(waiting, 5)  # frames left over wake the reader
    assert [seqs(write) for write in sink.writes] == [[0]]
    assert len(subscription) == 2
    sink.space = 1 << 20
    subscription.flush()
    assert [seqs(write) for write in sink.writes] == [[0], [1, 2]]


async def test_a_failing_sink_is_detached_and_its_frames_go_to_the_reader() -> None:
    bus, subscription, sink = attached()
    sink.fail = True
    with capture_logs() as logs:
        bus.publish(notice(0))
        bus.publish(notice(1))
        await asyncio.sleep(0)
    assert not subscription.attached
    assert [e["event"] for e in logs] == ["subscription_sink_failed"]
    assert [orjson.loads(await subscription.get())["seq"] for _ in range(2)] == [0, 1]
    assert subscription.delivered == 2


async def test_a_closed_subscription_hands_nothing_to_its_sink() -> None:
    bus, subscription, sink = attached()
    bus.publish(notice(0))
    bus.unsubscribe(subscription)
    bus.publish(notice(1))
    await asyncio.sleep(0)
    assert sink.writes == []


def test_an_entrys_filter_runs_once_per_event_however_many_connections_share_it() -> None:
    calls: list[int] = []

    def even(event: Any) -> bool:
        calls.append(event["seq"])
        return bool(event["seq"] % 2 == 0)

    entry = SubscriberOptions(event_filter=EventFilter({"seq": "even"}, even))
    bus = EventBus()
    filtered = [bus.subscribe("e", entry) for _ in range(50)]
    unfiltered = bus.subscribe("o", SubscriberOptions())
    filtered += [bus.subscribe("e", entry) for _ in range(50)]
    for seq in range(4):
        bus.publish(notice(seq))
    assert calls == [0, 1, 2, 3]
    assert all(seqs([frame for _, frame in s._queue]) == [0, 2] for s in filtered)
    assert seqs([frame for _, frame in unfiltered._queue]) == [0, 1, 2, 3]


def test_text_frame_headers_follow_rfc_6455() -> None:
    assert text_frame_header(5) == b"\x81\x05"
    assert text_frame_header(125) == b"\x81\x7d"
    assert text_frame_header(126) == b"\x81\x7e\x00\x7e"
    assert text_frame_header(65535) == b"\x81\x7e\xff\xff"
    assert text_frame_header(65536) == b"\x81\x7f" + (65536).to_bytes(8, "big")


# --- over WebSockets -------------------------------------------------------------------------


def connections(gw: RunningGateway, name: str) -> Iterator[WsConnection]:
    adapter: Any = gw.supervisor.adapters[name]
    return iter(adapter.websockets.values())


async def test_events_reach_every_subscriber_once_in_order_between_answers() -> None:
    doc = sandbox_config(websocketServers=[ws_entry("ws", heartInterval=0)])
    async with (
        run_gateway(doc) as gw,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
    ):
        sockets = [await http.ws_connect(ws_url(gw, "ws"), compress=0) for _ in range(20)]
        for ws in sockets:
            await lifecycle_of(ws)
        assert all(
            c.subscription is not None and c.subscription.attached for c in connections(gw, "ws")
        )
        caller = sockets[0]
        for burst in range(10):
            await caller.send_json({"action": "get_status", "echo": burst})
            for seq in range(burst * 5, burst * 5 + 5):
                gw.supervisor.bus.publish(message_event(seq))
            await asyncio.sleep(0)
        for ws in sockets:
            got = [await receive_json(ws) for _ in range(50 if ws is not caller else 60)]
            events = [e["message_id"] for e in got if "post_type" in e]
            assert events == list(range(50))
            if ws is caller:
                assert sorted(e["echo"] for e in got if "retcode" in e) == list(range(10))
        for ws in sockets:
            await ws.close()


async def slow_reader(port: int) -> RawWebSocket:
    """A raw client on `/` with a tiny receive buffer, so the server's writes back up as soon
    as it stops reading."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101")
    return RawWebSocket(reader, writer)


async def test_a_subscriber_that_stops_reading_gets_every_event_in_order_once_it_reads() -> None:
    doc = sandbox_config(websocketServers=[ws_entry("ws", heartInterval=0)])
    async with run_gateway(doc) as gw:
        client = await slow_reader(gw.supervisor.adapters["ws"].port)
        lifecycle = await client.read_message()
        assert lifecycle is not None
        assert orjson.loads(lifecycle.payload)["meta_event_type"] == "lifecycle"
        (connection,) = connections(gw, "ws")
        subscription = connection.subscription
        assert subscription is not None
        assert subscription.attached
        big = "x" * 16384
        count = 600  # ~10 MB: more than the socket buffers hold, less than the queue (1024)
        for seq in range(count):
            gw.supervisor.bus.publish(message_event(seq, raw_message=big))
            await asyncio.sleep(0)
        assert len(subscription) > 0  # the socket pushed back: frames wait in the queue
        got = []
        for _ in range(count):
            message = await asyncio.wait_for(client.read_message(), 10)
            assert message is not None
            assert message.opcode == TEXT
            got.append(orjson.loads(message.payload)["message_id"])
        assert got == list(range(count))
        assert subscription.dropped == 0
        await client.close()


async def test_permessage_deflate_is_not_negotiated_and_events_take_the_direct_path() -> None:
    doc = sandbox_config(httpServers=[http_entry("h", enableWebsocket=True, heartInterval=0)])
    async with (
        run_gateway(doc) as gw,
        aiohttp.ClientSession() as http,
        http.ws_connect(ws_url(gw, "h"), compress=15) as ws,
    ):
        assert ws.compress == 0  # offered (aiohttp's default), not accepted
        await lifecycle_of(ws)
        (connection,) = connections(gw, "h")
        assert connection.subscription is not None
        assert connection.subscription.attached
        gw.supervisor.bus.publish(message_event(1))
        message = await ws.receive(timeout=5)
        assert message.type == aiohttp.WSMsgType.TEXT
        assert orjson.loads(message.data)["message_id"] == 1


async def test_answers_of_calls_that_finish_together_go_out_in_one_write(
    monkeypatch: Any,
) -> None:
    """Eight calls arriving in one segment are answered in one write: a system call per answer
    was the largest cost of a short call. (The write is observed by wrapping the connection's
    writer, which still writes.)"""
    writes: list[int] = []
    original = WsConnection.write

    def counting(self: WsConnection, frames: list[bytes]) -> None:
        writes.append(len(frames))
        original(self, frames)

    monkeypatch.setattr(WsConnection, "write", counting)
    doc = sandbox_config(websocketServers=[ws_entry("ws", heartInterval=0)])
    async with run_gateway(doc) as gw:
        client = await RawWebSocket.connect(gw.supervisor.adapters["ws"].port, "/api")
        calls = [orjson.dumps({"action": "get_login_info", "echo": n}) for n in range(8)]
        await client.send(*(frame(TEXT, call) for call in calls))
        echoes = []
        for _ in calls:
            message = await asyncio.wait_for(client.read_message(), 10)
            assert message is not None
            answer = orjson.loads(message.payload)
            assert answer["retcode"] == 0
            echoes.append(answer["echo"])
        assert sorted(echoes) == list(range(8))
        assert writes == [8]
        await client.close()
