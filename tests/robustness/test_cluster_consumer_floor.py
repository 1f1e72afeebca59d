"""An entry serving two remote accounts, one of whose bots is behind (found reading the
consumer while writing tests/test_cluster_processes.py's kill -9 of the edge).

The guarantee: after a crash only the events in flight (delivered, not acked) arrive twice, at
most the consumer's window, and a bot that is away holds back only its own account. A node gives
each remote account of an entry its own durable consumer (`account_consumer_name`): its own ack
floor, so a restart repeats only that account's events in flight, and its own window, so the
other accounts' events keep flowing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from gateway.bus import AckFrame, EventBus, SubscriberOptions, Subscription
from gateway.cluster.consumers import EntryConsumer, account_consumer_name
from gateway.cluster.events import EventPublisher
from gateway.cluster.link import events_stream
from tests.nats_server import NatsServer
from tests.test_cluster_events import PREFIX, WAIT, Only, cluster_link, nats_server, until

__all__ = ["nats_server"]  # the fixture, used by name

A, B = 10001, 10002
WINDOW = 8
"""The consumer's in-flight window in this test (small, so what comes again can exceed it)."""
FAST = 20
"""Events of B written (acked) while A's one event is in flight."""


def notice(self_id: int, n: int) -> dict[str, object]:
    return {"self_id": self_id, "post_type": "notice", "notice_type": "x", "n": n}


class Consumers:
    """An entry's consumers as a node makes them: one durable per remote account (A, B)."""

    def __init__(self, link: Any, bus: EventBus) -> None:
        self.each = [
            EntryConsumer(
                link,
                bus,
                PREFIX,
                "b",
                "bot",
                [self_id],
                ack_on_write=True,
                window=WINDOW,
                durable=account_consumer_name("b", "bot", self_id),
            )
            for self_id in (A, B)
        ]

    async def start(self) -> None:
        for consumer in self.each:
            await consumer.start()
            await consumer.wait_bound()

    async def stop(self) -> None:
        for consumer in self.each:
            await consumer.stop()


def written(subscription: Subscription) -> list[int]:
    """Take what the subscription holds, as a writer that writes it: acked, its `n`s."""
    taken = []
    while (frame := subscription.take()) is not None:
        assert isinstance(frame, AckFrame)
        frame.ack()
        taken.append(orjson.loads(bytes(frame))["n"])
    return taken


async def test_only_the_event_in_flight_comes_again_not_another_accounts_acked_ones(
    nats_server: NatsServer,
) -> None:
    async with cluster_link(nats_server, "a") as link_a, cluster_link(nats_server, "b") as link_b:
        bus_a, bus_b = EventBus(), EventBus()
        publisher = EventPublisher(link_a, bus_a, PREFIX, 100)
        await publisher.start()
        slow = bus_b.subscribe("bot", SubscriberOptions(accounts=Only(A), queue_size=100))
        fast = bus_b.subscribe("bot", SubscriberOptions(accounts=Only(B), queue_size=100))

        first = Consumers(link_b, bus_b)
        await first.start()
        # A's bot takes its one event and has not written it yet; B's bot writes all of its.
        bus_a.publish(notice(A, 0))
        for n in range(FAST):
            bus_a.publish(notice(B, n))
        await until(lambda: len(slow) == 1, "A's event delivered")
        held = slow.take()
        got: list[int] = []
        deadline = asyncio.get_running_loop().time() + WAIT
        while len(got) < FAST:
            assert asyncio.get_running_loop().time() < deadline, f"B got only {got}"
            got += written(fast)
            await asyncio.sleep(0.01)
        assert link_b.js is not None
        stream = events_stream(PREFIX)

        async def only_a_in_flight() -> bool:
            assert link_b.js is not None
            pending = [
                (await link_b.js.consumer_info(stream, c.name)).num_ack_pending for c in first.each
            ]
            return pending == [1, 0]

        while not await only_a_in_flight():
            assert asyncio.get_running_loop().time() < deadline, "B's acks never reached NATS"
            await asyncio.sleep(0.01)
        # The node stops with A's event in flight (the bot never wrote it), and comes back.
        await first.stop()
        assert held is not None
        again = Consumers(link_b, bus_b)
        await again.start()
        bus_a.publish(notice(B, FAST))  # after it, nothing earlier of B can come
        repeated: list[int] = []
        while FAST not in repeated:
            assert asyncio.get_running_loop().time() < deadline + WAIT, f"B got {repeated}"
            repeated += written(fast)
            await asyncio.sleep(0.01)
        await until(lambda: len(slow) == 1, "A's event delivered again")
        await again.stop()
        await publisher.stop()
    print(f"after the restart B got again {len(repeated) - 1} events it had written")
    assert got == list(range(FAST))
    assert repeated == [FAST], f"{len(repeated) - 1} of B's acked events came again"


async def test_a_bot_that_is_behind_does_not_stop_another_accounts_events(
    nats_server: NatsServer,
) -> None:
    async with cluster_link(nats_server, "a") as link_a, cluster_link(nats_server, "b") as link_b:
        bus_a, bus_b = EventBus(), EventBus()
        publisher = EventPublisher(link_a, bus_a, PREFIX, 100)
        await publisher.start()
        # A's bot is away: its events wait in its subscription, unwritten (a reverse WebSocket
        # entry keeps them for its next connection); B's bot writes each as it comes.
        away = bus_b.subscribe("bot", SubscriberOptions(accounts=Only(A), queue_size=100))
        fast = bus_b.subscribe("bot", SubscriberOptions(accounts=Only(B), queue_size=100))
        consumers = Consumers(link_b, bus_b)
        await consumers.start()
        for n in range(WINDOW):
            bus_a.publish(notice(A, n))
        await until(lambda: len(away) == WINDOW, "A's events waiting for its bot")
        for n in range(FAST):
            bus_a.publish(notice(B, n))
        await until(lambda: publisher.held == 0, "B's events in the stream")
        got: list[int] = []
        deadline = asyncio.get_running_loop().time() + WAIT
        # B's own consumer keeps delivering while A's holds a full window unwritten.
        while len(got) < FAST:
            assert asyncio.get_running_loop().time() < deadline, f"B got only {got}"
            got += written(fast)
            await asyncio.sleep(0.01)
        await consumers.stop()
        await publisher.stop()
    print(f"B's bot got {len(got)} of {FAST} events while A's bot held {WINDOW}")
    assert got == list(range(FAST))
