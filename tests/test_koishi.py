"""Koishi with its OneBot adapter as a real bot framework against the gateway (forward WebSocket).

The app is tests/koishi/app.js, installed by `make koishi`; tests/koishi_harness.py runs it.
"""

from __future__ import annotations

from tests.conftest import run_gateway, sandbox_config
from tests.koishi_harness import run_koishi
from tests.sandbox_client import sandbox_client


async def test_koishi_forward_ws_registers_the_bot_with_a_token() -> None:
    doc = sandbox_config(
        websocketServers=[
            {"name": "ws", "enable": True, "host": "127.0.0.1", "port": 0, "token": "k-token"}
        ]
    )
    async with run_gateway(doc) as gw:
        port = gw.supervisor.adapters["ws"].port
        async with run_koishi(f"ws://127.0.0.1:{port}/", 10001, "k-token") as koishi:
            assert await koishi.wait_for("KOISHI_CONNECTED") == {
                "selfId": "10001",
                "loginId": "10001",
            }


async def test_koishi_answers_ping_in_a_group_and_privately() -> None:
    async with sandbox_client() as sandbox:
        port = sandbox.gw.supervisor.adapters["ws"].port
        async with run_koishi(f"ws://127.0.0.1:{port}/", 10001) as koishi:
            await koishi.wait_for("KOISHI_CONNECTED")
            await sandbox.ok(
                "sandbox_receive_message",
                message_type="group",
                group_id=30001,
                user_id=20003,
                message="ping",
            )
            received = await koishi.wait_for("KOISHI_RECEIVED", content="ping")
            assert received["type"] == "group" and received["channelId"] == "30001"
            assert received["userId"] == "20003"
            await koishi.wait_for("KOISHI_REPLIED", channelId="30001")
            history = await sandbox.ok("get_group_msg_history", group_id=30001)
            pong = history["messages"][-1]
            assert pong["raw_message"] == "pong from 10001"
            assert pong["sender"]["user_id"] == 10001

            await sandbox.ok(
                "sandbox_receive_message", message_type="private", user_id=20002, message="ping"
            )
            await koishi.wait_for("KOISHI_REPLIED", channelId="private:20002")
            history = await sandbox.ok("get_friend_msg_history", user_id=20002)
            assert history["messages"][-1]["raw_message"] == "pong from 10001"
