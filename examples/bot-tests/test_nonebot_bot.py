"""The NoneBot2 bot in `nonebot_bot/`, tested in conversation: run with `pytest -p gateway.testing`.

Each test gets a fresh sandbox (the built-in world: Alice 20001 in group 30001) and the bot
started and connected to it.
"""

import re

from gateway.testing import Chat, segment

ALICE, ZOE, GROUP = 20001, 20009, 30001


async def test_ping_in_a_group(chat: Chat) -> None:
    await chat.say(ALICE, "ping", group=GROUP)
    await chat.expect_reply("pong")
    await chat.say(ALICE, "hello there", group=GROUP)
    await chat.expect_no_reply()


async def test_echo_in_private(chat: Chat) -> None:
    await chat.say(ALICE, "echo 你好 world")
    await chat.expect_reply(re.compile(r"你好 world$"))
    assert chat.history(user=ALICE)[-1] == "[private 20001] BOT: 你好 world"


async def test_welcome_poke_and_friend_request(chat: Chat) -> None:
    await chat.join(ZOE, GROUP)
    await chat.expect_reply(segment("at", qq=ZOE), group=GROUP)
    await chat.poke(ALICE, group=GROUP)
    await chat.expect_reply("ouch", group=GROUP)
    await chat.friend_request(ZOE, comment="hi")
    await chat.expect_event(lambda e: e.get("notice_type") == "friend_add")
    friends = await chat.call("get_friend_list")
    assert ZOE in [friend["user_id"] for friend in friends]
