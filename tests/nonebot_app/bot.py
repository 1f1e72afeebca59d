"""A real NoneBot2 app for end-to-end tests: forward WebSocket to the gateway, `ping` → `pong`.

Settings come from the environment the test passes: ONEBOT_WS_URLS (JSON list) and
ONEBOT_ACCESS_TOKEN. It prints `BOT_CONNECTED <self_id>` when the gateway registers the bot.
"""

import json
import os

import nonebot
from nonebot.adapters.onebot.v11 import Adapter, Bot
from nonebot.plugin import on_command

nonebot.init(
    driver="~none+~websockets",
    onebot_ws_urls=set(json.loads(os.environ["ONEBOT_WS_URLS"])),
    onebot_access_token=os.environ.get("ONEBOT_ACCESS_TOKEN") or None,
    command_start={""},
    log_level="INFO",
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
