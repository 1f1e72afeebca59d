"""A NoneBot2 app hosting several bots over reverse WebSocket: `ping` → `pong from <self_id>`.

Settings come from the environment the test passes: NB_PORT (where /onebot/v11/ws listens),
ONEBOT_ACCESS_TOKEN. Each reverse connection is a bot of its own, named by its X-Self-ID, and
answers through itself. It prints one line per fact a test waits on, a word and a JSON object
(read by tests/app_process.py):
  NB_CONNECTED {"self_id", "login_id"}    a connection registered a bot; login_id is the user_id
                                          its get_login_info answered
  NB_RECEIVED {"self_id", "event_self_id", "message_type", "group_id", "user_id",
               "message_id", "text"}                          a message event reached a bot
  NB_REPLIED {"self_id", "message_type", "group_id", "user_id", "text"}   its answer was sent
`self_id` is the bot the event reached (its connection), `event_self_id` the event's own field.
"""

import json
import os
from typing import Any

import nonebot
from nonebot.adapters.onebot.v11 import Adapter, Bot, MessageEvent
from nonebot.plugin import on_message

nonebot.init(
    driver="~fastapi",
    host="127.0.0.1",
    port=int(os.environ["NB_PORT"]),
    onebot_access_token=os.environ.get("ONEBOT_ACCESS_TOKEN") or None,
    log_level="WARNING",
)
driver = nonebot.get_driver()
driver.register_adapter(Adapter)


def report(word: str, **fields: Any) -> None:
    print(f"{word} {json.dumps(fields)}", flush=True)


@driver.on_bot_connect
async def announce(bot: Bot) -> None:
    # A call on the new connection: the account it reaches is the one this bot acts as.
    login = await bot.get_login_info()
    report("NB_CONNECTED", self_id=bot.self_id, login_id=str(login["user_id"]))


every_message = on_message()


@every_message.handle()
async def answer(bot: Bot, event: MessageEvent) -> None:
    place = {
        "message_type": event.message_type,
        "group_id": getattr(event, "group_id", None),
        "user_id": event.user_id,
    }
    text = event.get_plaintext()
    report(
        "NB_RECEIVED",
        self_id=bot.self_id,
        event_self_id=str(event.self_id),
        message_id=event.message_id,
        text=text,
        **place,
    )
    if text == "ping":
        answer_text = f"pong from {bot.self_id}"
        await bot.send(event, answer_text)
        report("NB_REPLIED", self_id=bot.self_id, text=answer_text, **place)


if __name__ == "__main__":
    nonebot.run()
