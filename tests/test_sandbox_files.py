"""Sandbox group and private files through the real HTTP and WebSocket adapters."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.sandbox_client import (
    SandboxClient,
    member_bot_document,
    sandbox_client,
)

BOT, ALICE, BOB, CAROL, DAVE = 10001, 20001, 20002, 20003, 20004
LAB, PLAYGROUND = 30001, 30002


def content(where: str) -> bytes:
    """The bytes of a local path or a file:// URL the sandbox returned."""
    return Path(urlsplit(where).path if where.startswith("file://") else where).read_bytes()


def b64(content: bytes) -> str:
    return "base64://" + base64.b64encode(content).decode()


def is_file_message(event: dict[str, Any]) -> bool:
    message = event.get("message")
    return isinstance(message, list) and bool(message) and message[0]["type"] == "file"


async def root(sandbox: SandboxClient, group_id: int = LAB) -> dict[str, Any]:
    data: dict[str, Any] = await sandbox.ok("get_group_root_files", group_id=group_id)
    return data


async def new_folder(sandbox: SandboxClient, name: str, group_id: int = LAB) -> str:
    data = await sandbox.ok("create_group_file_folder", group_id=group_id, folder_name=name)
    assert data["result"]["retCode"] == 0
    folder_id: str = data["groupItem"]["folderInfo"]["folderId"]
    return folder_id


async def test_upload_group_file_is_listed_and_announced(sandbox: SandboxClient) -> None:
    data = await sandbox.ok("upload_group_file", group_id=LAB, file=b64(b"hello"), name="a.txt")
    notice = await sandbox.notice("group_upload")
    assert (notice["group_id"], notice["user_id"]) == (LAB, BOT)
    assert notice["file"] == {"id": data["file_id"], "name": "a.txt", "size": 5, "busid": 102}
    listing = await root(sandbox)
    assert listing["folders"] == []
    [file] = listing["files"]
    assert (file["file_id"], file["file_name"], file["size"], file["file_size"]) == (
        data["file_id"],
        "a.txt",
        5,
        5,
    )
    assert (file["uploader"], file["uploader_name"], file["group_id"]) == (BOT, "Sandbox Bot", LAB)


async def test_upload_posts_a_file_message_in_the_group(sandbox: SandboxClient) -> None:
    data = await sandbox.ok("upload_group_file", group_id=LAB, file=b64(b"hello"), name="a.txt")
    event = await sandbox.event(is_file_message)
    assert (event["post_type"], event["group_id"]) == ("message_sent", LAB)
    segment = event["message"][0]["data"]
    assert (segment["file"], segment["file_id"], segment["file_size"]) == (
        "a.txt",
        data["file_id"],
        "5",
    )
    history = await sandbox.ok("get_group_msg_history", group_id=LAB)
    assert history["messages"][-1]["message_id"] == event["message_id"]


async def test_group_file_url_points_at_the_bytes(sandbox: SandboxClient) -> None:
    data = await sandbox.ok("upload_group_file", group_id=LAB, file=b64(b"bytes"), name="b.bin")
    url = (await sandbox.ok("get_group_file_url", group_id=LAB, file_id=data["file_id"]))["url"]
    assert url.startswith("file://")
    assert content(url) == b"bytes"


async def test_upload_into_a_folder(sandbox: SandboxClient) -> None:
    folder = await new_folder(sandbox, "docs")
    data = await sandbox.ok(
        "upload_group_file", group_id=LAB, file=b64(b"x"), name="in.txt", folder_id=folder
    )
    inside = await sandbox.ok("get_group_files_by_folder", group_id=LAB, folder=folder)
    assert [f["file_id"] for f in inside["files"]] == [data["file_id"]]
    assert inside["folders"] == []
    listing = await root(sandbox)
    assert listing["files"] == []
    [entry] = listing["folders"]
    assert (entry["folder_id"], entry["folder"], entry["folder_name"]) == (folder, folder, "docs")
    assert (entry["creator"], entry["total_file_count"]) == (BOT, 1)


