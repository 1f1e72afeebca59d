"""Several relay accounts in one gateway: forward accounts each dialling their own upstream, and
reverse accounts sharing one listener, their upstreams told apart by path and X-Self-ID.

The relay backends are built directly on one event bus and one `RelayListeners`, in front of
scripted upstreams (`tests.robustness.test_relay_faults.Upstream`) on loopback sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from gateway.backends.relay import RelayBackend
from gateway.backends.relay_listener import RelayListeners
from gateway.bus import EventBus, SubscriberOptions, Subscription
from gateway.config import ConfigError, GatewayConfig, RelayBackendConfig, parse_config
from gateway.protocol.envelope import ActionFailed
from tests.conftest import free_port, http_entry, run_gateway
from tests.robustness.test_relay_faults import DEADLINE, Upstream, forward_upstream, good_event

A, B = 111111, 222222
TOKENS = {A: "secret-of-account-a", B: "secret-of-account-b"}


def relay_config(**fields: Any) -> RelayBackendConfig:
    return RelayBackendConfig.model_validate(
        {
            "type": "relay",
            "reconnectInterval": 20,
            "reconnectMaxInterval": 50,
            "callTimeout": 60000,  # a call that does not fail at once hits DEADLINE first
            "pingInterval": 0,
            **fields,
        }
    )


def upstream_of(self_id: int) -> Upstream:
    return Upstream(login_data={"user_id": self_id, "nickname": f"up-{self_id}"})


async def until(condition: Callable[[], bool]) -> None:
    """Wait for a state change the code under test signals only through its state (polled:
    the backends expose no event for it)."""
    async with asyncio.timeout(DEADLINE):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def started(*backends: RelayBackend) -> AsyncIterator[None]:
    async with contextlib.AsyncExitStack() as stack:
        for backend in backends:
            await backend.start()
            stack.push_async_callback(backend.stop)
        yield


async def connect(
    upstream: Upstream,
    port: int,
    self_id: int | str | None,
    token: str | None,
    http: aiohttp.ClientSession,
    path: str = "/",
) -> asyncio.Task[None]:
    """One reverse connection of `upstream` to the relay listener, served in a task (which ends
    when the connection closes); the handshake has completed when this returns."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    if self_id is not None:
        headers["X-Self-ID"] = str(self_id)
    ws = await http.ws_connect(f"ws://127.0.0.1:{port}{path}", headers=headers, max_msg_size=0)
    transport: Any = ws._writer.transport  # fault injection needs it; the client API hides it

    async def serve() -> None:
        try:
            await upstream.serve(ws, transport.abort)
        finally:  # cancelled too: the connection goes back to the session
            await ws.close()

    task = asyncio.create_task(serve())
    await upstream.wait_for(lambda: ws in upstream.sockets)
    return task


@contextlib.asynccontextmanager
async def dialling(
    upstream: Upstream, port: int, self_id: int, token: str, path: str = "/"
) -> AsyncIterator[None]:
    """The upstream as a reverse client that redials whenever it is dropped or refused."""

    async def dial_forever(http: aiohttp.ClientSession) -> None:
        while True:
            try:
                served = await connect(upstream, port, self_id, token, http, path)
            except aiohttp.ClientError:
                await asyncio.sleep(0.02)
                continue
            await served

    async with aiohttp.ClientSession() as http:
        task = asyncio.create_task(dial_forever(http))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def refusal(port: int, headers: dict[str, str], path: str = "/") -> tuple[int, Any]:
    """The status and envelope answering a handshake that is refused before the upgrade."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}{path}", headers=headers) as response,
    ):
        return response.status, await response.json()


async def next_event(subscription: Subscription) -> dict[str, Any]:
    async with asyncio.timeout(DEADLINE):
        event: dict[str, Any] = json.loads(await subscription.get())
    return event


def event(n: int, self_id: int | None) -> dict[str, Any]:
    body = good_event(n)
    if self_id is None:
        del body["self_id"]
    else:
        body["self_id"] = self_id
    return body


def online(*backends: RelayBackend) -> Callable[[], bool]:
    return lambda: all(backend.status()["good"] for backend in backends)


async def login_of(backend: RelayBackend) -> Any:
    return (await backend.request("get_login_info", {}))["data"]["user_id"]


# --- forward accounts: one upstream each ---------------------------------------------------------


@dataclass
class ForwardPair:
    ups: dict[int, Upstream]
    backends: dict[int, RelayBackend]
    upstream_a: contextlib.AsyncExitStack
    """Closing it takes A's upstream server down."""


