# ruff: noqa: ASYNC109, ASYNC110 - a load tool: deadlines as arguments, polling by design
"""Load clients for `bench/run.py`: WebSocket API calls, fan-out subscribers, idle connections.

One process on uvloop, run pinned to the load CPU. The WebSocket client is a small asyncio
protocol (handshake, unmasked server frames, zero-masked client frames, no extensions), so the
client spends as little CPU per frame as possible and the server stays the bottleneck. Each
command prints one JSON object on stdout.

    load.py wsapi  --port P --pid SERVER_PID --connections 8 --inflight 8 --seconds 10 \
                   [--action send_private_msg --params '{"user_id":20001,"message":"bench"}']
    load.py fanout --port P --pid SERVER_PID --http-port H --subscribers 100 --count 5000 \
                   --rate 500 --run ID [--path /10001/ --self-id 10001]
    load.py rfanout --listen B --pid SERVER_PID --http-port H --count 5000 --run ID \
                    [--self-id 10001]     # a reverse-WebSocket bot the gateway connects to
    load.py idle   --port P --pid SERVER_PID --steps 1000,10000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import math
import os
import resource
import sys
import time
from array import array
from collections.abc import Callable
from typing import Any, cast

import orjson
import uvloop

HOST = "127.0.0.1"
ZERO_MASK = b"\x00\x00\x00\x00"  # a valid masking key; XOR with it leaves the payload as is


def percentile(sorted_values: Any, fraction: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (0 when empty)."""
    if not len(sorted_values):
        return 0.0
    index = min(len(sorted_values) - 1, max(0, math.ceil(fraction * len(sorted_values)) - 1))
    return float(sorted_values[index])


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def client_frame(payload: bytes) -> bytes:
    """A masked (with a zero key) FIN text frame."""
    n = len(payload)
    if n < 126:
        header = bytes((0x81, 0x80 | n))
    elif n < 65536:
        header = bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x81, 0x80 | 127)) + n.to_bytes(8, "big")
    return header + ZERO_MASK + payload