async def test_file_count_limits_the_listing(sandbox: SandboxClient) -> None:
    for index in range(3):
        await sandbox.ok("upload_group_file", group_id=LAB, file=b64(b"%d" % index), name="f")
    assert len((await sandbox.ok("get_group_root_files", group_id=LAB, file_count=2))["files"]) == 2


async def test_upload_failures_leave_no_file(sandbox: SandboxClient) -> None:
    cases = [
        ({"group_id": 39999}, 1200, "group 39999 does not exist"),
        ({"folder": "/nope"}, 1200, "has no folder '/nope'"),
        ({"name": ""}, 1400, "name"),
    ]
    for override, retcode, words in cases:
        params = {"group_id": LAB, "file": b64(b"x"), "name": "x", **override}
        body = await sandbox.call("upload_group_file", **params)
        assert body["retcode"] == retcode and words in body["message"], body
    assert (await root(sandbox))["files"] == []
    body = await sandbox.call("upload_group_file", group_id=LAB, name="x")
    assert body["retcode"] == 1400 and "'file'" in body["message"]


async def test_delete_group_file(sandbox: SandboxClient) -> None:
    data = await sandbox.ok("upload_group_file", group_id=LAB, file=b64(b"x"), name="x")
    answer = await sandbox.ok("delete_group_file", group_id=LAB, file_id=data["file_id"])
    assert answer["transGroupFileResult"]["successFileIdList"] == [data["file_id"]]
    assert (await root(sandbox))["files"] == []
    body = await sandbox.call("delete_group_file", group_id=LAB, file_id=data["file_id"])
    assert body["retcode"] == 1200 and "has no file" in body["message"]


async def test_file_system_info_counts_files_and_space(sandbox: SandboxClient) -> None:
    await sandbox.ok("upload_group_file", group_id=LAB, file=b64(b"12345"), name="a")
    await sandbox.ok("upload_group_file", group_id=LAB, file=b64(b"123"), name="b")
    info = await sandbox.ok("get_group_file_system_info", group_id=LAB)
    assert (info["file_count"], info["used_space"]) == (2, 8)
    assert info["limit_count"] > 0 and info["total_space"] > info["used_space"]
    other = await sandbox.ok("get_group_file_system_info", group_id=PLAYGROUND)
    assert (other["file_count"], other["used_space"]) == (0, 0)


async def test_folders_create_and_delete(sandbox: SandboxClient) -> None:
    folder = await new_folder(sandbox, "old", PLAYGROUND)
    await sandbox.ok(
        "upload_group_file", group_id=PLAYGROUND, file=b64(b"x"), name="x", folder=folder
    )
    duplicate = await sandbox.call("create_group_file_folder", group_id=PLAYGROUND, name="old")
    assert duplicate["retcode"] == 1200 and "already has a folder" in duplicate["message"]
    await sandbox.ok("delete_group_folder", group_id=PLAYGROUND, folder_id=folder)
    listing = await root(sandbox, PLAYGROUND)
    assert listing == {"files": [], "folders": []}
    info = await sandbox.ok("get_group_file_system_info", group_id=PLAYGROUND)
    assert info["file_count"] == 0
    gone = await sandbox.call("delete_group_folder", group_id=PLAYGROUND, folder=folder)
    assert gone["retcode"] == 1200 and "has no folder" in gone["message"]
    body = await sandbox.call("get_group_files_by_folder", group_id=PLAYGROUND, folder_id=folder)
    assert body["retcode"] == 1200


