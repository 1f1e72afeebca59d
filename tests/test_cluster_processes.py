"""Issue 18's must-show: cluster nodes as separate gateway processes on a real nats-server.

Two account nodes (`n1` hosting 10001, `n2` hosting 10002, each a sandbox on its own database
file and in its own world; shared by the module's tests) and, per test, an edge node hosting no
account whose entries serve both. The nodes are killed (`kill -9`), stopped (SIGTERM) and
restarted with the same config (same node name: the edge's durable consumers `<edge>_bot_<id>`
resume); the nats-server is restarted on the same port and store. Events are numbered
(`sandbox_emit_bench`: `bench_run`, `bench_seq`), so a bot endpoint recording every frame tells
what arrived, in which order, and what came twice. Only the NoneBot test stores messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.cluster.consumers import WINDOW, account_consumer_name
from gateway.cluster.link import events_stream
from tests.app_process import AppProcess
from tests.cluster_processes import (
    NodeProcess,
    RecordingBot,
    account_node,
    call,
    cleaning,
    consumer_state,
    edge_node,
    get_json,
    host_answers,
    metric,
    order_report,
    poll,
    recording_bot,
)
from tests.conftest import free_port
from tests.nats_server import NatsServer
from tests.nonebot_harness import run_nonebot

A, B = 10001, 10002
ACCOUNTS = (A, B)
MULTI_BOT_APP = Path(__file__).parent / "nonebot_app" / "multi_bot.py"
USER, MEMBER, GROUP = 20001, 20003, 30001
"""A friend of both accounts, a member of the group both are in (the default world, one per
account node: the nodes' sandboxes are apart)."""


@dataclass
class Cluster:
    """The three nodes of a test, started."""

    n1: NodeProcess
    n2: NodeProcess
    edge: NodeProcess
    http: aiohttp.ClientSession

    def host_of(self, self_id: int) -> NodeProcess:
        return self.n1 if self_id == A else self.n2

    async def on_host(self, self_id: int, action: str, **params: Any) -> dict[str, Any]:
        """A call on the account's own node (its HTTP entry)."""
        return await call(self.http, self.host_of(self_id).url("api", f"/{action}"), **params)

    async def via_edge(self, self_id: int, action: str, **params: Any) -> dict[str, Any]:
        """A call for the account through the edge node (a NATS request to its host)."""
        return await call(self.http, self.edge.url("api", f"/{self_id}/{action}"), **params)

    async def readiness(self, self_id: int) -> tuple[int, dict[str, Any]]:
        """The edge's `/readyz?account=`: 200 while the directory has the account online."""
        return await get_json(self.http, self.edge.admin_url(f"/readyz?account={self_id}"))

    async def readiness_is(self, self_id: int, status: int) -> dict[str, Any] | None:
        """The edge's readiness of the account when its HTTP status is `status`, else None."""
        code, body = await self.readiness(self_id)
        return body if code == status else None

    async def emit(self, run: str, count: int, rate: float) -> None:
        """Each account node starts publishing `count` numbered events at `rate` per second."""
        for self_id in ACCOUNTS:
            answer = await self.on_host(
                self_id, "sandbox_emit_bench", count=count, rate=rate, run=run
            )
            assert answer["retcode"] == 0, answer


@dataclass
class AccountNodes:
    """The nats-server and the two account nodes, shared by the tests of this module (a
    gateway process costs about 2 s of CPU to start): a test that stops or kills one leaves it
    so, and the next test's `three_nodes` starts it again."""

    server: NatsServer
    n1: NodeProcess
    n2: NodeProcess
    edges: itertools.count[int]
    """Numbers each test's edge node (`edge1`, `edge2`...): its durable consumers are its own."""


@pytest.fixture(scope="module")
def account_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AccountNodes]:
    workdir = tmp_path_factory.mktemp("cluster")
    server = NatsServer(workdir / "nats")
    server.start()
    n1 = NodeProcess("n1", account_node(server.url, "n1", "a", A, workdir / "a.db"), workdir)
    n2 = NodeProcess("n2", account_node(server.url, "n2", "b", B, workdir / "b.db"), workdir)
    try:
        with cleaning(n1, n2):
            yield AccountNodes(server, n1, n2, itertools.count(1))
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def three_nodes(
    nodes: AccountNodes,
    workdir: Path,
    bot: RecordingBot | None = None,
    bot_url: str | None = None,
) -> AsyncIterator[Cluster]:
    """n1 and n2 (those not running started at once), then a new edge node once both hosts
    answer on NATS (its reverse WebSocket entry to `bot` or `bot_url`, if any); with `bot`,
    once the edge made its durable consumer and the bot has a connection per account and a
    first event of each through the stream."""
    server = nodes.server
    stopped = [node for node in (nodes.n1, nodes.n2) if not node.running]
    for node in stopped:
        node.spawn()
    await asyncio.gather(*(node.ready() for node in stopped))
    await asyncio.gather(*(host_answers(server.url, self_id) for self_id in ACCOUNTS))
    name = f"edge{next(nodes.edges)}"
    document = edge_node(server.url, list(ACCOUNTS), bot_url if bot is None else bot.url, node=name)
    edge = NodeProcess(name, document, workdir)
    with cleaning(edge):
        await edge.start()
        async with aiohttp.ClientSession() as http:
            cluster = Cluster(nodes.n1, nodes.n2, edge, http)
            if bot is not None:
                # A new durable consumer starts at new events: none may come before it exists.
                await edge.wait_logged("cluster_consumer_created")
                await bot.until(lambda: sorted(bot.open) == list(ACCOUNTS), "both connections")
                await cluster.emit("warm-up", 1, 0)
                await bot.until(
                    lambda: len(bot.bench("warm-up")) == len(ACCOUNTS), "a first event of each"
                )
            yield cluster


