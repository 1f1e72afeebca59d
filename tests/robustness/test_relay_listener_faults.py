"""Faults at a relay listener shared by two reverse accounts: junk X-Self-ID values, duplicate
connections for one account, abrupt disconnects. Whatever one upstream (or a stranger) does at
the handshake or on its connection, it gets an envelope or a clean close, and the other
account's upstream stays connected and answering.

Both accounts (A and B, from tests/test_relay_accounts.py) are relay backends built directly on
one `RelayListeners`, in front of scripted upstreams on loopback sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.backends.relay import RelayBackend
from gateway.bus import EventBus
from gateway.protocol.envelope import ActionFailed
from tests.robustness.conftest import FUZZ
from tests.robustness.test_relay_faults import DEADLINE, Upstream
from tests.test_relay_accounts import (
    TOKENS,
    A,
    B,
    both_connected,
    connect,
    login_of,
    online,
    shared_listener,
    until,
    upstream_of,
)

ENVELOPE_OF = {400: 1400, 403: 1403, 404: 1404}


async def raw_handshake(port: int, headers: bytes, path: bytes = b"/") -> tuple[int, Any]:
    """Send an upgrade request with exactly these header bytes; the answer's status and JSON
    body (None for a 101)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n" + headers + b"\r\n"
        )
        await writer.drain()
        async with asyncio.timeout(DEADLINE):
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ")[1])
            if status == 101:
                return status, None
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            return status, json.loads(await reader.readexactly(length))
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def field_value(raw: bytes) -> bytes:
    """Bytes an HTTP header value may hold (RFC 9110 field-value: tab, visible ASCII, space,
    obs-text); the HTTP parser itself refuses the others before any handler sees them."""
    return bytes(b if b == 0x09 or 0x20 <= b != 0x7F else 0x20 for b in raw)


async def others_unharmed(backends: dict[int, RelayBackend], ups: dict[int, Upstream]) -> None:
    """Both accounts still on their one first connection, answering from their own upstream."""
    assert [len(ups[A].sockets), len(ups[B].sockets)] == [1, 1]
    assert not ups[A].sockets[0].closed and not ups[B].sockets[0].closed
    assert (await login_of(backends[A]), await login_of(backends[B])) == (A, B)


@pytest.mark.parametrize(
    ("self_id", "token", "status"),
    [
        (b"\xff\xfe\xc3\x28", TOKENS[A], 400),
        (b"\xc2\xb2\xc2\xb3", TOKENS[A], 400),  # superscript digits: str.isdigit() says yes
        ("１１１１１１".encode(), TOKENS[A], 400),  # fullwidth digits
        (b"9" * 5000, TOKENS[A], 400),
        (b"99999999999999999999", TOKENS[A], 400),
        (b"9223372036854775808", TOKENS[A], 400),  # 2**63
        (b"-111111", TOKENS[A], 400),
        (b"+111111", TOKENS[A], 400),
        (b"111111.0", TOKENS[A], 400),
        (b"0x1b207", TOKENS[A], 400),
        (b"", TOKENS[A], 400),
        (b"111111, 222222", TOKENS[A], 400),
        (b"9223372036854775807", TOKENS[A], 403),  # a QQ number, but nobody's
        (b"111111\r\nX-Self-ID: 222222", TOKENS[B], 403),  # the first one counts: A's
        (b"111111", b"\xff\xfe\xc3\x28", 403),
    ],
    ids=[
        "non-utf8",
        "superscript",
        "fullwidth",
        "5000-digits",
        "over-uint64",
        "2**63",
        "negative",
        "plus-sign",
        "decimal",
        "hex",
        "empty",
        "list",
        "int64-max-unknown",
        "two-headers",
        "non-utf8-token",
    ],
)
async def test_junk_x_self_id_is_refused_plainly(
    self_id: bytes, token: str | bytes, status: int
) -> None:
    async with both_connected(EventBus()) as (port, backends, ups):
        raw_token = token.encode() if isinstance(token, str) else token
        answer = await raw_handshake(
            port, b"Authorization: Bearer " + raw_token + b"\r\nX-Self-ID: " + self_id + b"\r\n"
        )
        assert answer[0] == status
        assert answer[1]["retcode"] == ENVELOPE_OF[status] and answer[1]["message"]
        assert len(answer[1]["message"]) < 200  # a junk value is shown cut short
        await others_unharmed(backends, ups)


