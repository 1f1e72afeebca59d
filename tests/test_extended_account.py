"""NapCat's extended account actions on the sandbox, through the real HTTP adapter: online
status, signature, avatar, profile likes, recent contacts, client key and rkeys."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox_client import SandboxClient, sandbox_client, sandbox_document

BOT, ALICE, BOB = 10001, 20001, 20002
LAB = 30001
PNG = b"\x89PNG\r\n\x1a\n" + b"sandbox avatar"


async def failure(sandbox: SandboxClient, action: str, retcode: int, **params: Any) -> str:
    """The message of a call that must fail with `retcode`."""
    body = await sandbox.call(action, **params)
    assert body["retcode"] == retcode, body
    message: str = body["message"]
    return message


# --- online status ------------------------------------------------------------------------------


async def test_set_online_status_shows_in_get_status(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_online_status", status=50, ext_status=0, battery_status=80)
    status = await sandbox.ok("get_status")
    assert (status["online"], status["good"]) == (True, True)
    assert status["online_status"] == {
        "status": 50,
        "ext_status": 0,
        "battery_status": 80,
        "custom": None,
    }


async def test_get_status_starts_online_without_extended_status(sandbox: SandboxClient) -> None:
    status = (await sandbox.ok("get_status"))["online_status"]
    assert (status["status"], status["ext_status"]) == (10, 0)


@pytest.mark.parametrize("name", ["get_user_status", "nc_get_user_status"])
async def test_user_status_of_the_bot_follows_set_online_status(
    sandbox: SandboxClient, name: str
) -> None:
    await sandbox.ok("set_online_status", status="10", ext_status="1028", battery_status="85")
    assert await sandbox.ok(name, user_id=BOT) == {"status": 10, "ext_status": 1028}


async def test_other_users_are_online(sandbox: SandboxClient) -> None:
    assert await sandbox.ok("get_user_status", user_id=ALICE) == {"status": 10, "ext_status": 0}


async def test_user_status_of_an_unknown_user_is_1200(sandbox: SandboxClient) -> None:
    assert "99999" in await failure(sandbox, "nc_get_user_status", 1200, user_id=99999)


async def test_user_status_needs_a_user_id(sandbox: SandboxClient) -> None:
    assert "user_id" in await failure(sandbox, "get_user_status", 1400)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": 20, "ext_status": 0, "battery_status": 50}, "status"),
        ({"status": 10, "ext_status": 1234, "battery_status": 50}, "ext_status"),
        ({"status": 10, "ext_status": 0, "battery_status": 101}, "battery_status"),
        ({"status": 10, "ext_status": 0}, "battery_status"),
        ({"ext_status": 0, "battery_status": 5}, "status"),
        ({"status": 50, "ext_status": 1028, "battery_status": 5}, "ext_status"),
    ],
)
async def test_set_online_status_rejects_unknown_codes(
    sandbox: SandboxClient, params: dict[str, Any], field: str
) -> None:
    message = await failure(sandbox, "set_online_status", 1400, **params)
    assert field in message
    assert (await sandbox.ok("get_status"))["online_status"]["status"] == 10


async def test_diy_status_shows_in_get_status_and_user_status(sandbox: SandboxClient) -> None:
    data = await sandbox.ok("set_diy_online_status", face_id=358, wording="writing tests")
    assert data == ""
    status = (await sandbox.ok("get_status"))["online_status"]
    assert (status["status"], status["ext_status"]) == (10, 2000)
    assert status["custom"] == {"face_id": 358, "face_type": 1, "wording": "writing tests"}
    assert await sandbox.ok("get_user_status", user_id=BOT) == {"status": 10, "ext_status": 2000}


async def test_diy_status_takes_the_specs_status_text(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_diy_online_status", status="on a break")
    custom = (await sandbox.ok("get_status"))["online_status"]["custom"]
    assert custom["wording"] == "on a break"


async def test_diy_status_needs_a_face_or_a_text(sandbox: SandboxClient) -> None:
    message = await failure(sandbox, "set_diy_online_status", 1400, wording="x")
    assert "face_id" in message and "status" in message


async def test_set_online_status_replaces_a_diy_status(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_diy_online_status", face_id=1, wording="custom")
    await sandbox.ok("set_online_status", status=30, ext_status=0, battery_status=0)
    status = (await sandbox.ok("get_status"))["online_status"]
    assert (status["status"], status["ext_status"], status["custom"]) == (30, 0, None)


# --- signature and avatar -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "field"), [("set_long_nick", "longNick"), ("set_self_longnick", "long_nick")]
)
async def test_long_nick_shows_in_the_bots_profile(
    sandbox: SandboxClient, name: str, field: str
) -> None:
    await sandbox.ok(name, **{field: "a simulated account"})
    profile = await sandbox.ok("get_stranger_info", user_id=BOT)
    assert profile["long_nick"] == "a simulated account"


async def test_long_nick_is_required(sandbox: SandboxClient) -> None:
    assert "longNick" in await failure(sandbox, "set_long_nick", 1400)


async def test_set_qq_avatar_stores_the_image(sandbox: SandboxClient) -> None:
    data = base64.b64encode(PNG).decode()
    assert await sandbox.ok("set_qq_avatar", file=f"base64://{data}") is None
    media_id = hashlib.md5(PNG).hexdigest().upper() + ".png"  # noqa: S324
    stored = await sandbox.ok("get_image", file=media_id, base64=True)
    assert base64.b64decode(stored["base64"]) == PNG


async def test_set_qq_avatar_refuses_what_is_not_an_image(sandbox: SandboxClient) -> None:
    text = base64.b64encode(b"just some text").decode()
    message = await failure(sandbox, "set_qq_avatar", 1400, file=f"base64://{text}")
    assert "file" in message


async def test_set_qq_avatar_needs_a_file(sandbox: SandboxClient) -> None:
    assert "file" in await failure(sandbox, "set_qq_avatar", 1400)


# --- profile likes ------------------------------------------------------------------------------


async def test_profile_like_lists_users_who_liked_the_bot(sandbox: SandboxClient) -> None:
    await sandbox.ok("sandbox_send_like", user_id=ALICE, times=3)
    await sandbox.ok("sandbox_send_like", user_id=40001, nickname="Grace", times=2)
    likes = await sandbox.ok("get_profile_like")
    votes = likes["voteInfo"]
    assert (votes["total_count"], votes["new_count"]) == (5, 5)
    users = {u["uin"]: (u["nick"], u["count"]) for u in votes["userInfos"]}
    assert users == {ALICE: ("Alice", 3), 40001: ("Grace", 2)}
    assert likes["favoriteInfo"]["total_count"] == 0


async def test_profile_like_counts_the_bots_own_likes(sandbox: SandboxClient) -> None:
    await sandbox.ok("send_like", user_id=BOB, times=4)
    favorites = (await sandbox.ok("get_profile_like"))["favoriteInfo"]
    assert (favorites["total_count"], favorites["today_count"]) == (4, 4)
    assert [(u["uin"], u["bTodayVotedCnt"]) for u in favorites["userInfos"]] == [(BOB, 4)]


async def test_profile_like_of_a_user_shows_the_bots_likes(sandbox: SandboxClient) -> None:
    await sandbox.ok("send_like", user_id=BOB, times=2)
    await sandbox.ok("send_like", user_id=ALICE, times=1)
    likes = await sandbox.ok("get_profile_like", user_id=str(BOB))
    assert likes["uid"] == f"u_{BOB}"
    assert likes["voteInfo"]["total_count"] == 2
    assert [u["uin"] for u in likes["voteInfo"]["userInfos"]] == [BOB]


async def test_profile_like_pages_the_user_lists(sandbox: SandboxClient) -> None:
    for user_id in (40001, 40002, 40003):
        await sandbox.ok("sandbox_send_like", user_id=user_id)
    likes = await sandbox.ok("get_profile_like", start=1, count=1)
    assert len(likes["voteInfo"]["userInfos"]) == 1
    assert likes["voteInfo"]["total_count"] == 3


async def test_profile_like_rejects_a_negative_start(sandbox: SandboxClient) -> None:
    assert "start" in await failure(sandbox, "get_profile_like", 1400, start=-1)


# --- recent contacts ----------------------------------------------------------------------------


async def test_recent_contacts_are_chats_with_their_latest_message(sandbox: SandboxClient) -> None:
    await sandbox.ok("send_private_msg", user_id=ALICE, message="first")
    group = await sandbox.ok("send_group_msg", group_id=LAB, message="to the lab")
    latest = await sandbox.ok("send_private_msg", user_id=ALICE, message="second")
    contacts = await sandbox.ok("get_recent_contact")
    assert [(c["peerUin"], c["chatType"]) for c in contacts] == [(str(ALICE), 1), (str(LAB), 2)]
    alice, lab = contacts
    assert alice["msgId"] == str(latest["message_id"]) and alice["remark"] == "alice"
    stored = await sandbox.ok("get_msg", message_id=latest["message_id"])
    assert alice["lastestMsg"] == {k: v for k, v in stored.items() if k != "emoji_likes_list"}
    assert (lab["msgId"], lab["peerName"]) == (str(group["message_id"]), "Gateway Lab")


async def test_recent_contacts_honour_count(sandbox: SandboxClient) -> None:
    await sandbox.ok("send_private_msg", user_id=ALICE, message="a")
    await sandbox.ok("send_private_msg", user_id=BOB, message="b")
    contacts = await sandbox.ok("get_recent_contact", count=1)
    assert [c["peerUin"] for c in contacts] == [str(BOB)]


# --- keys ---------------------------------------------------------------------------------------


async def test_robot_uin_range_is_a_list_of_ranges(sandbox: SandboxClient) -> None:
    ranges = await sandbox.ok("get_robot_uin_range")
    assert {"minUin": "2854196301", "maxUin": "2854216399"} in ranges
    assert all(int(r["minUin"]) <= int(r["maxUin"]) for r in ranges)


async def test_clientkey_is_stable_within_a_login(sandbox: SandboxClient) -> None:
    first = await sandbox.ok("get_clientkey")
    assert len(first["clientkey"]) == 64
    assert await sandbox.ok("get_clientkey") == first


async def test_rkeys_agree_across_the_three_actions(sandbox: SandboxClient) -> None:
    rkeys = {r["type"]: r for r in await sandbox.ok("get_rkey")}
    assert set(rkeys) == {"private", "group"}
    assert rkeys["private"]["rkey"].startswith("&rkey=")
    assert rkeys["private"]["rkey"] != rkeys["group"]["rkey"]
    raw = {r["type"]: r["rkey"] for r in await sandbox.ok("nc_get_rkey")}
    assert raw == {10: rkeys["private"]["rkey"], 20: rkeys["group"]["rkey"]}
    server = await sandbox.ok("get_rkey_server")
    assert (server["private_rkey"], server["group_rkey"]) == (raw[10], raw[20])
    created = rkeys["private"]["created_at"]
    assert server["expired_time"] == created + rkeys["private"]["ttl"]


async def test_rkeys_and_clientkey_survive_a_restart(tmp_path: Path) -> None:
    document = sandbox_document(str(tmp_path / "sandbox.db"))
    async with sandbox_client(document) as sandbox:
        rkeys, key = await sandbox.ok("get_rkey"), await sandbox.ok("get_clientkey")
    async with sandbox_client(document) as sandbox:
        assert await sandbox.ok("get_rkey") == rkeys
        assert await sandbox.ok("get_clientkey") == key
