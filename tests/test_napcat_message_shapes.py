"""Messages look like NapCat's (issue 16 item 2): events, get_msg, the histories and
get_forward_msg, through the real HTTP and WebSocket adapters, checked against NapCat's schemas.

Every message object is validated against NapCat's `OB11Message` (its segments against the
segment schemas), and each answer against the action's `data` schema. Where NapCat's document
and its code differ, the test follows the code, which is what bots get:
- get_msg's `message` is typed as an object; GetMsg answers what parseMessage builds, the segment
  array every message object has;
- a forward segment's `content` is typed as an object ("OB11Message[]"); the converter fills it
  with the array of the nodes' message objects, each checked as a message here.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import jsonschema

from gateway.testing import BotSpec, bot_session
from tests.napcat_schema import SCHEMAS, validate_component, validate_data
from tests.sandbox_client import SandboxClient

ALICE, BOB, DAVE, STRANGER = 20001, 20002, 20004, 55555
LAB = 30001
BOT = 10001
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
IMAGE = {"type": "image", "data": {"file": "base64://" + base64.b64encode(PNG).decode()}}


def is_message(event: dict[str, Any]) -> bool:
    return event.get("post_type") in ("message", "message_sent")


def check_message(message: dict[str, Any]) -> None:
    """A message object as NapCat builds one (parseMessageV2), valid against OB11Message; the
    messages in a forward segment's `content` too (see the module docstring)."""
    segments = []
    for segment in message["message"]:
        if segment["type"] == "forward" and "content" in segment["data"]:
            for node in segment["data"]["content"]:
                check_message(node)
            segment = {"type": "forward", "data": {"id": segment["data"]["id"]}}
        segments.append(segment)
    validate_component("OB11Message", {**message, "message": segments})
    assert message["real_seq"] == str(message["message_id"])
    assert message["message_seq"] == message["real_id"] == message["message_id"]
    assert (message["font"], message["message_format"]) == (14, "array")
    assert message["post_type"] == ("message_sent" if message["user_id"] == BOT else "message")


GET_MSG = json.loads(SCHEMAS.read_text(encoding="utf-8"))["actions"]["get_msg"]
"""get_msg's `data` as NapCat's document has it (no $ref inside)."""


def check_get_msg(data: dict[str, Any]) -> None:
    schema = copy.deepcopy(GET_MSG)
    schema["properties"]["message"] = {"type": "array"}  # see the module docstring
    jsonschema.Draft202012Validator(schema).validate(data)
    check_message(data)