async def test_a_nonebot_on_the_edge_answers_the_users_of_both_account_nodes(
    account_nodes: AccountNodes,
    tmp_path: Path,
) -> None:
    nonebot_port = free_port()
    bot_url = f"ws://127.0.0.1:{nonebot_port}/onebot/v11/ws"
    settings = {"NB_PORT": str(nonebot_port), "ONEBOT_ACCESS_TOKEN": ""}
    async with (
        run_nonebot(settings, tmp_path, MULTI_BOT_APP) as process,
        three_nodes(account_nodes, tmp_path, bot_url=bot_url) as cluster,
    ):
        nonebot = AppProcess(process.process, "NoneBot")
        # Each bot's first call (get_login_info) crossed NATS to its own account's node.
        for self_id in ACCOUNTS:
            await nonebot.wait_for("NB_CONNECTED", self_id=str(self_id), login_id=str(self_id))
        for self_id in ACCOUNTS:
            private = {"message_type": "private", "user_id": USER}
            sent = await cluster.on_host(
                self_id, "sandbox_receive_message", message="ping", **private
            )
            assert sent["retcode"] == 0, sent
            group = {"message_type": "group", "group_id": GROUP, "user_id": MEMBER}
            sent = await cluster.on_host(
                self_id, "sandbox_receive_message", message="ping", **group
            )
            assert sent["retcode"] == 0, sent
        for self_id in ACCOUNTS:
            await nonebot.wait_for("NB_REPLIED", self_id=str(self_id), message_type="private")
            await nonebot.wait_for("NB_REPLIED", self_id=str(self_id), group_id=GROUP)
        histories: dict[int, list[list[tuple[int, str, str]]]] = {}
        for self_id in ACCOUNTS:
            friend = await cluster.on_host(self_id, "get_friend_msg_history", user_id=USER)
            in_group = await cluster.on_host(self_id, "get_group_msg_history", group_id=GROUP)
            histories[self_id] = [
                [
                    (m["sender"]["user_id"], m["post_type"], m["raw_message"])
                    for m in h["data"]["messages"]
                ]
                for h in (friend, in_group)
            ]

    for self_id in ACCOUNTS:
        # Each account's own history: the user's ping and its bot's answer, sent as itself.
        answer = (self_id, "message_sent", f"pong from {self_id}")
        assert histories[self_id] == [
            [(USER, "message", "ping"), answer],
            [(MEMBER, "message", "ping"), answer],
        ], histories
        # Its bot got its two pings, on its own connection, once each.
        got = nonebot.seen("NB_RECEIVED", self_id=str(self_id))
        assert sorted((r["message_type"], r["user_id"], r["text"]) for r in got) == [
            ("group", MEMBER, "ping"),
            ("private", USER, "ping"),
        ]
        assert {r["event_self_id"] for r in got} == {str(self_id)}


