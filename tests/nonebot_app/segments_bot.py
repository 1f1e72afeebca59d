"""A real NoneBot2 app that sends every segment type and reports every message it receives.

Forward WebSocket only (ONEBOT_WS_URLS, ONEBOT_ACCESS_TOKEN). It prints `BOT_CONNECTED <self_id>`
when the gateway registers the bot. Messages from user 20003:

* `SEGSEND` (in a group): every segment type, built with NoneBot's own builders (by type and data
  for the NapCat types it has no builder for), is sent to that group once as an array and once
  as its CQ string (`str(Message)`), each read back with `get_msg`: one line
  `SEG_SENT {"name", "array", "cq"}` per segment (the `get_msg` messages, or the error), then
  `SEG_SEND_DONE`.
* anything else: `SEG_RECEIVED {"message_id", "message", "cq", "get_msg"}`: the message as NoneBot
  parsed it (before its reply/at handling), its CQ string, and `get_msg` of it.
"""

import base64
import json
import os
from typing import Any

import nonebot
from nonebot.adapters.onebot.v11 import Adapter, Bot, GroupMessageEvent, Message, MessageEvent
from nonebot.adapters.onebot.v11 import MessageSegment as MS  # the builders, short
from nonebot.plugin import on_message

SENDER = 20003
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16 + b"nonebot-segments"

nonebot.init(
    driver="~none+~websockets",
    onebot_ws_urls=set(json.loads(os.environ["ONEBOT_WS_URLS"])),
    onebot_access_token=os.environ.get("ONEBOT_ACCESS_TOKEN") or None,
    log_level="WARNING",
)
driver = nonebot.get_driver()
driver.register_adapter(Adapter)


@driver.on_bot_connect
async def announce(bot: Bot) -> None:
    print(f"BOT_CONNECTED {bot.self_id}", flush=True)


def report(tag: str, value: dict[str, Any]) -> None:
    print(f"{tag} {json.dumps(value, ensure_ascii=True)}", flush=True)


def segments(trigger: int) -> list[tuple[str, Message]]:
    """(name, message) for every segment type; `trigger` is a message id to reply to or forward."""
    nodes = Message(
        [
            MS.node_custom(20001, "Alice", Message("hello ") + MS.face(14)),
            MS.node(trigger),
        ]
    )
    return [
        ("text", Message(MS.text("plain & [text], with commas"))),
        ("face", Message(MS.face(14))),
        ("mface", Message(MS("mface", {"emoji_package_id": 1, "emoji_id": "e1", "key": "k1"}))),
        ("at", Message(MS.at(20001))),
        ("at_all", Message(MS.at("all"))),
        ("reply", MS.reply(trigger) + "answer"),
        ("image", Message(MS.image(PNG))),
        ("record", Message(MS.record(PNG + b"record"))),
        ("video", Message(MS.video(PNG + b"video"))),
        ("file", Message(MS("file", {"file": "base64://" + base64.b64encode(PNG).decode()}))),
        ("json", Message(MS.json('{"app":"com.tencent.test","meta":{}}'))),
        ("xml", Message(MS.xml("<msg><item/></msg>"))),
        ("markdown", Message(MS("markdown", {"content": "# Title, *bold*"}))),
        ("dice", Message(MS.dice())),
        ("rps", Message(MS.rps())),
        ("shake", Message(MS.shake())),
        ("poke", Message(MS.poke("1", "-1"))),
        ("anonymous", MS.anonymous() + "anonymously"),
        ("share", Message(MS.share("https://example.com/a?b=1&c=2", "Title", "Text", None))),
        ("contact_user", Message(MS.contact_user(20001))),
        ("contact_group", Message(MS.contact_group(30001))),
        ("location", Message(MS.location(39.9042, 116.4074, "Beijing"))),
        ("music", Message(MS.music("163", 28949129))),
        (
            "music_custom",
            Message(MS.music_custom("https://m.example/", "https://m.example/a.mp3", "Song")),
        ),
        ("node", nodes),
        ("miniapp", Message(MS("miniapp", {"data": '{"app":"mini"}'}))),
        (
            "onlinefile",
            Message(
                MS(
                    "onlinefile",
                    {
                        "msgId": "m1",
                        "elementId": "e1",
                        "fileName": "a.txt",
                        "fileSize": "3",
                        "isDir": False,
                    },
                )
            ),
        ),
        ("flashtransfer", Message(MS("flashtransfer", {"fileSetId": "set-1"}))),
        ("keyboard", Message(MS("keyboard", {"content": '{"rows":[]}'}))),
    ]


async def send_and_get(bot: Bot, group_id: int, message: Message | str) -> Any:
    """The `get_msg` message of what was sent (and its forward bundle), or the error's text."""
    try:
        sent = await bot.send_msg(message_type="group", group_id=group_id, message=message)
        got = await bot.get_msg(message_id=sent["message_id"])
    except Exception as error:  # reported to the test, which names the segment
        return {"error": repr(error)}
    answer: dict[str, Any] = {"message": got["message"]}
    if "forward_id" in sent:
        answer["forward"] = (await bot.get_forward_msg(id=sent["forward_id"]))["messages"]
    return answer


async def send_every_segment(bot: Bot, event: GroupMessageEvent) -> None:
    forward_id = ""
    for name, message in segments(event.message_id):
        if name == "node":
            as_array = await send_and_get(bot, event.group_id, message)
            forward_id = as_array["message"][0]["data"]["id"] if "message" in as_array else ""
        else:
            as_array = await send_and_get(bot, event.group_id, message)
        as_cq = await send_and_get(bot, event.group_id, str(message))
        report("SEG_SENT", {"name": name, "array": as_array, "cq": as_cq})
    forward = Message(MS.forward(forward_id))
    report(
        "SEG_SENT",
        {
            "name": "forward",
            "array": await send_and_get(bot, event.group_id, forward),
            "cq": await send_and_get(bot, event.group_id, str(forward)),
        },
    )
    print("SEG_SEND_DONE", flush=True)


async def from_sender(event: MessageEvent) -> bool:
    return event.user_id == SENDER


segment_messages = on_message(rule=from_sender)


@segment_messages.handle()
async def handle(bot: Bot, event: MessageEvent) -> None:
    if isinstance(event, GroupMessageEvent) and event.original_message.extract_plain_text() == (
        "SEGSEND"
    ):
        await send_every_segment(bot, event)
        return
    got = await bot.get_msg(message_id=event.message_id)
    report(
        "SEG_RECEIVED",
        {
            "message_id": event.message_id,
            "message": [{"type": s.type, "data": s.data} for s in event.original_message],
            "cq": str(event.original_message),
            "get_msg": got["message"],
        },
    )


if __name__ == "__main__":
    nonebot.run()
