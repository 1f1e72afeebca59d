"""The event publisher loses its link with a batch in flight (found by the nats-server restart
of tests/test_cluster_processes.py): the batch is sent again once the link is back, without
waiting out the acknowledgement timeout for answers the dead server can no longer give."""

from __future__ import annotations

import asyncio
import os
import signal

from gateway.bus import EventBus
from gateway.cluster.events import EventPublisher
from tests.nats_server import NatsServer
from tests.robustness.test_cluster_event_faults import stored_ns
from tests.test_cluster_events import PREFIX, SELF_ID, WAIT, cluster_link, nats_server, until

__all__ = ["nats_server"]  # the fixture, used by name

NEVER = 3600.0
"""An acknowledgement timeout the test never waits out: only the link loss can end the wait."""


async def test_a_batch_in_flight_when_nats_dies_is_sent_again_once_it_is_back(
    nats_server: NatsServer,
) -> None:
    async with cluster_link(nats_server, "a") as link:
        bus = EventBus()
        publisher = EventPublisher(link, bus, PREFIX, 100, timeout=NEVER)
        await publisher.start()
        bus.publish({"self_id": SELF_ID, "post_type": "notice", "n": 0})
        await asyncio.wait_for(publisher.flushed(), WAIT)
        # The server stops answering (SIGSTOP): the next batch goes out and waits for its
        # acknowledgements; then the server dies (SIGKILL) and comes back on the same store.
        assert nats_server.proc is not None
        os.kill(nats_server.proc.pid, signal.SIGSTOP)
        for n in (1, 2, 3):
            bus.publish({"self_id": SELF_ID, "post_type": "notice", "n": n})
        # The batch goes out and waits for its acknowledgements. (Under heavy load the server
        # was seen answering it before the stop took hold: the batch is then stored already,
        # and only the end state can be checked; counted in `in_hand`.)
        await until(
            lambda: (
                publisher.subscription is not None
                and len(publisher.subscription) == 0
                and publisher.held in (0, 3)
            ),
            "the batch in the publisher's hands",
        )
        in_hand = publisher.held == 3
        await asyncio.to_thread(nats_server.kill)
        await asyncio.to_thread(nats_server.start)
        await asyncio.wait_for(publisher.flushed(), WAIT)
        stored = await stored_ns(link, 4)
        await publisher.stop()
    assert stored == [0, 1, 2, 3]
    if in_hand:
        assert publisher.retried == 3
    else:
        print("the server answered the batch before it stopped: nothing was in flight")
