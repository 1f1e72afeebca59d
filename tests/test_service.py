"""Running as a service: the systemd notify protocol and hot reload."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.config import parse_config
from gateway.supervisor import Supervisor
from tests.conftest import free_port, run_gateway, wait_until_closed
from tests.held_server import held_server


def document(**network: Any) -> dict[str, Any]:
    return {"network": network, "backend": {"database": ":memory:"}}


def entry(name: str, port: int = 0, **fields: Any) -> dict[str, Any]:
    return {"name": name, "enable": True, "port": port, "heartInterval": 0, **fields}


async def _started(doc: dict[str, Any]) -> Supervisor:
    supervisor = Supervisor(parse_config(doc, {}))
    await supervisor.start()
    return supervisor


async def datagrams(sock: socket.socket, until: str, limit: float = 20) -> list[str]:
    """Notify messages received until one contains `until`."""
    loop = asyncio.get_running_loop()
    got: list[str] = []
    async with asyncio.timeout(limit):
        while not any(until in message for message in got):
            got.append((await loop.sock_recv(sock, 4096)).decode())
    return got


async def test_notify_protocol_ready_watchdog_reload_stopping(
    gateway_process: Any, tmp_path: Path
) -> None:
    address = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.setblocking(False)
    port = free_port()
    process = gateway_process(
        document(httpServers=[entry("api", port)]),
        env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"},
    )
    try:
        ready = await datagrams(sock, "READY=1")
        _, writer = await asyncio.open_connection("127.0.0.1", port)  # listening before READY
        writer.close()
        assert "STATUS=sandbox backend, self_id 10001" in ready[-1]
        watchdog = await datagrams(sock, "WATCHDOG=1")
        assert "WATCHDOG=1" in watchdog[-1]
        process.proc.send_signal(signal.SIGHUP)
        reload = await datagrams(sock, "READY=1")
        reloading = next(m for m in reload if "RELOADING=1" in m)
        assert "MONOTONIC_USEC=" in reloading
        assert reload.index(reloading) < len(reload) - 1
        process.proc.send_signal(signal.SIGTERM)
        assert any("STOPPING=1" in m for m in await datagrams(sock, "STOPPING=1"))
        assert process.proc.wait(20) == 0
    finally:
        sock.close()


async def test_reload_keeps_unchanged_connections_and_applies_changes() -> None:
    old_port, new_port = free_port(), free_port()
    before = document(websocketServers=[entry("keep")], httpServers=[entry("moving", old_port)])
    async with run_gateway(before) as gw, aiohttp.ClientSession() as http:
        keep_port = gw.supervisor.adapters["keep"].port
        async with http.ws_connect(f"ws://127.0.0.1:{keep_port}/") as ws:
            await ws.receive_json(timeout=5)  # lifecycle
            after = document(
                websocketServers=[entry("keep")],
                httpServers=[entry("moving", new_port), entry("added")],
            )
            await gw.supervisor.reload(parse_config(after, {}))
            assert set(gw.supervisor.adapters) == {"keep", "moving", "added"}
            assert gw.supervisor.adapters["keep"].port == keep_port
            gw.supervisor.bus.publish({"post_type": "notice", "notice_type": "after_reload"})
            assert (await ws.receive_json(timeout=5))["notice_type"] == "after_reload"
            assert not ws.closed
            async with http.post(f"http://127.0.0.1:{new_port}/get_login_info") as moved:
                assert (await moved.json())["retcode"] == 0
            assert await wait_until_closed(old_port)


async def test_reload_stops_removed_and_disabled_entries() -> None:
    before = document(httpServers=[entry("a"), entry("b")])
    async with run_gateway(before) as gw:
        b_port = gw.supervisor.adapters["b"].port
        after = document(httpServers=[entry("a"), {**entry("b"), "enable": False}])
        await gw.supervisor.reload(parse_config(after, {}))
        assert set(gw.supervisor.adapters) == {"a"}
        assert await wait_until_closed(b_port)


async def test_sighup_with_an_invalid_file_keeps_the_running_config(
    gateway_process: Any, tmp_path: Path
) -> None:
    port = free_port()
    process = gateway_process(document(httpServers=[entry("api", port)]))
    process.wait_for("gateway_ready")
    config = tmp_path / "config-0.json5"
    config.write_text(json.dumps(document(httpServers=[entry("api", "not-a-port")])))
    process.proc.send_signal(signal.SIGHUP)
    rejected = process.wait_for("reload_rejected")
    assert "network.httpServers[0].port" in rejected["error"]
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"http://127.0.0.1:{port}/get_login_info") as response,
    ):
        assert (await response.json())["retcode"] == 0
    assert process.terminate() == 0


async def test_watch_reloads_when_the_file_changes(gateway_process: Any, tmp_path: Path) -> None:
    port, added = free_port(), free_port()
    process = gateway_process(document(httpServers=[entry("api", port)]), args=("--watch",))
    process.wait_for("gateway_ready")
    await asyncio.sleep(0.5)  # the file watcher's inotify setup runs on its own thread
    config = tmp_path / "config-0.json5"
    config.write_text(json.dumps(document(httpServers=[entry("api", port), entry("new", added)])))
    reloaded = process.wait_for("gateway_reloaded")
    assert reloaded["adapters"] == 2
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"http://127.0.0.1:{added}/get_login_info") as response,
    ):
        assert (await response.json())["retcode"] == 0
    assert process.terminate() == 0


# --- graceful shutdown -------------------------------------------------------------------------


async def test_sigterm_answers_websocket_calls_in_flight_then_closes_1001(
    gateway_process: Any,
) -> None:
    process = gateway_process(
        {**document(websocketServers=[entry("ws")]), "api": {"shutdownGrace": 30}}
    )
    process.wait_for("gateway_ready")
    port = process.port_of("ws")
    async with held_server() as media, aiohttp.ClientSession() as http:
        sockets = [await http.ws_connect(f"ws://127.0.0.1:{port}/api") for _ in range(5)]
        for i, ws in enumerate(sockets):
            for j in range(5):
                url = media.url(f"{i}-{j}")
                await ws.send_json(
                    {"action": "download_file", "params": {"url": url}, "echo": f"{i}-{j}"}
                )
        await media.wait_for(25)  # all 25 calls in flight, held by the media server
        process.proc.send_signal(signal.SIGTERM)
        assert await wait_until_closed(port)  # shutting down: no new connections
        media.release.set()
        for i, ws in enumerate(sockets):
            answers, message = [], await ws.receive(timeout=20)
            while message.type == aiohttp.WSMsgType.TEXT:
                answers.append(json.loads(message.data))
                message = await ws.receive(timeout=20)
            assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 1001)
            assert sorted(a["echo"] for a in answers) == [f"{i}-{j}" for j in range(5)]
            assert all(a["retcode"] == 0 for a in answers), answers
            await ws.close()
    assert process.proc.wait(20) == 0


async def test_listeners_stop_together_within_one_grace() -> None:
    # Each server holds an HTTP call; one shared deadline means every listener stops accepting
    # at once, instead of each waiting for the one stopped before it.
    doc = {**document(httpServers=[entry("a"), entry("b")]), "api": {"shutdownGrace": 60}}
    async with held_server() as media, aiohttp.ClientSession() as http:
        gw = await _started(doc)
        ports = [gw.adapters[name].port for name in ("a", "b")]  # type: ignore[attr-defined]
        calls = [
            asyncio.create_task(
                http.post(f"http://127.0.0.1:{port}/download_file", json={"url": media.url(str(n))})
            )
            for n, port in enumerate(ports)
        ]
        await media.wait_for(2)
        stopping = asyncio.create_task(gw.stop())
        try:
            for _ in range(500):  # until both have begun to stop (a hang detector bounds it)
                if not gw.adapters:
                    break
                await asyncio.sleep(0.01)
            # Both listeners stopped accepting while both calls are still held. (A listener
            # takes itself out of `adapters` as it starts to stop and closes its socket before
            # anything else; probing with connections instead could race an accept.)
            for port in ports:
                with pytest.raises(ConnectionRefusedError):
                    await asyncio.open_connection("127.0.0.1", port)
        finally:
            media.release.set()
        for call in calls:
            async with await call as response:
                assert (await response.json())["retcode"] == 0
        await stopping