class WsClient(asyncio.Protocol):
    """A minimal WebSocket client; `on_frame(payload, received_ns)` for every data frame."""

    def __init__(self, path: str, on_frame: Callable[[bytes, int], None]) -> None:
        self.path = path
        self.on_frame = on_frame
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.frames = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buffer[: buffer.find(b"\r\n")])
            if b" 101 " not in status:
                self._fail(f"upgrade refused: {status.decode(errors='replace')}")
                return
            del buffer[: end + 4]
            self.upgraded = True
            self.ready.set_result(None)
        offset, size = 0, len(buffer)
        while size - offset >= 2:
            first, second = buffer[offset], buffer[offset + 1]
            length, header = second & 0x7F, 2
            if length == 126:
                if size - offset < 4:
                    break
                length, header = int.from_bytes(buffer[offset + 2 : offset + 4], "big"), 4
            elif length == 127:
                if size - offset < 10:
                    break
                length, header = int.from_bytes(buffer[offset + 2 : offset + 10], "big"), 10
            end = offset + header + length
            if end > size:
                break
            opcode = first & 0x0F
            if opcode in (1, 2):
                self.frames += 1
                self.on_frame(bytes(buffer[offset + header : end]), now)
            elif opcode == 9 and self.transport is not None:  # ping → pong
                payload = bytes(buffer[offset + header : end])
                self.transport.write(bytes((0x8A, 0x80 | len(payload))) + ZERO_MASK + payload)
            elif opcode == 8 and self.transport is not None:
                self.transport.close()
            offset = end
        if offset:
            del buffer[:offset]

    def send(self, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(client_frame(payload))

    def _fail(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before the upgrade: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(bytes((0x88, 0x82)) + ZERO_MASK + (1000).to_bytes(2, "big"))
            self.transport.close()


async def connect(
    port: int, path: str, on_frame: Callable[[bytes, int], None], timeout: float = 30.0
) -> WsClient:
    loop = asyncio.get_running_loop()
    _, client = await asyncio.wait_for(
        loop.create_connection(lambda: WsClient(path, on_frame), HOST, port), timeout
    )
    await asyncio.wait_for(client.ready, timeout)
    return client


async def connect_many(
    n: int, port: int, path: str, on_frame: Callable[[int], Callable[[bytes, int], None]]
) -> list[WsClient]:
    """`n` connections, at most 100 handshakes at a time; `on_frame(i)` makes each callback."""
    gate = asyncio.Semaphore(100)

    async def one(i: int) -> WsClient:
        async with gate:
            return await connect(port, path, on_frame(i))

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def http_post(port: int, action: str, params: dict[str, Any]) -> dict[str, Any]:
    """One POST over a fresh connection (`Connection: close`); the parsed envelope."""
    body = orjson.dumps(params)
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(
        f"POST /{action} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    envelope: dict[str, Any] = orjson.loads(raw.split(b"\r\n\r\n", 1)[1])
    return envelope


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def server_cpu(pids: str) -> float:
    """utime + stime of the server processes (`PID[,PID…]`, all threads), in seconds: a
    cluster's figures add up its nodes and its nats-server."""
    total = 0
    for pid in pids.split(","):
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


# --- wsapi ---------------------------------------------------------------------------------------


async def wsapi(args: argparse.Namespace) -> dict[str, Any]:
    """`connections` sockets on /api, each keeping `inflight` calls outstanding, for a while.

    Every call is `action` with `params`; a reply whose retcode is not 0 counts in `failed`."""
    request = b'{"action":"%s","params":%s,"echo":%d}'
    params = orjson.dumps(orjson.loads(args.params))
    latencies = array("q")
    state = {"measuring": False, "sending": True, "done": 0, "failed": 0}
    sent_at: list[dict[int, int]] = [{} for _ in range(args.connections)]
    clients: list[WsClient] = []
    action = args.action.encode()
    counter = iter(range(1, 1 << 62))

    def on_frame_for(i: int) -> Callable[[bytes, int], None]:
        pending = sent_at[i]

        def on_frame(payload: bytes, now: int) -> None:
            reply = orjson.loads(payload)
            started = pending.pop(reply["echo"], None)
            if started is None:
                return
            if reply["retcode"] != 0:
                state["failed"] += 1
            if state["measuring"]:
                latencies.append(time.perf_counter_ns() - started)
                state["done"] += 1
            if state["sending"]:
                send(i)

        return on_frame

    def send(i: int) -> None:
        echo = next(counter)
        sent_at[i][echo] = time.perf_counter_ns()
        clients[i].send(request % (action, params, echo))

    clients.extend(await connect_many(args.connections, args.port, "/api", on_frame_for))
    for i in range(args.connections):
        for _ in range(args.inflight):
            send(i)
    await asyncio.sleep(args.warmup)
    cpu0, server0 = cpu_seconds(), server_cpu(args.pid)
    state["measuring"] = True
    started = time.perf_counter()
    await asyncio.sleep(args.seconds)
    state["measuring"] = False
    elapsed = time.perf_counter() - started
    cpu, server = cpu_seconds() - cpu0, server_cpu(args.pid) - server0
    state["sending"] = False
    deadline = time.monotonic() + 5
    while any(sent_at) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    for client in clients:
        client.close()
    ordered = sorted(latencies)
    return {
        "actions": state["done"],
        "seconds": elapsed,
        "actions_per_s": state["done"] / elapsed,
        "p50_ms": percentile(ordered, 0.50) / 1e6,
        "p99_ms": percentile(ordered, 0.99) / 1e6,
        "failed": state["failed"],
        "server_cpu_us": 1e6 * server / max(state["done"], 1),
        "client_cpu_pct": 100 * cpu / elapsed,
    }


# --- fanout --------------------------------------------------------------------------------------


async def fanout(args: argparse.Namespace) -> dict[str, Any]:
    """`subscribers` sockets on /; one emitted run; delivery latency from bench_emitted_ns."""
    marker = b'"bench_run"'
    tag = b'"bench_run":"%s"' % args.run.encode()
    warm_tag = b'"bench_run":"%s-warm"' % args.run.encode()
    latencies = array("q")
    received = [0] * args.subscribers
    last_seq = [-1] * args.subscribers
    state = {"out_of_order": 0, "warm": 0, "first_emitted": 0, "last_received": 0, "last": 0.0}

    def on_frame_for(i: int) -> Callable[[bytes, int], None]:
        def on_frame(payload: bytes, now: int) -> None:
            if marker not in payload:
                return
            if tag in payload:
                event = orjson.loads(payload)
                emitted = event["bench_emitted_ns"]
                latencies.append(now - emitted)
                received[i] += 1
                seq = event["bench_seq"]
                if seq <= last_seq[i]:
                    state["out_of_order"] += 1
                last_seq[i] = seq
                if seq == 0 and (not state["first_emitted"] or emitted < state["first_emitted"]):
                    state["first_emitted"] = emitted
                state["last_received"] = max(state["last_received"], now)
                state["last"] = time.monotonic()
            elif warm_tag in payload:
                state["warm"] += 1

        return on_frame

    if args.bound_from:
        # Subscriber i bound to account `bound_from + i`: only the first gets the events.
        receivers = 1
        clients = list(
            await asyncio.gather(
                *(
                    connect(args.port, f"/{args.bound_from + i}/", on_frame_for(i))
                    for i in range(args.subscribers)
                )
            )
        )
    else:
        receivers = args.subscribers
        clients = await connect_many(args.subscribers, args.port, args.path, on_frame_for)
    # On a gateway with several accounts the emitting account is named by path.
    emit = f"{args.self_id}/sandbox_emit_bench" if args.self_id else "sandbox_emit_bench"
    # Warm-up: a few events to every subscriber, so first-use costs stay out of the figures.
    warm = 20
    reply = await http_post(
        args.http_port, emit, {"count": warm, "rate": 0, "run": f"{args.run}-warm"}
    )
    assert reply["retcode"] == 0, reply
    deadline = time.monotonic() + 30
    while state["warm"] < warm * receivers and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.5)
    expected = args.count * receivers
    cpu0, server0 = cpu_seconds(), server_cpu(args.pid)
    started = time.monotonic()
    reply = await http_post(
        args.http_port,
        emit,
        {"count": args.count, "rate": args.rate, "run": args.run},
    )
    assert reply["retcode"] == 0, reply
    planned = args.count / args.rate if args.rate else 0.0
    hard_deadline = started + planned + args.timeout
    state["last"] = time.monotonic()
    while sum(received) < expected:
        now = time.monotonic()
        quiet = now - state["last"] > args.quiet and now > started + planned
        if quiet or now > hard_deadline:
            break
        await asyncio.sleep(0.02)
    cpu, server = cpu_seconds() - cpu0, server_cpu(args.pid) - server0
    wall = time.monotonic() - started
    for client in clients:
        client.close()
    delivered = sum(received)
    span_ns = max(1, state["last_received"] - state["first_emitted"])
    ordered = sorted(latencies)
    return {
        "subscribers": args.subscribers,
        "events": args.count,
        "rate": args.rate,
        "delivered": delivered,
        "lost": expected - delivered,
        "out_of_order": state["out_of_order"],
        "delivered_per_s": delivered / (span_ns / 1e9),
        "p50_ms": percentile(ordered, 0.50) / 1e6,
        "p99_ms": percentile(ordered, 0.99) / 1e6,
        "max_ms": (ordered[-1] / 1e6) if ordered else 0.0,
        "server_cpu_us": 1e6 * server / max(delivered, 1),
        "client_cpu_pct": 100 * cpu / max(wall, 1e-9),
    }


# --- reverse fan-out ------------------------------------------------------------------------------


async def rfanout(args: argparse.Namespace) -> dict[str, Any]:
    """A reverse-WebSocket bot: listens on `--listen`, takes the gateway's connections, then asks
    the account's node (`--http-port`) for one emitted run; delivery latency from
    bench_emitted_ns, as `fanout` (one receiver, the frames counted on any connection)."""
    from aiohttp import WSMsgType, web  # only this command needs it

    tag = f'"bench_run":"{args.run}"'
    warm_tag = f'"bench_run":"{args.run}-warm"'
    latencies = array("q")
    state = {"received": 0, "warm": 0, "out_of_order": 0, "connections": 0, "last_seq": -1}
    times = {"first_emitted": 0, "last_received": 0, "last": 0.0}
    connected = asyncio.Event()

    async def bot(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        state["connections"] += 1
        connected.set()
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            now = time.time_ns()
            text = message.data
            if tag in text:
                event = orjson.loads(text)
                emitted = event["bench_emitted_ns"]
                latencies.append(now - emitted)
                state["received"] += 1
                seq = event["bench_seq"]
                if seq <= state["last_seq"]:
                    state["out_of_order"] += 1
                state["last_seq"] = seq
                if seq == 0:
                    times["first_emitted"] = emitted
                times["last_received"] = max(times["last_received"], now)
                times["last"] = time.monotonic()
            elif warm_tag in text:
                state["warm"] += 1
        return ws

    app = web.Application()
    app.router.add_get("/{tail:.*}", bot)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, HOST, args.listen).start()
    try:
        await asyncio.wait_for(connected.wait(), 60)
        emit = f"{args.self_id}/sandbox_emit_bench" if args.self_id else "sandbox_emit_bench"
        warm = 20
        reply = await http_post(
            args.http_port, emit, {"count": warm, "rate": 0, "run": f"{args.run}-warm"}
        )
        assert reply["retcode"] == 0, reply
        deadline = time.monotonic() + 30
        while state["warm"] < warm and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        cpu0, server0 = cpu_seconds(), server_cpu(args.pid)
        started = time.monotonic()
        reply = await http_post(
            args.http_port, emit, {"count": args.count, "rate": args.rate, "run": args.run}
        )
        assert reply["retcode"] == 0, reply
        planned = args.count / args.rate if args.rate else 0.0
        hard_deadline = started + planned + args.timeout
        times["last"] = time.monotonic()
        while state["received"] < args.count:
            now = time.monotonic()
            quiet = now - times["last"] > args.quiet and now > started + planned
            if quiet or now > hard_deadline:
                break
            await asyncio.sleep(0.02)
        cpu, server = cpu_seconds() - cpu0, server_cpu(args.pid) - server0
        wall = time.monotonic() - started
    finally:
        await runner.cleanup()
    delivered = state["received"]
    span_ns = max(1, times["last_received"] - times["first_emitted"])
    ordered = sorted(latencies)
    return {
        "subscribers": 1,
        "connections": state["connections"],
        "events": args.count,
        "rate": args.rate,
        "delivered": delivered,
        "lost": args.count - delivered,
        "out_of_order": state["out_of_order"],
        "delivered_per_s": delivered / (span_ns / 1e9),
        "p50_ms": percentile(ordered, 0.50) / 1e6,
        "p99_ms": percentile(ordered, 0.99) / 1e6,
        "max_ms": (ordered[-1] / 1e6) if ordered else 0.0,
        "server_cpu_us": 1e6 * server / max(delivered, 1),
        "client_cpu_pct": 100 * cpu / max(wall, 1e-9),
    }


# --- idle ----------------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def idle(args: argparse.Namespace) -> dict[str, Any]:
    """Server RSS growth per idle connection on `/`, at each step's total of connections."""
    steps = [int(s) for s in args.steps.split(",")]
    lifecycles = [0]

    def on_frame_for(_: int) -> Callable[[bytes, int], None]:
        def on_frame(payload: bytes, now: int) -> None:
            lifecycles[0] += 1

        return on_frame

    # Warm-up connections, closed again, so lazily built per-server state is not counted.
    warm = await connect_many(100, args.port, "/", on_frame_for)
    await asyncio.sleep(0.5)
    for client in warm:
        client.close()
    await asyncio.sleep(args.settle)
    lifecycles[0] = 0
    before = rss_kib(args.pid)
    clients: list[WsClient] = []
    result: dict[str, Any] = {"rss_before_kib": before}
    for step in steps:
        started = time.monotonic()
        clients += await connect_many(step - len(clients), args.port, "/", on_frame_for)
        deadline = time.monotonic() + 60
        while lifecycles[0] < len(clients) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        connect_s = time.monotonic() - started
        await asyncio.sleep(args.settle)
        after = rss_kib(args.pid)
        result[str(step)] = {
            "connections": len(clients),
            "lifecycles": lifecycles[0],
            "rss_kib": after,
            "bytes_per_connection": (after - before) * 1024 / len(clients),
            "connect_s": connect_s,
        }
    for client in clients:
        client.close()
    await asyncio.sleep(0.2)
    return result


# --- bigbody -------------------------------------------------------------------------------------


async def bigbody(args: argparse.Namespace) -> dict[str, Any]:
    """Bystanders keep calling `get_login_info` (one call at a time on each of `connections`
    keep-alive sockets) while one client sends an invalid JSON5 body of `size` bytes; what the
    bystanders waited before, and while, that body was received and parsed."""
    request = (
        f"POST /get_login_info HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 2\r\n\r\n{{}}"
    ).encode()
    samples: list[tuple[float, float]] = []  # (started, seconds)
    state = {"running": True}

    async def bystander() -> None:
        reader, writer = await asyncio.open_connection(HOST, args.port)
        while state["running"]:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            samples.append((started, time.perf_counter() - started))
        writer.close()

    # Valid JSON until its last bytes: a strict parser scans it all before failing, and so does
    # a JSON5 one.
    pad = b"x" * (args.size - 64)
    body = b'{"echo": "big", "pad": "' + pad + b'", "end": 1,,}'
    tasks = [asyncio.create_task(bystander()) for _ in range(args.connections)]
    await asyncio.sleep(args.warmup)
    reader, writer = await asyncio.open_connection(HOST, args.port)
    started = time.perf_counter()
    writer.write(
        f"POST /get_status HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
    )
    writer.write(body)
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 120)
    ended = time.perf_counter()
    writer.close()
    await asyncio.sleep(args.warmup)
    state["running"] = False
    await asyncio.gather(*tasks)
    answer = orjson.loads(raw.split(b"\r\n\r\n", 1)[1])
    normal = sorted(s for t, s in samples if t + s < started)
    during = sorted(s for t, s in samples if t < ended and t + s > started)
    return {
        "big_ms": 1000 * (ended - started),
        "big_retcode": answer.get("retcode"),
        "normal_p99_ms": 1000 * percentile(normal, 0.99),
        "during_p99_ms": 1000 * percentile(during, 0.99),
        "during_max_ms": 1000 * during[-1] if during else 0.0,
        "during_calls": len(during),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="bench load clients")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("wsapi")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", required=True, help="the server(s), PID[,PID…], for CPU time")
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--inflight", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--warmup", type=float, default=1)
    p.add_argument("--action", default="get_login_info")
    p.add_argument("--params", default="{}", help="the calls' params, a JSON object")
    p = commands.add_parser("fanout")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", required=True, help="the server(s), PID[,PID…], for CPU time")
    p.add_argument("--http-port", type=int, required=True)
    p.add_argument("--subscribers", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--rate", type=float, default=0)
    p.add_argument("--run", required=True)
    p.add_argument("--path", default="/", help="where subscribers connect (/<self_id>/ binds)")
    p.add_argument("--self-id", type=int, default=0, help="the account that emits (0: unnamed)")
    p.add_argument(
        "--bound-from", type=int, default=0, help="subscriber i on /<this + i>/ (one per account)"
    )
    p.add_argument("--quiet", type=float, default=3.0, help="give up after this long silent")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds past the planned end")
    p = commands.add_parser("rfanout")
    p.add_argument("--listen", type=int, required=True, help="the bot's port (reverse WS)")
    p.add_argument("--pid", required=True, help="the server(s), PID[,PID…], for CPU time")
    p.add_argument("--http-port", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--rate", type=float, default=0)
    p.add_argument("--run", required=True)
    p.add_argument("--self-id", type=int, default=0, help="the account that emits (0: unnamed)")
    p.add_argument("--quiet", type=float, default=3.0, help="give up after this long silent")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds past the planned end")
    p = commands.add_parser("idle")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--steps", default="1000,10000")
    p.add_argument("--settle", type=float, default=2.0)
    p = commands.add_parser("bigbody")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--size", type=int, default=64 * 1024 * 1024 - 4096)
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    raise_nofile()
    commands_ = {"wsapi": wsapi, "fanout": fanout, "rfanout": rfanout, "idle": idle}
    command = {**commands_, "bigbody": bigbody}[args.command]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(command(args))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.flush()


if __name__ == "__main__":
    main()
