"""Sandbox friends and users through the real HTTP and WebSocket adapters: profiles, friend
lists, remarks, deletion, likes and pokes."""

from __future__ import annotations

from typing import Any

from tests.sandbox_client import SandboxClient

BOT, ALICE, BOB, CAROL, DAVE, EVE = 10001, 20001, 20002, 20003, 20004, 20005
LAB = 30001


async def failure(sandbox: SandboxClient, action: str, retcode: int, **params: Any) -> str:
    """The message of a call that must fail with `retcode`."""
    body = await sandbox.call(action, **params)
    assert body["retcode"] == retcode, body
    message: str = body["message"]
    return message


async def friends(sandbox: SandboxClient) -> dict[int, dict[str, Any]]:
    return {f["user_id"]: f for f in await sandbox.ok("get_friend_list")}


# --- profiles and lists -------------------------------------------------------------------------


async def test_stranger_info_has_napcats_fields(sandbox: SandboxClient) -> None:
    info = await sandbox.ok("get_stranger_info", user_id=ALICE)
    assert (info["nickname"], info["remark"], info["uid"]) == ("Alice", "alice", f"u_{ALICE}")
    assert {"qqLevel", "long_nick", "reg_time", "is_vip", "status", "login_days"} <= set(info)


async def test_stranger_info_of_the_bot(sandbox: SandboxClient) -> None:
    info = await sandbox.ok("get_stranger_info", user_id=BOT)
    assert (info["user_id"], info["nickname"]) == (BOT, "Sandbox Bot")


async def test_stranger_info_of_an_unknown_user_is_1200(sandbox: SandboxClient) -> None:
    message = await failure(sandbox, "get_stranger_info", 1200, user_id=99999)
    assert "user 99999 does not exist" in message


async def test_friend_list_has_remarks_and_categories(sandbox: SandboxClient) -> None:
    listed = await friends(sandbox)
    assert sorted(listed) == [ALICE, BOB, CAROL]
    assert (listed[ALICE]["remark"], listed[ALICE]["categoryName"]) == ("alice", "Friends")
    assert (listed[CAROL]["categoryName"], listed[CAROL]["categoryId"]) == ("Work", 1)
    assert listed[ALICE]["category_id"] == listed[ALICE]["categoryId"] == 0


async def test_friends_with_category_groups_the_friends(sandbox: SandboxClient) -> None:
    categories = await sandbox.ok("get_friends_with_category")
    summary = [
        (
            c["categoryId"],
            c["categoryName"],
            c["categoryMbCount"],
            [f["user_id"] for f in c["buddyList"]],
        )
        for c in categories
    ]
    assert summary == [(0, "Friends", 2, [ALICE, BOB]), (1, "Work", 1, [CAROL])]


async def test_unidirectional_friends_and_online_clients_are_empty(sandbox: SandboxClient) -> None:
    assert await sandbox.ok("get_unidirectional_friend_list") == []
    assert await sandbox.ok("get_online_clients", no_cache=True) == []


# --- remarks and deletion -----------------------------------------------------------------------


