"""Sandbox group announcements through the real HTTP adapter."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import urlsplit

from tests.sandbox_client import (
    SandboxClient,
    member_bot_document,
    sandbox_client,
)

BOT, ALICE = 10001, 20001
LAB, PLAYGROUND = 30001, 30002
PNG = b"\x89PNG\r\n\x1a\n" + b"notice"


def content(where: str) -> bytes:
    """The bytes of a local path or a file:// URL the sandbox returned."""
    return Path(urlsplit(where).path if where.startswith("file://") else where).read_bytes()


async def test_send_and_list_group_notices(sandbox: SandboxClient) -> None:
    assert await sandbox.ok("_send_group_notice", group_id=LAB, content="first") is None
    await sandbox.ok("_send_group_notice", group_id=LAB, content="second", confirm_required=0)
    notices = await sandbox.ok("_get_group_notice", group_id=LAB)
    assert [n["message"]["text"] for n in notices] == ["second", "first"]
    latest = notices[0]
    assert latest["sender_id"] == BOT and latest["publish_time"] > 0 and latest["notice_id"]
    assert latest["message"]["image"] == latest["message"]["images"] == []
    assert latest["settings"]["confirm_required"] == 0
    assert notices[1]["settings"]["confirm_required"] == 1
    assert await sandbox.ok("_get_group_notice", group_id=PLAYGROUND) == []


async def test_pinned_notices_come_first(sandbox: SandboxClient) -> None:
    await sandbox.ok("_send_group_notice", group_id=LAB, content="pinned", pinned=1)
    await sandbox.ok("_send_group_notice", group_id=LAB, content="later")
    notices = await sandbox.ok("_get_group_notice", group_id=LAB)
    assert [(n["message"]["text"], n["pinned"]) for n in notices] == [("pinned", 1), ("later", 0)]


async def test_notice_image_is_stored(sandbox: SandboxClient) -> None:
    image = "base64://" + base64.b64encode(PNG).decode()
    await sandbox.ok("_send_group_notice", group_id=PLAYGROUND, content="pic", image=image)
    [notice] = await sandbox.ok("_get_group_notice", group_id=PLAYGROUND)
    [picture] = notice["message"]["image"]
    assert content(picture["url"]) == PNG
    got = await sandbox.ok("get_image", file=picture["id"])
    assert content(got["file"]) == PNG


async def test_delete_group_notice(sandbox: SandboxClient) -> None:
    await sandbox.ok("_send_group_notice", group_id=LAB, content="bye")
    [notice] = await sandbox.ok("_get_group_notice", group_id=LAB)
    await sandbox.ok("_del_group_notice", group_id=LAB, notice_id=notice["notice_id"])
    assert await sandbox.ok("_get_group_notice", group_id=LAB) == []
    body = await sandbox.call("_del_group_notice", group_id=LAB, notice_id=notice["notice_id"])
    assert body["retcode"] == 1200 and "has no announcement" in body["message"]


async def test_bad_notices_fail_and_store_nothing(sandbox: SandboxClient) -> None:
    body = await sandbox.call("_send_group_notice", group_id=39999, content="x")
    assert body["retcode"] == 1200 and "group 39999 does not exist" in body["message"]
    body = await sandbox.call("_send_group_notice", group_id=LAB, content="")
    assert body["retcode"] == 1400 and "content" in body["message"]
    body = await sandbox.call("_send_group_notice", group_id=LAB, content="x", image="/no/file")
    assert body["retcode"] == 1200 and "does not exist" in body["message"]
    assert await sandbox.ok("_get_group_notice", group_id=LAB) == []
    body = await sandbox.call("_get_group_notice", group_id=39999)
    assert body["retcode"] == 1200


async def test_a_plain_member_bot_cannot_publish_or_delete(tmp_path: Path) -> None:
    async with sandbox_client(member_bot_document(tmp_path)) as sandbox:
        body = await sandbox.call("_send_group_notice", group_id=40001, content="x")
        assert body["retcode"] == 1200 and "admin or owner" in body["message"]
        body = await sandbox.call("_del_group_notice", group_id=40001, notice_id="x")
        assert body["retcode"] == 1200 and "admin or owner" in body["message"]
        assert await sandbox.ok("_get_group_notice", group_id=40001) == []