@contextlib.asynccontextmanager
async def forward_pair(bus: EventBus) -> AsyncIterator[ForwardPair]:
    """Two forward accounts, A and B, each dialling its own upstream server."""
    ups = {A: upstream_of(A), B: upstream_of(B)}
    async with contextlib.AsyncExitStack() as stack:
        url_b = await stack.enter_async_context(forward_upstream(ups[B]))
        upstream_a = contextlib.AsyncExitStack()
        url_a = await upstream_a.enter_async_context(forward_upstream(ups[A]))
        stack.push_async_callback(upstream_a.aclose)
        backends = {
            A: RelayBackend(relay_config(url=url_a), bus),
            B: RelayBackend(relay_config(url=url_b), bus),
        }
        await stack.enter_async_context(started(*backends.values()))
        yield ForwardPair(ups, backends, upstream_a)


async def test_forward_accounts_each_answer_from_and_publish_for_their_own_upstream() -> None:
    bus = EventBus()
    events = bus.subscribe("events", SubscriberOptions())
    async with forward_pair(bus) as pair:
        ups, backends = pair.ups, pair.backends
        assert (backends[A].self_id, backends[B].self_id) == (A, B)
        assert (await login_of(backends[A]), await login_of(backends[B])) == (A, B)
        await backends[B].request("get_stranger_info", {"user_id": 7})
        assert [f for f in ups[B].frames if f["action"] == "get_stranger_info"]
        assert not [f for f in ups[A].frames if f["action"] == "get_stranger_info"]
        await ups[A].send(event(1, A))
        await ups[B].send(event(2, B))
        received = {(e := await next_event(events))["message_id"]: e["self_id"] for _ in "ab"}
    assert received == {1: A, 2: B}


async def test_a_forward_upstream_going_down_fails_only_its_accounts_calls_at_once() -> None:
    async with forward_pair(EventBus()) as pair:
        ups, backends = pair.ups, pair.backends
        ups[A].silent.add("get_status")
        in_flight = asyncio.create_task(backends[A].request("get_status", {}))
        await ups[A].wait_for(lambda: any(f["action"] == "get_status" for f in ups[A].frames))
        await pair.upstream_a.aclose()
        with pytest.raises(ActionFailed) as lost:
            await in_flight
        assert "the connection closed" in lost.value.message
        await until(lambda: not backends[A].status()["good"])
        with pytest.raises(ActionFailed) as down:
            await backends[A].request("get_login_info", {})
        assert down.value.retcode == 1200 and "upstream unavailable" in down.value.message
        assert await login_of(backends[B]) == B


# --- reverse accounts sharing one listener -------------------------------------------------------


@contextlib.asynccontextmanager
async def shared_listener(
    bus: EventBus, paths: tuple[str, str] = ("/", "/")
) -> AsyncIterator[tuple[int, dict[int, RelayBackend]]]:
    """Reverse accounts A and B on one port (paths as given), not yet connected."""
    port = free_port()
    listeners = RelayListeners()
    backends = {
        self_id: RelayBackend(
            relay_config(
                mode="reverse",
                port=port,
                path=path,
                selfId=self_id,
                token=TOKENS[self_id],
                connectTimeout=0,
            ),
            bus,
            listeners,
        )
        for self_id, path in zip((A, B), paths, strict=True)
    }
    async with started(*backends.values()):
        yield port, backends


@contextlib.asynccontextmanager
async def both_connected(
    bus: EventBus,
) -> AsyncIterator[tuple[int, dict[int, RelayBackend], dict[int, Upstream]]]:
    async with shared_listener(bus) as (port, backends), contextlib.AsyncExitStack() as stack:
        ups = {A: upstream_of(A), B: upstream_of(B)}
        for self_id, upstream in ups.items():
            await stack.enter_async_context(dialling(upstream, port, self_id, TOKENS[self_id]))
        await until(online(*backends.values()))
        for upstream in ups.values():
            await upstream.wait_connections(1)  # online may come before its reader runs
        yield port, backends, ups


async def test_two_upstreams_on_one_listener_serve_their_own_accounts() -> None:
    bus = EventBus()
    events = bus.subscribe("events", SubscriberOptions())
    async with both_connected(bus) as (_, backends, ups):
        assert (await login_of(backends[A]), await login_of(backends[B])) == (A, B)
        await backends[A].request("get_stranger_info", {"user_id": 7})
        assert [f for f in ups[A].frames if f["action"] == "get_stranger_info"]
        assert not [f for f in ups[B].frames if f["action"] == "get_stranger_info"]
        await ups[A].send(event(1, A))
        await ups[B].send(event(2, None))  # without self_id: it is its account's
        received = {(e := await next_event(events))["message_id"]: e["self_id"] for _ in "ab"}
        assert received == {1: A, 2: B}
        assert (backends[A].self_id, backends[B].self_id) == (A, B)


