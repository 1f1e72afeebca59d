"""Sandbox groups through the real HTTP and WebSocket adapters: reading, managing, permissions."""

from __future__ import annotations

import time
from typing import Any

from tests.sandbox_client import SandboxClient

BOT, ALICE, BOB, CAROL, DAVE, EVE = 10001, 20001, 20002, 20003, 20004, 20005
LAB, PLAYGROUND, NEW = 30001, 30002, 30900


def is_notice(event: dict[str, Any]) -> bool:
    return event.get("post_type") == "notice"


async def member_info(sandbox: SandboxClient, group_id: int, user_id: int) -> dict[str, Any]:
    data: dict[str, Any] = await sandbox.ok(
        "get_group_member_info", group_id=group_id, user_id=user_id
    )
    return data


async def member_ids(sandbox: SandboxClient, group_id: int) -> set[int]:
    members = await sandbox.ok("get_group_member_list", group_id=group_id)
    return {m["user_id"] for m in members}


async def failure(sandbox: SandboxClient, action: str, retcode: int, **params: Any) -> str:
    """The message of a call that must fail with `retcode`."""
    body = await sandbox.call(action, **params)
    assert body["retcode"] == retcode, body
    message: str = body["message"]
    return message


async def join_as_member(sandbox: SandboxClient) -> None:
    """Make the bot a plain member of NEW, owned by Alice (through an accepted invitation)."""
    flag = (
        await sandbox.ok("sandbox_group_request", group_id=NEW, user_id=ALICE, sub_type="invite")
    )["flag"]
    await sandbox.ok("set_group_add_request", flag=flag, approve=True)
    await sandbox.ok("sandbox_join_group", group_id=NEW, user_id=CAROL)


# --- reading ------------------------------------------------------------------------------------


async def test_group_list_has_the_bots_groups_with_counts(sandbox: SandboxClient) -> None:
    groups = await sandbox.ok("get_group_list")
    assert [(g["group_id"], g["group_name"], g["member_count"]) for g in groups] == [
        (LAB, "Gateway Lab", 5),
        (PLAYGROUND, "Bot Playground", 3),
    ]
    assert set(groups[0]) == {
        "group_id",
        "group_name",
        "group_remark",
        "group_all_shut",
        "member_count",
        "max_member_count",
    }


async def test_unknown_group_is_1200(sandbox: SandboxClient) -> None:
    message = await failure(sandbox, "get_group_info", 1200, group_id=39999)
    assert "group 39999 does not exist" in message


async def test_member_list_has_roles_and_cards(sandbox: SandboxClient) -> None:
    members = await sandbox.ok("get_group_member_list", group_id=LAB)
    roles = {m["user_id"]: (m["role"], m["card"]) for m in members}
    assert roles[ALICE] == ("owner", "")
    assert roles[BOB] == ("admin", "bob (admin)")
    assert roles[DAVE] == ("member", "")


async def test_member_info_of_a_non_member_is_1200(sandbox: SandboxClient) -> None:
    message = await failure(sandbox, "get_group_member_info", 1200, group_id=LAB, user_id=EVE)
    assert f"user {EVE} is not a member of group {LAB}" in message


async def test_card_changeable_follows_the_bots_rank(sandbox: SandboxClient) -> None:
    members = await sandbox.ok("get_group_member_list", group_id=LAB)
    changeable = {m["user_id"]: m["card_changeable"] for m in members}
    assert changeable == {ALICE: False, BOT: True, BOB: False, CAROL: True, DAVE: True}


async def test_honor_talkative_is_todays_most_active_sender(sandbox: SandboxClient) -> None:
    for user_id in (CAROL, DAVE, CAROL):
        await sandbox.ok(
            "sandbox_receive_message",
            message_type="group",
            group_id=LAB,
            user_id=user_id,
            message="hi",
        )
    honors = await sandbox.ok("get_group_honor_info", group_id=LAB, type="talkative")
    assert honors["current_talkative"]["user_id"] == CAROL
    assert honors["current_talkative"]["nickname"] == "Carol"
    assert [t["user_id"] for t in honors["talkative_list"]] == [CAROL, DAVE]


