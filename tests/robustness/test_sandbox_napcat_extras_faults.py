"""Bad calls of the group todo, online file, flash transfer and trans_group_file actions: each is
a 1400 (bad parameters) or a 1200 (the operation cannot be done) whose message names the
problem, and leaves no trace (no message, no offer, no file set, no state change)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox_client import (
    SandboxClient,
    member_bot_document,
    sandbox_client,
)

BOT, ALICE, BOB, CAROL, STRANGER = 10001, 20001, 20002, 20003, 99999
LAB, PLAYGROUND, NOT_A_GROUP = 30001, 30002, 39999
MEMBER_GROUP = 40001


def b64(content: bytes) -> str:
    return "base64://" + base64.b64encode(content).decode()


async def expect(
    sandbox: SandboxClient, action: str, retcode: int, message: str, **params: Any
) -> None:
    """The call fails with `retcode` and a message containing `message`."""
    body = await sandbox.call(action, **params)
    assert (body["status"], body["retcode"]) == ("failed", retcode), body
    assert message in body["message"], body


async def chat_lengths(sandbox: SandboxClient) -> tuple[int, int]:
    lab = await sandbox.ok("get_group_msg_history", group_id=LAB)
    alice = await sandbox.ok("get_friend_msg_history", user_id=ALICE)
    return len(lab["messages"]), len(alice["messages"])


# --- parameters ---------------------------------------------------------------------------------

BAD_PARAMS = [
    ("set_group_todo", {"group_id": LAB}, "give message_id or message_seq"),
    ("complete_group_todo", {"group_id": "lab", "message_id": 1}, "parameter 'group_id'"),
    ("cancel_group_todo", {"message_id": 1}, "missing required parameter 'group_id'"),
    ("send_online_file", {"user_id": ALICE}, "missing required parameter 'file_path'"),
    ("send_online_file", {"user_id": ALICE, "file_path": ""}, "parameter 'file_path'"),
    ("send_online_file", {"user_id": ALICE, "file_path": "rel/a.txt"}, "not an absolute path"),
    ("send_online_folder", {"user_id": ALICE, "folder_path": "x"}, "not an absolute path"),
    ("get_online_file_msg", {}, "missing required parameter 'user_id'"),
    ("receive_online_file", {"user_id": ALICE, "msg_id": "1"}, "'element_id'"),
    ("cancel_online_file", {"user_id": ALICE, "msg_id": ""}, "parameter 'msg_id'"),
    (
        "sandbox_answer_online_file",
        {"user_id": ALICE, "msg_id": "1", "answer": "maybe"},
        "parameter 'answer'",
    ),
    ("create_flash_task", {}, "missing required parameter 'files'"),
    ("create_flash_task", {"files": []}, "give at least one file path"),
    ("create_flash_task", {"files": ["/a", ""]}, "a file path is empty"),
    ("create_flash_task", {"files": {"a": 1}}, "parameter 'files'"),
    ("send_flash_msg", {"fileset_id": "f"}, "give user_id or group_id"),
    ("get_flash_file_url", {"fileset_id": "f"}, "give file_name or file_index"),
    ("get_flash_file_url", {"fileset_id": "f", "file_index": -1}, "parameter 'file_index'"),
    ("get_share_link", {}, "missing required parameter 'fileset_id'"),
    ("get_fileset_id", {"share_code": ""}, "parameter 'share_code'"),
    ("trans_group_file", {"group_id": LAB}, "missing required parameter 'file_id'"),
]


@pytest.mark.parametrize(("action", "params", "message"), BAD_PARAMS)
async def test_bad_parameters_are_1400(
    sandbox: SandboxClient, action: str, params: dict[str, Any], message: str
) -> None:
    await expect(sandbox, action, 1400, message, **params)


# --- group todos --------------------------------------------------------------------------------


async def test_todo_on_a_message_that_is_not_the_groups(sandbox: SandboxClient) -> None:
    private = await sandbox.ok(
        "sandbox_receive_message", message_type="private", user_id=ALICE, message="dm"
    )
    playground = await sandbox.ok(
        "sandbox_receive_message",
        message_type="group",
        group_id=PLAYGROUND,
        user_id=BOB,
        message="pg",
    )
    for message_id in (private["message_id"], playground["message_id"]):
        await expect(
            sandbox,
            "set_group_todo",
            1200,
            f"message {message_id} is not a message of group {LAB}",
            group_id=LAB,
            message_id=message_id,
        )
    await expect(
        sandbox,
        "set_group_todo",
        1200,
        "message 424242 does not exist",
        group_id=LAB,
        message_id=424242,
    )
    await expect(
        sandbox,
        "set_group_todo",
        1200,
        str(NOT_A_GROUP),
        group_id=NOT_A_GROUP,
        message_id=private["message_id"],
    )
    assert await sandbox.ok("sandbox_get_group_todo", group_id=LAB) is None


async def test_todo_on_a_recalled_message(sandbox: SandboxClient) -> None:
    sent = await sandbox.ok(
        "sandbox_receive_message", message_type="group", group_id=LAB, user_id=CAROL, message="x"
    )
    await sandbox.ok("delete_msg", message_id=sent["message_id"])
    await expect(
        sandbox,
        "set_group_todo",
        1200,
        f"message {sent['message_id']} was recalled",
        group_id=LAB,
        message_id=sent["message_id"],
    )


async def test_complete_or_cancel_without_a_todo(sandbox: SandboxClient) -> None:
    for action in ("complete_group_todo", "cancel_group_todo"):
        await expect(sandbox, action, 1200, f"group {LAB} has no todo", group_id=LAB, message_id=1)


async def test_a_plain_member_bot_cannot_set_or_cancel_todos(tmp_path: Path) -> None:
    async with sandbox_client(member_bot_document(tmp_path)) as sandbox:
        said = await sandbox.ok(
            "sandbox_receive_message",
            message_type="group",
            group_id=MEMBER_GROUP,
            user_id=ALICE,
            message="todo?",
        )
        for action, what in (("set_group_todo", "setting"), ("cancel_group_todo", "cancelling")):
            await expect(
                sandbox,
                action,
                1200,
                f"{what} a group todo in group {MEMBER_GROUP} needs the bot to be admin or owner",
                group_id=MEMBER_GROUP,
                message_id=said["message_id"],
            )


# --- online files -------------------------------------------------------------------------------


async def test_online_files_are_for_friends_only(sandbox: SandboxClient, tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"a")
    before = await sandbox.ok("get_group_msg_history", group_id=LAB)
    for action, params in (
        ("send_online_file", {"file_path": str(path)}),
        ("send_online_folder", {"folder_path": str(tmp_path)}),
        ("get_online_file_msg", {}),
        ("sandbox_send_online_file", {"file": b64(b"x"), "name": "x"}),
    ):
        await expect(
            sandbox, action, 1200, f"user {STRANGER} is not a friend", user_id=STRANGER, **params
        )
    assert await sandbox.ok("get_group_msg_history", group_id=LAB) == before


async def test_offers_of_missing_paths(sandbox: SandboxClient, tmp_path: Path) -> None:
    missing, a_file = tmp_path / "missing", tmp_path / "a.txt"
    a_file.write_bytes(b"a")
    await expect(
        sandbox,
        "send_online_file",
        1200,
        f"local file {str(missing)!r} does not exist",
        user_id=ALICE,
        file_path=str(missing),
    )
    await expect(
        sandbox, "send_online_file", 1200, "does not exist", user_id=ALICE, file_path=str(tmp_path)
    )
    await expect(
        sandbox,
        "send_online_folder",
        1200,
        f"local folder {str(a_file)!r} does not exist",
        user_id=ALICE,
        folder_path=str(a_file),
    )
    assert (await sandbox.ok("get_online_file_msg", user_id=ALICE))["msgList"] == []
    assert (await sandbox.ok("get_friend_msg_history", user_id=ALICE))["messages"] == []


async def test_offers_act_only_on_the_right_side(sandbox: SandboxClient, tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"a")
    mine = await sandbox.ok("send_online_file", user_id=ALICE, file_path=str(path))
    theirs = await sandbox.ok("sandbox_send_online_file", user_id=ALICE, file=b64(b"t"), name="t")
    await expect(
        sandbox,
        "receive_online_file",
        1200,
        f"online file offer {mine['msgId']!r} was made by the bot",
        user_id=ALICE,
        msg_id=mine["msgId"],
        element_id=mine["elementId"],
    )
    await expect(
        sandbox,
        "cancel_online_file",
        1200,
        f"online file offer {theirs['msg_id']!r} was made by user {ALICE}",
        user_id=ALICE,
        msg_id=theirs["msg_id"],
    )
    await expect(
        sandbox,
        "refuse_online_file",
        1200,
        f"online file offer {theirs['msg_id']!r} has no element 'nope'",
        user_id=ALICE,
        msg_id=theirs["msg_id"],
        element_id="nope",
    )
    await expect(
        sandbox,
        "receive_online_file",
        1200,
        f"no online file offer with msg_id {theirs['msg_id']!r} with user {BOB}",
        user_id=BOB,
        msg_id=theirs["msg_id"],
        element_id=theirs["element_id"],
    )
    await expect(
        sandbox,
        "sandbox_answer_online_file",
        1200,
        "was made by user",
        user_id=ALICE,
        msg_id=theirs["msg_id"],
        answer="receive",
    )
    await expect(
        sandbox,
        "cancel_online_file",
        1200,
        "no online file offer with msg_id '1'",
        user_id=ALICE,
        msg_id="1",
    )
    states = [
        m["state"] for m in (await sandbox.ok("get_online_file_msg", user_id=ALICE))["msgList"]
    ]
    assert states == ["offered", "offered"]


# --- flash transfer -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "extra"),
    [
        ("get_share_link", {}),
        ("download_fileset", {}),
        ("get_fileset_info", {}),
        ("get_flash_file_list", {}),
        ("get_flash_file_url", {"file_index": 0}),
        ("send_flash_msg", {"group_id": LAB}),
    ],
)
async def test_an_unknown_file_set_is_1200(
    sandbox: SandboxClient, action: str, extra: dict[str, Any]
) -> None:
    await expect(
        sandbox, action, 1200, "no flash transfer file set 'nope'", fileset_id="nope", **extra
    )


async def test_unknown_share_code(sandbox: SandboxClient) -> None:
    await expect(
        sandbox,
        "get_fileset_id",
        1200,
        "no flash transfer file set has the share code 'abc'",
        share_code="sandbox://flash-transfer/share?code=abc",
    )


async def test_a_flash_task_with_a_missing_or_relative_path_is_1200(
    sandbox: SandboxClient, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_bytes(b"a")
    missing = tmp_path / "b.txt"
    await expect(
        sandbox,
        "create_flash_task",
        1200,
        f"local file {str(missing)!r} does not exist",
        files=[str(tmp_path / "a.txt"), str(missing)],
    )
    await expect(
        sandbox,
        "create_flash_task",
        1200,
        "is not a media id of this sandbox",
        files="relative.txt",
    )


async def test_a_flash_task_with_two_files_of_one_name_is_1400(
    sandbox: SandboxClient, tmp_path: Path
) -> None:
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "a.txt").write_bytes(folder.encode())
    paths = [str(tmp_path / "x" / "a.txt"), str(tmp_path / "y" / "a.txt")]
    await expect(
        sandbox, "create_flash_task", 1400, "files: two files are named 'a.txt'", files=paths
    )


async def test_flash_messages_to_unreachable_targets(
    sandbox: SandboxClient, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_bytes(b"a")
    created = await sandbox.ok("create_flash_task", files=[str(tmp_path / "a.txt")])
    fileset_id = created["createFlashTransferResult"]["fileSetId"]
    before = await chat_lengths(sandbox)
    await expect(
        sandbox,
        "send_flash_msg",
        1200,
        str(NOT_A_GROUP),
        fileset_id=fileset_id,
        group_id=NOT_A_GROUP,
    )
    await expect(
        sandbox,
        "send_flash_msg",
        1200,
        f"user {STRANGER} is not a friend",
        fileset_id=fileset_id,
        user_id=STRANGER,
    )
    await expect(
        sandbox,
        "get_flash_file_url",
        1200,
        f"file set {fileset_id!r} has no file named 'z.txt' or at index 5",
        fileset_id=fileset_id,
        file_name="z.txt",
        file_index=5,
    )
    assert await chat_lengths(sandbox) == before


# --- trans_group_file ---------------------------------------------------------------------------


async def test_trans_group_file_of_unknown_files_and_groups(sandbox: SandboxClient) -> None:
    await expect(
        sandbox,
        "trans_group_file",
        1200,
        f"group {LAB} has no file '/nope'",
        group_id=LAB,
        file_id="/nope",
    )
    await expect(
        sandbox, "trans_group_file", 1200, str(NOT_A_GROUP), group_id=NOT_A_GROUP, file_id="/nope"
    )


async def test_a_plain_member_bot_keeps_only_its_own_files(tmp_path: Path) -> None:
    async with sandbox_client(member_bot_document(tmp_path)) as sandbox:
        theirs = await sandbox.ok(
            "sandbox_upload_group_file",
            group_id=MEMBER_GROUP,
            user_id=ALICE,
            name="t.iso",
            file=b64(b"t"),
            temporary=True,
        )
        await expect(
            sandbox,
            "trans_group_file",
            1200,
            "another member's file",
            group_id=MEMBER_GROUP,
            file_id=theirs["file_id"],
        )
        [file] = (await sandbox.ok("get_group_root_files", group_id=MEMBER_GROUP))["files"]
        assert file["busid"] == 104


async def test_a_flash_share_that_cannot_be_sent_leaves_no_message(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_ban", group_id=LAB, user_id=CAROL, duration=600)
    before = await chat_lengths(sandbox)
    await expect(
        sandbox,
        "sandbox_send_flash_msg",
        1200,
        f"user {CAROL} is muted",
        user_id=CAROL,
        group_id=LAB,
        files="base64://aGk=",
    )
    await expect(
        sandbox,
        "sandbox_send_flash_msg",
        1200,
        str(NOT_A_GROUP),
        user_id=CAROL,
        group_id=NOT_A_GROUP,
        files="base64://aGk=",
    )
    assert await chat_lengths(sandbox) == before
    backend: Any = sandbox.gw.supervisor.backend
    filesets = await backend.store.read(
        lambda db: db.execute("SELECT COUNT(*) FROM flash_filesets").fetchone()[0]
    )
    assert filesets == 0
