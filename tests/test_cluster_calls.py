"""Calls for an account hosted on another node (issue 18), with a real nats-server: two nodes in
this process, the host's Responder serving a sandbox account's Dispatcher, the other node's
RemoteDispatcher calling it; and the account directory both nodes watch."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.accounts import Account
from gateway.cluster.calls import RemoteBackend
from gateway.protocol.envelope import Envelope
from tests.cluster_nodes import GUARD, Node, sandbox_account, stop_account, until
from tests.nats_server import NatsServer, nats_server

__all__ = ["nats_server"]  # the fixture, imported to be used here

SELF_ID = 10001
TTL_MS = 1500


@pytest.fixture
async def account() -> AsyncIterator[Account]:
    account = await sandbox_account("alice", SELF_ID)
    yield account
    await stop_account(account)


@pytest.fixture
async def host(nats_server: NatsServer, account: Account) -> AsyncIterator[Node]:
    node = Node(nats_server.url, "a", directoryTtl=TTL_MS)
    await node.start()
    await node.host(account)
    yield node
    await node.stop()


@pytest.fixture
async def edge(nats_server: NatsServer) -> AsyncIterator[Node]:
    node = Node(nats_server.url, "b", directoryTtl=TTL_MS)
    await node.start()
    yield node
    await node.stop()


ECHOES: list[Any] = ["e-1", 7, None, {"nested": [1, "two", {"three": 3.5}]}, [True, False]]
CALLS: list[tuple[str, Any]] = [
    ("get_login_info", None),
    ("get_friend_list", {}),
    ("get_group_list", {"no_cache": True}),
    ("get_status", None),
    ("no_such_action", {}),  # 1404 from the host's dispatcher
    ("get_group_info", {"group_id": "not a number"}),  # 1400 naming the parameter
    ("get_stranger_info", "not an object"),  # 1400: params must be an object
    ("send_private_msg_async", {"user_id": 20001, "message": "hi"}),  # accepted: retcode 1
]


@pytest.mark.parametrize(("action", "params"), CALLS)
async def test_a_remote_call_answers_what_a_local_call_does(
    host: Node, edge: Node, account: Account, action: str, params: Any
) -> None:
    remote = await edge.remote(SELF_ID)
    for echo in ECHOES:
        local = await account.dispatcher.call(action, params, echo)
        answer = await remote.call(action, params, echo)
        assert answer == local
        assert answer["echo"] == echo


async def test_a_remote_send_lands_in_the_hosts_history(
    host: Node, edge: Node, account: Account
) -> None:
    remote = await edge.remote(SELF_ID)
    sent = await remote.call("send_private_msg", {"user_id": 20001, "message": "over NATS"}, "s")
    assert sent["retcode"] == 0, sent
    message_id = sent["data"]["message_id"]
    stored = await account.dispatcher.call("get_msg", {"message_id": message_id})
    assert stored["retcode"] == 0, stored
    assert stored["data"]["raw_message"] == "over NATS"


async def collect(
    call: Any, action: str, params: dict[str, Any], echo: Any
) -> tuple[list[Envelope], Envelope]:
    """A stream call's packets (as its transport's `send` got them) and its final envelope."""
    packets: list[Envelope] = []

    async def send(packet: Envelope) -> None:
        packets.append(packet)
        await asyncio.sleep(0)  # a transport that yields while writing

    final = await call(action, params, echo, send)
    return packets, final


async def test_a_stream_upload_then_download_keeps_its_packets_in_order(
    host: Node, edge: Node, account: Account
) -> None:
    remote = await edge.remote(SELF_ID)
    content = os.urandom(300_000)
    pieces = [content[i : i + 100_000] for i in range(0, len(content), 100_000)]
    digest = hashlib.sha256(content).hexdigest()
    for index, piece in enumerate(pieces):
        chunk = {
            "stream_id": "remote-upload",
            "chunk_data": base64.b64encode(piece).decode(),
            "chunk_index": index,
            "total_chunks": len(pieces),
            "file_size": len(content),
            "expected_sha256": digest,
            "filename": "remote.bin",
        }
        answer = await remote.call("upload_file_stream", chunk, f"u{index}")
        assert answer["retcode"] == 0 and answer["stream"] == "stream-action", answer
    done = await remote.call(
        "upload_file_stream", {"stream_id": "remote-upload", "is_complete": True}, "done"
    )
    assert done["retcode"] == 0, done
    path = done["data"]["file_path"]
    # 16 KiB chunks: 19 packets, more than the flow-control window between host and caller.
    params = {"file": path, "chunk_size": 16 * 1024}
    local_packets, local_final = await collect(
        account.dispatcher.call, "download_file_stream", params, {"d": 1}
    )
    packets, final = await collect(remote.call, "download_file_stream", params, {"d": 1})
    assert packets == local_packets
    assert final == local_final
    assert final["echo"] == {"d": 1} and all(p["echo"] == {"d": 1} for p in packets)
    chunks = [p["data"] for p in packets if p["data"].get("data_type") == "file_chunk"]
    assert [c["index"] for c in chunks] == list(range(len(chunks)))
    assert len(chunks) > 8
    received = b"".join(base64.b64decode(c["data"]) for c in chunks)
    assert received == content


async def test_a_stream_call_without_packets_gets_the_dispatchers_refusal(
    host: Node, edge: Node, account: Account
) -> None:
    remote = await edge.remote(SELF_ID)
    local = await account.dispatcher.call("test_download_stream", {}, "x")
    answer = await remote.call("test_download_stream", {}, "x")
    assert answer == local
    assert answer["retcode"] == 1400


async def test_an_account_no_node_hosts_fails_at_once_naming_it(edge: Node) -> None:
    remote = await edge.remote(99999, answer_within=3600)  # a wait would hang the guard
    async with asyncio.timeout(GUARD):
        answer = await remote.call("get_login_info", None, "e")
    assert answer["retcode"] == 1200
    assert answer["echo"] == "e"
    assert answer["message"] == "account 99999 is not hosted by any node now; the call was not run"


async def test_a_host_that_does_not_answer_fails_after_the_timeout_naming_account_and_node(
    nats_server: NatsServer, edge: Node, account: Account
) -> None:
    silent = Node(nats_server.url, "silent", directoryTtl=TTL_MS)
    await silent.start()
    try:
        nc = silent.link.nc
        assert nc is not None
        taken: list[bytes] = []

        async def swallow(msg: Any) -> None:
            taken.append(msg.data)

        await nc.subscribe(f"onebot.v11.{SELF_ID}.action", queue="onebot-hosts", cb=swallow)
        await silent.link.settle()
        silent.directory.host(account)  # in the directory, but its calls go unanswered
        await until(edge.directory, lambda: edge.directory.lookup(SELF_ID) is not None)
        remote = await edge.remote(SELF_ID, answer_within=0.3)
        answer = await remote.call("get_login_info", None, 5)
        assert answer["retcode"] == 1200
        assert answer["echo"] == 5
        assert answer["message"] == (
            f"account {SELF_ID} (node 'silent') did not answer within 0.3 s; the call may have run"
        )
        assert len(taken) == 1
    finally:
        await silent.stop()


async def test_with_nats_down_calls_fail_at_once_and_work_again_once_it_is_back(
    nats_server: NatsServer, host: Node, edge: Node, account: Account
) -> None:
    remote = await edge.remote(SELF_ID, answer_within=3600)
    assert (await remote.call("get_login_info"))["retcode"] == 0
    lost = asyncio.Event()
    edge.link.on_disconnect(lost.set)
    nats_server.stop()
    async with asyncio.timeout(GUARD):
        await lost.wait()
        answer = await remote.call("get_login_info", None, "down")
    assert answer["retcode"] == 1200
    assert answer["echo"] == "down"
    assert answer["message"].startswith("the cluster link to NATS is down: ")
    assert answer["message"].endswith(f"account {SELF_ID} cannot be reached")
    assert edge.link.status()["connected"] is False
    assert isinstance(edge.link.status()["error"], str)

    restarted_at = time.time()
    nats_server.start()  # same port, same store
    async with asyncio.timeout(GUARD):
        await host.link.wait_ready()
        await edge.link.wait_ready()
    assert edge.link.reconnects >= 1
    assert edge.link.status() == {"connected": True, "servers": [nats_server.url], "error": None}
    answer = await remote.call("get_login_info", None, "back")
    assert answer == await account.dispatcher.call("get_login_info", None, "back")

    def refreshed() -> bool:  # the host puts it again, the edge watches the bucket again
        entry = edge.directory.lookup(SELF_ID)
        return entry is not None and entry.at > restarted_at and edge.directory.online(SELF_ID)

    await until(edge.directory, refreshed)


async def test_hosted_accounts_appear_in_the_other_nodes_directory(
    host: Node, edge: Node, account: Account
) -> None:
    await until(edge.directory, lambda: edge.directory.online(SELF_ID))
    entry = edge.directory.lookup(SELF_ID)
    assert entry is not None
    assert (entry.node, entry.name, entry.kind, entry.online) == ("a", "alice", "sandbox", True)
    assert edge.directory.nodes() == {
        "a": [{"self_id": SELF_ID, "name": "alice", "kind": "sandbox", "online": True}]
    }
    backend = RemoteBackend(SELF_ID, edge.directory)
    assert backend.status() == {"online": True, "good": True}
    assert backend.down_reason == ""
    assert backend.kind == "remote" and backend.self_id == SELF_ID


async def test_a_killed_nodes_accounts_go_offline_within_the_ttl(
    nats_server: NatsServer, edge: Node, account: Account
) -> None:
    doomed = Node(nats_server.url, "doomed", directoryTtl=TTL_MS)
    await doomed.start()
    await doomed.host(account)
    await until(edge.directory, lambda: edge.directory.online(SELF_ID))
    await doomed.stop(clean=False)  # what kill -9 leaves: no delete, the entry stays
    entry = edge.directory.lookup(SELF_ID)
    assert entry is not None and entry.node == "doomed"
    ttl = TTL_MS / 1000
    async with asyncio.timeout(GUARD):
        while edge.directory.online(SELF_ID):  # noqa: ASYNC110  # expiry sends no event
            await asyncio.sleep(0.02)  # the TTL is a clock rule: polled
    last = edge.directory.lookup(SELF_ID)
    assert last is not None
    assert time.time() - last.at > ttl
    assert time.time() - last.at < 2 * ttl  # refreshed every ttl/3 until the kill
    backend = RemoteBackend(SELF_ID, edge.directory)
    assert backend.status() == {"online": False, "good": False}
    assert backend.down_reason == "its node 'doomed' has it offline or stopped answering"
    remote = await edge.remote(SELF_ID, answer_within=3600)
    answer = await remote.call("get_login_info")
    assert (
        answer["message"]
        == f"account {SELF_ID} is not hosted by any node now; the call was not run"
    )


async def test_a_clean_stop_marks_the_accounts_offline_at_once(
    nats_server: NatsServer, edge: Node, account: Account
) -> None:
    leaving = Node(nats_server.url, "leaving", directoryTtl=60_000)  # the TTL plays no part
    await leaving.start()
    await leaving.host(account)
    await until(edge.directory, lambda: edge.directory.online(SELF_ID))
    await leaving.stop()
    await until(edge.directory, lambda: edge.directory.lookup(SELF_ID) is None)
    assert not edge.directory.online(SELF_ID)
    assert edge.directory.nodes() == {}
    assert RemoteBackend(SELF_ID, edge.directory).down_reason == "no node of the cluster hosts it"


async def test_an_account_that_learns_its_number_late_is_answered_once_resynced(
    nats_server: NatsServer,
    account: Account,
    edge: Node,
) -> None:
    """A relay meets its upstream after it was hosted: its number was 0 when served. (Fault
    injection: the sandbox backend's number is hidden, then shown again, as a relay's is.)"""
    node = Node(nats_server.url, "late", directoryTtl=TTL_MS)
    await node.start()
    backend: Any = account.backend
    known, backend._self_id = backend._self_id, 0
    try:
        await node.responder.serve(account)
        remote = await edge.remote(SELF_ID, answer_within=5)
        before = await remote.call("get_login_info", None, "before")
        backend._self_id = known  # the upstream told it
        await node.responder.resync()
        after = await remote.call("get_login_info", None, "after")
    finally:
        backend._self_id = known
        await node.stop()
    assert before["retcode"] == 1200 and "not hosted by any node" in before["message"]
    assert after["retcode"] == 0 and after["data"]["user_id"] == SELF_ID
