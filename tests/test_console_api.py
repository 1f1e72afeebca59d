"""The console's API on a multi-account gateway: `/api/call` and `/api/catalog` take the account
(by name or QQ number), `/api/overview` shows every account's state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.conftest import RunningGateway, run_gateway

TOKEN = {"Authorization": "Bearer admin-secret"}
A, B, RELAY = 10001, 10002, 10009


def accounts_document() -> dict[str, Any]:
    """Sandbox accounts `a` and `b`, and `up`: a reverse relay no upstream has joined."""
    relay = {"type": "relay", "mode": "reverse", "port": 0, "connectTimeout": 0, "selfId": RELAY}
    return {
        "accounts": [
            {"name": "a", "backend": {"database": ":memory:", "selfId": A}},
            {"name": "b", "backend": {"database": ":memory:", "selfId": B}},
            {"name": "up", "backend": relay},
        ],
        "admin": {"port": 0, "token": "admin-secret"},
    }


@pytest.fixture
async def gw() -> AsyncIterator[RunningGateway]:
    async with run_gateway(accounts_document()) as running:
        yield running


def admin_url(gw: RunningGateway, path: str) -> str:
    assert gw.supervisor.admin is not None
    return f"http://127.0.0.1:{gw.supervisor.admin.port}{path}"


async def call(
    http: aiohttp.ClientSession, gw: RunningGateway, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    async with http.post(admin_url(gw, "/api/call"), json=body, headers=TOKEN) as response:
        return response.status, await response.json()


async def test_call_goes_to_the_account_named_or_numbered(gw: RunningGateway, http: Any) -> None:
    by_name = await call(http, gw, {"action": "get_login_info", "account": "b"})
    by_number = await call(http, gw, {"action": "get_login_info", "account": A})
    by_digits = await call(http, gw, {"action": "get_login_info", "account": str(B)})
    offline = await call(http, gw, {"action": "get_login_info", "account": "up"})
    assert by_name[0] == 200 and by_name[1]["data"]["user_id"] == B
    assert by_number[1]["data"]["user_id"] == A
    assert by_digits[1]["data"]["user_id"] == B
    assert offline[0] == 200 and offline[1]["retcode"] == 1200


async def test_call_without_an_account_on_several_is_400_naming_them(
    gw: RunningGateway, http: Any
) -> None:
    status, body = await call(http, gw, {"action": "get_login_info"})
    assert status == 400
    assert '"account"' in body["message"]
    assert "'a' (10001), 'b' (10002), 'up' (10009)" in body["message"]


@pytest.mark.parametrize("ref", ["nobody", 10003, "10003", 0])
async def test_call_to_an_unknown_account_is_404_naming_them(
    gw: RunningGateway, http: Any, ref: object
) -> None:
    status, body = await call(http, gw, {"action": "get_login_info", "account": ref})
    assert status == 404
    assert "no account is named or numbered" in body["message"]
    assert "'a' (10001)" in body["message"]


async def test_catalog_is_the_picked_accounts(gw: RunningGateway, http: Any) -> None:
    async with http.get(admin_url(gw, "/api/catalog?account=b"), headers=TOKEN) as response:
        sandbox = await response.json()
    async with http.get(admin_url(gw, f"/api/catalog?account={RELAY}"), headers=TOKEN) as response:
        relay = await response.json()
    async with http.get(admin_url(gw, "/api/catalog?account=x"), headers=TOKEN) as response:
        assert response.status == 404
    assert (sandbox["account"], sandbox["backend"]) == ("b", "sandbox")
    assert (relay["account"], relay["backend"]) == ("up", "relay")
    names = {action["name"] for action in sandbox["actions"]}
    assert "sandbox_receive_message" in names
    assert "sandbox_receive_message" not in {action["name"] for action in relay["actions"]}


async def test_overview_shows_every_accounts_state_and_answers(
    gw: RunningGateway, http: Any
) -> None:
    await call(http, gw, {"action": "get_login_info", "account": "b"})
    await call(http, gw, {"action": "get_status", "account": "b"})
    async with http.get(admin_url(gw, "/api/overview"), headers=TOKEN) as response:
        overview = await response.json()
    states = {a["name"]: (a["self_id"], a["kind"], a["state"]) for a in overview["accounts"]}
    assert states == {
        "a": (A, "sandbox", "online"),
        "b": (B, "sandbox", "online"),
        "up": (RELAY, "relay", "offline"),
    }
    answered = {a["name"]: a["actions"] for a in overview["accounts"]}
    assert answered["b"] == {"0": 2}
    assert answered["a"] == {}


async def test_one_account_needs_no_account_in_calls(http: Any) -> None:
    document = {"backend": {"database": ":memory:"}, "admin": {"port": 0, "token": "admin-secret"}}
    async with run_gateway(document) as gw:
        plain = await call(http, gw, {"action": "get_login_info"})
        named = await call(http, gw, {"action": "get_login_info", "account": "default"})
    assert plain[1]["data"]["user_id"] == named[1]["data"]["user_id"] == A