async def test_an_upstream_cannot_publish_events_for_another_account() -> None:
    bus = EventBus()
    events = bus.subscribe("events", SubscriberOptions())
    async with both_connected(bus) as (_, backends, ups):
        await ups[A].send(event(1, B), event(2, A))
        assert (await next_event(events))["message_id"] == 2
    assert bus.rejected.get("upstream_foreign_self_id") == 1
    assert backends[A].self_id == A


async def test_an_account_sharing_its_listener_keeps_its_number_whatever_its_login_says() -> None:
    async with (
        shared_listener(EventBus()) as (port, backends),
        aiohttp.ClientSession() as http,
    ):
        impostor = Upstream(login_data={"user_id": 999999, "nickname": "other"})
        served = await connect(impostor, port, A, TOKENS[A], http)
        await impostor.wait_for(
            lambda: any(f["action"] == "get_login_info" for f in impostor.frames)
        )
        await until(online(backends[A]))
        assert await login_of(backends[A]) == 999999  # calls still reach it
        assert backends[A].self_id == A
        await impostor.sockets[0].close()
        await served


async def test_a_wrong_token_is_refused_for_that_account_only() -> None:
    async with both_connected(EventBus()) as (port, backends, ups):
        headers = {"X-Self-ID": str(A), "Authorization": f"Bearer {TOKENS[B]}"}
        status, body = await refusal(port, headers)
        assert (status, body["retcode"]) == (403, 1403)
        assert str(A) in body["message"] and "token" in body["message"]
        assert not any(token in body["message"] for token in TOKENS.values())
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await connect(upstream_of(A), port, A, "wrong", http)
        assert refused.value.status == 403
        assert [len(ups[A].sockets), len(ups[B].sockets)] == [1, 1]
        assert (await login_of(backends[A]), await login_of(backends[B])) == (A, B)


@pytest.mark.parametrize(
    ("headers", "path", "status", "says"),
    [
        ({"X-Self-ID": "333333"}, "/", 403, "no relay account on path '/' has X-Self-ID 333333"),
        ({}, "/", 400, "X-Self-ID header is required"),
        ({"X-Self-ID": "abc"}, "/", 400, "X-Self-ID 'abc' is not a QQ number"),
        ({"X-Self-ID": "0"}, "/", 400, "X-Self-ID '0' is not a QQ number"),
        ({"X-Self-ID": str(A)}, "/other", 404, "no relay account accepts upstreams on path"),
        ({"X-Self-ID": str(A)}, "/", 400, "a relay upstream connects with a WebSocket upgrade"),
    ],
    ids=["unknown", "missing", "not-a-number", "zero", "unknown-path", "not-an-upgrade"],
)
async def test_a_shared_listener_refuses_upstreams_it_cannot_place(
    headers: dict[str, str], path: str, status: int, says: str
) -> None:
    async with both_connected(EventBus()) as (port, backends, ups):
        answer = await refusal(port, {"Authorization": f"Bearer {TOKENS[A]}", **headers}, path)
        assert answer[0] == status
        assert answer[1]["retcode"] == {400: 1400, 403: 1403, 404: 1404}[status]
        assert says in answer[1]["message"]
        assert [len(ups[A].sockets), len(ups[B].sockets)] == [1, 1]
        assert online(*backends.values())()


async def test_a_reconnecting_upstream_replaces_only_its_own_accounts_connection() -> None:
    async with (
        shared_listener(EventBus()) as (port, backends),
        aiohttp.ClientSession() as http,
    ):
        first, ups_b, second = upstream_of(A), upstream_of(B), upstream_of(A)
        served_first = await connect(first, port, A, TOKENS[A], http)
        served_b = await connect(ups_b, port, B, TOKENS[B], http)
        await until(online(*backends.values()))
        served_second = await connect(second, port, A, TOKENS[A], http)
        await served_first  # closed by the relay: replaced
        assert first.sockets[0].close_code == aiohttp.WSCloseCode.GOING_AWAY
        await until(online(backends[A]))
        await backends[A].request("get_stranger_info", {"user_id": 9})
        assert [f["action"] for f in second.frames][-1] == "get_stranger_info"
        assert not ups_b.sockets[0].closed and await login_of(backends[B]) == B
        for socket in (ups_b.sockets[0], second.sockets[0]):
            await socket.close()
        await asyncio.gather(served_b, served_second)