async def test_a_stopped_account_node_fails_its_calls_fast_and_comes_back(
    account_nodes: AccountNodes,
    tmp_path: Path,
) -> None:
    async with three_nodes(account_nodes, tmp_path) as cluster:
        for self_id in ACCOUNTS:
            await poll(partial(cluster.readiness_is, self_id, 200), f"{self_id} online")
        before = [await cluster.via_edge(i, "get_login_info") for i in ACCOUNTS]

        stopped = cluster.n1.terminate()
        # A clean stop deletes n1's directory entry: the edge's readiness names the account.
        not_ready = await poll(lambda: cluster.readiness_is(A, 503), "the edge sees A offline")
        during_a = await cluster.via_edge(A, "get_login_info", echo="a")
        during_b = await cluster.via_edge(B, "get_login_info")

        await cluster.n1.start()
        await poll(lambda: cluster.readiness_is(A, 200), "the edge sees A online again")
        after_a = await cluster.via_edge(A, "get_login_info")

        # Killed (no clean stop): n2's entry stays in the bucket, but its timestamp ages past
        # the directory TTL and the edge marks it offline by itself.
        cluster.n2.kill()
        killed = await poll(lambda: cluster.readiness_is(B, 503), "the edge sees B offline")
        killed_b = await cluster.via_edge(B, "get_login_info")
        still_a = await cluster.via_edge(A, "get_login_info")

    assert [answer["data"]["user_id"] for answer in before] == [A, B]
    assert stopped == 0
    assert not_ready["reasons"] == [f"account '{A}': no node of the cluster hosts it"], not_ready
    # Fails fast: the host is gone from NATS (no responders), not a timeout waiting for it.
    assert during_a["retcode"] == 1200 and during_a["echo"] == "a"
    assert f"account {A} is not hosted by any node now" in during_a["message"], during_a
    assert during_b["retcode"] == 0 and during_b["data"]["user_id"] == B
    assert after_a["retcode"] == 0 and after_a["data"]["user_id"] == A
    assert killed["reasons"] == [
        f"account '{B}': its node 'n2' has it offline or stopped answering"
    ], killed
    assert killed_b["retcode"] == 1200 and str(B) in killed_b["message"], killed_b
    assert still_a["retcode"] == 0 and still_a["data"]["user_id"] == A


BURST = 500
"""Events per account in the burst (1,000 in all)."""
BURST_RATE = 250.0
"""Events per second per account: the burst lasts 2 s, so the kill comes in its middle."""
KILL_AFTER = 300
"""The edge is killed once the bot has this many events of the burst (of both accounts)."""