@FUZZ
@given(
    self_id=st.binary(max_size=64).map(field_value),
    path=st.sampled_from([b"/", b"/x", b"/%ff", b"//", b"/?access_token=x"]),
)
async def test_fuzzed_handshakes_get_an_envelope_and_harm_nobody(
    self_id: bytes, path: bytes
) -> None:
    async with both_connected(EventBus()) as (port, backends, ups):
        answer = await raw_handshake(
            port, b"Authorization: Bearer nobody\r\nX-Self-ID: " + self_id + b"\r\n", path
        )
        assert answer[0] in ENVELOPE_OF and answer[1]["retcode"] == ENVELOPE_OF[answer[0]]
        await others_unharmed(backends, ups)


async def test_a_burst_of_refused_handshakes_harms_nobody() -> None:
    async with both_connected(EventBus()) as (port, backends, ups):
        answers = await asyncio.gather(
            *(
                raw_handshake(port, b"X-Self-ID: " + str(333333 + n).encode() + b"\r\n")
                for n in range(50)
            )
        )
        assert {status for status, _ in answers} == {403}
        await others_unharmed(backends, ups)


async def test_duplicate_connections_for_one_account_leave_exactly_one() -> None:
    async with (
        shared_listener(EventBus()) as (port, backends),
        aiohttp.ClientSession() as http,
    ):
        ups_b = upstream_of(B)
        served = [await connect(ups_b, port, B, TOKENS[B], http)]
        twins = [Upstream(login_data={"user_id": A, "nickname": f"twin-{n}"}) for n in range(5)]
        served += await asyncio.gather(*(connect(t, port, A, TOKENS[A], http) for t in twins))
        await until(lambda: sum(not t.sockets[0].closed for t in twins) == 1)
        survivor = next(t for t in twins if not t.sockets[0].closed)
        await until(online(*backends.values()))
        nickname = (await backends[A].request("get_login_info", {}))["data"]["nickname"]
        assert nickname == survivor.login_data["nickname"]
        assert all(
            t.sockets[0].close_code == aiohttp.WSCloseCode.GOING_AWAY
            for t in twins
            if t is not survivor
        )
        assert not ups_b.sockets[0].closed and await login_of(backends[B]) == B
        for socket in (ups_b.sockets[0], survivor.sockets[0]):
            await socket.close()
        await asyncio.gather(*served)


async def test_an_upstream_vanishing_mid_call_fails_only_its_accounts_call() -> None:
    async with both_connected(EventBus()) as (_, backends, ups):
        ups[A].drop_on["get_status"] = "abort"
        ups[B].silent.add("get_status")
        b_call = asyncio.create_task(backends[B].request("get_status", {}))
        await ups[B].wait_for(lambda: any(f["action"] == "get_status" for f in ups[B].frames))
        with pytest.raises(ActionFailed) as lost:
            await backends[A].request("get_status", {})
        assert lost.value.retcode == 1200 and "the connection closed" in lost.value.message
        assert not b_call.done()
        echo = next(f["echo"] for f in ups[B].frames if f["action"] == "get_status")
        await ups[B].send({"status": "ok", "retcode": 0, "data": "late", "echo": echo})
        assert (await b_call)["data"] == "late"
        await ups[A].wait_connections(2)  # A's upstream redials
        await until(online(backends[A]))
        assert await login_of(backends[A]) == A
        assert len(ups[B].sockets) == 1 and not ups[B].sockets[0].closed


async def test_a_handshake_cut_short_harms_nobody() -> None:
    async with both_connected(EventBus()) as (port, backends, ups):
        for cut in (b"GET / HTTP/1.1\r\nHost: 127", b"GET / HTTP/1.1\r\nX-Self-ID: 111111\r\n"):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(cut)
            await writer.drain()
            transport: Any = writer.transport
            transport.abort()
        await others_unharmed(backends, ups)
