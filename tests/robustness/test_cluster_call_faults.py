"""Faults and fuzz on the cluster's call path (issue 18), with a real nats-server: garbage
requests to a host, garbage answers to a caller, NATS lost mid-call, a caller gone mid-stream,
messages larger than NATS carries, a link that never connected. Every call gets one envelope;
nothing crashes the responder."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from typing import Any

import nats
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.aio.client import Client
from nats.aio.msg import Msg

from gateway.accounts import Account
from gateway.cluster.calls import RemoteDispatcher
from gateway.cluster.link import ClusterLink, settle
from gateway.protocol.envelope import Envelope
from gateway.testing.ports import free_port
from tests.cluster_nodes import GUARD, Node, cluster_config, sandbox_account, stop_account
from tests.nats_server import NatsServer, nats_server
from tests.robustness.conftest import FUZZ

__all__ = ["nats_server"]  # the fixture, imported to be used here

SELF_ID = 10001
SUBJECT = f"onebot.v11.{SELF_ID}.action"
ENVELOPE_KEYS = {"status", "retcode", "data", "message", "wording", "echo", "stream"}


@pytest.fixture
async def account() -> AsyncIterator[Account]:
    account = await sandbox_account("alice", SELF_ID)
    yield account
    await stop_account(account)


@pytest.fixture
async def host(nats_server: NatsServer, account: Account) -> AsyncIterator[Node]:
    node = Node(nats_server.url, "a")
    await node.start()
    await node.host(account)
    yield node
    await node.stop()


@pytest.fixture
async def edge(nats_server: NatsServer) -> AsyncIterator[Node]:
    node = Node(nats_server.url, "b")
    await node.start()
    yield node
    await node.stop()


@pytest.fixture
async def raw(nats_server: NatsServer) -> AsyncIterator[Client]:
    """A plain NATS client: what another program on the same NATS could send."""
    client = await nats.connect(nats_server.url)
    yield client
    await client.close()


async def final_of(raw: Client, payload: bytes) -> Envelope:
    """Send one raw request to the host; its one answer must be a final envelope."""
    reply = await raw.request(SUBJECT, payload, timeout=GUARD)
    body = orjson.loads(reply.data)
    assert list(body) == ["final"], body
    answer: Envelope = body["final"]
    assert set(answer) == ENVELOPE_KEYS, answer
    return answer


async def still_serving(raw: Client) -> None:
    answer = await final_of(raw, orjson.dumps({"action": "get_login_info", "echo": "alive"}))
    assert answer["retcode"] == 0 and answer["echo"] == "alive", answer


@pytest.mark.parametrize(
    ("payload", "echo", "message"),
    [
        (b"not json", None, "the cluster request is not JSON: "),
        (b"", None, "the cluster request is not JSON: "),
        (b"[1, 2]", None, "the cluster request must be an object, got array"),
        (b'"get_login_info"', None, "the cluster request must be an object, got string"),
        (b'{"echo": "e"}', "e", "action must be a non-empty string, got null"),
        (b'{"action": 5, "echo": [1]}', [1], "action must be a non-empty string, got number"),
        (b'{"action": "", "echo": 0}', 0, "action must be a non-empty string, got string"),
        (b'{"action": "get_login_info", "echo": 1e999}', None, "the cluster request is not JSON"),
        (b'{"action": "x", "echo": "\\ud800"}', None, "the cluster request is not JSON"),
        (b'{"action": "x", "echo": 7, "p": 99999999999999999999}', 7, "not JSON"),
    ],
)
async def test_a_malformed_request_gets_1400_naming_what_is_wrong(
    host: Node, raw: Client, payload: bytes, echo: Any, message: str
) -> None:
    answer = await final_of(raw, payload)
    assert answer["retcode"] == 1400
    assert message in answer["message"], answer
    assert answer["echo"] == echo
    await still_serving(raw)


async def test_bad_parameters_get_the_dispatchers_1400_naming_the_parameter(
    host: Node, raw: Client
) -> None:
    request = {"action": "get_group_info", "params": {"group_id": "x"}, "echo": "p"}
    answer = await final_of(raw, orjson.dumps(request))
    assert answer["retcode"] == 1400 and "group_id" in answer["message"], answer
    assert answer["echo"] == "p"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
REQUESTS = st.one_of(
    st.binary(max_size=200),
    JSON.map(orjson.dumps),
    st.fixed_dictionaries(
        {
            "action": st.one_of(
                st.sampled_from(
                    ["get_login_info", "send_private_msg", "get_group_info", "get_msg", "x"]
                ),
                JSON,
            ),
            "params": JSON,
            "echo": JSON,
        },
        optional={"packets": JSON},
    ).map(orjson.dumps),
)


@FUZZ
@given(requests=st.lists(REQUESTS, min_size=1, max_size=20))
async def test_any_request_gets_exactly_one_final_envelope(
    host: Node, raw: Client, requests: list[bytes]
) -> None:
    for payload in requests:
        answer = await final_of(raw, payload)
        assert answer["retcode"] in (0, 1, 1200, 1400, 1404), answer
        try:
            sent = orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue
        if type(sent) is dict:
            assert answer["echo"] == sent.get("echo")
    await still_serving(raw)


async def test_a_request_without_a_reply_subject_is_dropped_and_the_host_keeps_serving(
    host: Node, raw: Client
) -> None:
    await raw.publish(SUBJECT, orjson.dumps({"action": "get_login_info"}))
    await settle(raw)
    await still_serving(raw)


ODD_ANSWERS = [
    b"",
    b"not json",
    b"[]",
    b'{"final": "ok"}',
    b'{"final": {"status": "ok"}}',
    b'{"other": {"retcode": 0}}',
    b'{"final": {"retcode": 0}, "packet": {"retcode": 0}}',
]


@pytest.mark.parametrize("odd", ODD_ANSWERS)
async def test_a_host_answering_no_envelope_fails_the_call_naming_the_account(
    edge: Node, raw: Client, odd: bytes
) -> None:
    async def impostor(msg: Msg) -> None:
        await raw.publish(msg.reply, odd)

    await raw.subscribe(SUBJECT, queue="onebot-hosts", cb=impostor)
    await settle(raw)  # not flush(): see ClusterLink.settle
    remote = await edge.remote(SELF_ID)
    answer = await remote.call("get_login_info", None, {"e": 1})
    assert answer["retcode"] == 1200
    assert answer["echo"] == {"e": 1}
    assert answer["message"] == (
        f"account {SELF_ID} (node unknown) answered something that is not an envelope"
    )


async def test_a_call_waiting_when_nats_goes_down_fails_at_once(
    nats_server: NatsServer, edge: Node, raw: Client
) -> None:
    taken = asyncio.Event()

    async def silent(msg: Msg) -> None:
        taken.set()

    await raw.subscribe(SUBJECT, queue="onebot-hosts", cb=silent)
    await settle(raw)  # not flush(): see ClusterLink.settle
    remote = await edge.remote(SELF_ID, answer_within=3600)
    async with asyncio.timeout(GUARD):
        call = asyncio.create_task(remote.call("get_login_info", None, "w"))
        await taken.wait()
        nats_server.stop()
        answer = await call
    assert answer["retcode"] == 1200 and answer["echo"] == "w"
    assert answer["message"] == (
        "the cluster link to NATS went down while waiting for the answer; "
        f"the call to account {SELF_ID} may have run"
    )


async def upload(remote: RemoteDispatcher, content: bytes, pieces: int = 1) -> str:
    size = -(-len(content) // pieces)
    for index in range(pieces):
        data = base64.b64encode(content[index * size : (index + 1) * size]).decode()
        params = {"stream_id": "f", "chunk_data": data, "chunk_index": index}
        answer = await remote.call("upload_file_stream", {**params, "total_chunks": pieces})
        assert answer["retcode"] == 0, answer
    done = await remote.call("upload_file_stream", {"stream_id": "f", "is_complete": True})
    assert done["retcode"] == 0, done
    path: str = done["data"]["file_path"]
    return path


async def test_a_caller_gone_mid_stream_stops_the_host_as_a_local_call_does(
    host: Node, edge: Node, account: Account
) -> None:
    remote = await edge.remote(SELF_ID)
    path = await upload(remote, os.urandom(200_000))
    params = {"file": path, "chunk_size": 4096}  # 50 packets: far more than the window

    def closing_after(count: int) -> Any:
        taken: list[Envelope] = []

        async def send(packet: Envelope) -> None:
            if len(taken) == count:
                raise ConnectionError("the bot hung up")
            taken.append(packet)

        return send

    local = await account.dispatcher.call("download_file_stream", params, "g", closing_after(3))
    answer = await remote.call("download_file_stream", params, "g", closing_after(3))
    assert answer == local
    assert answer["retcode"] == 1200
    assert answer["message"] == "download_file_stream: the caller's connection closed"
    assert (await remote.call("get_login_info"))["retcode"] == 0


async def test_a_call_larger_than_nats_carries_is_refused_and_not_run(
    host: Node, edge: Node
) -> None:
    remote = await edge.remote(SELF_ID)
    big = base64.b64encode(os.urandom(1024 * 1024)).decode()  # NATS carries 1 MiB by default
    params = {"stream_id": "big", "chunk_data": big, "chunk_index": 0, "total_chunks": 2}
    answer = await remote.call("upload_file_stream", params, "big")
    assert answer["retcode"] == 1200 and answer["echo"] == "big"
    assert "more than NATS carries in one message (max_payload 1048576 bytes)" in answer["message"]
    assert answer["message"].endswith("the call was not run (send a file in smaller chunks)")
    verify = await remote.call("upload_file_stream", {"stream_id": "big", "verify_only": True})
    assert verify["retcode"] != 0 or verify["data"].get("received_chunks", 0) == 0, verify


async def test_a_packet_larger_than_nats_carries_fails_the_stream_naming_the_limit(
    host: Node, edge: Node
) -> None:
    remote = await edge.remote(SELF_ID)
    path = await upload(remote, os.urandom(1_000_000), pieces=2)  # each piece fits a message
    packets: list[Envelope] = []

    async def send(packet: Envelope) -> None:
        packets.append(packet)

    params = {"file": path, "chunk_size": 1_000_000}  # one chunk, 1.33 MB as base64
    answer = await remote.call("download_file_stream", params, "p", send)
    assert answer["retcode"] == 1200 and answer["echo"] == "p"
    assert "more than NATS carries in one message" in answer["message"], answer
    assert answer["message"].endswith("ask for smaller chunks")
    assert answer["stream"] == "stream-action"
    assert [p["data"]["data_type"] for p in packets] == ["file_info"]


async def test_a_link_that_never_connected_starts_and_fails_calls_at_once() -> None:
    link = ClusterLink(cluster_config(f"nats://127.0.0.1:{free_port()}", "lonely"))
    await link.start()  # nothing listens there: start does not wait or fail
    try:
        assert link.nc is None and not link.connected
        remote = RemoteDispatcher(link, "onebot", SELF_ID, 3600)
        answer = await remote.call("get_login_info", None, "n")
        assert answer["retcode"] == 1200 and answer["echo"] == "n"
        assert answer["message"].startswith("the cluster link to NATS is down: ")
        status = link.status()
        assert status["connected"] is False and isinstance(status["error"], str)
    finally:
        await link.stop()


async def test_an_unserved_account_has_no_responders(
    host: Node, edge: Node, account: Account
) -> None:
    remote = await edge.remote(SELF_ID, answer_within=3600)
    assert (await remote.call("get_login_info"))["retcode"] == 0
    await host.responder.unserve(account.name)
    async with asyncio.timeout(GUARD):
        answer = await remote.call("get_login_info", None, "u")
    assert answer["message"] == (
        f"account {SELF_ID} is not hosted by any node now; the call was not run"
    )
