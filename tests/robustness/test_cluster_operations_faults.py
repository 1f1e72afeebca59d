"""A cluster node whose NATS server never answers: `/readyz`, `/metrics` and the console still
answer (ready: its own account works; the link and the remote account reported down with the
reason), a remote call fails at once with 1200, and any `/readyz?account=` value gets a JSON
answer: the account's, or 404 naming the accounts; never a 500."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
from hypothesis import given
from hypothesis import strategies as st

from gateway.testing.ports import free_port
from tests.conftest import run_gateway
from tests.robustness.conftest import FUZZ

LOCAL, REMOTE = 10001, 10009
TOKEN = {"Authorization": "Bearer admin-secret"}


def unreachable_node() -> dict[str, Any]:
    """Node `edge`: hosts `a`, serves `a` and REMOTE; its NATS URL is a port nothing listens on."""
    return {
        "accounts": [{"name": "a", "backend": {"database": ":memory:", "selfId": LOCAL}}],
        "cluster": {"nats": {"url": f"nats://127.0.0.1:{free_port()}"}, "node": "edge"},
        "network": {
            "httpServers": [{"name": "api", "enable": True, "port": 0, "accounts": ["a", REMOTE]}]
        },
        "admin": {"port": 0, "token": "admin-secret"},
    }


async def test_a_node_without_nats_reports_the_link_down_and_stays_ready() -> None:
    async with run_gateway(unreachable_node()) as gw, aiohttp.ClientSession() as http:
        assert gw.supervisor.admin is not None
        base = f"http://127.0.0.1:{gw.supervisor.admin.port}"
        async with http.get(f"{base}/readyz", headers=TOKEN) as response:
            ready = response.status, await response.json()
        async with http.get(f"{base}/readyz?account={REMOTE}", headers=TOKEN) as response:
            remote = response.status, await response.json()
        async with http.get(f"{base}/metrics", headers=TOKEN) as response:
            metrics = await response.text()
        async with http.get(f"{base}/api/overview", headers=TOKEN) as response:
            overview = await response.json()
        api = gw.url("api")
        async with http.post(f"{api}/{REMOTE}/get_login_info", json={}) as response:
            call = await response.json()
        async with http.post(f"{api}/{LOCAL}/get_login_info", json={}) as response:
            local = await response.json()
    status, body = ready
    assert status == 200 and body["status"] == "ready"
    link = body["cluster"]
    assert link["connected"] is False and link["error"]
    [account] = link["accounts"]
    assert account["self_id"] == REMOTE and account["node"] is None and account["ready"] is False
    assert "link to NATS is down" in account["reason"]
    assert remote[0] == 503 and remote[1]["account"] == account
    assert "onebot_cluster_connected 0.0" in metrics
    assert overview["cluster"]["connected"] is False and overview["cluster"]["nodes"] == {}
    assert call["retcode"] == 1200 and str(REMOTE) in call["message"]
    assert local["retcode"] == 0 and local["data"]["user_id"] == LOCAL


refs = st.text(max_size=30) | st.sampled_from(
    ["a", str(LOCAL), str(REMOTE), f" {REMOTE}", f"{REMOTE} ", "١٠٠٠٩", "0", "-10009", "edge"]
)


@FUZZ
@given(values=st.lists(refs, min_size=1, max_size=12))
async def test_any_readyz_account_on_a_cluster_node_gets_an_answer(values: list[str]) -> None:
    async with run_gateway(unreachable_node()) as gw, aiohttp.ClientSession() as http:
        assert gw.supervisor.admin is not None
        base = f"http://127.0.0.1:{gw.supervisor.admin.port}"
        for ref in values:
            url = f"{base}/readyz?account={quote(ref, safe='')}"
            async with http.get(url, headers=TOKEN) as response:
                answer = await response.json()
            if ref in ("a", str(LOCAL)):
                assert response.status == 200 and answer["account"]["self_id"] == LOCAL
            elif ref == str(REMOTE):
                assert response.status == 503 and answer["account"]["self_id"] == REMOTE
            else:
                assert response.status == 404, ref
                assert f"'a' ({LOCAL}), '{REMOTE}' ({REMOTE})" in answer["message"]
