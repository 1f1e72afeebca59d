"""Events per second from one node's EventPublisher to another node's EntryConsumer through a
real nats-server (JetStream, file storage), each node a process of its own.

    .venv/bin/python bench/cluster_events.py [--count 20000] [--mode persistent|server]

This process is node A: its bus gets `count` private-message events (about 500 bytes each, in
chunks of 500 with a yield between, as a busy account would produce them) and its publisher
publishes them. A child process is node B: its entry's consumer offers them to one
subscription, whose reader acks each frame as it takes it (`persistent`: the AckFrame path of a
reverse WebSocket or HTTP POST bot, a writer that never waits) or that is acked on offer
(`server`: a forward WebSocket entry). Printed: the publish rate (events stored and acknowledged
by JetStream per second) and the delivery rate (events received by node B's subscriber per
second, from the first publish to the last receipt, wall clock of the same machine).

Not wired into `bench/run.py`; run it by itself. Figures depend on the machine (2 shared CPUs
here: the nats-server and both nodes compete for them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gateway.bus import AckFrame, EventBus, SubscriberOptions  # noqa: E402
from gateway.cluster.consumers import EntryConsumer  # noqa: E402
from gateway.cluster.events import EventPublisher  # noqa: E402
from gateway.cluster.link import ClusterLink  # noqa: E402
from gateway.config import ClusterConfig  # noqa: E402
from tests.nats_server import NatsServer  # noqa: E402

PREFIX = "bench"
SELF_ID = 10001
CHUNK = 500


class Only:
    def __init__(self, self_id: int) -> None:
        self.self_id = self_id

    def serves(self, self_id: int) -> bool:
        return self_id == self.self_id


def config(url: str, node: str) -> ClusterConfig:
    return ClusterConfig.model_validate(
        {"nats": {"url": url}, "node": node, "prefix": PREFIX, "bufferSize": 1_000_000}
    )


def event(seq: int) -> dict[str, Any]:
    text = f"bench message number {seq} with a little more text, as a chat line would be"
    return {
        "self_id": SELF_ID,
        "time": int(time.time()),
        "post_type": "message",
        "message_type": "private",
        "sub_type": "friend",
        "message_id": 1_000_000 + seq,
        "user_id": 20001,
        "message": [{"type": "text", "data": {"text": text}}],
        "raw_message": text,
        "font": 14,
        "sender": {"user_id": 20001, "nickname": "Alice", "card": ""},
        "message_format": "array",
        "bench_seq": seq,
    }


async def consume(url: str, count: int, mode: str) -> None:
    """Node B: print `ready` once bound, then a JSON line once `count` distinct events came."""
    link = ClusterLink(config(url, "b"))
    await link.start()
    await link.wait_ready()
    bus = EventBus()
    options = SubscriberOptions(accounts=Only(SELF_ID), queue_size=1 << 20)
    subscription = bus.subscribe("bot", options)
    consumer = EntryConsumer(
        link, bus, PREFIX, "b", "bot", [SELF_ID], ack_on_write=mode == "persistent"
    )
    await consumer.start()
    await consumer.wait_bound()
    print("ready", flush=True)
    seen: set[int] = set()
    received = 0
    first = 0.0
    while len(seen) < count:
        frame = await subscription.get()
        if not received:
            first = time.time()
        received += 1
        seen.add(json.loads(frame)["bench_seq"])
        if type(frame) is AckFrame:
            frame.ack()
    last = time.time()
    print(
        json.dumps({"first": first, "last": last, "received": received, "distinct": len(seen)}),
        flush=True,
    )
    await consumer.stop()
    await link.stop()


async def publish(url: str, count: int) -> tuple[float, float]:
    """Node A: publish `count` events; (wall clock at the first publish, seconds until the
    stream acknowledged the last)."""
    link = ClusterLink(config(url, "a"))
    await link.start()
    await link.wait_ready()
    bus = EventBus()
    publisher = EventPublisher(link, bus, PREFIX, 1_000_000)
    await publisher.start()
    events = [event(seq) for seq in range(count)]
    started_wall, started = time.time(), time.perf_counter()
    for start in range(0, count, CHUNK):
        for item in events[start : start + CHUNK]:
            bus.publish(item)
        await asyncio.sleep(0)
    await publisher.flushed()
    elapsed = time.perf_counter() - started
    await publisher.stop()
    await link.stop()
    return started_wall, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--mode", choices=("persistent", "server"), default="persistent")
    parser.add_argument("--consume", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    # Warnings and errors only, on stderr: stdout carries the figures (and the child's lines).
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    if args.consume:
        asyncio.run(consume(args.consume, args.count, args.mode))
        return
    with tempfile.TemporaryDirectory() as store:
        server = NatsServer(Path(store))
        server.start()
        command = [sys.executable, __file__, "--consume", server.url]
        child = subprocess.Popen(  # noqa: S603 - this script, with arguments it made
            [*command, "--count", str(args.count), "--mode", args.mode],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready", "node B did not start"
            started_wall, publish_seconds = asyncio.run(publish(server.url, args.count))
            result = json.loads(child.stdout.readline())
            child.wait(60)
        finally:
            if child.poll() is None:
                child.kill()
            server.stop()
    delivery_seconds = result["last"] - started_wall
    print(f"cluster events, {args.count} events of ~500 B, mode {args.mode}:")
    print(f"  published (JetStream acknowledged): {args.count / publish_seconds:,.0f} events/s")
    print(
        f"  delivered to node B's subscriber: {args.count / delivery_seconds:,.0f} events/s"
        f" ({delivery_seconds:.2f} s, first receipt after"
        f" {(result['first'] - started_wall) * 1000:.0f} ms;"
        f" {result['received'] - result['distinct']} repeats)"
    )


if __name__ == "__main__":
    main()