async def test_set_friend_remark_shows_everywhere(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_friend_remark", user_id=BOB, remark="bobby")
    assert (await friends(sandbox))[BOB]["remark"] == "bobby"
    assert (await sandbox.ok("get_stranger_info", user_id=BOB))["remark"] == "bobby"


async def test_remark_for_a_non_friend_is_1200(sandbox: SandboxClient) -> None:
    message = await failure(sandbox, "set_friend_remark", 1200, user_id=DAVE, remark="d")
    assert message == f"user {DAVE} is not a friend of the bot"
    assert (await sandbox.ok("get_stranger_info", user_id=DAVE))["remark"] == ""


async def test_delete_friend_makes_them_a_stranger(sandbox: SandboxClient) -> None:
    assert await sandbox.ok("delete_friend", user_id=ALICE) == {"result": 0, "errMsg": ""}
    assert ALICE not in await friends(sandbox)
    assert (await sandbox.ok("get_stranger_info", user_id=ALICE))["remark"] == ""
    sent = await sandbox.call("send_private_msg", user_id=ALICE, message="still there?")
    assert sent["retcode"] == 1200


async def test_delete_friend_accepts_friend_id(sandbox: SandboxClient) -> None:
    await sandbox.ok("delete_friend", friend_id=str(BOB))
    assert BOB not in await friends(sandbox)


async def test_delete_friend_without_an_id_is_1400(sandbox: SandboxClient) -> None:
    message = await failure(sandbox, "delete_friend", 1400)
    assert "user_id or friend_id" in message
    assert len(await friends(sandbox)) == 3


async def test_deleting_a_non_friend_is_1200(sandbox: SandboxClient) -> None:
    message = await failure(sandbox, "delete_friend", 1200, user_id=DAVE)
    assert "not a friend" in message


async def test_delete_friend_with_temp_block_refuses_requests(sandbox: SandboxClient) -> None:
    await sandbox.ok("delete_friend", user_id=CAROL, temp_block=True)
    message = await failure(sandbox, "sandbox_friend_request", 1200, user_id=CAROL, comment="hi")
    assert "blocked" in message


# --- likes --------------------------------------------------------------------------------------


async def test_send_like_is_limited_to_twenty_a_day(sandbox: SandboxClient) -> None:
    await sandbox.ok("send_like", user_id=ALICE, times=15)
    await sandbox.ok("send_like", user_id=ALICE, times=5)
    message = await failure(sandbox, "send_like", 1200, user_id=ALICE)
    assert "limited to 20 a day; 20 already given today" in message


async def test_send_like_limits_each_user_separately(sandbox: SandboxClient) -> None:
    await sandbox.ok("send_like", user_id=ALICE, times=20)
    await sandbox.ok("send_like", user_id=BOB, times=20)


async def test_send_like_times_outside_one_to_twenty_is_1400(sandbox: SandboxClient) -> None:
    assert "times" in await failure(sandbox, "send_like", 1400, user_id=ALICE, times=0)
    assert "times" in await failure(sandbox, "send_like", 1400, user_id=ALICE, times=21)
    await sandbox.ok("send_like", user_id=ALICE, times=20)


async def test_send_like_to_an_unknown_user_is_1200(sandbox: SandboxClient) -> None:
    message = await failure(sandbox, "send_like", 1200, user_id=99999)
    assert "does not exist" in message


async def test_sandbox_send_like_emits_profile_like(sandbox: SandboxClient) -> None:
    await sandbox.ok("sandbox_send_like", user_id=40001, nickname="Grace", times=3)
    notice = await sandbox.notice("notify")
    assert (
        notice["sub_type"],
        notice["operator_id"],
        notice["operator_nick"],
        notice["times"],
    ) == (
        "profile_like",
        40001,
        "Grace",
        3,
    )
    assert (await sandbox.ok("get_stranger_info", user_id=40001))["nickname"] == "Grace"


async def test_sandbox_send_like_is_limited_per_day(sandbox: SandboxClient) -> None:
    await sandbox.ok("sandbox_send_like", user_id=BOB, times=15)
    message = await failure(sandbox, "sandbox_send_like", 1200, user_id=BOB, times=10)
    assert "15 already given today" in message


# --- pokes --------------------------------------------------------------------------------------


async def test_friend_poke_has_sender_and_target(sandbox: SandboxClient) -> None:
    await sandbox.ok("sandbox_poke", user_id=ALICE)
    notice = await sandbox.notice("notify")
    assert notice["sub_type"] == "poke" and "group_id" not in notice
    assert (notice["user_id"], notice["sender_id"], notice["target_id"]) == (ALICE, ALICE, BOT)
    assert isinstance(notice["raw_info"], list)


async def test_group_poke_between_members(sandbox: SandboxClient) -> None:
    await sandbox.ok("sandbox_poke", user_id=CAROL, group_id=LAB, target_id=DAVE)
    notice = await sandbox.notice("notify")
    assert (notice["sub_type"], notice["group_id"], notice["user_id"], notice["target_id"]) == (
        "poke",
        LAB,
        CAROL,
        DAVE,
    )


async def test_poke_by_a_non_member_is_1200(sandbox: SandboxClient) -> None:
    message = await failure(sandbox, "sandbox_poke", 1200, user_id=EVE, group_id=LAB)
    assert f"user {EVE} is not a member of group {LAB}" in message


async def test_private_poke_by_a_non_friend_is_1200(sandbox: SandboxClient) -> None:
    message = await failure(sandbox, "sandbox_poke", 1200, user_id=DAVE)
    assert "not a friend" in message


async def test_private_poke_of_a_third_user_is_1200(sandbox: SandboxClient) -> None:
    message = await failure(sandbox, "sandbox_poke", 1200, user_id=ALICE, target_id=BOB)
    assert "the bot or themselves" in message