async def test_stopping_one_account_leaves_the_others_upstream_connected() -> None:
    async with both_connected(EventBus()) as (port, backends, ups):
        await backends[A].stop()
        await until(lambda: ups[A].sockets[0].closed)
        assert not ups[B].sockets[0].closed and await login_of(backends[B]) == B
        # A's upstream redials: it is not taken for B's, even with B's token.
        for token in TOKENS.values():
            status, body = await refusal(
                port, {"X-Self-ID": str(A), "Authorization": f"Bearer {token}"}
            )
            assert (status, body["retcode"]) == (403, 1403)
        assert len(ups[B].sockets) == 1 and not ups[B].sockets[0].closed
        await backends[B].stop()
        await until(lambda: ups[B].sockets[0].closed)
        with pytest.raises(aiohttp.ClientConnectorError):  # the listener closed with B
            await refusal(port, {"X-Self-ID": str(B)})


async def test_accounts_on_one_listener_may_use_different_paths() -> None:
    async with shared_listener(EventBus(), ("/a", "/b")) as (port, backends):
        wrong = await refusal(
            port, {"X-Self-ID": str(A), "Authorization": f"Bearer {TOKENS[A]}"}, "/b"
        )
        assert (wrong[0], wrong[1]["retcode"]) == (403, 1403)
        ups = {A: upstream_of(A), B: upstream_of(B)}
        async with (
            dialling(ups[A], port, A, TOKENS[A], "/a"),
            dialling(ups[B], port, B, TOKENS[B], "/b"),
        ):
            await until(online(*backends.values()))
            assert (await login_of(backends[A]), await login_of(backends[B])) == (A, B)


async def test_an_account_alone_on_its_listener_learns_its_number_from_the_upstream() -> None:
    # As before several accounts could share a listener: any X-Self-ID, even one that differs
    # from the configured selfId, is the account's QQ number.
    bus = EventBus()
    events = bus.subscribe("events", SubscriberOptions())
    listeners = RelayListeners()
    backend = RelayBackend(
        relay_config(mode="reverse", port=0, selfId=999, connectTimeout=0), bus, listeners
    )
    async with started(backend), aiohttp.ClientSession() as http:
        listener = listeners.listener_of(backend)
        assert listener is not None
        upstream = upstream_of(A)
        served = await connect(upstream, listener.bound_port, 555, None, http)
        await until(online(backend))
        assert backend.self_id in (555, A)  # X-Self-ID first, then get_login_info
        await until(lambda: backend.self_id == A)
        await upstream.send(event(3, 777))
        assert (await next_event(events))["self_id"] == 777
        assert backend.self_id == 777
        anonymous = await refusal(listener.bound_port, {})
        assert (anonymous[0], anonymous[1]["retcode"]) == (400, 1400)
        plain = await refusal(listener.bound_port, {"X-Self-ID": "555"})
        assert (plain[0], plain[1]["retcode"]) == (400, 1400)
        assert "WebSocket upgrade" in plain[1]["message"]
        await upstream.sockets[0].close()
        await served


async def test_a_second_account_with_the_same_self_id_cannot_attach() -> None:
    port = free_port()
    listeners = RelayListeners()
    configs = [relay_config(mode="reverse", port=port, selfId=A, connectTimeout=0)] * 2
    first, second = (RelayBackend(config, EventBus(), listeners) for config in configs)
    async with started(first):
        with pytest.raises(ConfigError, match=f"selfId: {A} is already another account's"):
            await second.start()
        await second.stop()
        assert listeners.listener_of(first) is not None


# --- through the gateway ------------------------------------------------------------------------


def two_relays_document(port: int, *names: str) -> dict[str, Any]:
    """A gateway whose accounts `a` (A) and `b` (B), of those named, are reverse relays on one
    port, with an HTTP API and an unbound WebSocket (every account's events)."""
    ids = {"a": A, "b": B}
    return {
        "accounts": [
            {
                "name": name,
                "backend": {
                    "type": "relay",
                    "mode": "reverse",
                    "port": port,
                    "selfId": ids[name],
                    "token": TOKENS[ids[name]],
                    "connectTimeout": 0,
                    "pingInterval": 0,
                },
            }
            for name in names
        ],
        "network": {
            "httpServers": [http_entry("api")],
            "websocketServers": [http_entry("ws", heartInterval=0)],
        },
    }


