"""Relay faults against a scripted upstream: whatever upstream sends or fails to send, the relay
survives, recovers and shuts down cleanly.

Each case runs `python -m gateway` with the relay backend in a subprocess, in front of a fake
upstream on a loopback port of this test's event loop, with two downstream `/event` subscribers
(array and string format). It injects one fault, then checks that the relay recovered (a later
call succeeds, both subscribers get a later good event, `/readyz` is 200), that a refused frame
was counted in `onebot_events_rejected_total{reason}`, and that SIGTERM ends the process with
exit code 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from gateway.backends.relay import MAX_FRAME
from tests.conftest import GatewayProcess, free_port

SELF_ID = 424242
TOKEN = "up-secret"
DEADLINE = 20.0
"""Seconds a step may take before the test fails instead of hanging (not a performance bound)."""

Socket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse
Reply = Callable[[dict[str, Any]], str]
StartProcess = Callable[[dict[str, Any]], GatewayProcess]


# --- the fake upstream ---------------------------------------------------------------------------


@dataclass
class Upstream:
    """A scripted OneBot peer: records the relay's calls and answers them, unless told to stay
    silent, to answer with a raw text, or to drop the connection when an action arrives."""

    frames: list[dict[str, Any]] = field(default_factory=list)
    sockets: list[Socket] = field(default_factory=list)
    silent: set[str] = field(default_factory=set)
    replies: dict[str, Reply] = field(default_factory=dict)
    drop_on: dict[str, Literal["abort", "close"]] = field(default_factory=dict)
    """`abort`: the TCP connection vanishes (no close frame); `close`: a close frame, 1011."""
    login_data: Any = field(default_factory=lambda: {"user_id": SELF_ID, "nickname": "up"})
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve(self, ws: Socket, abort: Callable[[], None]) -> None:
        """Answer one connection's calls until it closes."""
        self.sockets.append(ws)
        self._wake()
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(message.data)
            self.frames.append(frame)
            self._wake()
            action = frame["action"]
            if action in self.silent:
                continue
            drop = self.drop_on.pop(action, None)
            if drop == "abort":
                abort()
                return
            if drop == "close":
                await ws.close(code=aiohttp.WSCloseCode.INTERNAL_ERROR)
                return
            if action in self.replies:
                await ws.send_str(self.replies[action](frame))
                continue
            data = self.login_data if action == "get_login_info" else {"action": action}
            await ws.send_json({"status": "ok", "retcode": 0, "data": data, "echo": frame["echo"]})

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(DEADLINE):
            while not condition():
                await self._changed.wait()

    async def wait_connections(self, count: int) -> None:
        await self.wait_for(lambda: len(self.sockets) >= count)

    async def send(self, *frames: str | bytes | dict[str, Any]) -> None:
        """Frames on the newest connection, in order: bytes as binary frames, str as text
        frames exactly as given, anything else as JSON text."""
        ws = self.sockets[-1]
        for frame in frames:
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            elif isinstance(frame, str):
                await ws.send_str(frame)
            else:
                await ws.send_json(frame)


