"""The admin listener: health, readiness, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from openapi_spec_validator import validate

from gateway.actions import default_catalog
from gateway.config import parse_config
from tests.conftest import RunningGateway, run_gateway

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
    assert gw.supervisor.admin is not None
    return f"http://127.0.0.1:{gw.supervisor.admin.port}{path}"


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
    assert await get(http, admin_url(gw, "/readyz"), headers=TOKEN) == (200, '{"status":"ready"}')


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
    counted = sample(after, "onebot_requests_total", action="get_login_info", retcode="0")
    assert (
        counted - sample(before, "onebot_requests_total", action="get_login_info", retcode="0") == 3
    )
    assert sample(after, "onebot_requests_total", action="(unknown)", retcode="1404") == 1
    assert sample(after, "onebot_auth_failures_total", server="api") == 1
    assert sample(after, "onebot_action_seconds_count", action="get_login_info") >= 3


async def test_metrics_report_subscribers_and_queue_depth(http: Any) -> None:
    doc = document(websocketServers=[{"name": "ws", "enable": True, "port": 0, "heartInterval": 0}])
    async with run_gateway(doc) as gw:
        url = f"ws://127.0.0.1:{gw.supervisor.adapters['ws'].port}/"
        async with http.ws_connect(url) as ws:
            await ws.receive_json(timeout=5)
            _, text = await get(http, admin_url(gw, "/metrics"), headers=TOKEN)
    assert sample(text, "onebot_subscribers", entry="ws") == 1
    assert sample(text, "onebot_queue_depth", entry="ws") == 0


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
