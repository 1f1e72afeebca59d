"""Sandbox essence messages through the real HTTP and WebSocket adapters."""

from __future__ import annotations

from pathlib import Path

from tests.sandbox_client import (
    SandboxClient,
    member_bot_document,
    sandbox_client,
    sandbox_document,
)

BOT, ALICE, BOB, CAROL = 10001, 20001, 20002, 20003
LAB, PLAYGROUND = 30001, 30002


async def receive(sandbox: SandboxClient, text: str, user_id: int = CAROL, group: int = LAB) -> int:
    data = await sandbox.ok(
        "sandbox_receive_message",
        message_type="group",
        group_id=group,
        user_id=user_id,
        message=text,
    )
    message_id: int = data["message_id"]
    return message_id


async def test_set_essence_lists_it_and_notifies(sandbox: SandboxClient) -> None:
    message_id = await receive(sandbox, "worth keeping")
    answer = await sandbox.ok("set_essence_msg", message_id=message_id)
    assert (answer["errCode"], answer["rsp"]["msg"]["msgSeq"]) == (0, message_id)
    notice = await sandbox.notice("essence")
    assert (notice["sub_type"], notice["group_id"], notice["message_id"]) == (
        "add",
        LAB,
        message_id,
    )
    assert (notice["user_id"], notice["sender_id"], notice["operator_id"]) == (CAROL, CAROL, BOT)
    [entry] = await sandbox.ok("get_essence_msg_list", group_id=LAB)
    assert (entry["message_id"], entry["msg_seq"]) == (message_id, message_id)
    assert (entry["sender_id"], entry["sender_nick"]) == (CAROL, "Carol")
    assert (entry["operator_id"], entry["operator_nick"]) == (BOT, "Sandbox Bot")
    assert entry["content"] == [{"type": "text", "data": {"text": "worth keeping"}}]
    assert entry["operator_time"] > 0 and isinstance(entry["msg_random"], int)
    assert await sandbox.ok("get_essence_msg_list", group_id=PLAYGROUND) == []


async def test_the_bots_own_message_can_be_essence(sandbox: SandboxClient) -> None:
    sent = await sandbox.ok("send_group_msg", group_id=PLAYGROUND, message="mine")
    await sandbox.ok("set_essence_msg", message_id=sent["message_id"])
    [entry] = await sandbox.ok("get_essence_msg_list", group_id=PLAYGROUND)
    assert entry["sender_id"] == BOT


async def test_delete_essence_by_message_id(sandbox: SandboxClient) -> None:
    message_id = await receive(sandbox, "x")
    await sandbox.ok("set_essence_msg", message_id=message_id)
    await sandbox.ok("delete_essence_msg", message_id=message_id)
    await sandbox.notice("essence")
    notice = await sandbox.notice("essence")
    assert (notice["sub_type"], notice["message_id"]) == ("delete", message_id)
    assert await sandbox.ok("get_essence_msg_list", group_id=LAB) == []


async def test_delete_essence_by_seq_and_random(sandbox: SandboxClient) -> None:
    message_id = await receive(sandbox, "x")
    await sandbox.ok("set_essence_msg", message_id=message_id)
    [entry] = await sandbox.ok("get_essence_msg_list", group_id=LAB)
    wrong = await sandbox.call(
        "delete_essence_msg",
        msg_seq=entry["msg_seq"],
        msg_random=entry["msg_random"] + 1,
        group_id=LAB,
    )
    assert wrong["retcode"] == 1200 and "not an essence message" in wrong["message"]
    assert len(await sandbox.ok("get_essence_msg_list", group_id=LAB)) == 1
    await sandbox.ok(
        "delete_essence_msg", msg_seq=entry["msg_seq"], msg_random=entry["msg_random"], group_id=LAB
    )
    assert await sandbox.ok("get_essence_msg_list", group_id=LAB) == []


async def test_essence_failures_change_nothing(sandbox: SandboxClient) -> None:
    message_id = await receive(sandbox, "x")
    await sandbox.ok("set_essence_msg", message_id=message_id)
    cases = [
        ("set_essence_msg", {"message_id": message_id}, 1200, "already an essence message"),
        ("set_essence_msg", {"message_id": 999999}, 1200, "does not exist"),
        ("delete_essence_msg", {"message_id": 999999}, 1200, "not an essence message"),
        ("delete_essence_msg", {"msg_seq": message_id}, 1400, "msg_seq, msg_random and group_id"),
        ("set_essence_msg", {}, 1400, "message_id"),
        ("get_essence_msg_list", {"group_id": 39999}, 1200, "group 39999 does not exist"),
    ]
    for action, params, retcode, words in cases:
        body = await sandbox.call(action, **params)
        assert body["retcode"] == retcode and words in body["message"], (action, body)
    assert len(await sandbox.ok("get_essence_msg_list", group_id=LAB)) == 1


async def test_private_messages_cannot_be_essence(sandbox: SandboxClient) -> None:
    sent = await sandbox.ok("send_private_msg", user_id=ALICE, message="dm")
    body = await sandbox.call("set_essence_msg", message_id=sent["message_id"])
    assert body["retcode"] == 1200 and "not a group message" in body["message"]


async def test_recalled_essence_stays_listed(sandbox: SandboxClient) -> None:
    message_id = await receive(sandbox, "gone")
    await sandbox.ok("set_essence_msg", message_id=message_id)
    await sandbox.ok("delete_msg", message_id=message_id)
    [entry] = await sandbox.ok("get_essence_msg_list", group_id=LAB)
    assert entry["message_id"] == message_id


async def test_essence_survives_a_restart(tmp_path: Path) -> None:
    document = sandbox_document(str(tmp_path / "sandbox.db"))
    async with sandbox_client(document) as sandbox:
        message_id = await receive(sandbox, "kept")
        await sandbox.ok("set_essence_msg", message_id=message_id)
    async with sandbox_client(document) as sandbox:
        [entry] = await sandbox.ok("get_essence_msg_list", group_id=LAB)
        assert entry["message_id"] == message_id


async def test_a_plain_member_bot_cannot_set_essence(tmp_path: Path) -> None:
    async with sandbox_client(member_bot_document(tmp_path)) as sandbox:
        message_id = await receive(sandbox, "x", ALICE, 40001)
        body = await sandbox.call("set_essence_msg", message_id=message_id)
        assert body["retcode"] == 1200 and "admin or owner" in body["message"]
        assert await sandbox.ok("get_essence_msg_list", group_id=40001) == []
