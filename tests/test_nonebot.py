"""NoneBot2 with nonebot-adapter-onebot as a real bot framework against the gateway."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.conftest import run_gateway, sandbox_config
from tests.nonebot_harness import nonebot_forward_ws
from tests.sandbox_client import SandboxClient, sandbox_client


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
