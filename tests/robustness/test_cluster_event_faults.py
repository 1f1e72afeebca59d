"""Cluster event faults with a real nats-server: frames no subject can carry, lost publish
acknowledgements, garbage in the stream, an event no subscription takes yet."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.bus import AckFrame, EventBus
from gateway.cluster.consumers import EntryConsumer
from gateway.cluster.events import EventPublisher, event_subject
from gateway.cluster.link import ClusterLink, events_stream
from tests.nats_server import NatsServer
from tests.test_cluster_events import (
    PREFIX,
    SELF_ID,
    cluster_link,
    entry_subscription,
    nats_server,
    until,
)

__all__ = ["nats_server"]  # the fixture, used by name


async def stored_ns(link: ClusterLink, count: int) -> list[Any]:
    """The `n` of the first `count` events in the stream, in stream order."""
    assert link.js is not None
    found = []
    for seq in range(1, count + 1):
        message = await link.js.get_msg(events_stream(PREFIX), seq)
        assert message.data is not None
        found.append(orjson.loads(message.data).get("n"))
    return found


@pytest.mark.parametrize(
    "bad",
    [
        {"self_id": "10001", "post_type": "notice"},
        {"self_id": 0, "post_type": "notice"},
        {"self_id": -5, "post_type": "notice"},
        {"post_type": "notice"},
        {"self_id": SELF_ID},
        {"self_id": SELF_ID, "post_type": "a.b"},
        {"self_id": SELF_ID, "post_type": ">"},
        {"self_id": SELF_ID, "post_type": "*"},
        {"self_id": SELF_ID, "post_type": "with space"},
        {"self_id": SELF_ID, "post_type": ""},
        {"self_id": SELF_ID, "post_type": 3},
        {"self_id": True, "post_type": "notice"},
    ],
)
async def test_a_frame_no_subject_can_carry_is_refused_and_the_next_ones_published(
    nats_server: NatsServer, bad: dict[str, Any]
) -> None:
    async with cluster_link(nats_server, "a") as link:
        bus = EventBus()
        publisher = EventPublisher(link, bus, PREFIX, 100)
        await publisher.start()
        bus.publish({"self_id": SELF_ID, "post_type": "notice", "n": 0})
        bus.publish({**bad, "n": "bad"})
        bus.publish({"self_id": SELF_ID, "post_type": "notice", "n": 1})
        await until(lambda: publisher.published == 2, "the two good events published")
        assert publisher.rejected == 1 and bus.rejected["cluster_unroutable"] == 1
        assert await stored_ns(link, 2) == [0, 1]
        await publisher.stop()


async def test_lost_acknowledgements_are_resent_with_the_same_ids_and_stored_once(
    nats_server: NatsServer,
) -> None:
    async with cluster_link(nats_server, "a") as link:
        nc = link.nc
        assert nc is not None
        real = nc.publish
        lost: set[str] = set()

        async def losing(subject: str, payload: bytes = b"", reply: str = "", **kw: Any) -> None:
            # The 3rd and 7th frames reach the stream but their acknowledgements go nowhere
            # (the first time each is sent).
            if subject.startswith(PREFIX + "."):
                msg_id = kw["headers"]["Nats-Msg-Id"]
                if orjson.loads(payload)["n"] in (3, 7) and msg_id not in lost:
                    lost.add(msg_id)
                    reply = "nobody.listens.here"
            await real(subject, payload, reply, **kw)

        nc.publish = losing  # type: ignore[method-assign]
        bus = EventBus()
        publisher = EventPublisher(link, bus, PREFIX, 100, timeout=0.3)
        await publisher.start()
        for n in range(10):
            bus.publish({"self_id": SELF_ID, "post_type": "notice", "n": n})
        await until(lambda: publisher.held == 0, "every frame acknowledged")
        assert len(lost) == 2 and publisher.retried > 0 and publisher.duplicates >= 1
        assert link.js is not None
        info = await link.js.stream_info(events_stream(PREFIX))
        assert info.state.messages == 10
        assert await stored_ns(link, 10) == list(range(10))
        await publisher.stop()


async def test_a_publish_that_raises_is_retried_in_order(nats_server: NatsServer) -> None:
    async with cluster_link(nats_server, "a") as link:
        nc = link.nc
        assert nc is not None
        real = nc.publish
        failures = [2]

        async def failing(subject: str, payload: bytes = b"", reply: str = "", **kw: Any) -> None:
            if subject.startswith(PREFIX + ".") and orjson.loads(payload)["n"] == 4 and failures[0]:
                failures[0] -= 1
                raise ConnectionResetError("injected: the connection broke")
            await real(subject, payload, reply, **kw)

        nc.publish = failing  # type: ignore[method-assign]
        bus = EventBus()
        publisher = EventPublisher(link, bus, PREFIX, 100)
        await publisher.start()
        for n in range(8):
            bus.publish({"self_id": SELF_ID, "post_type": "notice", "n": n})
        await until(lambda: publisher.held == 0, "every frame acknowledged")
        assert failures == [0] and publisher.retried >= 8
        assert await stored_ns(link, 8) == list(range(8))
        await publisher.stop()


async def test_garbage_in_the_stream_is_acked_and_skipped(nats_server: NatsServer) -> None:
    async with cluster_link(nats_server, "b") as link:
        bus = EventBus()
        received = entry_subscription(bus, "bot", queue_size=100)
        consumer = EntryConsumer(link, bus, PREFIX, "b", "bot", [SELF_ID], ack_on_write=True)
        await consumer.start()
        await consumer.wait_bound()
        js = link.js
        assert js is not None
        subject = event_subject(PREFIX, SELF_ID, "notice")
        for payload in (b"not json", b"[1,2]", b'{"post_type":"notice"}', b"\xff\xfe", b""):
            await js.publish(subject, payload)
        await js.publish(subject, orjson.dumps({"self_id": SELF_ID, "post_type": "notice"}))
        await until(lambda: len(received) == 1, "the one event")
        frame = received.take()
        assert type(frame) is AckFrame
        frame.ack()
        await until(lambda: consumer.acked == 6, "every message acked")
        assert consumer.rejected == 5 and bus.rejected["cluster_not_an_event"] == 5
        await consumer.stop()


async def test_an_event_no_link_takes_yet_comes_again_once_one_does(
    nats_server: NatsServer,
) -> None:
    async with cluster_link(nats_server, "b") as link:
        bus = EventBus()
        consumer = EntryConsumer(link, bus, PREFIX, "b", "bot", [SELF_ID], ack_on_write=True)
        await consumer.start()
        await consumer.wait_bound()
        js = link.js
        assert js is not None
        event = {"self_id": SELF_ID, "post_type": "notice", "n": 1}
        await js.publish(event_subject(PREFIX, SELF_ID, "notice"), orjson.dumps(event))
        await until(lambda: consumer.handed_back >= 1, "the event handed back")
        received = entry_subscription(bus, "bot")  # the entry's link for the account starts
        await until(lambda: len(received) == 1, "the event delivered again")
        frame = received.take()
        assert frame is not None and orjson.loads(bytes(frame)) == event
        assert consumer.acked == 0
        await consumer.stop()
