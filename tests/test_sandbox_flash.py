"""Sandbox flash transfer over the real HTTP and WebSocket adapters: file sets, share links, the
`flashtransfer` segment in chats; answers checked against NapCat's schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.napcat_schema import validate_component, validate_data
from tests.sandbox_client import SandboxClient

BOT, ALICE, DAVE = 10001, 20001, 20004
LAB = 30001


def content(url: str) -> bytes:
    """The bytes at a file:// URL the sandbox returned."""
    return Path(urlsplit(url).path).read_bytes()


def has_flash(event: dict[str, Any]) -> bool:
    message = event.get("message")
    return isinstance(message, list) and bool(message) and message[0]["type"] == "flashtransfer"


async def fileset(sandbox: SandboxClient, tmp_path: Path, **params: Any) -> str:
    (tmp_path / "a.txt").write_bytes(b"alpha")
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8\xffbeta")
    files = [str(tmp_path / "a.txt"), str(tmp_path / "b.jpg")]
    data = await sandbox.ok("create_flash_task", files=files, **params)
    validate_data("create_flash_task", data)
    fileset_id: str = data["createFlashTransferResult"]["fileSetId"]
    return fileset_id


async def test_create_flash_task_answers_the_set_and_its_link(
    sandbox: SandboxClient, tmp_path: Path
) -> None:
    (tmp_path / "one.txt").write_bytes(b"1")
    data = await sandbox.ok("create_flash_task", files=str(tmp_path / "one.txt"), name="Task")
    created = data["createFlashTransferResult"]
    assert (data["result"], data["errMsg"]) == (0, "")
    assert set(created) == {"fileSetId", "shareLink", "expireTime", "expireLeftTime"}
    link = await sandbox.ok("get_share_link", fileset_id=created["fileSetId"])
    validate_data("get_share_link", link)
    assert link["shareLink"] == created["shareLink"]
    assert link["expireTimestamp"] == created["expireTime"]


async def test_files_given_as_base64_are_named_by_their_content(sandbox: SandboxClient) -> None:
    data = await sandbox.ok("create_flash_task", files=["base64://aGk=", "base64://eW8="])
    fileset_id = data["createFlashTransferResult"]["fileSetId"]
    listing = await sandbox.ok("get_flash_file_list", fileset_id=fileset_id)
    names = [f["name"] for f in listing["fileLists"][0]["fileList"]]
    assert len(set(names)) == 2 and all(name.isalnum() for name in names)
    info = (await sandbox.ok("get_fileset_info", fileset_id=fileset_id))["fileSet"]
    assert (info["name"], info["totalFileSize"]) == (names[0], 4)


async def test_share_link_and_code_lead_back_to_the_set(
    sandbox: SandboxClient, tmp_path: Path
) -> None:
    fileset_id = await fileset(sandbox, tmp_path)
    link = (await sandbox.ok("get_share_link", fileset_id=fileset_id))["shareLink"]
    by_link = await sandbox.ok("get_fileset_id", share_code=link)
    validate_data("get_fileset_id", by_link)
    by_code = await sandbox.ok("get_fileset_id", share_code=link.split("=", 1)[1])
    assert by_link == by_code == {"fileset_id": fileset_id}


async def test_get_fileset_info(sandbox: SandboxClient, tmp_path: Path) -> None:
    fileset_id = await fileset(sandbox, tmp_path, name="Holiday")
    data = await sandbox.ok("get_fileset_info", fileset_id=fileset_id)
    validate_data("get_fileset_info", data)
    info = data["fileSet"]
    assert (info["fileSetId"], info["name"], info["totalFileCount"], info["totalFileSize"]) == (
        fileset_id,
        "Holiday",
        2,
        12,
    )
    assert info["uploaders"] == [
        {"uin": str(BOT), "nickname": "Sandbox Bot", "uid": f"u_{BOT}", "sendEntrance": ""}
    ]
    assert info["downloadStatus"] == 0


async def test_get_flash_file_list_and_urls(sandbox: SandboxClient, tmp_path: Path) -> None:
    fileset_id = await fileset(sandbox, tmp_path)
    data = await sandbox.ok("get_flash_file_list", fileset_id=fileset_id)
    validate_data("get_flash_file_list", data)
    [level] = data["fileLists"]
    assert [(f["name"], f["fileSize"], f["cliFileIndex"]) for f in level["fileList"]] == [
        ("a.txt", "5", 0),
        ("b.jpg", "7", 1),
    ]
    by_name = await sandbox.ok("get_flash_file_url", fileset_id=fileset_id, file_name="b.jpg")
    validate_data("get_flash_file_url", by_name)
    by_index = await sandbox.ok("get_flash_file_url", fileset_id=fileset_id, file_index=0)
    assert content(by_name["transferUrl"]) == b"\xff\xd8\xffbeta"
    assert content(by_index["transferUrl"]) == b"alpha"


