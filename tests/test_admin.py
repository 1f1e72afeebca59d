"""The admin listener: health, readiness, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from openapi_spec_validator import validate

from gateway.actions import default_catalog
from gateway.config import parse_config
from tests.cluster_nodes import GUARD, until
from tests.conftest import RunningGateway, run_gateway
from tests.nats_server import NatsServer, nats_server  # noqa: F401 (the fixture)
from tests.test_cluster_node import account_node, cluster, running

TOKEN = {"Authorization": "Bearer admin-secret"}


def document(**network: Any) -> dict[str, Any]:
    return {
        "network": network,
        "backend": {"database": ":memory:"},
        "admin": {"port": 0, "token": "admin-secret"},
    }


def api_entry(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "enable": True, "port": 0, "token": "t", **fields}


@pytest.fixture
async def gw() -> AsyncIterator[RunningGateway]:
    async with run_gateway(document(httpServers=[api_entry("api")])) as running:
        yield running


def admin_url(gw: RunningGateway, path: str) -> str:
    return f"http://127.0.0.1:{admin_port(gw)}{path}"


def admin_port(gw: RunningGateway) -> int:
    assert gw.supervisor.admin is not None
    return gw.supervisor.admin.port


async def get(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, str]:
    async with http.get(url, **kwargs) as response:
        return response.status, await response.text()


async def test_healthz_answers_without_a_token(gw: RunningGateway, http: Any) -> None:
    assert await get(http, admin_url(gw, "/healthz")) == (200, '{"status":"ok"}')


@pytest.mark.parametrize("path", ["/readyz", "/metrics", "/openapi.json"])
async def test_other_endpoints_need_the_admin_token(
    gw: RunningGateway, http: Any, path: str
) -> None:
    status, _ = await get(http, admin_url(gw, path))
    assert status == 403
    status, _ = await get(http, admin_url(gw, path), headers={"Authorization": "Bearer t"})
    assert status == 403


async def test_readyz_is_ready_when_everything_runs(gw: RunningGateway, http: Any) -> None:
    async with http.get(admin_url(gw, "/readyz"), headers=TOKEN) as response:
        body = await response.json()
    assert response.status == 200
    assert body == {
        "status": "ready",
        "accounts": [{"name": "default", "self_id": 10001, "kind": "sandbox", "ready": True}],
    }


async def test_readyz_is_503_with_reasons_when_an_entry_is_down(
    gw: RunningGateway, http: Any
) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        busy = blocker.getsockname()[1]
        new = document(httpServers=[api_entry("api"), api_entry("blocked", port=busy)])
        await gw.supervisor.reload(parse_config(new, {}))
        async with http.get(admin_url(gw, "/readyz"), headers=TOKEN) as response:
            body = await response.json()
    assert response.status == 503
    assert body["reasons"] == ["adapter 'blocked' is not running"]


def sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}}" if labels else f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_move_when_requests_are_made(gw: RunningGateway, http: Any) -> None:
    _, before = await get(http, admin_url(gw, "/metrics"), headers=TOKEN)
    api = f"http://127.0.0.1:{gw.supervisor.adapters['api'].port}"
    for _ in range(3):
        await http.post(f"{api}/get_login_info", headers={"Authorization": "Bearer t"})
    await http.post(f"{api}/no_such_action", headers={"Authorization": "Bearer t"})
    await http.post(f"{api}/get_login_info", headers={"Authorization": "Bearer wrong"})
    _, after = await get(http, admin_url(gw, "/metrics"), headers=TOKEN)
    login = {"action": "get_login_info", "retcode": "0", "self_id": "10001"}
    counted = sample(after, "onebot_requests_total", **login)
    assert counted - sample(before, "onebot_requests_total", **login) == 3
    unknown = {"action": "(unknown)", "retcode": "1404", "self_id": "10001"}
    assert sample(after, "onebot_requests_total", **unknown) == 1
    assert sample(after, "onebot_auth_failures_total", server="api") == 1
    seconds = {"action": "get_login_info", "self_id": "10001"}
    assert sample(after, "onebot_action_seconds_count", **seconds) >= 3
    assert sample(after, "onebot_account_online", account="default", self_id="10001") == 1


async def test_metrics_report_subscribers_and_queue_depth(http: Any) -> None:
    doc = document(websocketServers=[{"name": "ws", "enable": True, "port": 0, "heartInterval": 0}])
    async with run_gateway(doc) as gw:
        url = f"ws://127.0.0.1:{gw.supervisor.adapters['ws'].port}/"
        async with http.ws_connect(url) as ws:
            await ws.receive_json(timeout=5)
            _, text = await get(http, admin_url(gw, "/metrics"), headers=TOKEN)
    assert sample(text, "onebot_subscribers", entry="ws") == 1
    assert sample(text, "onebot_queue_depth", entry="ws") == 0


# --- several accounts ---------------------------------------------------------------------------

A, B, RELAY = 10001, 10002, 10009


def two_sandboxes_and_an_offline_relay() -> dict[str, Any]:
    """Accounts `a` and `b` (sandboxes) and `up` (a reverse relay no upstream has joined)."""
    relay = {"type": "relay", "mode": "reverse", "port": 0, "connectTimeout": 0, "selfId": RELAY}
    return {
        "accounts": [
            {"name": "a", "backend": {"database": ":memory:", "selfId": A}},
            {"name": "b", "backend": {"database": ":memory:", "selfId": B}},
            {"name": "up", "backend": relay},
        ],
        "network": {"httpServers": [api_entry("api")]},
        "admin": {"port": 0, "token": "admin-secret"},
    }


@pytest.fixture
async def three() -> AsyncIterator[RunningGateway]:
    async with run_gateway(two_sandboxes_and_an_offline_relay()) as running:
        yield running


async def readyz(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with http.get(url, headers=TOKEN) as response:
        return response.status, await response.json()


async def test_readyz_reports_each_account_and_is_503_while_one_is_offline(
    three: RunningGateway, http: Any
) -> None:
    status, body = await readyz(http, admin_url(three, "/readyz"))
    assert status == 503
    assert body["status"] == "not ready"
    assert body["reasons"] == ["account 'up': relay backend is not online"]
    assert body["accounts"] == [
        {"name": "a", "self_id": A, "kind": "sandbox", "ready": True},
        {"name": "b", "self_id": B, "kind": "sandbox", "ready": True},
        {
            "name": "up",
            "self_id": RELAY,
            "kind": "relay",
            "ready": False,
            "reason": "relay backend is not online",
        },
    ]


async def test_readyz_answers_for_one_account_by_name_or_self_id(
    three: RunningGateway, http: Any
) -> None:
    by_name = await readyz(http, admin_url(three, "/readyz?account=b"))
    by_number = await readyz(http, admin_url(three, f"/readyz?account={A}"))
    offline = await readyz(http, admin_url(three, "/readyz?account=up"))
    offline_by_number = await readyz(http, admin_url(three, f"/readyz?account={RELAY}"))
    account_b = {"name": "b", "self_id": B, "kind": "sandbox", "ready": True}
    assert by_name == (200, {"status": "ready", "account": account_b})
    assert by_number[0] == 200 and by_number[1]["account"]["name"] == "a"
    assert offline[0] == 503
    assert offline[1]["status"] == "not ready"
    assert offline[1]["reasons"] == ["account 'up': relay backend is not online"]
    assert offline_by_number == offline


@pytest.mark.parametrize("ref", ["nobody", "10003", "0", ""])
async def test_readyz_for_an_unknown_account_is_404_naming_the_accounts(
    three: RunningGateway, http: Any, ref: str
) -> None:
    status, body = await readyz(http, admin_url(three, f"/readyz?account={ref}"))
    assert status == 404
    assert body["status"] == "unknown account"
    assert f"no account is named or numbered {ref!r}" in body["message"]
    assert "'a' (10001), 'b' (10002), 'up' (10009)" in body["message"]


async def test_readyz_lists_an_account_that_failed_to_start_as_not_running(
    gw: RunningGateway, http: Any
) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        busy = blocker.getsockname()[1]
        relay = {"type": "relay", "mode": "reverse", "port": busy, "connectTimeout": 0}
        new = {
            "accounts": [
                {"name": "default", "backend": {"database": ":memory:"}},
                {"name": "blocked", "backend": relay},
            ],
            "network": {"httpServers": [api_entry("api")]},
            "admin": {"port": admin_port(gw), "token": "admin-secret"},
        }
        await gw.supervisor.reload(parse_config(new, {}))
        status, body = await readyz(http, admin_url(gw, "/readyz"))
        one = await readyz(http, admin_url(gw, "/readyz?account=blocked"))
    assert status == 503
    assert "account 'blocked' is not running" in body["reasons"]
    blocked = body["accounts"][1]
    assert blocked["name"] == "blocked" and blocked["ready"] is False
    assert "not running" in blocked["reason"]
    assert one[0] == 503 and one[1]["account"] == blocked


async def test_metrics_label_answers_by_account_and_report_each_accounts_state(
    three: RunningGateway, http: Any
) -> None:
    api = three.url("api")
    for _ in range(2):
        await http.post(f"{api}/{A}/get_login_info", headers={"Authorization": "Bearer t"})
    for _ in range(5):
        await http.post(f"{api}/{B}/get_login_info", headers={"Authorization": "Bearer t"})
    await http.post(f"{api}/{RELAY}/get_login_info", headers={"Authorization": "Bearer t"})
    _, text = await get(http, admin_url(three, "/metrics"), headers=TOKEN)
    login = {"action": "get_login_info", "retcode": "0"}
    assert sample(text, "onebot_requests_total", **login, self_id=str(A)) == 2
    assert sample(text, "onebot_requests_total", **login, self_id=str(B)) == 5
    offline = {"action": "get_login_info", "retcode": "1200", "self_id": str(RELAY)}
    assert sample(text, "onebot_requests_total", **offline) == 1
    assert sample(text, "onebot_action_seconds_count", action="get_login_info", self_id=str(B)) == 5
    assert sample(text, "onebot_account_online", account="a", self_id=str(A)) == 1
    assert sample(text, "onebot_account_online", account="b", self_id=str(B)) == 1
    assert sample(text, "onebot_account_online", account="up", self_id=str(RELAY)) == 0


async def test_openapi_document_validates_and_lists_every_action(
    gw: RunningGateway, http: Any
) -> None:
    async with http.get(admin_url(gw, "/openapi.json"), headers=TOKEN) as response:
        document_ = await response.json()
    validate(document_)
    names = {path.lstrip("/") for path in document_["paths"]}
    assert names == {action.name for action in default_catalog()}
    login = document_["paths"]["/get_login_info"]["post"]
    assert login["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/Envelope"
    )


def test_admin_on_a_public_address_needs_a_token() -> None:
    from gateway.config import ConfigError

    with pytest.raises(ConfigError, match=r"admin\.token"):
        parse_config({"admin": {"host": "0.0.0.0"}}, {})


# --- a cluster node -----------------------------------------------------------------------------

C = 10003


def edge_node(server: NatsServer) -> dict[str, Any]:
    """Node `edge`: hosts `c` itself and serves account A of node `n1` (remote) on `bots`."""
    return {
        "accounts": [{"name": "c", "backend": {"database": ":memory:", "selfId": C}}],
        "cluster": cluster(server, "edge"),
        "network": {
            "websocketServers": [
                {
                    "name": "bots",
                    "enable": True,
                    "port": 0,
                    "heartInterval": 0,
                    "accounts": ["c", A],
                }
            ]
        },
        "admin": {"port": 0, "token": "admin-secret"},
    }


async def message_on(ws: aiohttp.ClientWebSocketResponse, text: str) -> dict[str, Any]:
    """The next message event of `ws` whose text is `text` (lifecycle frames skipped)."""
    while True:
        frame = await ws.receive_json(timeout=GUARD)
        if frame.get("post_type") == "message" and frame.get("raw_message") == text:
            return frame  # type: ignore[no-any-return]


async def test_readyz_and_metrics_of_a_cluster_node_report_the_link_and_stay_ready_without_it(
    nats_server: NatsServer,  # noqa: F811
    http: Any,
) -> None:
    """Two nodes on a real nats-server: the edge reports its link, the remote account and the
    cluster metrics; with NATS stopped it is still ready (its own account works), the remote
    account is not, its own account's events wait and are published once NATS is back."""
    async with (
        running(account_node(nats_server, "n1", {"a": A})) as host,
        running(edge_node(nats_server)) as edge,
    ):
        node = edge.cluster
        assert node is not None
        await until(node.directory, lambda: node.directory.online(A) and node.directory.online(C))
        gw = RunningGateway(edge)
        bots = f"ws://127.0.0.1:{edge.adapters['bots'].port}/{A}/"  # type: ignore[attr-defined]
        async with http.ws_connect(bots) as ws:
            a = host.accounts.named("a")
            assert a is not None
            params = {"message_type": "private", "user_id": 20001, "message": "over nats"}
            await a.dispatcher.call("sandbox_receive_message", params)
            event = await message_on(ws, "over nats")
            await ws.send_json({"action": "get_login_info", "echo": "me"})
            while (answer := await ws.receive_json(timeout=GUARD)).get("echo") != "me":
                pass
        up = await readyz(http, admin_url(gw, "/readyz"))
        remote_up = await readyz(http, admin_url(gw, f"/readyz?account={A}"))
        _, metrics_up = await get(http, admin_url(gw, "/metrics"), headers=TOKEN)

        down = asyncio.Event()
        node.link.on_disconnect(down.set)
        await asyncio.to_thread(nats_server.stop)
        async with asyncio.timeout(GUARD):
            await down.wait()
        c = edge.accounts.named("c")
        assert c is not None
        local = await c.dispatcher.call("sandbox_receive_message", {**params, "message": "held"})
        cut = await readyz(http, admin_url(gw, "/readyz"))
        remote_cut = await readyz(http, admin_url(gw, f"/readyz?account={A}"))
        _, metrics_cut = await get(http, admin_url(gw, "/metrics"), headers=TOKEN)

        await asyncio.to_thread(nats_server.start)
        async with asyncio.timeout(GUARD):
            await node.link.wait_ready()
            await node.publisher.flushed()
        back = await readyz(http, admin_url(gw, "/readyz"))
        _, metrics_back = await get(http, admin_url(gw, "/metrics"), headers=TOKEN)

    assert event["self_id"] == A and answer["data"]["user_id"] == A
    status, body = up
    assert status == 200 and body["status"] == "ready"
    assert body["accounts"] == [{"name": "c", "self_id": C, "kind": "sandbox", "ready": True}]
    link = body["cluster"]
    assert link["connected"] is True and link["error"] is None
    assert link["servers"] == [nats_server.url] and link["node"] == "edge"
    assert link["dropped_events"] == 0
    remote = {"name": str(A), "self_id": A, "kind": "remote", "node": "n1", "ready": True}
    assert link["accounts"] == [remote]
    assert remote_up == (200, {"status": "ready", "account": remote})
    assert sample(metrics_up, "onebot_cluster_connected") == 1
    assert sample(metrics_up, "onebot_cluster_consumed_total", entry="bots", self_id=str(A)) >= 1
    assert (
        sample(metrics_up, "onebot_cluster_consume_acked_total", entry="bots", self_id=str(A)) >= 1
    )
    # Every event of the account delivered: none left behind in the stream.
    assert f'onebot_cluster_consume_behind{{entry="bots",self_id="{A}"}} 0.0' in metrics_up
    assert sample(metrics_up, "onebot_cluster_request_seconds_count", self_id=str(A)) == 1
    assert sample(metrics_up, "onebot_cluster_directory_accounts", node="n1", state="online") == 1
    assert sample(metrics_up, "onebot_cluster_directory_accounts", node="edge", state="online") == 1

    assert local["retcode"] == 0
    status, body = cut
    assert status == 200 and body["status"] == "ready"
    assert body["accounts"][0]["ready"] is True
    link = body["cluster"]
    assert link["connected"] is False and link["error"]
    assert link["held_events"] >= 1
    [offline] = link["accounts"]
    assert offline["ready"] is False and "link to NATS is down" in offline["reason"]
    assert remote_cut[0] == 503 and remote_cut[1]["account"] == offline
    assert sample(metrics_cut, "onebot_cluster_connected") == 0
    assert sample(metrics_cut, "onebot_cluster_publish_held") >= 1

    assert back[0] == 200 and back[1]["cluster"]["connected"] is True
    assert back[1]["cluster"]["held_events"] == 0
    assert sample(metrics_back, "onebot_cluster_reconnects_total") >= 1
    assert sample(metrics_back, "onebot_cluster_published_total") >= 1
    assert sample(metrics_back, "onebot_cluster_publish_held") == 0
