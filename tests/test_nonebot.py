"""NoneBot2 with nonebot-adapter-onebot as a real bot framework against the gateway."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_gateway, sandbox_config
from tests.nonebot_harness import nonebot_forward_ws


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
