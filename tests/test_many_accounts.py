"""A hundred sandbox accounts behind one gateway: they all start, each call named by path reaches
its own account, a WebSocket bound to one account gets that account's events only while simulated
users speak in all of them, an unbound connection gets every account's event once, and the
gateway stops cleanly (every account's store threads gone, the connections closed).

Start-up time and memory per account are measured by `make bench` (the `accounts*` scenarios of
`bench/run.py`), not asserted here.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

import aiohttp

from gateway.config import parse_config
from gateway.supervisor import Supervisor
from tests.conftest import capture_logs, http_entry

COUNT = 100
FIRST = 10001
SELF_IDS = range(FIRST, FIRST + COUNT)
GROUP_ID = 30001  # a group of the default world every account is in
BOUND = (FIRST, FIRST + 56, FIRST + COUNT - 1)
"""The accounts a WebSocket binds to by path: the first, one in the middle, the last."""


def name_of(self_id: int) -> str:
    return f"bot{self_id - FIRST + 1}"


def many_accounts() -> dict[str, Any]:
    """`COUNT` sandbox accounts on the default world, an HTTP and a WebSocket entry serving all."""
    return {
        "accounts": [
            {"name": name_of(self_id), "backend": {"database": ":memory:", "selfId": self_id}}
            for self_id in SELF_IDS
        ],
        "network": {
            "httpServers": [http_entry("api")],
            "websocketServers": [http_entry("ws", heartInterval=0)],
        },
    }


def store_threads() -> list[threading.Thread]:
    """The sandbox stores' database threads alive now."""
    return [t for t in threading.enumerate() if t.name.startswith("sandbox-db-")]


async def speak(supervisor: Supervisor, self_id: int, text: str) -> None:
    """A simulated user says `text` in the group, as seen by the account `self_id`."""
    account = supervisor.accounts.named(name_of(self_id))
    assert account is not None
    answer = await account.dispatcher.call(
        "sandbox_receive_message",
        {"message_type": "group", "group_id": GROUP_ID, "user_id": 20002, "message": text},
    )
    assert answer["retcode"] == 0, answer


async def messages_until(ws: aiohttp.ClientWebSocketResponse, marker: str) -> list[dict[str, Any]]:
    """The message events a connection receives up to the one saying `marker` (excluded).

    The bus delivers one subscription's events in publish order, so an event published before
    the marker that this connection should not get would arrive before the marker."""
    messages: list[dict[str, Any]] = []
    async with asyncio.timeout(20):
        while True:
            frame = await ws.receive_json()
            if frame.get("post_type") != "message":
                continue
            if frame["raw_message"] == marker:
                return messages
            messages.append(frame)


async def test_a_hundred_accounts_route_calls_and_events_each_to_its_own(
    http: aiohttp.ClientSession,
) -> None:
    # Another test of the same worker may still be closing a store of its own: only this
    # gateway's threads are counted.
    before = set(store_threads())
    supervisor = Supervisor(parse_config(many_accounts(), env={}))
    await supervisor.start()
    try:
        assert [account.self_id for account in supervisor.accounts] == list(SELF_IDS)
        assert supervisor.not_ready() == []
        assert len(set(store_threads()) - before) >= COUNT  # a writer per account
        api: Any = supervisor.adapters["api"]
        ws_port = supervisor.adapters["ws"].port  # type: ignore[attr-defined]

        async def login(self_id: int) -> Any:
            url = f"http://127.0.0.1:{api.port}/{self_id}/get_login_info"
            async with http.post(url, json={}) as response:
                return (await response.json())["data"]["user_id"]

        assert await asyncio.gather(*(login(self_id) for self_id in SELF_IDS)) == list(SELF_IDS)

        bound = {
            self_id: await http.ws_connect(f"ws://127.0.0.1:{ws_port}/{self_id}/")
            for self_id in BOUND
        }
        unbound = await http.ws_connect(f"ws://127.0.0.1:{ws_port}/")
        await asyncio.gather(*(speak(supervisor, s, f"hello {s}") for s in SELF_IDS))
        # Then a marker in each bound account, and in the last account for the unbound one.
        for self_id in BOUND:
            await speak(supervisor, self_id, "end")

        for self_id, ws in bound.items():
            got = await messages_until(ws, "end")
            assert [(e["self_id"], e["raw_message"]) for e in got] == [
                (self_id, f"hello {self_id}")
            ]
        everything = await messages_until(unbound, "end")
        assert Counter(e["self_id"] for e in everything) == Counter(SELF_IDS)
        assert all(e["raw_message"] == f"hello {e['self_id']}" for e in everything)
    finally:
        with capture_logs() as logs:
            await supervisor.stop()

    assert [e for e in logs if e["log_level"] in ("warning", "error", "critical")] == []
    assert len(supervisor.accounts) == 0 and supervisor.adapters == {}
    for ws in (*bound.values(), unbound):
        async with asyncio.timeout(10):
            while not ws.closed:
                await ws.receive()
    assert set(store_threads()) - before == set()


async def test_an_account_renumbered_by_reload_is_found_by_its_new_number_only(
    http: aiohttp.ClientSession,
) -> None:
    """The accounts remember which account a QQ number found (calls name accounts by number):
    after a reload gives an account another number, the old number finds none."""

    def document(first: int) -> dict[str, Any]:
        return {
            "accounts": [
                {"name": "a", "backend": {"database": ":memory:", "selfId": first}},
                {"name": "b", "backend": {"database": ":memory:", "selfId": FIRST + 1}},
            ],
            "network": {"httpServers": [http_entry("api")]},
        }

    async def login(port: int, self_id: int) -> Any:
        url = f"http://127.0.0.1:{port}/get_login_info"
        async with http.post(url, json={"self_id": self_id}) as response:
            return await response.json()

    supervisor = Supervisor(parse_config(document(FIRST), env={}))
    await supervisor.start()
    try:
        port = supervisor.adapters["api"].port  # type: ignore[attr-defined]
        before = await login(port, FIRST)
        await supervisor.reload(parse_config(document(FIRST + 2), env={}))
        old = await login(port, FIRST)
        new = await login(port, FIRST + 2)
        other = await login(port, FIRST + 1)
    finally:
        await supervisor.stop()
    assert before["data"]["user_id"] == FIRST
    assert old["retcode"] == 1403
    assert new["data"]["user_id"] == FIRST + 2
    assert other["data"]["user_id"] == FIRST + 1