async def test_honor_info_always_has_every_list(sandbox: SandboxClient) -> None:
    honors = await sandbox.ok("get_group_honor_info", group_id=PLAYGROUND)
    assert honors == {
        "group_id": PLAYGROUND,
        "current_talkative": {},
        "talkative_list": [],
        "performer_list": [],
        "legend_list": [],
        "emotion_list": [],
        "strong_newbie_list": [],
    }


async def test_honor_of_another_type_leaves_talkative_empty(sandbox: SandboxClient) -> None:
    await sandbox.ok("send_group_msg", group_id=LAB, message="hello")
    honors = await sandbox.ok("get_group_honor_info", group_id=LAB, type="performer")
    assert honors["current_talkative"] == {} and honors["talkative_list"] == []


async def test_honor_type_outside_the_list_is_1400(sandbox: SandboxClient) -> None:
    message = await failure(sandbox, "get_group_honor_info", 1400, group_id=LAB, type="best")
    assert "type" in message


async def test_at_all_remain_counts_todays_at_all(sandbox: SandboxClient) -> None:
    await sandbox.ok("send_group_msg", group_id=LAB, message="[CQ:at,qq=all] meeting")
    remain = await sandbox.ok("get_group_at_all_remain", group_id=LAB)
    assert remain == {
        "can_at_all": True,
        "remain_at_all_count_for_group": 9,
        "remain_at_all_count_for_uin": 9,
    }


async def test_a_member_bot_cannot_at_all(sandbox: SandboxClient) -> None:
    await join_as_member(sandbox)
    assert (await sandbox.ok("get_group_at_all_remain", group_id=NEW))["can_at_all"] is False