@contextlib.asynccontextmanager
async def forward_upstream(upstream: Upstream) -> AsyncIterator[str]:
    """The upstream as a WebSocket server the relay dials; yields its URL."""

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        transport = request.transport
        assert transport is not None
        await upstream.serve(ws, transport.abort)
        return ws

    app = web.Application()
    app.router.add_get("/", handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"ws://127.0.0.1:{runner.addresses[0][1]}/"
    finally:
        for ws in upstream.sockets:
            await ws.close()
        await runner.cleanup()


@contextlib.asynccontextmanager
async def reverse_upstream(upstream: Upstream, port: int) -> AsyncIterator[None]:
    """The upstream as a reverse WebSocket client of the relay, redialling when dropped."""

    async def dial_forever(http: aiohttp.ClientSession) -> None:
        while True:
            try:
                ws = await http.ws_connect(
                    f"ws://127.0.0.1:{port}/",
                    headers={"Authorization": f"Bearer {TOKEN}", "X-Self-ID": str(SELF_ID)},
                    max_msg_size=0,
                )
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
                continue
            # Fault injection needs the transport, which the client API does not expose.
            transport: Any = ws._writer.transport
            await upstream.serve(ws, transport.abort)
            await ws.close()

    async with aiohttp.ClientSession() as http:
        task = asyncio.create_task(dial_forever(http))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def good_event(n: int) -> dict[str, Any]:
    return {
        "time": 1700000000 + n,
        "self_id": SELF_ID,
        "post_type": "message",
        "message_type": "private",
        "sub_type": "friend",
        "message_id": n,
        "user_id": 5,
        "font": 14,
        "sender": {"user_id": 5, "nickname": "u"},
        "message": [{"type": "text", "data": {"text": f"good {n}"}}],
        "message_format": "array",
        "raw_message": f"good {n}",
    }


def weird_message(n: int, segment: Any) -> dict[str, Any]:
    """A message event whose one segment has no CQ spelling, without `raw_message`."""
    event = good_event(n)
    del event["raw_message"]
    return {**event, "message": [segment]}


# --- the relay under test --------------------------------------------------------------------


@dataclass
class Relay:
    """A relay gateway subprocess, its two downstream subscribers and an HTTP client."""

    process: GatewayProcess
    http: aiohttp.ClientSession
    ports: dict[str, int]
    subscribers: dict[str, aiohttp.ClientWebSocketResponse] = field(default_factory=dict)

    async def call(self, action: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.ports['api']}/{action}"
        async with self.http.post(url, json=params or {}) as response:
            assert response.status == 200
            answer: dict[str, Any] = await response.json()
            return answer

    async def call_until_ok(self, action: str = "get_status") -> None:
        """Calls until one succeeds (the relay may still be dialling)."""
        for _ in range(400):
            answer = await self.call(action)
            if answer["retcode"] == 0:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{action} still fails: {answer}")

    async def subscribe(self, name: str) -> aiohttp.ClientWebSocketResponse:
        """A new `/event` connection to the `array` or `string` entry, past its lifecycle
        event (which names the relay's account)."""
        ws = await self.http.ws_connect(f"ws://127.0.0.1:{self.ports[name]}/event")
        lifecycle = await ws.receive_json(timeout=DEADLINE)
        assert (lifecycle["meta_event_type"], lifecycle["self_id"]) == ("lifecycle", SELF_ID)
        return ws

    async def events_until(self, name: str, n: int) -> list[dict[str, Any]]:
        """What subscriber `name` receives up to and including the message with id `n`."""
        events = []
        while True:
            event = await self.subscribers[name].receive_json(timeout=DEADLINE)
            events.append(event)
            if event.get("post_type") == "message" and event.get("message_id") == n:
                return events

    async def rejected(self) -> dict[str, float]:
        """`onebot_events_rejected_total` per reason."""
        url = f"http://127.0.0.1:{self.ports['admin']}/metrics"
        async with self.http.get(url) as response:
            text = await response.text()
        return {
            sample.labels["reason"]: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "onebot_events_rejected_total"
        }

    async def readyz(self) -> int:
        async with self.http.get(f"http://127.0.0.1:{self.ports['admin']}/readyz") as response:
            return response.status

    async def terminate(self) -> int:
        """SIGTERM; the exit code."""
        return await asyncio.to_thread(self.process.terminate)


def relay_document(backend: dict[str, Any], ports: dict[str, int]) -> dict[str, Any]:
    ws = {"enable": True, "host": "127.0.0.1", "heartInterval": 0}
    return {
        "network": {
            "httpServers": [{"name": "api", "enable": True, "port": ports["api"]}],
            "websocketServers": [
                {"name": "array", "port": ports["array"], **ws},
                {"name": "string", "port": ports["string"], "messagePostFormat": "string", **ws},
            ],
        },
        "backend": {
            "type": "relay",
            "reconnectInterval": 50,
            "reconnectMaxInterval": 200,
            "connectTimeout": 5000,
            "callTimeout": 60000,
            "dedupeWindowMs": 5000,
            **backend,
        },
        "admin": {"port": ports["admin"]},
    }


@contextlib.asynccontextmanager
async def running_relay(
    gateway_process: StartProcess, backend: dict[str, Any], upstream: Upstream
) -> AsyncIterator[Relay]:
    """A relay subprocess in front of `upstream` (forward mode unless `backend` says reverse),
    up, answering, and with both subscribers connected."""
    ports = {name: free_port() for name in ("api", "array", "string", "admin", "relay")}
    async with contextlib.AsyncExitStack() as stack:
        reverse = backend.get("mode") == "reverse"
        if reverse:
            backend = {"port": ports["relay"], "token": TOKEN, "connectTimeout": 0, **backend}
        else:
            backend = {
                "url": await stack.enter_async_context(forward_upstream(upstream)),
                **backend,
            }
        process = gateway_process(relay_document(backend, ports))
        # In a thread: the fake upstream runs on this event loop and must answer meanwhile.
        await asyncio.to_thread(process.wait_for, "gateway_ready")
        # Every key of these documents is honoured, so none may be logged as ignored.
        assert not [line for line in process.lines if line["event"] == "config_key_ignored"]
        if reverse:
            await stack.enter_async_context(reverse_upstream(upstream, ports["relay"]))
        http = await stack.enter_async_context(aiohttp.ClientSession())
        relay = Relay(process, http, ports)
        await relay.call_until_ok()
        for name in ("array", "string"):
            relay.subscribers[name] = await relay.subscribe(name)
        yield relay
        for ws in relay.subscribers.values():
            await ws.close()


async def recovered(relay: Relay, up: Upstream, n: int) -> dict[str, list[dict[str, Any]]]:
    """Checks that the relay works again: a call succeeds, both subscribers get a good event
    pushed now, `/readyz` is 200. Returns what each subscriber received up to that event."""
    await relay.call_until_ok()
    await up.send(good_event(n))
    received = {name: await relay.events_until(name, n) for name in ("array", "string")}
    for events in received.values():
        assert events[-1]["raw_message"] == f"good {n}"
    assert await relay.readyz() == 200
    return received


def only_good(received: dict[str, list[dict[str, Any]]]) -> bool:
    """Nothing but the good event reached either subscriber."""
    return all(len(events) == 1 for events in received.values())


# --- faults ------------------------------------------------------------------------------------

Fault = Callable[[Relay, Upstream], Awaitable[None]]


async def garbage_frames(relay: Relay, up: Upstream) -> None:
    await up.send("this is not json {", b"\xff\xfe\x00 not utf-8, not json", "", "{'a': }")
    assert only_good(await recovered(relay, up, 1))
    assert await relay.rejected() == {"upstream_undecodable": 4}


async def non_object_frames(relay: Relay, up: Upstream) -> None:
    await up.send("[1, 2]", "42", '"text"', "null", "true", b"[]")
    assert only_good(await recovered(relay, up, 1))
    assert await relay.rejected() == {"upstream_not_object": 6}


async def answers_nobody_waits_for(relay: Relay, up: Upstream) -> None:
    await up.send(
        {"status": "ok", "retcode": 0, "data": None, "echo": "nobody"},
        {"status": "ok", "retcode": 0, "data": None},
        {"status": "ok", "retcode": 0, "data": None, "echo": {"not": "a string"}},
        {"status": "ok", "retcode": 0, "data": None, "echo": "gw-999999"},
    )
    assert only_good(await recovered(relay, up, 1))
    assert await relay.rejected() == {"upstream_unknown_echo": 4}


async def lone_surrogate_event(relay: Relay, up: Upstream) -> None:
    # Valid JSON text (an escape) that no UTF-8 string can hold: refused, by the parser
    # (upstream_undecodable) or, should one let it through, by the bus (unencodable).
    await up.send('{"post_type": "notice", "notice_type": "poison", "text": "\\ud800", "time": 2}')
    assert only_good(await recovered(relay, up, 1))
    rejected = await relay.rejected()
    assert sum(rejected.values()) == 1
    assert set(rejected) <= {"upstream_undecodable", "unencodable"}


async def segments_without_cq_form(relay: Relay, up: Upstream) -> None:
    weird = [
        {"type": "te xt", "data": {}},
        {"type": 7, "data": {}},
        {"type": "face", "data": ["not an object"]},
        {"type": "face", "data": {"bad key": 1}},
        "not a segment",
    ]
    await up.send(*(weird_message(10 + i, segment) for i, segment in enumerate(weird)))
    received = await recovered(relay, up, 1)
    # The array form carries them as they are; the string form has no spelling for them.
    assert [e["message"] for e in received["array"][:-1]] == [[s] for s in weird]
    assert len(received["string"]) == 1
    assert await relay.rejected() == {"no_cq_form": len(weird)}


async def odd_but_encodable_events(relay: Relay, up: Upstream) -> None:
    # Ids that cannot be dedupe keys, self_ids that are no account number, a CQ string that
    # does not parse as codes: delivered as they are; the relay's account stays the same.
    odd = [
        {"post_type": "notice", "notice_type": "odd", "message_id": [1], "time": {"t": 1}},
        {"post_type": "notice", "notice_type": "odd", "flag": {"f": 1}, "self_id": True},
        {"post_type": "notice", "notice_type": "odd", "self_id": "²"},
        {"post_type": "notice", "notice_type": "odd", "self_id": -5},
        {"post_type": "notice", "notice_type": "odd", "self_id": "9" * 5000},
        {**good_event(20), "message": "[CQ:te xt,a=b]x[CQ:", "raw_message": None},
        {"post_type": 5},
    ]
    await up.send(*odd)
    received = await recovered(relay, up, 1)
    assert len(received["array"]) == len(odd) + 1
    late = await relay.subscribe("array")  # its lifecycle event names the account
    await late.close()
    assert await relay.rejected() == {}


async def upstream_meta_events_stay_upstream(relay: Relay, up: Upstream) -> None:
    # Upstream's heartbeats feed readiness only through a boolean `status.online`.
    await up.send(
        {"post_type": "meta_event", "meta_event_type": "heartbeat", "status": "not an object"},
        {"post_type": "meta_event", "meta_event_type": "heartbeat", "status": {"online": []}},
    )
    assert only_good(await recovered(relay, up, 1))


async def self_id_beyond_64_bits(relay: Relay, up: Upstream) -> None:
    # Parsed as a float, or refused as unrepresentable: either way never adopted as the account
    # (a late subscriber's lifecycle event still names SELF_ID), and the relay goes on.
    await up.send(f'{{"post_type": "notice", "notice_type": "big", "self_id": {2**70}}}')
    received = await recovered(relay, up, 1)
    late = await relay.subscribe("array")
    await late.close()
    refused = sum((await relay.rejected()).values())
    assert refused + len(received["array"]) - 1 == 1


async def huge_frame(relay: Relay, up: Upstream) -> None:
    # Over the relay's frame limit: the relay closes that connection (1009) and dials again.
    with contextlib.suppress(ConnectionError):
        await up.send("[" + " " * MAX_FRAME + "]")
    await up.wait_connections(2)
    assert only_good(await recovered(relay, up, 1))
    assert await relay.rejected() == {"upstream_frame_too_large": 1}


async def silence(relay: Relay, up: Upstream) -> None:
    up.silent.add("get_status")
    answer = await relay.call("get_status")
    assert answer["retcode"] == 1200
    assert "did not answer get_status within 300 ms" in answer["message"]
    up.silent.clear()
    assert only_good(await recovered(relay, up, 1))


async def dropped_mid_call(relay: Relay, up: Upstream) -> None:
    # callTimeout is 60 s: an answer that names the closed connection came at once, not then.
    up.drop_on["get_status"] = "abort"
    answer = await relay.call("get_status")
    assert answer["retcode"] == 1200
    assert "connection closed" in answer["message"], answer
    await up.wait_connections(2)
    assert only_good(await recovered(relay, up, 1))


async def closed_mid_call(relay: Relay, up: Upstream) -> None:
    up.drop_on["get_status"] = "close"
    answer = await relay.call("get_status")
    assert answer["retcode"] == 1200
    assert "connection closed" in answer["message"], answer
    await up.wait_connections(2)
    assert only_good(await recovered(relay, up, 1))


async def answer_that_does_not_parse(relay: Relay, up: Upstream) -> None:
    # It still names its call, which fails at once instead of waiting out callTimeout (60 s).
    up.replies["get_status"] = lambda f: '{"status": "ok", "echo": "' + f["echo"] + '", "data": ['
    answer = await relay.call("get_status")
    assert answer["retcode"] == 1200 and "not valid JSON" in answer["message"], answer
    del up.replies["get_status"]
    assert only_good(await recovered(relay, up, 1))
    assert await relay.rejected() == {"upstream_undecodable": 1}


async def answers_with_odd_envelopes(relay: Relay, up: Upstream) -> None:
    # Failed answers whose retcode is no usable code: the call fails with 1200, nothing else.
    retcodes = ['"abc"', "null", "0", "1", str(2**40), "[1]", "true", "1.5", "{}"]

    def odd(frame: dict[str, Any]) -> str:
        retcode = retcodes[frame["params"]["case"]]
        return f'{{"status": "failed", "retcode": {retcode}, "echo": "{frame["echo"]}"}}'

    up.replies["odd_action"] = odd
    for case, retcode in enumerate(retcodes):
        answer = await relay.call("odd_action", {"case": case})
        assert (answer["status"], answer["retcode"]) == ("failed", 1200), (retcode, answer)
    up.replies["odd_action"] = lambda f: f'{{"status": "failed", "echo": "{f["echo"]}"}}'
    answer = await relay.call("odd_action")
    assert (answer["status"], answer["retcode"]) == ("failed", 1200), answer
    assert only_good(await recovered(relay, up, 1))
    assert await relay.rejected() == {}


FORWARD: dict[str, tuple[Fault, dict[str, Any]]] = {
    "garbage-frames": (garbage_frames, {}),
    "non-object-frames": (non_object_frames, {}),
    "unknown-or-missing-echo": (answers_nobody_waits_for, {}),
    "lone-surrogate-event": (lone_surrogate_event, {}),
    "segments-without-cq-form": (segments_without_cq_form, {}),
    "odd-but-encodable-events": (odd_but_encodable_events, {}),
    "odd-upstream-meta-events": (upstream_meta_events_stay_upstream, {}),
    "self-id-beyond-64-bits": (self_id_beyond_64_bits, {}),
    "huge-frame": (huge_frame, {}),
    "silence": (silence, {"callTimeout": 300}),
    "dropped-mid-call": (dropped_mid_call, {}),
    "closed-mid-call": (closed_mid_call, {}),
    "answer-that-does-not-parse": (answer_that_does_not_parse, {}),
    "odd-answer-envelopes": (answers_with_odd_envelopes, {}),
}


@pytest.mark.parametrize("case", list(FORWARD))
async def test_forward_relay_survives_recovers_and_exits_cleanly(
    case: str, gateway_process: StartProcess
) -> None:
    fault, backend = FORWARD[case]
    upstream = Upstream()
    async with running_relay(gateway_process, backend, upstream) as relay:
        await fault(relay, upstream)
        code = await relay.terminate()
    assert code == 0, relay.process.lines[-5:]


@pytest.mark.parametrize("login_data", [["not", "an", "object"], {"user_id": "²"}, None])
async def test_unusable_login_info_keeps_the_configured_self_id(
    login_data: Any, gateway_process: StartProcess
) -> None:
    upstream = Upstream(login_data=login_data)
    async with running_relay(gateway_process, {"selfId": SELF_ID}, upstream) as relay:
        assert only_good(await recovered(relay, upstream, 1))
        assert await relay.terminate() == 0


REVERSE: dict[str, Fault] = {
    "garbage-frames": garbage_frames,
    "non-object-frames": non_object_frames,
    "unknown-or-missing-echo": answers_nobody_waits_for,
    "lone-surrogate-event": lone_surrogate_event,
    "segments-without-cq-form": segments_without_cq_form,
    "huge-frame": huge_frame,
    "dropped-mid-call": dropped_mid_call,
    "closed-mid-call": closed_mid_call,
}


@pytest.mark.parametrize("case", list(REVERSE))
async def test_reverse_relay_survives_recovers_and_exits_cleanly(
    case: str, gateway_process: StartProcess
) -> None:
    upstream = Upstream()
    async with running_relay(gateway_process, {"mode": "reverse"}, upstream) as relay:
        await REVERSE[case](relay, upstream)
        code = await relay.terminate()
    assert code == 0, relay.process.lines[-5:]


async def raw_upgrade(port: int, headers: bytes) -> bytes:
    """The status line answering a WebSocket upgrade sent with exactly these header bytes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        + headers
        + b"\r\n"
    )
    await writer.drain()
    async with asyncio.timeout(DEADLINE):
        status = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return status


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (b"Authorization: Bearer \xff\xfe\xc3\x28\r\nX-Self-ID: 424242\r\n", b"403"),
        (b"Authorization: Bearer up-secret\r\nX-Self-ID: \xc2\xb2\r\n", b"400"),
        (b"Authorization: Bearer up-secret\r\nX-Self-ID: " + b"9" * 5000 + b"\r\n", b"400"),
        (b"Authorization: Bearer up-secret\r\nX-Self-ID: 99999999999999999999\r\n", b"400"),
    ],
    ids=["non-utf8-token", "superscript-self-id", "5000-digit-self-id", "self-id-over-int64"],
)
async def test_reverse_relay_refuses_odd_handshakes_plainly(
    headers: bytes, status: bytes, gateway_process: StartProcess
) -> None:
    upstream = Upstream()
    async with running_relay(gateway_process, {"mode": "reverse"}, upstream) as relay:
        line = await raw_upgrade(relay.ports["relay"], headers)
        assert line.split(b" ")[1] == status, line
        assert only_good(await recovered(relay, upstream, 1))
        assert await relay.terminate() == 0
