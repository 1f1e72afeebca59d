"""Any value naming the account of a call, on every transport that takes one (HTTP path prefix,
`X-Self-ID`, `?self_id=`, `params.self_id`, `self_id` beside `action` on a WebSocket, the
WebSocket path): the answer is an envelope that either comes from the named account or says
why not (1400 / 1403), never a 5xx, never another account's answer, and the gateway keeps
serving."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import run_gateway
from tests.robustness.conftest import FUZZ

A, B, C = 10001, 10002, 10003
SERVED = {A, B}  # the entry serves a and b; c exists but is not served

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=24)
    | st.sampled_from([str(A), str(C), " 10001", "10001 ", "١٠٠٠١", "0", "-10001", "+10002"])
    | st.sampled_from([A, B, C, 0, -1, 2**63, 2**64])
)
values = scalars | st.lists(scalars, max_size=2) | st.dictionaries(st.text(max_size=4), scalars)
header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=24
) | st.sampled_from([str(A), str(B), str(C), "", " 10002 "])


def document() -> dict[str, Any]:
    entry = {"enable": True, "host": "127.0.0.1", "port": 0, "accounts": ["a", "b"]}
    return {
        "accounts": [
            {"name": n, "backend": {"database": ":memory:", "selfId": i}}
            for n, i in (("a", A), ("b", B), ("c", C))
        ],
        "network": {
            "httpServers": [{**entry, "name": "api"}],
            "websocketServers": [{**entry, "name": "ws"}],
        },
    }


def expected_account(value: Any) -> int | None:
    """The account a value names when it is a valid QQ number, else None."""
    if type(value) is str and value.isascii() and value.isdigit() and len(value) < 20:
        value = int(value)
    return value if type(value) is int and 0 < value < 2**63 else None


def check(answer: dict[str, Any], named: int | None) -> None:
    assert answer["status"] in ("ok", "failed"), answer
    if answer["retcode"] == 0:
        assert named in SERVED, answer
        assert answer["data"]["user_id"] == named, answer  # never another account's
    else:
        assert answer["retcode"] in (1400, 1403), answer
        assert answer["message"], answer
        if named in SERVED:
            raise AssertionError(f"a served account was refused: {answer}")


@FUZZ
@given(value=values, where=st.sampled_from(["params", "query", "beside"]))
async def test_any_self_id_value_on_http_and_websocket(value: Any, where: str) -> None:
    named = expected_account(value)
    async with run_gateway(document()) as gw, aiohttp.ClientSession() as http:
        api = gw.supervisor.adapters["api"].port  # type: ignore[attr-defined]
        ws_port = gw.supervisor.adapters["ws"].port  # type: ignore[attr-defined]
        if where == "query":
            text = value if isinstance(value, str) else str(value)
            url = f"http://127.0.0.1:{api}/get_login_info?self_id={quote(text, safe='')}"
            async with http.get(url) as response:
                assert response.status < 500
                answer = await response.json()
            named = expected_account(text)
        else:
            async with http.post(
                f"http://127.0.0.1:{api}/get_login_info", json={"self_id": value}
            ) as response:
                assert response.status < 500
                answer = await response.json()
        check(answer, named)
        async with http.ws_connect(f"ws://127.0.0.1:{ws_port}/api") as ws:
            frame: dict[str, Any] = {"action": "get_login_info", "echo": "fuzz"}
            if where == "beside":
                frame["self_id"] = value
            else:
                frame["params"] = {"self_id": value}
            await ws.send_json(frame)
            reply = await ws.receive_json()
            assert reply["echo"] == "fuzz"
            check(reply, expected_account(value))
            # The connection keeps serving after a bad name.
            await ws.send_json({"action": "get_login_info", "echo": "ok", "self_id": A})
            assert (await ws.receive_json())["data"]["user_id"] == A


@FUZZ
@given(header=header_values, prefix=st.text(max_size=12) | st.sampled_from(["10001", "10003"]))
async def test_any_account_header_or_path_prefix(header: str, prefix: str) -> None:
    async with run_gateway(document()) as gw, aiohttp.ClientSession() as http:
        api = gw.supervisor.adapters["api"].port  # type: ignore[attr-defined]
        ws_port = gw.supervisor.adapters["ws"].port  # type: ignore[attr-defined]
        path = "/" + quote(prefix, safe="") + "/get_login_info" if prefix else "/get_login_info"
        async with http.post(
            f"http://127.0.0.1:{api}{path}", json={}, headers={"X-Self-ID": header}
        ) as response:
            assert response.status < 500
            answer = await response.json()
        assert answer["status"] in ("ok", "failed")
        if answer["retcode"] == 0:
            assert answer["data"]["user_id"] in SERVED
        else:
            assert answer["retcode"] in (1400, 1403, 1404), answer
        refused = None
        try:
            async with http.ws_connect(
                f"ws://127.0.0.1:{ws_port}/api", headers={"X-Self-ID": header}
            ) as ws:
                await ws.send_json({"action": "get_login_info", "echo": 1})
                reply = await ws.receive_json()
                # Bound by a valid header, or unbound on an empty one (then the call names none).
                assert reply["retcode"] in (0, 1400), reply
                if reply["retcode"] == 0:
                    assert reply["data"]["user_id"] == expected_account(header.strip())
        except aiohttp.WSServerHandshakeError as error:
            refused = error.status
        assert refused in (None, 400, 403)