async def test_the_edge_killed_during_a_burst_resumes_every_event_in_order(
    account_nodes: AccountNodes,
    tmp_path: Path,
) -> None:
    async with recording_bot() as bot, three_nodes(account_nodes, tmp_path, bot) as cluster:
        await cluster.emit("burst", BURST, BURST_RATE)
        await bot.until(lambda: len(bot.bench("burst")) >= KILL_AFTER, "the burst under way")
        cluster.edge.kill()
        # What JetStream knows of the edge's consumer right after the kill: what a restart from
        # its ack floor can deliver again.
        at_kill = {
            self_id: await consumer_state(
                account_nodes.server.url,
                events_stream("onebot"),
                account_consumer_name(cluster.edge.name, "bot", self_id),
            )
            for self_id in ACCOUNTS
        }
        await cluster.edge.start()

        def arrived(self_id: int) -> list[int]:
            return [r.frame["bench_seq"] for r in bot.bench("burst", self_id)]

        await bot.until(lambda: all(len(set(arrived(i))) == BURST for i in ACCOUNTS), "every event")
        # Anything else still on its way would come before the bot's next events: one more
        # numbered event per account, once it is in, nothing of the burst is left to come.
        await cluster.emit("after", 1, 0)
        await bot.until(lambda: len(bot.bench("after")) == len(ACCOUNTS), "a later event")

    duplicates = 0
    for self_id in ACCOUNTS:
        seqs = arrived(self_id)
        missing, repeats = order_report(seqs, BURST)
        assert missing == [], f"{self_id}: missing {missing}"
        # Each account has its own consumer: its repeats are its own in flight, no more.
        assert repeats <= at_kill[self_id].past_floor, self_id
        assert repeats <= WINDOW, self_id
        duplicates += repeats
        # Before the kill: the first events, in order, once each; after the restart: from the
        # consumer's ack floor on, in order, once each (the repeats are its first ones).
        first = [r.frame["bench_seq"] for r in bot.bench("burst", self_id) if r.connection == 0]
        then = [r.frame["bench_seq"] for r in bot.bench("burst", self_id) if r.connection == 1]
        assert first == list(range(len(first))), self_id
        assert then == list(range(then[0], BURST)) and then[0] <= len(first), (self_id, then[:5])
        print(
            f"account {self_id}: {BURST} sent, {len(seqs)} received "
            f"({len(first)} before the kill, {len(then)} after the restart), {repeats} twice"
        )
    before_kill = sum(1 for r in bot.bench("burst") if r.connection == 0)
    print(
        f"burst: {2 * BURST} events sent, {len(bot.bench('burst'))} received, {duplicates} "
        f"duplicates; at the kill the consumers had "
        f"{[state.ack_pending for state in at_kill.values()]} delivered and not acked, "
        f"{[state.past_floor for state in at_kill.values()]} past their ack floors "
        f"(window {WINDOW} each)"
    )
    assert before_kill < 2 * BURST, "the kill came after the burst"
    assert {r.connection for r in bot.bench("burst")} == {0, 1}


LOAD = 600
"""Events per account while NATS restarts."""
LOAD_RATE = 200.0
"""Events per second per account: 3 s of events, the restart comes in their middle."""
RESTART_AFTER = 100
"""NATS is restarted once the bot has this many events of the load (of both accounts)."""


