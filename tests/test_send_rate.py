"""Per-entry send rate (`sendRate: {perMinute, burst, maxWaiting}`): a bot over its rate is slowed
(its sends wait in order) and then refused (1200), while other entries are answered meanwhile.

Time is a clock the tests move (`FakeClock`), never a measured duration: "slowed" is a call still
pending while others are answered, "in order" is which waiter a new token releases.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web

from gateway.config import parse_config
from gateway.rate_limit import BucketClosed, SendQueueFull, TokenBucket
from gateway.supervisor import Supervisor
from tests.conftest import capture_logs, sandbox_config
from tests.entry_bots import TRANSPORTS, FakeClock, bot_and_other, until
from tests.test_outbound import Receiver, http_client, receiver_app, serve

SELF_ID = 10001
HELLO = {"user_id": 20001, "message": "hello"}
GROUP_HELLO = {"group_id": 30001, "message": "hello"}


def rate(per_minute: float = 1, burst: int = 2, max_waiting: int = 1) -> dict[str, Any]:
    return {"sendRate": {"perMinute": per_minute, "burst": burst, "maxWaiting": max_waiting}}


# --- the bucket --------------------------------------------------------------------------------


async def test_waiters_are_released_in_order_as_the_clock_refills() -> None:
    clock = FakeClock()
    bucket = TokenBucket(per_minute=1, burst=2, max_waiting=3, clock=clock)
    await bucket.acquire()
    await bucket.acquire()
    waiters = [asyncio.create_task(bucket.acquire()) for _ in range(3)]
    await until(lambda: bucket.waiting == 3)
    clock.now += 60
    bucket.pump()
    await waiters[0]
    assert [w.done() for w in waiters] == [True, False, False]
    clock.now += 120
    bucket.pump()
    await asyncio.gather(*waiters)
    assert (bucket.waiting, bucket.waited) == (0, 3)


async def test_a_full_queue_refuses_at_once() -> None:
    bucket = TokenBucket(per_minute=1, burst=1, max_waiting=1, clock=FakeClock())
    await bucket.acquire()
    waiter = asyncio.create_task(bucket.acquire())
    await until(lambda: bucket.waiting == 1)
    with pytest.raises(SendQueueFull):
        await bucket.acquire()
    assert bucket.refused == 1
    bucket.close()
    with pytest.raises(BucketClosed):
        await waiter


async def test_a_cancelled_waiter_gives_its_place_to_the_next() -> None:
    clock = FakeClock()
    bucket = TokenBucket(per_minute=1, burst=1, max_waiting=2, clock=clock)
    await bucket.acquire()
    first = asyncio.create_task(bucket.acquire())
    second = asyncio.create_task(bucket.acquire())
    await until(lambda: bucket.waiting == 2)
    first.cancel()
    await until(lambda: bucket.waiting == 1)
    clock.now += 60
    bucket.pump()
    await second


async def test_reconfigure_keeps_waiters_and_release_all_lets_them_go() -> None:
    clock = FakeClock()
    bucket = TokenBucket(per_minute=1, burst=1, max_waiting=2, clock=clock)
    await bucket.acquire()
    waiters = [asyncio.create_task(bucket.acquire()) for _ in range(2)]
    await until(lambda: bucket.waiting == 2)
    bucket.reconfigure(per_minute=2, burst=1, max_waiting=0)
    assert bucket.waiting == 2
    clock.now += 30  # one token at the new rate
    bucket.pump()
    await waiters[0]
    assert not waiters[1].done()
    bucket.release_all()
    await waiters[1]


async def test_the_refill_timer_releases_a_waiter_on_the_real_clock() -> None:
    bucket = TokenBucket(per_minute=600_000, burst=1, max_waiting=1)
    await bucket.acquire()
    await bucket.acquire()  # released by the bucket's own timer, whenever it fires


# --- on every transport ------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_bot_over_its_send_rate_is_slowed_not_the_others(transport: str) -> None:
    clock = FakeClock()
    async with bot_and_other(transport, rate(burst=2, max_waiting=1), clock) as bots:
        front = bots.supervisor.fronts["bot"]
        for _ in range(2):
            assert (await bots.bot("send_private_msg", HELLO))["retcode"] == 0
        third = asyncio.create_task(bots.bot("send_private_msg", HELLO))
        await until(lambda: front.waiting() == 1)
        registry = bots.supervisor.metrics.registry
        labels = {"entry": "bot"}
        assert registry.get_sample_value("onebot_send_rate_waiting", labels) == 1
        # Meanwhile: the other entry sends, and this bot's other calls are answered.
        for _ in range(3):
            assert (await bots.other("send_private_msg", HELLO))["retcode"] == 0
        assert (await bots.bot("get_login_info"))["retcode"] == 0
        assert not third.done()
        fourth = await bots.bot("send_private_msg", HELLO)
        assert fourth["retcode"] == 1200, fourth
        assert "send rate" in fourth["message"] and "maxWaiting" in fourth["message"]
        assert "'bot'" in fourth["message"]
        clock.now += 60
        front.buckets["default"].pump()
        assert (await third)["retcode"] == 0
        assert registry.get_sample_value("onebot_send_rate_waits_total", labels) == 1
        assert registry.get_sample_value("onebot_send_rate_refusals_total", labels) == 1


@pytest.mark.parametrize("transport", ["http", "ws"])
async def test_waiting_sends_go_in_the_order_they_came(transport: str) -> None:
    clock = FakeClock()
    async with bot_and_other(transport, rate(burst=1, max_waiting=2), clock) as bots:
        front = bots.supervisor.fronts["bot"]
        assert (await bots.bot("send_private_msg", HELLO))["retcode"] == 0
        first = asyncio.create_task(bots.bot("send_private_msg", {**HELLO, "message": "1"}))
        await until(lambda: front.waiting() == 1)
        second = asyncio.create_task(bots.bot("send_group_msg_async", GROUP_HELLO))
        await until(lambda: front.waiting() == 2)
        clock.now += 60
        front.buckets["default"].pump()
        assert (await first)["retcode"] == 0
        assert not second.done() and front.waiting() == 1
        clock.now += 60
        front.buckets["default"].pump()
        assert (await second)["retcode"] == 1  # accepted once its token came


async def test_a_bad_send_over_the_rate_is_answered_1400_at_once() -> None:
    async with bot_and_other("http", rate(burst=1, max_waiting=1), FakeClock()) as bots:
        assert (await bots.bot("send_private_msg", HELLO))["retcode"] == 0
        answer = await bots.bot("send_private_msg", {"user_id": 20001})
        assert answer["retcode"] == 1400 and "message" in answer["message"], answer
        assert bots.supervisor.fronts["bot"].waiting() == 0


async def test_aliases_suffixes_and_forwards_take_tokens_too() -> None:
    clock = FakeClock()
    async with bot_and_other("http", rate(burst=3, max_waiting=0), clock) as bots:
        poke = {"group_id": 30001, "user_id": 20003}
        assert (await bots.bot("group_poke", poke))["retcode"] == 0
        assert (await bots.bot("send_private_msg_async", HELLO))["retcode"] == 1
        assert (await bots.bot("send_private_msg_rate_limited", HELLO))["retcode"] == 1
        for action in ("send_msg", "friend_poke", "forward_friend_single_msg"):
            answer = await bots.bot(action, {"user_id": 20001, "message": "x", "message_id": 1})
            assert answer["retcode"] == 1200 and "send rate" in answer["message"], answer
        assert (await bots.bot("get_status"))["retcode"] == 0


async def test_http_post_quick_replies_take_tokens() -> None:
    receiver = Receiver()
    receiver.answer = lambda body: (
        web.json_response({"reply": "pong"})
        if json.loads(body).get("post_type") == "message"
        else web.Response(status=204)
    )
    async with serve(receiver_app(receiver)) as port:
        post = http_client(f"http://127.0.0.1:{port}/", **rate(burst=1, max_waiting=0))
        supervisor = Supervisor(
            parse_config(sandbox_config(httpClients=[post]), env={}), clock=FakeClock()
        )
        with capture_logs() as logs:
            await supervisor.start()
            try:
                call = supervisor.dispatcher.call
                for text in ("ping 1", "ping 2"):
                    message = {**HELLO, "message_type": "private", "message": text}
                    assert (await call("sandbox_receive_message", message))["retcode"] == 0
                await until(lambda: any(e["event"] == "quick_operation_failed" for e in logs))
                history = await call("get_friend_msg_history", {"user_id": 20001})
            finally:
                await supervisor.stop()
    failure = next(e for e in logs if e["event"] == "quick_operation_failed")
    assert failure["retcode"] == 1200 and "send rate" in failure["error"]
    assert [m["raw_message"] for m in history["data"]["messages"]].count("pong") == 1


# --- reload and stop ---------------------------------------------------------------------------


def _with_rules(rules: dict[str, Any]) -> dict[str, Any]:
    entry = {"name": "bot", "enable": True, "host": "127.0.0.1", "port": 0, **rules}
    other = {"name": "other", "enable": True, "host": "127.0.0.1", "port": 0}
    return sandbox_config(httpServers=[entry, other])


async def test_removing_the_rate_on_reload_lets_waiting_sends_go() -> None:
    async with bot_and_other("http", rate(burst=1, max_waiting=1), FakeClock()) as bots:
        supervisor = bots.supervisor
        assert (await bots.bot("send_private_msg", HELLO))["retcode"] == 0
        waiting = asyncio.create_task(bots.bot("send_private_msg", HELLO))
        await until(lambda: supervisor.fronts["bot"].waiting() == 1)
        await supervisor.reload(parse_config(_with_rules({}), env={}))
        assert (await waiting)["retcode"] == 0
        assert supervisor.fronts["bot"].send_rate is None


async def test_a_send_waiting_when_its_entry_stops_fails_with_1200() -> None:
    async with bot_and_other("http", rate(burst=1, max_waiting=1), FakeClock()) as bots:
        supervisor = bots.supervisor
        assert (await bots.bot("send_private_msg", HELLO))["retcode"] == 0
        waiting = asyncio.create_task(bots.bot("send_private_msg", HELLO))
        await until(lambda: supervisor.fronts["bot"].waiting() == 1)
        only_other = sandbox_config(httpServers=[_with_rules({})["network"]["httpServers"][1]])
        await supervisor.reload(parse_config(only_other, env={}))
        answer = await waiting
        assert answer["retcode"] == 1200 and "stopped" in answer["message"], answer
        assert (await bots.other("send_private_msg", HELLO))["retcode"] == 0