async def test_download_fileset_writes_the_files(sandbox: SandboxClient, tmp_path: Path) -> None:
    fileset_id = await fileset(sandbox, tmp_path)
    data = await sandbox.ok("download_fileset", fileset_id=fileset_id)
    validate_data("download_fileset", data)
    folder = Path(data["extraInfo"]["saveFileSetDir"])
    assert (folder / "a.txt").read_bytes() == b"alpha"
    listing = await sandbox.ok("get_flash_file_list", fileset_id=fileset_id)
    files = listing["fileLists"][0]["fileList"]
    assert [f["downloadStatus"] for f in files] == [2, 2]
    assert files[0]["saveFilePath"] == str(folder / "a.txt")
    info = (await sandbox.ok("get_fileset_info", fileset_id=fileset_id))["fileSet"]
    assert (info["downloadStatus"], info["saveFileSetDir"]) == (2, str(folder))


async def test_send_flash_msg_to_a_group(sandbox: SandboxClient, tmp_path: Path) -> None:
    fileset_id = await fileset(sandbox, tmp_path)
    data = await sandbox.ok("send_flash_msg", fileset_id=fileset_id, group_id=str(LAB))
    validate_data("send_flash_msg", data)
    assert data["rsp"]["sendStatus"] == [
        {"result": 0, "msg": "", "target": {"destType": 2, "destUid": str(LAB)}}
    ]
    event = await sandbox.event(has_flash)
    assert (event["post_type"], event["group_id"], event["message_id"]) == (
        "message_sent",
        LAB,
        data["message_id"],
    )
    validate_component("OB11MessageFlashTransfer", event["message"][0])
    assert event["message"][0]["data"] == {"fileSetId": fileset_id}
    stored = await sandbox.ok("get_msg", message_id=data["message_id"])
    assert stored["message"] == event["message"]


async def test_send_flash_msg_to_a_friend_and_a_group_member(
    sandbox: SandboxClient, tmp_path: Path
) -> None:
    fileset_id = await fileset(sandbox, tmp_path)
    to_friend = await sandbox.ok("send_flash_msg", fileset_id=fileset_id, user_id=ALICE)
    assert to_friend["rsp"]["sendStatus"][0]["target"] == {"destType": 1, "destUid": f"u_{ALICE}"}
    event = await sandbox.event(has_flash)
    assert (event["message_type"], event["target_id"]) == ("private", ALICE)
    to_member = await sandbox.ok("send_flash_msg", fileset_id=fileset_id, user_id=DAVE)
    assert to_member["rsp"]["sendStatus"][0]["target"] == {
        "destType": 100,
        "destUid": f"u_{DAVE}",
    }


async def test_a_user_shares_a_flash_transfer_with_the_bot(sandbox: SandboxClient) -> None:
    data = await sandbox.ok(
        "sandbox_send_flash_msg", user_id=ALICE, files=["base64://aGk="], name="From Alice"
    )
    event = await sandbox.event(has_flash)
    assert (event["post_type"], event["message_type"], event["user_id"]) == (
        "message",
        "private",
        ALICE,
    )
    assert event["message_id"] == data["message_id"]
    assert event["message"][0]["data"] == {"fileSetId": data["fileset_id"]}
    info = (await sandbox.ok("get_fileset_info", fileset_id=data["fileset_id"]))["fileSet"]
    assert (info["name"], info["uploaders"][0]["uin"], info["uploaders"][0]["nickname"]) == (
        "From Alice",
        str(ALICE),
        "Alice",
    )
    url = await sandbox.ok("get_flash_file_url", fileset_id=data["fileset_id"], file_index=0)
    assert content(url["transferUrl"]) == b"hi"


async def test_a_member_shares_a_flash_transfer_in_a_group(sandbox: SandboxClient) -> None:
    data = await sandbox.ok(
        "sandbox_send_flash_msg", user_id=DAVE, group_id=LAB, files="base64://aGk="
    )
    event = await sandbox.event(has_flash)
    assert (event["message_type"], event["group_id"], event["user_id"]) == ("group", LAB, DAVE)
    validate_component("OB11MessageFlashTransfer", event["message"][0])
    assert event["message_id"] == data["message_id"]
