"""Sandbox online files over the real HTTP and WebSocket adapters: the bot's offers, a simulated
friend's offers and answers, the `onlinefile` segment and NapCat's notices; answers checked
against NapCat's schema."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from tests.napcat_schema import validate_component, validate_data
from tests.sandbox_client import SandboxClient

BOT, ALICE = 10001, 20001


def content(path: str) -> bytes:
    return Path(path).read_bytes()


def has_online_file(event: dict[str, Any]) -> bool:
    message = event.get("message")
    return isinstance(message, list) and bool(message) and message[0]["type"] == "onlinefile"


async def offer(sandbox: SandboxClient, path: Path, **params: Any) -> dict[str, Any]:
    data: dict[str, Any] = await sandbox.ok(
        "send_online_file", user_id=str(ALICE), file_path=str(path), **params
    )
    return data


async def friend_offers(sandbox: SandboxClient, content: bytes = b"hi") -> dict[str, Any]:
    data: dict[str, Any] = await sandbox.ok(
        "sandbox_send_online_file",
        user_id=ALICE,
        name="notes.txt",
        file="base64://" + base64.b64encode(content).decode(),
    )
    return data


async def test_send_online_file_posts_an_onlinefile_message(
    sandbox: SandboxClient, tmp_path: Path
) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(b"%PDF-1.7 twelve")
    data = await offer(sandbox, path)
    validate_data("send_online_file", data)
    assert (data["result"], data["errMsg"]) == (0, "")
    event = await sandbox.event(has_online_file)
    assert (event["post_type"], event["user_id"], event["target_id"]) == (
        "message_sent",
        BOT,
        ALICE,
    )
    segment = event["message"][0]
    validate_component("OB11MessageOnlineFile", segment)
    assert segment["data"] == {
        "msgId": data["msgId"],
        "elementId": data["elementId"],
        "fileName": "report.pdf",
        "fileSize": "15",
        "isDir": False,
    }


async def test_send_online_folder_offers_its_size(sandbox: SandboxClient, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"abc")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_bytes(b"defg")
    data = await sandbox.ok(
        "send_online_folder", user_id=ALICE, folder_path=str(tmp_path), folder_name="stuff"
    )
    validate_data("send_online_folder", data)
    segment = (await sandbox.event(has_online_file))["message"][0]["data"]
    assert (segment["fileName"], segment["fileSize"], segment["isDir"]) == ("stuff", "7", True)


async def test_get_online_file_msg_lists_offers_with_their_state(
    sandbox: SandboxClient, tmp_path: Path
) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"x")
    sent = await offer(sandbox, path, file_name="renamed.bin")
    received = await friend_offers(sandbox)
    data = await sandbox.ok("get_online_file_msg", user_id=ALICE)
    validate_data("get_online_file_msg", data)
    newest, oldest = data["msgList"]
    assert (newest["msgId"], newest["senderUid"], newest["state"]) == (
        received["msg_id"],
        f"u_{ALICE}",
        "offered",
    )
    assert (oldest["msgId"], oldest["senderUid"]) == (sent["msgId"], f"u_{BOT}")
    [element] = oldest["elements"]
    assert (element["elementType"], element["elementId"]) == (23, sent["elementId"])
    assert element["fileElement"] == {
        "fileName": "renamed.bin",
        "filePath": str(path),
        "fileSize": "1",
    }


async def test_friend_answers_the_bots_offer(sandbox: SandboxClient, tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"a")
    first, second = await offer(sandbox, path), await offer(sandbox, path)
    await sandbox.ok(
        "sandbox_answer_online_file", user_id=ALICE, msg_id=first["msgId"], answer="receive"
    )
    notice = await sandbox.notice("online_file_send")
    assert (notice["sub_type"], notice["peer_id"]) == ("receive", ALICE)
    await sandbox.ok(
        "sandbox_answer_online_file", user_id=ALICE, msg_id=second["msgId"], answer="refuse"
    )
    notice = await sandbox.notice("online_file_send")
    assert (notice["sub_type"], notice["peer_id"]) == ("refuse", ALICE)
    states = {m["msgId"]: m["state"] for m in (await online(sandbox))}
    assert states == {first["msgId"]: "received", second["msgId"]: "refused"}


async def online(sandbox: SandboxClient) -> list[dict[str, Any]]:
    data = await sandbox.ok("get_online_file_msg", user_id=ALICE)
    messages: list[dict[str, Any]] = data["msgList"]
    return messages


async def test_friends_offer_arrives_and_is_received(sandbox: SandboxClient) -> None:
    sent = await friend_offers(sandbox, b"the notes")
    event = await sandbox.event(has_online_file)
    assert (event["post_type"], event["user_id"], event["message_id"]) == (
        "message",
        ALICE,
        sent["message_id"],
    )
    validate_component("OB11MessageOnlineFile", event["message"][0])
    data = await sandbox.ok(
        "receive_online_file",
        user_id=ALICE,
        msg_id=sent["msg_id"],
        element_id=sent["element_id"],
    )
    validate_data("receive_online_file", data)
    assert (data["result"], data["file_name"], data["file_size"]) == (0, "notes.txt", 9)
    assert content(data["path"]) == b"the notes"
    assert [m["state"] for m in await online(sandbox)] == ["received"]


async def test_refuse_online_file(sandbox: SandboxClient) -> None:
    sent = await friend_offers(sandbox)
    data = await sandbox.ok(
        "refuse_online_file", user_id=ALICE, msg_id=sent["msg_id"], element_id=sent["element_id"]
    )
    validate_data("refuse_online_file", data)
    assert [m["state"] for m in await online(sandbox)] == ["refused"]


async def test_cancel_online_file_withdraws_the_bots_offer(
    sandbox: SandboxClient, tmp_path: Path
) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"a")
    sent = await offer(sandbox, path)
    data = await sandbox.ok("cancel_online_file", user_id=ALICE, msg_id=sent["msgId"])
    validate_data("cancel_online_file", data)
    assert [m["state"] for m in await online(sandbox)] == ["cancelled"]


async def test_friend_cancels_their_offer(sandbox: SandboxClient) -> None:
    sent = await friend_offers(sandbox)
    await sandbox.ok(
        "sandbox_answer_online_file", user_id=ALICE, msg_id=sent["msg_id"], answer="cancel"
    )
    notice = await sandbox.notice("online_file_receive")
    assert (notice["sub_type"], notice["peer_id"]) == ("cancel", ALICE)
    body = await sandbox.call(
        "receive_online_file", user_id=ALICE, msg_id=sent["msg_id"], element_id=sent["element_id"]
    )
    assert (body["retcode"], body["message"]) == (
        1200,
        f"online file offer {sent['msg_id']!r} is already cancelled",
    )