async def test_shut_list_lists_muted_members(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_ban", group_id=LAB, user_id=CAROL, duration=600)
    muted = await sandbox.ok("get_group_shut_list", group_id=LAB)
    assert [(m["user_id"], m["nickname"]) for m in muted] == [(CAROL, "Carol")]
    assert muted[0]["shut_up_time"] > time.time()


# --- kick ---------------------------------------------------------------------------------------


async def test_kick_removes_the_member_and_emits_group_decrease(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_kick", group_id=LAB, user_id=DAVE)
    notice = await sandbox.notice("group_decrease")
    assert (notice["sub_type"], notice["group_id"], notice["user_id"], notice["operator_id"]) == (
        "kick",
        LAB,
        DAVE,
        BOT,
    )
    assert DAVE not in await member_ids(sandbox, LAB)


async def test_kick_with_reject_add_request_blocks_rejoining(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_kick", group_id=LAB, user_id=DAVE, reject_add_request=True)
    message = await failure(sandbox, "sandbox_join_group", 1200, group_id=LAB, user_id=DAVE)
    assert "refuses" in message


async def test_kicked_without_reject_may_rejoin(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_kick", group_id=LAB, user_id=DAVE)
    await sandbox.ok("sandbox_join_group", group_id=LAB, user_id=DAVE)
    assert DAVE in await member_ids(sandbox, LAB)


async def test_admin_bot_cannot_kick_another_admin(sandbox: SandboxClient) -> None:
    message = await failure(sandbox, "set_group_kick", 1200, group_id=LAB, user_id=BOB)
    assert message == f"the bot (admin) cannot kick user {BOB}, who is an admin of group {LAB}"
    assert BOB in await member_ids(sandbox, LAB)


async def test_admin_bot_cannot_kick_the_owner(sandbox: SandboxClient) -> None:
    message = await failure(sandbox, "set_group_kick", 1200, group_id=LAB, user_id=ALICE)
    assert "the owner" in message
    assert ALICE in await member_ids(sandbox, LAB)


async def test_bot_cannot_kick_itself(sandbox: SandboxClient) -> None:
    message = await failure(sandbox, "set_group_kick", 1200, group_id=LAB, user_id=BOT)
    assert "itself" in message


async def test_member_bot_cannot_kick(sandbox: SandboxClient) -> None:
    await join_as_member(sandbox)
    message = await failure(sandbox, "set_group_kick", 1200, group_id=NEW, user_id=CAROL)
    assert "only an admin or the owner may kick" in message
    assert CAROL in await member_ids(sandbox, NEW)


async def test_kick_in_a_group_without_the_bot_is_1200(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_leave", group_id=LAB)
    message = await failure(sandbox, "set_group_kick", 1200, group_id=LAB, user_id=DAVE)
    assert message == f"the bot is not in group {LAB}"


# --- mute ---------------------------------------------------------------------------------------


async def test_ban_mutes_and_emits_group_ban(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_ban", group_id=LAB, user_id=CAROL, duration=600)
    notice = await sandbox.notice("group_ban")
    assert (notice["sub_type"], notice["user_id"], notice["operator_id"], notice["duration"]) == (
        "ban",
        CAROL,
        BOT,
        600,
    )
    assert (await member_info(sandbox, LAB, CAROL))["shut_up_timestamp"] > time.time()


async def test_ban_without_duration_lifts_as_napcat_does(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_ban", group_id=LAB, user_id=CAROL, duration=600)
    await sandbox.ok("set_group_ban", group_id=LAB, user_id=CAROL)
    await sandbox.notice("group_ban")
    lifted = await sandbox.notice("group_ban")
    assert (lifted["sub_type"], lifted["duration"]) == ("lift_ban", 0)
    assert (await member_info(sandbox, LAB, CAROL))["shut_up_timestamp"] == 0


async def test_lifting_an_unmuted_member_emits_nothing(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_ban", group_id=LAB, user_id=CAROL, duration=0)
    await sandbox.ok("set_group_card", group_id=LAB, user_id=CAROL, card="c")
    assert (await sandbox.event(is_notice))["notice_type"] == "group_card"


async def test_ban_over_thirty_days_is_1400(sandbox: SandboxClient) -> None:
    message = await failure(
        sandbox, "set_group_ban", 1400, group_id=LAB, user_id=CAROL, duration=31 * 86400
    )
    assert "duration" in message
    assert (await member_info(sandbox, LAB, CAROL))["shut_up_timestamp"] == 0


async def test_admin_bot_cannot_mute_an_admin(sandbox: SandboxClient) -> None:
    message = await failure(sandbox, "set_group_ban", 1200, group_id=LAB, user_id=BOB, duration=60)
    assert "cannot mute" in message
    assert (await member_info(sandbox, LAB, BOB))["shut_up_timestamp"] == 0


async def test_whole_ban_reports_user_zero_and_duration_minus_one(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_whole_ban", group_id=LAB)
    notice = await sandbox.notice("group_ban")
    assert (notice["sub_type"], notice["user_id"], notice["duration"]) == ("ban", 0, -1)
    assert (await sandbox.ok("get_group_info", group_id=LAB))["group_all_shut"] == -1


async def test_whole_ban_lift_reports_duration_zero(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_whole_ban", group_id=LAB, enable=True)
    await sandbox.ok("set_group_whole_ban", group_id=LAB, enable="false")
    await sandbox.notice("group_ban")
    lifted = await sandbox.notice("group_ban")
    assert (lifted["sub_type"], lifted["user_id"], lifted["duration"]) == ("lift_ban", 0, 0)
    assert (await sandbox.ok("get_group_info", group_id=LAB))["group_all_shut"] == 0


async def test_whole_ban_silences_members_but_not_admins(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_whole_ban", group_id=LAB)
    said = {"message_type": "group", "group_id": LAB, "message": "hi"}
    message = await failure(sandbox, "sandbox_receive_message", 1200, user_id=CAROL, **said)
    assert "whole ban" in message
    await sandbox.ok("sandbox_receive_message", user_id=BOB, **said)  # an admin still speaks
    history = await sandbox.ok("get_group_msg_history", group_id=LAB)
    assert [m["sender"]["user_id"] for m in history["messages"]][-1:] == [BOB]
    assert CAROL not in {m["sender"]["user_id"] for m in history["messages"]}
    await sandbox.ok("set_group_whole_ban", group_id=LAB, enable=False)
    await sandbox.ok("sandbox_receive_message", user_id=CAROL, **said)


async def test_member_bot_cannot_whole_ban(sandbox: SandboxClient) -> None:
    await join_as_member(sandbox)
    await failure(sandbox, "set_group_whole_ban", 1200, group_id=NEW)
    assert (await sandbox.ok("get_group_info", group_id=NEW))["group_all_shut"] == 0


# --- admins, cards, names, titles ---------------------------------------------------------------


async def test_owner_bot_appoints_an_admin(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_admin", group_id=PLAYGROUND, user_id=EVE)
    notice = await sandbox.notice("group_admin")
    assert (notice["sub_type"], notice["group_id"], notice["user_id"]) == ("set", PLAYGROUND, EVE)
    assert (await member_info(sandbox, PLAYGROUND, EVE))["role"] == "admin"


async def test_owner_bot_dismisses_an_admin(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_admin", group_id=PLAYGROUND, user_id=EVE)
    await sandbox.ok("set_group_admin", group_id=PLAYGROUND, user_id=EVE, enable=False)
    await sandbox.notice("group_admin")
    assert (await sandbox.notice("group_admin"))["sub_type"] == "unset"
    assert (await member_info(sandbox, PLAYGROUND, EVE))["role"] == "member"


async def test_admin_bot_cannot_appoint_admins(sandbox: SandboxClient) -> None:
    message = await failure(sandbox, "set_group_admin", 1200, group_id=LAB, user_id=CAROL)
    assert (
        message
        == f"only the owner may appoint or dismiss admins in group {LAB}; the bot is an admin"
    )
    assert (await member_info(sandbox, LAB, CAROL))["role"] == "member"


async def test_set_group_card_emits_old_and_new(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_card", group_id=LAB, user_id=CAROL, card="Carol (QA)")
    notice = await sandbox.notice("group_card")
    assert (notice["user_id"], notice["card_new"], notice["card_old"]) == (CAROL, "Carol (QA)", "")
    assert (await member_info(sandbox, LAB, CAROL))["card"] == "Carol (QA)"


async def test_bot_sets_its_own_card(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_card", group_id=LAB, user_id=BOT, card="helper bot")
    assert (await member_info(sandbox, LAB, BOT))["card"] == "helper bot"


async def test_admin_bot_cannot_change_an_admins_card(sandbox: SandboxClient) -> None:
    message = await failure(sandbox, "set_group_card", 1200, group_id=LAB, user_id=BOB, card="x")
    assert "cannot change the card of" in message
    assert (await member_info(sandbox, LAB, BOB))["card"] == "bob (admin)"


async def test_set_group_name_renames_and_notifies(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_name", group_id=LAB, group_name="Gateway Lab 2")
    notice = await sandbox.notice("notify")
    assert (notice["sub_type"], notice["user_id"], notice["name_new"]) == (
        "group_name",
        BOT,
        "Gateway Lab 2",
    )
    assert (await sandbox.ok("get_group_info", group_id=LAB))["group_name"] == "Gateway Lab 2"


async def test_empty_group_name_is_1400(sandbox: SandboxClient) -> None:
    await failure(sandbox, "set_group_name", 1400, group_id=LAB, group_name="")
    assert (await sandbox.ok("get_group_info", group_id=LAB))["group_name"] == "Gateway Lab"


async def test_owner_bot_gives_a_special_title(sandbox: SandboxClient) -> None:
    await sandbox.ok(
        "set_group_special_title", group_id=PLAYGROUND, user_id=EVE, special_title="QA"
    )
    notice = await sandbox.notice("notify")
    assert (notice["sub_type"], notice["user_id"], notice["title"]) == ("title", EVE, "QA")
    info = await member_info(sandbox, PLAYGROUND, EVE)
    assert (info["title"], info["title_expire_time"]) == ("QA", 0)


async def test_special_title_with_duration_expires(sandbox: SandboxClient) -> None:
    await sandbox.ok(
        "set_special_title", group_id=PLAYGROUND, user_id=EVE, special_title="Temp", duration=3600
    )
    info = await member_info(sandbox, PLAYGROUND, EVE)
    assert info["title"] == "Temp" and info["title_expire_time"] > time.time()


async def test_admin_bot_cannot_give_titles(sandbox: SandboxClient) -> None:
    message = await failure(
        sandbox, "set_group_special_title", 1200, group_id=LAB, user_id=CAROL, special_title="x"
    )
    assert "only the owner may give special titles" in message
    assert (await member_info(sandbox, LAB, CAROL))["title"] == ""


# --- leaving ------------------------------------------------------------------------------------


async def test_bot_leaves_a_group(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_leave", group_id=LAB)
    notice = await sandbox.notice("group_decrease")
    assert (notice["sub_type"], notice["user_id"], notice["operator_id"]) == ("leave", BOT, BOT)
    assert [g["group_id"] for g in await sandbox.ok("get_group_list")] == [PLAYGROUND]


async def test_owner_bot_cannot_leave_without_dismissing(sandbox: SandboxClient) -> None:
    message = await failure(sandbox, "set_group_leave", 1200, group_id=PLAYGROUND)
    assert "is_dismiss" in message
    assert BOT in await member_ids(sandbox, PLAYGROUND)


async def test_owner_bot_dismisses_the_group(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_leave", group_id=PLAYGROUND, is_dismiss=True)
    assert (await sandbox.notice("group_decrease"))["sub_type"] == "disband"
    message = await failure(sandbox, "get_group_info", 1200, group_id=PLAYGROUND)
    assert "does not exist" in message


# --- simulated members --------------------------------------------------------------------------


async def test_sandbox_join_group_creates_the_user(sandbox: SandboxClient) -> None:
    await sandbox.ok("sandbox_join_group", group_id=LAB, user_id=40001, nickname="Frank")
    notice = await sandbox.notice("group_increase")
    assert (notice["sub_type"], notice["user_id"], notice["operator_id"]) == ("approve", 40001, 0)
    assert (await member_info(sandbox, LAB, 40001))["nickname"] == "Frank"


async def test_joining_twice_is_1200(sandbox: SandboxClient) -> None:
    message = await failure(sandbox, "sandbox_join_group", 1200, group_id=LAB, user_id=CAROL)
    assert "already a member" in message


async def test_sandbox_leave_group_emits_leave(sandbox: SandboxClient) -> None:
    await sandbox.ok("sandbox_leave_group", group_id=LAB, user_id=CAROL)
    notice = await sandbox.notice("group_decrease")
    assert (notice["sub_type"], notice["user_id"], notice["operator_id"]) == ("leave", CAROL, CAROL)
    assert CAROL not in await member_ids(sandbox, LAB)


async def test_owner_cannot_leave_their_group(sandbox: SandboxClient) -> None:
    message = await failure(sandbox, "sandbox_leave_group", 1200, group_id=LAB, user_id=ALICE)
    assert "owns" in message
    assert ALICE in await member_ids(sandbox, LAB)


async def test_sandbox_set_card_emits_group_card(sandbox: SandboxClient) -> None:
    await sandbox.ok("sandbox_set_card", group_id=LAB, user_id=BOB, card="Bob")
    notice = await sandbox.notice("group_card")
    assert (notice["card_new"], notice["card_old"]) == ("Bob", "bob (admin)")
    assert (await member_info(sandbox, LAB, BOB))["card"] == "Bob"


PNG = "base64://iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


async def test_set_group_portrait_answers_like_napcat(sandbox: SandboxClient) -> None:
    assert await sandbox.ok("set_group_portrait", group_id=LAB, file=PNG) == {
        "result": 0,
        "errMsg": "",
    }


async def test_set_group_portrait_needs_an_image_in_a_group_of_the_bot(
    sandbox: SandboxClient,
) -> None:
    message = await failure(sandbox, "set_group_portrait", 1400, group_id=LAB, file="base64://aGk=")
    assert "not a PNG" in message
    await failure(sandbox, "set_group_portrait", 1200, group_id=39999, file=PNG)
