"""A small NoneBot2 bot, tested by `test_nonebot_bot.py` against the sandbox.

It answers `ping` with `pong` and `echo <text>` with the text, welcomes new group members,
answers pokes and accepts friend requests. Connection settings come from the environment the
test harness sets: ONEBOT_WS_URL (forward WebSocket) and ONEBOT_ACCESS_TOKEN.
BOT_BROKEN=1 starts a deliberately broken bot (it answers `ping` with `pang`), which the
gateway's own tests use to check what a failing test prints.
"""

import os

import nonebot
from nonebot.adapters.onebot.v11 import (
    Adapter,
    Bot,
    FriendRequestEvent,
    GroupIncreaseNoticeEvent,
    Message,
    MessageSegment,
    PokeNotifyEvent,
)
from nonebot.params import CommandArg
from nonebot.plugin import on_command, on_notice, on_request

nonebot.init(
    driver="~none+~websockets",
    onebot_ws_urls={os.environ["ONEBOT_WS_URL"]},
    onebot_access_token=os.environ.get("ONEBOT_ACCESS_TOKEN") or None,
    command_start={""},
    log_level="WARNING",
)
nonebot.get_driver().register_adapter(Adapter)
BROKEN = os.environ.get("BOT_BROKEN") == "1"

ping = on_command("ping")
echo = on_command("echo")
welcome = on_notice()
poked = on_notice()
friends = on_request()


@ping.handle()
async def _pong() -> None:
    await ping.finish("pang" if BROKEN else "pong")


@echo.handle()
async def _echo(text: Message = CommandArg()) -> None:  # noqa: B008 - NoneBot injects it
    await echo.finish(text)


@welcome.handle()
async def _welcome(event: GroupIncreaseNoticeEvent) -> None:
    await welcome.finish(MessageSegment.at(event.user_id) + " welcome!")


@poked.handle()
async def _poked(event: PokeNotifyEvent) -> None:
    if event.is_tome():
        await poked.finish("ouch")


@friends.handle()
async def _befriend(bot: Bot, event: FriendRequestEvent) -> None:
    await event.approve(bot)


if __name__ == "__main__":
    nonebot.run()