@dataclass
class Caller:
    """Calls for both accounts through the edge, one after another until stopped: each answer
    as (self_id, retcode, message, user_id)."""

    cluster: Cluster
    answers: list[tuple[int, int, str, int | None]]
    running: bool = True

    async def run(self) -> None:
        while self.running:
            for self_id in ACCOUNTS:
                answer = await self.cluster.via_edge(self_id, "get_login_info")
                data = answer.get("data") or {}
                self.answers.append(
                    (self_id, answer["retcode"], answer.get("message", ""), data.get("user_id"))
                )
            await asyncio.sleep(0.01)  # a steady trickle, not a flood of failures


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_nats_restarted_under_load_loses_nothing_and_the_nodes_reconnect(
    account_nodes: AccountNodes, tmp_path: Path, how: str
) -> None:
    """`stop`: SIGTERM (JetStream writes its state); `kill`: SIGKILL. Then the same port and
    store."""
    server = account_nodes.server
    async with recording_bot() as bot, three_nodes(account_nodes, tmp_path, bot) as cluster:
        caller = Caller(cluster, [])
        calling = asyncio.create_task(caller.run())
        await cluster.emit("load", LOAD, LOAD_RATE)
        await bot.until(lambda: len(bot.bench("load")) >= RESTART_AFTER, "the load under way")
        down = time.time_ns()
        await asyncio.to_thread(server.stop if how == "stop" else server.kill)
        await asyncio.to_thread(server.start)
        up = time.time_ns()
        for node in (cluster.n1, cluster.n2, cluster.edge):
            await node.wait_logged("cluster_link_reconnected")
        answered_before_restart = len(caller.answers)

        def arrived(self_id: int) -> list[int]:
            return [r.frame["bench_seq"] for r in bot.bench("load", self_id)]

        await bot.until(
            lambda: all(len(set(arrived(i))) == LOAD for i in ACCOUNTS), "every event", 90
        )
        await cluster.emit("after", 1, 0)
        await bot.until(lambda: len(bot.bench("after")) == len(ACCOUNTS), "a later event")
        # Calls work again (the caller's last round, after the events above crossed NATS).
        caller.running = False
        await calling
        again = [await cluster.via_edge(i, "get_login_info") for i in ACCOUNTS]
        status = {}
        counters: dict[str, dict[str, float]] = {}
        for node in (cluster.n1, cluster.n2, cluster.edge):
            _, ready = await get_json(cluster.http, node.admin_url("/readyz"))
            status[node.name] = ready["cluster"]
            counters[node.name] = {
                name: await metric(cluster.http, node, f"onebot_cluster_{name}_total")
                for name in ("reconnects", "publish_retried", "publish_duplicates")
            }

    duplicates = 0
    for self_id in ACCOUNTS:
        seqs = arrived(self_id)
        missing, repeats = order_report(seqs, LOAD)
        assert missing == [], f"{self_id}: missing {missing}"
        duplicates += repeats
    while_down = [r for r in bot.bench("load") if down <= r.frame["bench_emitted_ns"] <= up]
    failed = [a for a in caller.answers if a[1] != 0]
    print(
        f"nats {how} and start: {2 * LOAD} events sent, {len(bot.bench('load'))} received, "
        f"{duplicates} duplicates; {len({(r.self_id, r.frame['bench_seq']) for r in while_down})} "
        f"emitted while NATS restarted; calls through the edge: {len(caller.answers)}, "
        f"{len(failed)} failed with 1200; counters: {counters}"
    )
    assert while_down, "no event was emitted while NATS was down"
    for self_id, retcode, message, user_id in caller.answers:
        if retcode == 0:
            assert user_id == self_id
        else:
            assert retcode == 1200 and str(self_id) in message, message
    assert answered_before_restart > 0
    assert [answer["data"]["user_id"] for answer in again] == list(ACCOUNTS)
    for name, link in status.items():
        assert (link["connected"], link["held_events"], link["dropped_events"]) == (True, 0, 0)
        assert counters[name]["reconnects"] >= 1, name


BEYOND = 44
"""Events of A past the edge's window while A's bot is away."""


async def test_a_bot_that_is_away_does_not_stop_the_other_accounts_bots(
    account_nodes: AccountNodes, tmp_path: Path
) -> None:
    async with recording_bot() as bot, three_nodes(account_nodes, tmp_path, bot) as cluster:
        # A's bot goes away (its reconnections refused): the edge keeps A's events for it.
        bot.refused.add(A)
        await bot.open[A].close()
        await bot.until(lambda: A not in bot.open, "A's bot away")
        answer = await cluster.on_host(
            A, "sandbox_emit_bench", count=WINDOW + BEYOND, rate=0, run="held"
        )
        assert answer["retcode"] == 0, answer
        name = account_consumer_name(cluster.edge.name, "bot", A)
        stream = events_stream("onebot")

        async def window_full() -> bool:
            state = await consumer_state(account_nodes.server.url, stream, name)
            return state.ack_pending == WINDOW

        await poll(window_full, "A's events filling the edge's window")
        # B's bot is there: its account's events should still reach it.
        answer = await cluster.on_host(B, "sandbox_emit_bench", count=20, rate=0, run="meanwhile")
        assert answer["retcode"] == 0, answer

        async def delivered_or_held() -> tuple[int, int] | None:
            got = len(bot.bench("meanwhile", B))
            state = await consumer_state(account_nodes.server.url, stream, name)
            held = state.pending - BEYOND  # A's events past its window are not delivered either
            if got == 20 or (state.ack_pending == WINDOW and held == 20 - got):
                return got, held
            return None

        got, held = await poll(delivered_or_held, "B's events delivered or held back")
    print(f"B's bot got {got} of 20 events while A's bot was away ({held} held back by NATS)")
    assert got == 20