async def test_a_gateway_routes_calls_and_events_of_two_upstreams_on_one_listener(
    http: aiohttp.ClientSession,
) -> None:
    port = free_port()
    ups = {A: upstream_of(A), B: upstream_of(B)}
    async with (
        run_gateway(two_relays_document(port, "a", "b")) as gw,
        dialling(ups[A], port, A, TOKENS[A]),
        dialling(ups[B], port, B, TOKENS[B]),
        http.ws_connect(gw.url("ws", "/").replace("http", "ws")) as downstream,
    ):
        backends = [account.backend for account in gw.supervisor.accounts]
        await until(lambda: all(backend.status()["good"] for backend in backends))
        for upstream in ups.values():
            await upstream.wait_connections(1)
        for self_id in (A, B):
            async with http.post(gw.url("api", f"/{self_id}/get_login_info"), json={}) as answer:
                assert (await answer.json())["data"]["nickname"] == f"up-{self_id}"
        await ups[A].send(event(1, A))
        await ups[B].send(event(2, None))
        received: dict[int, int] = {}
        async with asyncio.timeout(DEADLINE):
            while len(received) < 2:
                frame = await downstream.receive_json()
                if frame.get("post_type") == "message":
                    received[frame["message_id"]] = frame["self_id"]
        assert received == {1: A, 2: B}
        # Reload without b: its upstream is dropped (and refused when it redials), a's stays.
        await gw.supervisor.reload(parse_config(two_relays_document(port, "a"), env={}))
        await until(lambda: ups[B].sockets[0].closed)
        assert len(ups[A].sockets) == 1 and not ups[A].sockets[0].closed
        async with http.post(gw.url("api", f"/{A}/get_login_info"), json={}) as answer:
            assert (await answer.json())["data"]["nickname"] == f"up-{A}"
        status, body = await refusal(
            port, {"X-Self-ID": str(B), "Authorization": f"Bearer {TOKENS[B]}"}
        )
        assert (status, body["retcode"]) == (403, 1403)


# --- config ------------------------------------------------------------------------------------


def accounts_config(*backends: dict[str, Any]) -> GatewayConfig:
    return GatewayConfig.model_validate(
        {
            "accounts": [
                {"name": f"acct{index}", "backend": {"type": "relay", **backend}}
                for index, backend in enumerate(backends)
            ]
        }
    )


def test_config_accounts_sharing_a_listener_each_need_a_self_id() -> None:
    with pytest.raises(
        ValidationError, match=r"accounts\[1\]\.backend\.selfId: the relay listener"
    ):
        accounts_config(
            {"mode": "reverse", "port": 8082, "selfId": A},
            {"mode": "reverse", "port": 8082},
        )


def test_config_accounts_sharing_a_listener_need_distinct_self_ids() -> None:
    with pytest.raises(
        ValidationError, match=rf"accounts\[1\]\.backend\.selfId: {A} is also the selfId of "
    ):
        accounts_config(
            {"mode": "reverse", "port": 8082, "selfId": A, "path": "/a"},
            {"mode": "reverse", "port": 8082, "selfId": A, "path": "/b"},
        )


def test_config_listeners_on_overlapping_addresses_are_refused() -> None:
    with pytest.raises(
        ValidationError,
        match=r"accounts\[1\]\.backend\.port: the relay listener 0\.0\.0\.0:8082 overlaps "
        r"127\.0\.0\.1:8082 of accounts\[0\]\.backend",
    ):
        accounts_config(
            {"mode": "reverse", "port": 8082, "token": "t"},
            {"mode": "reverse", "port": 8082, "host": "0.0.0.0", "token": "t"},
        )


def test_config_a_relay_listener_on_a_server_entrys_port_is_refused() -> None:
    with pytest.raises(
        ValidationError,
        match=r"accounts\[0\]\.backend\.port: the relay listener localhost:3001 overlaps "
        r"127\.0\.0\.1:3001 of network\.websocketServers\[0\]",
    ):
        GatewayConfig.model_validate(
            {
                "network": {"websocketServers": [{"name": "ws", "enable": True, "port": 3001}]},
                "accounts": [
                    {
                        "name": "relay",
                        "backend": {
                            "type": "relay",
                            "mode": "reverse",
                            "host": "localhost",
                            "port": 3001,
                        },
                    }
                ],
            }
        )


def test_config_accounts_apart_or_on_distinct_paths_are_accepted() -> None:
    config = accounts_config(
        {"mode": "reverse", "port": 8082, "selfId": A, "path": "/a"},
        {"mode": "reverse", "port": 8082, "selfId": B, "path": "/b"},
        {"mode": "reverse", "port": 8083},
        {"mode": "reverse", "port": 0},
        {"mode": "reverse", "port": 0},
        {"mode": "forward"},
    )
    assert len(config.account_configs()) == 6
