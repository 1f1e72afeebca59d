"""Sandbox messages through the real HTTP and WebSocket adapters: send, receive, read, recall."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox_client import SandboxClient, sandbox_client, sandbox_document

ALICE, BOB, CAROL, DAVE, EVE = 20001, 20002, 20003, 20004, 20005
LAB, PLAYGROUND = 30001, 30002


def is_message(event: dict[str, Any]) -> bool:
    return event.get("post_type") in ("message", "message_sent")


async def test_send_private_msg_is_stored_and_reported_as_message_sent(
    sandbox: SandboxClient,
) -> None:
    data = await sandbox.ok("send_private_msg", user_id=ALICE, message="hello [CQ:face,id=1]")
    event = await sandbox.event(is_message)
    assert event["post_type"] == "message_sent"
    assert (event["message_id"], event["target_id"], event["user_id"]) == (
        data["message_id"],
        ALICE,
        10001,
    )
    assert event["message"] == [
        {"type": "text", "data": {"text": "hello "}},
        {"type": "face", "data": {"id": "1", "raw": {"faceIndex": 1, "faceType": 1}}},
    ]
    assert event["raw_message"] == "hello [CQ:face,id=1]"
    stored = await sandbox.ok("get_msg", message_id=data["message_id"])
    assert stored["message"] == event["message"] and stored["sender"]["user_id"] == 10001


async def test_auto_escape_sends_cq_text_literally(sandbox: SandboxClient) -> None:
    data = await sandbox.ok(
        "send_private_msg", user_id=ALICE, message="[CQ:face,id=1]", auto_escape=True
    )
    stored = await sandbox.ok("get_msg", message_id=data["message_id"])
    assert stored["message"] == [{"type": "text", "data": {"text": "[CQ:face,id=1]"}}]
    assert stored["raw_message"] == "&#91;CQ:face,id=1&#93;"


async def test_send_group_msg_carries_the_bots_role(sandbox: SandboxClient) -> None:
    await sandbox.ok(
        "send_group_msg", group_id=LAB, message=[{"type": "text", "data": {"text": "hi all"}}]
    )
    event = await sandbox.event(is_message)
    assert (event["message_type"], event["group_id"], event["group_name"]) == (
        "group",
        LAB,
        "Gateway Lab",
    )
    assert event["sender"]["role"] == "admin"


async def test_send_msg_routes_on_message_type_before_user_id(sandbox: SandboxClient) -> None:
    await sandbox.ok("send_msg", message_type="group", group_id=LAB, user_id=ALICE, message="x")
    event = await sandbox.event(is_message)
    assert event["message_type"] == "group" and event["group_id"] == LAB
    history = await sandbox.ok("get_friend_msg_history", user_id=ALICE)
    assert history["messages"] == []


async def test_send_msg_without_type_infers_from_ids(sandbox: SandboxClient) -> None:
    await sandbox.ok("send_msg", user_id=BOB, message="private")
    assert (await sandbox.event(is_message))["message_type"] == "private"


async def test_sending_to_a_stranger_fails_and_stores_nothing(sandbox: SandboxClient) -> None:
    body = await sandbox.call("send_private_msg", user_id=99999, message="hi")
    assert body["retcode"] == 1200 and "not a friend" in body["message"]
    assert (await sandbox.ok("get_friend_msg_history", user_id=99999))["messages"] == []


async def test_temporary_session_through_a_shared_group(sandbox: SandboxClient) -> None:
    assert (await sandbox.call("send_private_msg", user_id=DAVE, message="x"))["retcode"] == 1200
    await sandbox.ok("send_private_msg", user_id=DAVE, group_id=LAB, message="x")
    assert len((await sandbox.ok("get_friend_msg_history", user_id=DAVE))["messages"]) == 1


async def test_group_the_bot_is_not_in_fails_with_1200(sandbox: SandboxClient) -> None:
    body = await sandbox.call("send_group_msg", group_id=39999, message="x")
    assert body["retcode"] == 1200 and "group 39999 does not exist" in body["message"]
    elsewhere = await sandbox.call("send_group_msg", group_id=LAB, message="x")
    assert elsewhere["retcode"] == 0


async def test_malformed_segment_is_1400_and_stores_nothing(sandbox: SandboxClient) -> None:
    body = await sandbox.call("send_group_msg", group_id=LAB, message=[{"data": {"text": "x"}}])
    assert body["retcode"] == 1400 and "message[0]" in body["message"]
    empty = await sandbox.call("send_group_msg", group_id=LAB, message="")
    assert empty["retcode"] == 1400 and "empty" in empty["message"]
    assert (await sandbox.ok("get_group_msg_history", group_id=LAB))["messages"] == []


async def test_reply_to_a_missing_message_is_1400(sandbox: SandboxClient) -> None:
    body = await sandbox.call("send_group_msg", group_id=LAB, message="[CQ:reply,id=4242]hi")
    assert body["retcode"] == 1400 and "4242" in body["message"]


async def test_receive_private_message_from_a_friend(sandbox: SandboxClient) -> None:
    data = await sandbox.ok(
        "sandbox_receive_message", message_type="private", user_id=ALICE, message="ping"
    )
    event = await sandbox.event(is_message)
    assert event["post_type"] == "message" and event["sub_type"] == "friend"
    assert (event["message_id"], event["user_id"], event["font"]) == (data["message_id"], ALICE, 14)
    assert event["sender"]["nickname"] == "Alice"


async def test_receive_from_an_unknown_user_creates_a_stranger(sandbox: SandboxClient) -> None:
    await sandbox.ok(
        "sandbox_receive_message",
        message_type="private",
        user_id=55555,
        message="hi",
        sender={"nickname": "Newcomer"},
    )
    event = await sandbox.event(is_message)
    assert event["sub_type"] == "friend" and event["sender"]["nickname"] == "Newcomer"
    assert (await sandbox.ok("get_stranger_info", user_id=55555))["nickname"] == "Newcomer"


async def test_unknown_group_sender_joins_first(sandbox: SandboxClient) -> None:
    await sandbox.ok(
        "sandbox_receive_message",
        message_type="group",
        group_id=LAB,
        user_id=66666,
        message="hello",
    )
    joined = await sandbox.notice("group_increase")
    assert (joined["group_id"], joined["user_id"]) == (LAB, 66666)
    event = await sandbox.event(is_message)
    assert event["sender"]["role"] == "member" and event["group_id"] == LAB


async def test_card_change_on_a_message_emits_group_card(sandbox: SandboxClient) -> None:
    await sandbox.ok(
        "sandbox_receive_message",
        message_type="group",
        group_id=LAB,
        user_id=CAROL,
        message="hi",
        sender={"card": "carol!"},
    )
    notice = await sandbox.notice("group_card")
    assert (notice["card_new"], notice["card_old"]) == ("carol!", "")


async def test_receive_in_a_group_the_bot_is_not_in_is_refused(sandbox: SandboxClient) -> None:
    body = await sandbox.call(
        "sandbox_receive_message", message_type="group", group_id=31234, user_id=ALICE, message="hi"
    )
    assert body["retcode"] == 1200


async def test_history_is_ordered_and_counted(sandbox: SandboxClient) -> None:
    ids = [
        (
            await sandbox.ok(
                "sandbox_receive_message",
                message_type="group",
                group_id=LAB,
                user_id=BOB,
                message=f"m{i}",
            )
        )["message_id"]
        for i in range(5)
    ]
    latest = await sandbox.ok("get_group_msg_history", group_id=LAB, count=3)
    assert [m["message_id"] for m in latest["messages"]] == ids[2:]
    older = await sandbox.ok("get_group_msg_history", group_id=LAB, message_seq=ids[2], count=2)
    assert [m["message_id"] for m in older["messages"]] == ids[1:3]
    newest_first = await sandbox.ok("get_group_msg_history", group_id=LAB, reverseOrder=True)
    assert [m["message_id"] for m in newest_first["messages"]] == ids[::-1]


async def test_bot_recalls_its_own_message(sandbox: SandboxClient) -> None:
    data = await sandbox.ok("send_group_msg", group_id=LAB, message="oops")
    await sandbox.ok("delete_msg", message_id=data["message_id"])
    notice = await sandbox.notice("group_recall")
    assert (notice["message_id"], notice["operator_id"], notice["user_id"]) == (
        data["message_id"],
        10001,
        10001,
    )
    gone = await sandbox.call("get_msg", message_id=data["message_id"])
    assert gone["retcode"] == 1200 and "recalled" in gone["message"]


async def test_bot_cannot_recall_a_higher_roles_message(sandbox: SandboxClient) -> None:
    data = await sandbox.ok(
        "sandbox_receive_message",
        message_type="group",
        group_id=LAB,
        user_id=ALICE,
        message="owner speaking",
    )
    body = await sandbox.call("delete_msg", message_id=data["message_id"])
    assert body["retcode"] == 1200 and "higher role" in body["message"]
    assert (await sandbox.ok("get_msg", message_id=data["message_id"]))["message_id"]


async def test_admin_bot_recalls_a_members_message(sandbox: SandboxClient) -> None:
    data = await sandbox.ok(
        "sandbox_receive_message", message_type="group", group_id=LAB, user_id=CAROL, message="spam"
    )
    await sandbox.ok("delete_msg", message_id=data["message_id"])
    notice = await sandbox.notice("group_recall")
    assert (notice["user_id"], notice["operator_id"]) == (CAROL, 10001)


async def test_simulated_user_recalls_their_message(sandbox: SandboxClient) -> None:
    data = await sandbox.ok(
        "sandbox_receive_message", message_type="private", user_id=BOB, message="typo"
    )
    await sandbox.ok("sandbox_recall_message", message_id=data["message_id"])
    notice = await sandbox.notice("friend_recall")
    assert (notice["user_id"], notice["message_id"]) == (BOB, data["message_id"])


async def test_forward_bundle_round_trip(sandbox: SandboxClient) -> None:
    original = await sandbox.ok(
        "sandbox_receive_message", message_type="group", group_id=LAB, user_id=BOB, message="quoted"
    )
    nodes = [
        {"type": "node", "data": {"id": original["message_id"]}},
        {
            "type": "node",
            "data": {"user_id": 123, "nickname": "Narrator", "content": "[CQ:face,id=2]told"},
        },
    ]
    sent = await sandbox.ok("send_group_forward_msg", group_id=LAB, messages=nodes)
    event = await sandbox.event(lambda e: e.get("post_type") == "message_sent")
    assert event["message"] == [{"type": "forward", "data": {"id": sent["forward_id"]}}]
    bundle = await sandbox.ok("get_forward_msg", id=sent["forward_id"])
    assert [m["sender"]["nickname"] for m in bundle["messages"]] == ["Bob", "Narrator"]
    assert bundle["messages"][1]["message"][0]["data"]["id"] == "2"


async def test_send_msg_with_nodes_sends_a_forward(sandbox: SandboxClient) -> None:
    nodes = [{"type": "node", "data": {"user_id": 1, "nickname": "n", "content": "c"}}]
    data = await sandbox.ok("send_msg", message_type="private", user_id=ALICE, message=nodes)
    assert data["forward_id"] and data["message_id"]


async def test_mark_msg_as_read_accepts_a_chat(sandbox: SandboxClient) -> None:
    await sandbox.ok("mark_msg_as_read", user_id=ALICE)
    body = await sandbox.call("mark_msg_as_read")
    assert body["retcode"] == 1400


async def test_quick_operation_reply_quotes_and_ats_in_groups(sandbox: SandboxClient) -> None:
    data = await sandbox.ok(
        "sandbox_receive_message", message_type="group", group_id=LAB, user_id=CAROL, message="help"
    )
    context = await sandbox.event(is_message)
    await sandbox.ok(
        ".handle_quick_operation", context=context, operation={"reply": "sure", "at_sender": True}
    )
    reply = await sandbox.event(lambda e: e.get("post_type") == "message_sent")
    assert reply["message"][0] == {"type": "reply", "data": {"id": str(data["message_id"])}}
    assert reply["message"][1] == {"type": "at", "data": {"qq": str(CAROL)}}
    assert reply["raw_message"].endswith("sure")


async def test_quick_operation_ats_only_when_asked_as_napcat(sandbox: SandboxClient) -> None:
    data = await sandbox.ok(
        "sandbox_receive_message", message_type="group", group_id=LAB, user_id=CAROL, message="hi"
    )
    context = await sandbox.event(is_message)
    await sandbox.ok(".handle_quick_operation", context=context, operation={"reply": "hello"})
    reply = await sandbox.event(lambda e: e.get("post_type") == "message_sent")
    assert reply["message"] == [
        {"type": "reply", "data": {"id": str(data["message_id"])}},
        {"type": "text", "data": {"text": "hello"}},
    ]


async def test_quick_operation_delete_recalls_the_message(sandbox: SandboxClient) -> None:
    await sandbox.ok(
        "sandbox_receive_message",
        message_type="group",
        group_id=LAB,
        user_id=CAROL,
        message="bad word",
    )
    context = await sandbox.event(is_message)
    await sandbox.ok(
        ".handle_quick_operation", context=context, operation={"delete": True, "at_sender": False}
    )
    assert (await sandbox.notice("group_recall"))["message_id"] == context["message_id"]


async def test_quick_operation_private_reply(sandbox: SandboxClient) -> None:
    await sandbox.ok(
        "sandbox_receive_message", message_type="private", user_id=ALICE, message="ping"
    )
    context = await sandbox.event(is_message)
    await sandbox.ok(".handle_quick_operation", context=context, operation={"reply": "pong"})
    reply = await sandbox.event(lambda e: e.get("post_type") == "message_sent")
    assert reply["message"] == [{"type": "text", "data": {"text": "pong"}}]


async def test_sandbox_emit_publishes_a_raw_event(sandbox: SandboxClient) -> None:
    await sandbox.ok("sandbox_emit", event={"post_type": "notice", "notice_type": "custom", "x": 1})
    notice = await sandbox.notice("custom")
    assert notice["x"] == 1 and notice["self_id"] == 10001


async def test_rate_limited_sends_run_in_order(sandbox: SandboxClient) -> None:
    for i in range(3):
        body = await sandbox.call("send_private_msg_rate_limited", user_id=ALICE, message=f"r{i}")
        assert body["status"] == "async"
    texts = [(await sandbox.event(is_message))["raw_message"] for _ in range(3)]
    assert texts == ["r0", "r1", "r2"]


async def test_message_ids_and_history_survive_a_restart(tmp_path: Path) -> None:
    document = sandbox_document(str(tmp_path / "state.db"))
    async with sandbox_client(document) as first:
        sent = await first.ok("send_private_msg", user_id=ALICE, message="before restart")
    async with sandbox_client(document) as second:
        stored = await second.ok("get_msg", message_id=sent["message_id"])
        assert stored["raw_message"] == "before restart"
        later = await second.ok("send_private_msg", user_id=ALICE, message="after")
        assert later["message_id"] > sent["message_id"]
        history = await second.ok("get_friend_msg_history", user_id=ALICE)
        assert [m["raw_message"] for m in history["messages"]] == ["before restart", "after"]


PNG_1PX = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5E"
    "rkJggg=="
)


async def test_images_in_messages_are_stored_and_served_by_get_image(
    sandbox: SandboxClient,
) -> None:
    await sandbox.ok(
        "sandbox_receive_message",
        message_type="private",
        user_id=ALICE,
        message=[{"type": "image", "data": {"file": f"base64://{PNG_1PX}"}}],
    )
    event = await sandbox.event(is_message)
    segment = event["message"][0]["data"]
    assert segment["file"].endswith(".png") and segment["url"].startswith("file://")
    image = await sandbox.ok("get_image", file=segment["file"])
    assert await asyncio.to_thread(Path(image["file"]).read_bytes) == base64.b64decode(PNG_1PX)


async def test_an_unreadable_image_is_refused_and_nothing_stored(sandbox: SandboxClient) -> None:
    body = await sandbox.call(
        "send_private_msg", user_id=ALICE, message="[CQ:image,file=base64://@@not-base64@@]"
    )
    assert body["retcode"] == 1400
    assert (await sandbox.ok("get_friend_msg_history", user_id=ALICE))["messages"] == []


@pytest.mark.parametrize("action", ["send_group_forward_msg", "send_forward_msg"])
async def test_forward_nodes_may_come_as_message_as_on_napcat(
    sandbox: SandboxClient, action: str
) -> None:
    nodes = [{"type": "node", "data": {"user_id": 1, "nickname": "n", "content": "c"}}]
    sent = await sandbox.ok(action, group_id=LAB, message=nodes)
    bundle = await sandbox.ok("get_forward_msg", id=sent["forward_id"])
    assert [m["sender"]["nickname"] for m in bundle["messages"]] == ["n"]