async def sent_and_read(
    sandbox: SandboxClient, message: Any, user_id: int = ALICE
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The message_sent event of a private message from the bot, and get_msg of it."""
    data = await sandbox.ok("send_private_msg", user_id=user_id, message=message)
    event = await sandbox.event(is_message)
    stored = await sandbox.ok("get_msg", message_id=data["message_id"])
    check_message(event)
    check_get_msg(stored)
    return event, stored


# --- the message object -------------------------------------------------------------------------


async def test_a_text_event_carries_napcats_fields(sandbox: SandboxClient) -> None:
    event, stored = await sent_and_read(sandbox, "hello")
    assert (event["message_sent_type"], event["target_id"]) == ("self", ALICE)
    assert event["sender"] == {"user_id": BOT, "nickname": "Sandbox Bot", "card": ""}
    assert stored["real_seq"] == event["real_seq"] == str(event["message_id"])
    assert stored["emoji_likes_list"] == []


async def test_a_received_group_message_carries_napcats_fields(sandbox: SandboxClient) -> None:
    data = await sandbox.ok(
        "sandbox_receive_message", message_type="group", group_id=LAB, user_id=BOB, message="hi"
    )
    event = await sandbox.event(is_message)
    check_message(event)
    assert (event["sub_type"], event["group_id"], event["group_name"]) == (
        "normal",
        LAB,
        "Gateway Lab",
    )
    assert set(event["sender"]) == {"user_id", "nickname", "card", "role"}
    assert "target_id" not in event and "message_sent_type" not in event
    check_get_msg(await sandbox.ok("get_msg", message_id=data["message_id"]))


async def test_a_strangers_private_message_is_sub_type_friend(sandbox: SandboxClient) -> None:
    await sandbox.ok(
        "sandbox_receive_message", message_type="private", user_id=STRANGER, message="hey"
    )
    event = await sandbox.event(is_message)
    check_message(event)
    assert event["sub_type"] == "friend"
    assert event["target_id"] == STRANGER  # every private message names its peer, as on NapCat


async def test_a_temporary_session_is_sub_type_group_with_its_group(
    sandbox: SandboxClient,
) -> None:
    sent = await sandbox.ok("send_private_msg", user_id=DAVE, group_id=LAB, message="hello")
    outgoing = await sandbox.event(is_message)
    await sandbox.ok(
        "sandbox_receive_message", message_type="private", user_id=DAVE, group_id=LAB, message="yo"
    )
    incoming = await sandbox.event(is_message)
    for event in (outgoing, incoming):
        check_message(event)
        assert (event["sub_type"], event["group_id"], event["temp_source"]) == ("group", LAB, 0)
    assert (outgoing["target_id"], incoming["user_id"]) == (DAVE, DAVE)
    stored = await sandbox.ok("get_msg", message_id=sent["message_id"])
    check_get_msg(stored)
    assert (stored["sub_type"], stored["group_id"]) == ("group", LAB)


async def test_a_friend_is_written_to_as_a_friend_even_with_a_group(
    sandbox: SandboxClient,
) -> None:
    await sandbox.ok("send_private_msg", user_id=ALICE, group_id=LAB, message="hi")
    await sandbox.ok(
        "sandbox_receive_message", message_type="private", user_id=ALICE, group_id=LAB, message="o"
    )
    for _ in range(2):
        event = await sandbox.event(is_message)
        assert event["sub_type"] == "friend" and "group_id" not in event


async def test_a_temporary_session_needs_both_in_the_group(sandbox: SandboxClient) -> None:
    body = await sandbox.call(
        "sandbox_receive_message",
        message_type="private",
        user_id=STRANGER,
        group_id=LAB,
        message="x",
    )
    assert body["retcode"] == 1200 and "not in group" in body["message"]
    history = await sandbox.ok("get_friend_msg_history", user_id=STRANGER)
    assert history["messages"] == []


# --- segments -----------------------------------------------------------------------------------


async def test_an_image_has_summary_file_sub_type_url_and_file_size(
    sandbox: SandboxClient,
) -> None:
    event, stored = await sent_and_read(sandbox, [IMAGE])
    [image] = event["message"]
    assert list(image["data"]) == ["summary", "file", "sub_type", "url", "file_size"]
    data = image["data"]
    assert (data["summary"], data["sub_type"], data["file_size"]) == ("", 0, str(len(PNG)))
    assert data["file"].endswith(".png")
    assert Path(unquote(urlsplit(data["url"]).path)).read_bytes() == PNG  # noqa: ASYNC240 (a tiny local file)
    assert stored["message"] == event["message"]
    assert event["raw_message"] == (
        f"[CQ:image,file={data['file']},sub_type=0,url={data['url']},file_size={len(PNG)}]"
    )
    fetched = await sandbox.ok("get_image", file=data["file"])
    assert fetched["file_size"] == data["file_size"]


async def test_a_received_sticker_image_keeps_its_sub_type_and_summary(
    sandbox: SandboxClient,
) -> None:
    sticker = {"type": "image", "data": {**IMAGE["data"], "sub_type": 1, "summary": "[动画表情]"}}
    data = await sandbox.ok(
        "sandbox_receive_message",
        message_type="group",
        group_id=LAB,
        user_id=BOB,
        message=[sticker],
    )
    event = await sandbox.event(is_message)
    check_message(event)
    image = event["message"][0]["data"]
    assert (image["sub_type"], image["summary"]) == (1, "[动画表情]")
    history = await sandbox.ok("get_group_msg_history", group_id=LAB)
    assert history["messages"][-1]["message_id"] == data["message_id"]
    assert history["messages"][-1]["message"] == event["message"]


async def test_a_face_has_its_element_as_raw(sandbox: SandboxClient) -> None:
    event, stored = await sent_and_read(sandbox, "[CQ:face,id=14]")
    assert event["message"] == [
        {"type": "face", "data": {"id": "14", "raw": {"faceIndex": 14, "faceType": 1}}}
    ]
    assert event["raw_message"] == stored["raw_message"] == "[CQ:face,id=14]"


async def test_a_face_keeps_result_id_and_chain_count(sandbox: SandboxClient) -> None:
    face = {"type": "face", "data": {"id": 358, "resultId": "3", "chainCount": "2"}}
    event, _ = await sent_and_read(sandbox, [face])
    data = event["message"][0]["data"]
    assert (data["id"], data["resultId"], data["chainCount"]) == ("358", "3", 2)
    assert data["raw"] == {"faceIndex": 358, "faceType": 2, "resultId": "3", "chainCount": 2}
    assert event["raw_message"] == "[CQ:face,id=358,resultId=3,chainCount=2]"


async def test_record_video_and_file_look_like_napcats(sandbox: SandboxClient) -> None:
    payload = "base64://" + base64.b64encode(b"#!SILK_V3 voice").decode()
    message = [
        {"type": "record", "data": {"file": payload}},
        {"type": "video", "data": {"file": "base64://" + base64.b64encode(b"movie").decode()}},
        {"type": "file", "data": {"file": "base64://aGVsbG8=", "name": "notes.txt"}},
    ]
    event, stored = await sent_and_read(sandbox, message)
    record, video, file = (segment["data"] for segment in event["message"])
    assert list(record) == ["file", "path", "url", "file_size"]
    assert Path(record["path"]).read_bytes() == b"#!SILK_V3 voice"  # noqa: ASYNC240 (a tiny local file)
    assert list(video) == ["file", "url", "file_size"] and video["file_size"] == "5"
    assert (file["file"], file["file_size"]) == ("notes.txt", "5")
    assert (await sandbox.ok("get_file", file_id=file["file_id"]))["file_size"] == "5"
    assert stored["message"] == event["message"]


async def test_a_market_sticker_reads_back_as_an_image(sandbox: SandboxClient) -> None:
    mface = {
        "type": "mface",
        "data": {"emoji_package_id": 1, "emoji_id": "abcdef", "key": "k", "summary": "[hi]"},
    }
    event, _ = await sent_and_read(sandbox, [mface])
    [image] = event["message"]
    assert image == {
        "type": "image",
        "data": {
            "summary": "[hi]",
            "file": "ab-abcdef.gif",
            "url": "https://gxh.vip.qq.com/club/item/parcel/item/ab/abcdef/raw300.gif",
            "key": "k",
            "emoji_id": "abcdef",
            "emoji_package_id": 1,
        },
    }


async def test_a_reply_by_seq_names_the_message_whose_real_seq_it_is(
    sandbox: SandboxClient,
) -> None:
    first, _ = await sent_and_read(sandbox, "question")
    event, _ = await sent_and_read(
        sandbox,
        [
            {"type": "reply", "data": {"seq": first["real_seq"]}},
            {"type": "text", "data": {"text": "a"}},
        ],
    )
    assert event["message"][0] == {"type": "reply", "data": {"id": str(first["message_id"])}}
    body = await sandbox.call(
        "send_private_msg", user_id=ALICE, message=[{"type": "reply", "data": {"seq": 99999}}]
    )
    assert body["retcode"] == 1400 and "99999" in body["message"] and "seq" in body["message"]


# --- get_msg and the histories ------------------------------------------------------------------


async def test_get_msg_lists_emoji_likes(sandbox: SandboxClient) -> None:
    data = await sandbox.ok(
        "sandbox_receive_message", message_type="group", group_id=LAB, user_id=BOB, message="vote"
    )
    await sandbox.ok("set_msg_emoji_like", message_id=data["message_id"], emoji_id="76")
    await sandbox.ok(
        "sandbox_set_msg_emoji_like", message_id=data["message_id"], emoji_id="76", user_id=BOB
    )
    stored = await sandbox.ok("get_msg", message_id=data["message_id"])
    check_get_msg(stored)
    assert stored["emoji_likes_list"] == [{"emoji_id": "76", "emoji_type": "1", "likes_cnt": "2"}]


async def test_histories_hold_napcat_message_objects(sandbox: SandboxClient) -> None:
    await sandbox.ok(
        "send_private_msg", user_id=ALICE, message=[IMAGE, {"type": "text", "data": {"text": "x"}}]
    )
    await sandbox.ok("sandbox_receive_message", message_type="private", user_id=ALICE, message="y")
    await sandbox.ok("send_group_msg", group_id=LAB, message="[CQ:face,id=1]z")
    friend = await sandbox.ok("get_friend_msg_history", user_id=ALICE)
    group = await sandbox.ok("get_group_msg_history", group_id=LAB)
    validate_data("get_friend_msg_history", friend)
    validate_data("get_group_msg_history", group)
    assert [m["raw_message"][-1] for m in friend["messages"]] == ["x", "y"]
    for message in friend["messages"] + group["messages"]:
        check_message(message)
        check_get_msg(await sandbox.ok("get_msg", message_id=message["message_id"]))


# --- forwards -----------------------------------------------------------------------------------

NODES = [
    {"type": "node", "data": {"user_id": ALICE, "nickname": "Alice", "content": "first"}},
    {"type": "node", "data": {"user_id": BOB, "nickname": "Bob", "content": [IMAGE]}},
    {
        "type": "node",
        "data": {
            "user_id": BOT,
            "nickname": "me",
            "content": [
                {"type": "node", "data": {"user_id": ALICE, "nickname": "A", "content": "deep"}}
            ],
        },
    },
]


async def test_get_forward_msg_answers_whole_messages_by_either_id(
    sandbox: SandboxClient,
) -> None:
    sent = await sandbox.ok("send_group_forward_msg", group_id=LAB, messages=NODES)
    by_message = await sandbox.ok("get_forward_msg", message_id=str(sent["message_id"]))
    by_bundle = await sandbox.ok("get_forward_msg", id=sent["forward_id"])
    assert by_message == by_bundle
    validate_data("get_forward_msg", by_message)
    first, second, third = by_message["messages"]
    for node in (first, second, third):
        check_message(node)
        assert (node["self_id"], node["message_type"], node["group_id"]) == (BOT, "group", LAB)
    assert (first["user_id"], first["sender"]["nickname"], first["raw_message"]) == (
        ALICE,
        "Alice",
        "first",
    )
    assert second["message"][0]["data"]["sub_type"] == 0  # an image as NapCat shows it
    assert third["post_type"] == "message_sent"
    [nested] = third["message"]
    assert nested["type"] == "forward"
    [deep] = nested["data"]["content"]
    check_message(deep)
    assert (deep["user_id"], deep["raw_message"]) == (ALICE, "deep")
    assert third["raw_message"] == f"[CQ:forward,id={nested['data']['id']}]"


async def test_get_msg_of_a_forward_gives_its_nodes_as_content(sandbox: SandboxClient) -> None:
    sent = await sandbox.ok("send_private_forward_msg", user_id=ALICE, messages=NODES[:1])
    event = await sandbox.event(is_message)
    assert event["message"] == [{"type": "forward", "data": {"id": sent["forward_id"]}}]
    stored = await sandbox.ok("get_msg", message_id=sent["message_id"])
    check_get_msg(stored)
    [forward] = stored["message"]
    [node] = forward["data"]["content"]
    assert (node["message_type"], node["sub_type"], node["raw_message"]) == (
        "private",
        "friend",
        "first",
    )
    history = await sandbox.ok("get_friend_msg_history", user_id=ALICE)
    assert history["messages"][-1]["message"] == stored["message"]


async def test_a_reference_node_copies_the_stored_message(sandbox: SandboxClient) -> None:
    original = await sandbox.ok(
        "sandbox_receive_message", message_type="group", group_id=LAB, user_id=BOB, message="said"
    )
    nodes = [{"type": "node", "data": {"id": original["message_id"]}}]
    sent = await sandbox.ok("send_group_forward_msg", group_id=LAB, messages=nodes)
    [node] = (await sandbox.ok("get_forward_msg", message_id=sent["message_id"]))["messages"]
    assert (node["user_id"], node["sender"]["nickname"], node["raw_message"]) == (
        BOB,
        "Bob",
        "said",
    )
    assert node["message_id"] != original["message_id"]  # an inner id: shown, not fetched


async def test_get_forward_msg_of_other_messages_fails_with_1200(sandbox: SandboxClient) -> None:
    plain = await sandbox.ok("send_private_msg", user_id=ALICE, message="not a forward")
    for given, reason in (
        (str(plain["message_id"]), "not a forward message"),
        ("987654", "does not exist"),
        ("99999999999", "does not exist"),
        ("no-such-bundle", "does not exist"),
    ):
        body = await sandbox.call("get_forward_msg", message_id=given)
        assert body["retcode"] == 1200 and reason in body["message"], (given, body)


async def test_the_chat_log_shows_a_temporary_session_as_private() -> None:
    async with bot_session(BotSpec()) as chat:
        await chat.call("send_private_msg", user_id=DAVE, group_id=LAB, message="psst")
        reply = await chat.expect_reply("psst", user=DAVE)
        assert reply.event["group_id"] == LAB  # the session's group, on a private message
        assert chat.history(user=DAVE) == ["[private 20004] BOT: psst"]
        assert chat.history(group=LAB) == []
