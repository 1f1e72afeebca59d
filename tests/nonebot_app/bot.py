"""A real NoneBot2 app for end-to-end tests in every connection mode: `ping` → `pong`.

Settings come from the environment the test passes: NB_MODE (forward, reverse or http),
ONEBOT_WS_URLS (JSON list), ONEBOT_ACCESS_TOKEN, NB_PORT, NB_HOST (127.0.0.1 unless set: a
container sets 0.0.0.0), ONEBOT_SECRET, ONEBOT_API_ROOTS.
It prints `BOT_CONNECTED <self_id>` when the gateway registers the bot.
"""

import json
import os

import nonebot
from nonebot.adapters.onebot.v11 import Adapter, Bot
from nonebot.plugin import on_command

MODE = os.environ.get("NB_MODE", "forward")
common = {
    "onebot_access_token": os.environ.get("ONEBOT_ACCESS_TOKEN") or None,
    "command_start": {""},
    "log_level": "INFO",
}
if MODE == "forward":
    nonebot.init(
        driver="~none+~websockets",
        onebot_ws_urls=set(json.loads(os.environ["ONEBOT_WS_URLS"])),
        **common,
    )
else:
    # Reverse WebSocket and HTTP POST: NoneBot hosts /onebot/v11/ws and /onebot/v11/http; in
    # HTTP POST mode it calls the gateway back through ONEBOT_API_ROOTS.
    nonebot.init(
        driver="~fastapi+~aiohttp",
        host=os.environ.get("NB_HOST", "127.0.0.1"),
        port=int(os.environ["NB_PORT"]),
        onebot_secret=os.environ.get("ONEBOT_SECRET") or None,
        onebot_api_roots=json.loads(os.environ.get("ONEBOT_API_ROOTS", "{}")),
        **common,
    )
driver = nonebot.get_driver()
driver.register_adapter(Adapter)


@driver.on_bot_connect
async def announce(bot: Bot) -> None:
    print(f"BOT_CONNECTED {bot.self_id}", flush=True)


ping = on_command("ping")


@ping.handle()
async def pong() -> None:
    await ping.finish("pong")


if __name__ == "__main__":
    nonebot.run()
