"""An entry serving two remote accounts, one of whose bots is behind: what comes again after its
node stops with an event in flight (found reading the consumer while writing
tests/test_cluster_processes.py's kill -9 of the edge).

The guarantee (cluster-design.md, consumers.py): after a crash only the events in flight
(delivered, not acked) arrive twice, at most the consumer's window. The entry's one durable
consumer covers every account it serves, and a restart rewinds it to its ack floor: the lowest
event not acked, of any account. So the events of a fast account acked after a slow account's
oldest unacked one all come again, however many: one event held by A's bot brings back every
event of B acked since.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest

from gateway.bus import AckFrame, EventBus, SubscriberOptions, Subscription
from gateway.cluster.consumers import EntryConsumer
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


def written(subscription: Subscription) -> list[int]:
    """Take what the subscription holds, as a writer that writes it: acked, its `n`s."""
    taken = []
    while (frame := subscription.take()) is not None:
        assert isinstance(frame, AckFrame)
        frame.ack()
        taken.append(orjson.loads(bytes(frame))["n"])
    return taken


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="the consumer of an entry is shared by its accounts: a restart rewinds to the "
    "lowest unacked event of any account, so another account's acked events come again",
)
async def test_only_the_event_in_flight_comes_again_not_another_accounts_acked_ones(
    nats_server: NatsServer,
) -> None:
    async with cluster_link(nats_server, "a") as link_a, cluster_link(nats_server, "b") as link_b:
        bus_a, bus_b = EventBus(), EventBus()
        publisher = EventPublisher(link_a, bus_a, PREFIX, 100)
        await publisher.start()
        slow = bus_b.subscribe("bot", SubscriberOptions(accounts=Only(A), queue_size=100))
        fast = bus_b.subscribe("bot", SubscriberOptions(accounts=Only(B), queue_size=100))

        def consumer() -> EntryConsumer:
            return EntryConsumer(
                link_b, bus_b, PREFIX, "b", "bot", [A, B], ack_on_write=True, window=WINDOW
            )

        first = consumer()
        await first.start()
        await first.wait_bound()
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
            info = await link_b.js.consumer_info(stream, first.name)
            return bool(info.num_ack_pending == 1)

        while not await only_a_in_flight():
            assert asyncio.get_running_loop().time() < deadline, "B's acks never reached NATS"
            await asyncio.sleep(0.01)
        # The node stops with A's event in flight (the bot never wrote it), and comes back.
        await first.stop()
        assert held is not None
        again = consumer()
        await again.start()
        await again.wait_bound()
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


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="the in-flight window of an entry's consumer is shared by its accounts: a bot that "
    "holds a full window of its account's events stops every other account's events",
)
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
        consumer = EntryConsumer(
            link_b, bus_b, PREFIX, "b", "bot", [A, B], ack_on_write=True, window=WINDOW
        )
        await consumer.start()
        await consumer.wait_bound()
        for n in range(WINDOW):
            bus_a.publish(notice(A, n))
        await until(lambda: len(away) == WINDOW, "A's events waiting for its bot")
        for n in range(FAST):
            bus_a.publish(notice(B, n))
        await until(lambda: publisher.held == 0, "B's events in the stream")
        got: list[int] = []
        stalled = False
        deadline = asyncio.get_running_loop().time() + WAIT
        # Until B's bot has all of its events, or JetStream holds them back: a full window
        # delivered and not acked, B's events not delivered.
        while len(got) < FAST and not stalled:
            assert asyncio.get_running_loop().time() < deadline, f"B got only {got}"
            got += written(fast)
            assert link_b.js is not None
            info = await link_b.js.consumer_info(events_stream(PREFIX), consumer.name)
            stalled = info.num_ack_pending == WINDOW and info.num_pending == FAST - len(got)
            await asyncio.sleep(0.01)
        await consumer.stop()
        await publisher.stop()
    print(f"B's bot got {len(got)} of {FAST} events while A's bot held {WINDOW}")
    assert got == list(range(FAST))