async def test_members_upload_and_the_bot_manages_their_files(sandbox: SandboxClient) -> None:
    data = await sandbox.ok(
        "sandbox_upload_group_file", group_id=LAB, user_id=CAROL, name="c.txt", file=b64(b"c")
    )
    event = await sandbox.event(is_file_message)
    assert (event["post_type"], event["user_id"]) == ("message", CAROL)
    notice = await sandbox.notice("group_upload")
    assert (notice["user_id"], notice["file"]["id"]) == (CAROL, data["file_id"])
    [file] = (await root(sandbox))["files"]
    assert (file["uploader"], file["uploader_name"]) == (CAROL, "Carol")
    folder = await new_folder(sandbox, "moved")
    moved = await sandbox.ok(
        "move_group_file",
        group_id=LAB,
        file_id=data["file_id"],
        current_parent_directory="/",
        target_parent_directory=folder,
    )
    assert moved == {"ok": True}
    renamed = await sandbox.ok(
        "rename_group_file",
        group_id=LAB,
        file_id=data["file_id"],
        current_parent_directory=folder,
        new_name="renamed.txt",
    )
    assert renamed == {"ok": True}
    inside = await sandbox.ok("get_group_files_by_folder", group_id=LAB, folder_id=folder)
    assert [f["file_name"] for f in inside["files"]] == ["renamed.txt"]


async def test_move_from_the_wrong_folder_fails(sandbox: SandboxClient) -> None:
    data = await sandbox.ok("upload_group_file", group_id=LAB, file=b64(b"x"), name="x")
    body = await sandbox.call(
        "move_group_file",
        group_id=LAB,
        file_id=data["file_id"],
        current_parent_directory="/elsewhere",
        target_parent_directory="/",
    )
    assert body["retcode"] == 1200 and "not '/elsewhere'" in body["message"]


async def test_simulated_uploads_need_a_member(sandbox: SandboxClient) -> None:
    params = {"group_id": PLAYGROUND, "name": "x", "file": b64(b"x")}
    body = await sandbox.call("sandbox_upload_group_file", user_id=ALICE, **params)
    assert body["retcode"] == 1200 and "not a member of group 30002" in body["message"]
    body = await sandbox.call("sandbox_upload_group_file", user_id=BOT, **params)
    assert body["retcode"] == 1200
    assert (await root(sandbox, PLAYGROUND))["files"] == []


async def test_upload_private_file_to_a_friend(sandbox: SandboxClient) -> None:
    data = await sandbox.ok("upload_private_file", user_id=ALICE, file=b64(b"doc"), name="d.txt")
    event = await sandbox.event(is_file_message)
    assert (event["post_type"], event["target_id"]) == ("message_sent", ALICE)
    assert event["message"][0]["data"]["file_id"] == data["file_id"]
    history = await sandbox.ok("get_friend_msg_history", user_id=ALICE)
    assert history["messages"][-1]["message"][0]["data"]["file"] == "d.txt"
    url = (await sandbox.ok("get_private_file_url", file_id=data["file_id"]))["url"]
    assert content(url) == b"doc"
    got = await sandbox.ok("get_file", file_id=data["file_id"])
    assert content(got["file"]) == b"doc"


async def test_upload_private_file_needs_a_friend(sandbox: SandboxClient) -> None:
    body = await sandbox.call("upload_private_file", user_id=DAVE, file=b64(b"x"), name="x")
    assert body["retcode"] == 1200 and "not a friend" in body["message"]
    assert (await sandbox.ok("get_friend_msg_history", user_id=DAVE))["messages"] == []
    body = await sandbox.call("get_private_file_url", file_id="nope")
    assert body["retcode"] == 1200 and "no private file" in body["message"]


async def test_a_plain_member_bot_manages_only_its_own_files(tmp_path: Path) -> None:
    async with sandbox_client(member_bot_document(tmp_path)) as sandbox:
        body = await sandbox.call("create_group_file_folder", group_id=40001, name="f")
        assert body["retcode"] == 1200 and "admin or owner" in body["message"]
        theirs = await sandbox.ok(
            "sandbox_upload_group_file", group_id=40001, user_id=ALICE, name="a", file=b64(b"a")
        )
        body = await sandbox.call("delete_group_file", group_id=40001, file_id=theirs["file_id"])
        assert body["retcode"] == 1200 and "another member's file" in body["message"]
        mine = await sandbox.ok("upload_group_file", group_id=40001, name="b", file=b64(b"b"))
        await sandbox.ok("delete_group_file", group_id=40001, file_id=mine["file_id"])
        listing = await root(sandbox, 40001)
        assert [f["file_id"] for f in listing["files"]] == [theirs["file_id"]]
