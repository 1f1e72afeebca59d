"""NoneBot2 with nonebot-adapter-onebot as a real bot framework against the gateway."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tests.conftest import free_port, run_gateway, sandbox_config
from tests.nonebot_harness import nonebot_forward_ws, run_nonebot
from tests.sandbox_client import SandboxClient, sandbox_client, sandbox_document


async def test_nonebot_forward_ws_registers_the_bot_with_self_id(tmp_path: Path) -> None:
    doc = sandbox_config(
        websocketServers=[
            {"name": "ws", "enable": True, "host": "127.0.0.1", "port": 0, "token": "nb-token"}
        ]
    )
    async with run_gateway(doc) as gw:
        port = gw.supervisor.adapters["ws"].port
        async with nonebot_forward_ws([f"ws://127.0.0.1:{port}/"], "nb-token", tmp_path) as bot:
            line = await bot.wait_for_line("BOT_CONNECTED")
        assert line.split()[-1] == "10001"


async def wait_for_pong(sandbox: SandboxClient, action: str, **params: Any) -> dict[str, Any]:
    """Poll history until the bot's `pong` is there (NoneBot answers asynchronously)."""
    for _ in range(300):
        history = await sandbox.ok(action, **params)
        pongs = [m for m in history["messages"] if m["raw_message"] == "pong"]
        if pongs:
            return pongs[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no pong in {action}: {history}")


async def test_nonebot_answers_ping_with_pong_privately_and_in_groups(tmp_path: Path) -> None:
    async with sandbox_client() as sandbox:
        port = sandbox.gw.supervisor.adapters["ws"].port
        async with nonebot_forward_ws([f"ws://127.0.0.1:{port}/"], "", tmp_path) as bot:
            await bot.wait_for_line("BOT_CONNECTED")
            await sandbox.ok(
                "sandbox_receive_message", message_type="private", user_id=20001, message="ping"
            )
            private = await wait_for_pong(sandbox, "get_friend_msg_history", user_id=20001)
            assert private["user_id"] == 10001 and private["post_type"] == "message_sent"
            await sandbox.ok(
                "sandbox_receive_message",
                message_type="group",
                group_id=30001,
                user_id=20003,
                message="ping",
            )
            group = await wait_for_pong(sandbox, "get_group_msg_history", group_id=30001)
            assert group["sender"]["user_id"] == 10001
            assert group["message_type"] == "group"


async def test_nonebot_reverse_websocket_ping_pong(tmp_path: Path) -> None:
    nb_port = free_port()
    document = sandbox_document()
    document["network"]["websocketClients"] = [
        {
            "name": "to-nonebot",
            "enable": True,
            "token": "rev-token",
            "reconnectInterval": 100,
            "reconnectMaxInterval": 500,
            "url": f"ws://127.0.0.1:{nb_port}/onebot/v11/ws",
        }
    ]
    settings = {"NB_MODE": "reverse", "NB_PORT": str(nb_port), "ONEBOT_ACCESS_TOKEN": "rev-token"}
    async with run_nonebot(settings, tmp_path) as bot, sandbox_client(document) as sandbox:
        line = await bot.wait_for_line("BOT_CONNECTED")
        assert line.split()[-1] == "10001"
        await sandbox.ok(
            "sandbox_receive_message", message_type="private", user_id=20002, message="ping"
        )
        pong = await wait_for_pong(sandbox, "get_friend_msg_history", user_id=20002)
        assert pong["user_id"] == 10001


async def test_nonebot_http_post_ping_pong(tmp_path: Path) -> None:
    nb_port = free_port()
    document = sandbox_document()
    document["network"]["httpServers"][0]["token"] = "api-token"
    document["network"]["httpClients"] = [
        {
            "name": "to-nonebot",
            "enable": True,
            "token": "post-secret",
            "retryInterval": 100,
            "url": f"http://127.0.0.1:{nb_port}/onebot/v11/http",
        }
    ]
    async with sandbox_client(document) as sandbox:
        api_root = f"http://127.0.0.1:{sandbox.gw.supervisor.adapters['api'].port}/"
        settings = {
            "NB_MODE": "http",
            "NB_PORT": str(nb_port),
            "ONEBOT_SECRET": "post-secret",
            "ONEBOT_ACCESS_TOKEN": "api-token",
            "ONEBOT_API_ROOTS": json.dumps({"10001": api_root}),
        }
        sandbox.headers = {"Authorization": "Bearer api-token"}
        async with run_nonebot(settings, tmp_path) as bot:
            await bot.wait_for_line("Uvicorn running")
            await sandbox.ok(
                "sandbox_receive_message",
                message_type="group",
                group_id=30002,
                user_id=20005,
                message="ping",
            )
            await bot.wait_for_line("BOT_CONNECTED")
            pong = await wait_for_pong(sandbox, "get_group_msg_history", group_id=30002)
            assert pong["sender"]["user_id"] == 10001
