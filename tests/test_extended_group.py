"""NapCat's extended group actions on the sandbox, through the real HTTP adapter: group options,
pending join requests, batch kicks, titles that expire, sign-ins, typing status, pokes and
doubtful friend requests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.sandbox_client import SandboxClient

BOT, ALICE, BOB, CAROL, DAVE, EVE = 10001, 20001, 20002, 20003, 20004, 20005
LAB, PLAYGROUND, NEW = 30001, 30002, 30900


async def failure(sandbox: SandboxClient, action: str, retcode: int, **params: Any) -> str:
    """The message of a call that must fail with `retcode`."""
    body = await sandbox.call(action, **params)
    assert body["retcode"] == retcode, body
    message: str = body["message"]
    return message


async def info_ex(sandbox: SandboxClient, group_id: int) -> dict[str, Any]:
    data: dict[str, Any] = await sandbox.ok("get_group_info_ex", group_id=group_id)
    return data


async def join_as_member(sandbox: SandboxClient) -> None:
    """Make the bot a plain member of NEW, owned by Alice (through an accepted invitation)."""
    flag = (
        await sandbox.ok("sandbox_group_request", group_id=NEW, user_id=ALICE, sub_type="invite")
    )["flag"]
    await sandbox.ok("set_group_add_request", flag=flag, approve=True)


# --- information and options --------------------------------------------------------------------


async def test_group_info_ex_has_roles_and_default_options(sandbox: SandboxClient) -> None:
    info = await info_ex(sandbox, LAB)
    assert (info["group_id"], info["groupCode"], info["group_name"]) == (
        LAB,
        "30001",
        "Gateway Lab",
    )
    assert (info["owner_id"], info["admin_ids"], info["member_count"]) == (ALICE, [BOT, BOB], 5)
    assert info["add_option"]["add_type"] == 1 and info["search"]["enable"] is True


async def test_group_detail_info_is_the_group_object(sandbox: SandboxClient) -> None:
    detail = await sandbox.ok("get_group_detail_info", group_id=PLAYGROUND)
    assert detail == await sandbox.ok("get_group_info", group_id=PLAYGROUND)


async def test_set_group_remark_shows_in_group_info(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_remark", group_id=LAB, remark="work")
    assert (await sandbox.ok("get_group_info", group_id=LAB))["group_remark"] == "work"
    assert (await sandbox.ok("get_group_detail_info", group_id=LAB))["group_remark"] == "work"


async def test_set_group_remark_needs_a_remark(sandbox: SandboxClient) -> None:
    assert "remark" in await failure(sandbox, "set_group_remark", 1400, group_id=LAB)


async def test_add_option_in_napcats_spelling(sandbox: SandboxClient) -> None:
    await sandbox.ok(
        "set_group_add_option", group_id=LAB, add_type=2, group_question="q?", group_answer="a"
    )
    option = (await info_ex(sandbox, LAB))["add_option"]
    assert option == {"add_type": 2, "group_question": "q?", "group_answer": "a"}


async def test_add_option_in_the_specs_spelling(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_add_option", group_id=PLAYGROUND, option="0")
    assert (await info_ex(sandbox, PLAYGROUND))["add_option"]["add_type"] == 0


async def test_add_option_outside_the_list_is_1400(sandbox: SandboxClient) -> None:
    message = await failure(sandbox, "set_group_add_option", 1400, group_id=LAB, option=5)
    assert "parameter 'option'" in message
    message = await failure(sandbox, "set_group_add_option", 1400, group_id=LAB, add_type=-1)
    assert "parameter 'add_type'" in message
    assert "add_type" in await failure(sandbox, "set_group_add_option", 1400, group_id=LAB)


async def test_options_need_an_admin(sandbox: SandboxClient) -> None:
    await join_as_member(sandbox)
    message = await failure(sandbox, "set_group_add_option", 1200, group_id=NEW, add_type=0)
    assert "admin" in message
    assert (await info_ex(sandbox, NEW))["add_option"]["add_type"] == 1


async def test_group_search_in_the_specs_spelling(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_search", group_id=LAB, enable=False)
    assert (await info_ex(sandbox, LAB))["search"]["enable"] is False


async def test_group_search_keeps_napcats_switches(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_search", group_id=LAB, no_finger_open=1)
    await sandbox.ok("set_group_search", group_id=LAB, no_code_finger_open=1)
    search = (await info_ex(sandbox, LAB))["search"]
    assert search == {"enable": True, "no_code_finger_open": 1, "no_finger_open": 1}


async def test_group_search_needs_a_switch(sandbox: SandboxClient) -> None:
    assert "enable" in await failure(sandbox, "set_group_search", 1400, group_id=LAB)


async def test_robot_add_option_is_stored(sandbox: SandboxClient) -> None:
    await sandbox.ok(
        "set_group_robot_add_option", group_id=LAB, robot_member_switch=1, robot_member_examine=1
    )
    option = (await info_ex(sandbox, LAB))["robot_add_option"]
    assert option == {"robot_member_switch": 1, "robot_member_examine": 1}


async def test_member_invite_policy_is_stored(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_member_invite_policy", group_id=LAB, policy="disabled")
    assert (await info_ex(sandbox, LAB))["member_invite_policy"] == "disabled"


async def test_unknown_invite_policy_is_1400(sandbox: SandboxClient) -> None:
    message = await failure(
        sandbox, "set_group_member_invite_policy", 1400, group_id=LAB, policy="sometimes"
    )
    assert "policy" in message


async def test_member_permissions_change_only_the_given_ones(sandbox: SandboxClient) -> None:
    await sandbox.ok(
        "set_group_member_permissions", group_id=LAB, allow_member_temporary_session=False
    )
    permissions = (await info_ex(sandbox, LAB))["member_permissions"]
    assert permissions == {
        "allow_member_upload_album": True,
        "allow_member_temporary_session": False,
        "allow_member_create_group": True,
    }


async def test_new_member_history_visibility_is_stored(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_new_member_history_visibility", group_id=LAB, visible=True)
    assert (await info_ex(sandbox, LAB))["new_member_history_visible"] is True


async def test_new_member_history_visibility_needs_visible(sandbox: SandboxClient) -> None:
    message = await failure(sandbox, "set_group_new_member_history_visibility", 1400, group_id=LAB)
    assert "visible" in message


# --- join requests ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["get_group_add_request", "get_group_ignore_add_request"])
async def test_pending_join_requests_are_listed_until_answered(
    sandbox: SandboxClient, name: str
) -> None:
    flag = (await sandbox.ok("sandbox_group_request", group_id=LAB, user_id=40001, comment="hi"))[
        "flag"
    ]
    pending = await sandbox.ok(name, group_id=LAB)
    assert [(r["request_id"], r["invitor_uin"], r["message"]) for r in pending] == [
        (int(flag), 40001, "hi")
    ]
    assert await sandbox.ok(name, group_id=PLAYGROUND) == []
    await sandbox.ok("set_group_add_request", flag=flag, approve=False)
    assert await sandbox.ok(name) == []


async def test_ignored_notifies_list_pending_invitations(sandbox: SandboxClient) -> None:
    await sandbox.ok("sandbox_group_request", group_id=NEW, user_id=ALICE, sub_type="invite")
    notifies = await sandbox.ok("get_group_ignored_notifies")
    assert [r["group_id"] for r in notifies["invited_requests"]] == [NEW]
    assert notifies["InvitedRequest"] == notifies["invited_requests"]
    assert notifies["join_requests"] == []


# --- members ------------------------------------------------------------------------------------


async def test_kick_members_emits_one_decrease_each(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_kick_members", group_id=LAB, user_id=[str(CAROL), DAVE])
    kicked = [await sandbox.notice("group_decrease") for _ in range(2)]
    assert [(e["user_id"], e["sub_type"], e["operator_id"]) for e in kicked] == [
        (CAROL, "kick", BOT),
        (DAVE, "kick", BOT),
    ]
    members = {m["user_id"] for m in await sandbox.ok("get_group_member_list", group_id=LAB)}
    assert members == {ALICE, BOT, BOB}


async def test_kick_members_with_reject_blocks_rejoining(sandbox: SandboxClient) -> None:
    await sandbox.ok(
        "set_group_kick_members", group_id=PLAYGROUND, user_ids=[EVE], reject_add_request=True
    )
    message = await failure(sandbox, "sandbox_join_group", 1200, group_id=PLAYGROUND, user_id=EVE)
    assert "refuses" in message


async def test_kick_members_without_reject_allows_rejoining(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_kick_members", group_id=PLAYGROUND, user_ids=EVE)
    await sandbox.ok("sandbox_join_group", group_id=PLAYGROUND, user_id=EVE)


async def test_kick_members_is_all_or_nothing(sandbox: SandboxClient) -> None:
    message = await failure(
        sandbox, "set_group_kick_members", 1200, group_id=LAB, user_ids=[CAROL, BOB]
    )
    assert str(BOB) in message
    members = {m["user_id"] for m in await sandbox.ok("get_group_member_list", group_id=LAB)}
    assert CAROL in members


async def test_kick_members_needs_user_ids(sandbox: SandboxClient) -> None:
    assert "user_id" in await failure(sandbox, "set_group_kick_members", 1400, group_id=LAB)
    message = await failure(sandbox, "set_group_kick_members", 1400, group_id=LAB, user_id=[])
    assert "user_id" in message


@pytest.mark.parametrize("name", ["set_special_title", "set_group_special_title"])
async def test_special_title_shows_until_it_expires(sandbox: SandboxClient, name: str) -> None:
    await sandbox.ok(name, group_id=PLAYGROUND, user_id=EVE, special_title="Temp", duration=3600)
    info = await sandbox.ok("get_group_member_info", group_id=PLAYGROUND, user_id=EVE)
    assert info["title"] == "Temp" and info["title_expire_time"] > time.time()


async def test_special_title_without_duration_is_permanent(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_special_title", group_id=PLAYGROUND, user_id=EVE, special_title="Keep")
    info = await sandbox.ok("get_group_member_info", group_id=PLAYGROUND, user_id=EVE)
    assert (info["title"], info["title_expire_time"]) == ("Keep", 0)


async def test_special_title_disappears_after_its_duration(sandbox: SandboxClient) -> None:
    await sandbox.ok(
        "set_special_title", group_id=PLAYGROUND, user_id=EVE, special_title="Brief", duration=1
    )
    for _ in range(60):
        info = await sandbox.ok("get_group_member_info", group_id=PLAYGROUND, user_id=EVE)
        if info["title"] == "":
            break
        await asyncio.sleep(0.1)
    assert (info["title"], info["title_expire_time"]) == ("", 0)


async def test_special_title_duration_below_minus_one_is_1400(sandbox: SandboxClient) -> None:
    message = await failure(
        sandbox, "set_special_title", 1400, group_id=PLAYGROUND, user_id=EVE, duration=-5
    )
    assert "duration" in message


@pytest.mark.parametrize("name", ["set_group_sign", "send_group_sign"])
async def test_sign_in_shows_in_the_signed_list(sandbox: SandboxClient, name: str) -> None:
    await sandbox.ok(name, group_id=LAB)
    await sandbox.ok(name, group_id=LAB)
    signed = await sandbox.ok("get_group_signed_list", group_id=LAB)
    assert [(s["user_id"], s["nick"], s["rank"]) for s in signed] == [(BOT, "Sandbox Bot", 1)]
    assert await sandbox.ok("get_group_signed_list", group_id=PLAYGROUND) == []


async def test_sign_in_needs_a_group_the_bot_is_in(sandbox: SandboxClient) -> None:
    assert "39999" in await failure(sandbox, "set_group_sign", 1200, group_id=39999)
    assert "group_id" in await failure(sandbox, "send_group_sign", 1400)


# --- typing and pokes ---------------------------------------------------------------------------


async def test_input_status_in_napcats_form(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_input_status", user_id=ALICE, event_type=1)
    notice = await sandbox.notice("notify")
    assert notice["sub_type"] == "input_status"
    assert (notice["user_id"], notice["group_id"], notice["target_id"]) == (BOT, 0, ALICE)
    assert (notice["event_type"], notice["status_text"]) == (1, "对方正在输入...")


async def test_input_status_in_the_specs_form(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_input_status", group_id=LAB, status=0)
    notice = await sandbox.notice("notify")
    assert (notice["sub_type"], notice["group_id"], notice["event_type"]) == (
        "input_status",
        LAB,
        2,
    )


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"user_id": ALICE, "event_type": 5}, "event_type"),
        ({"user_id": ALICE, "status": 3}, "status"),
        ({"user_id": ALICE}, "event_type"),
        ({"event_type": 1}, "user_id"),
    ],
)
async def test_input_status_rejects_bad_params(
    sandbox: SandboxClient, params: dict[str, Any], field: str
) -> None:
    assert field in await failure(sandbox, "set_input_status", 1400, **params)


@pytest.mark.parametrize("name", ["send_poke", "friend_poke"])
async def test_friend_poke_emits_a_private_poke(sandbox: SandboxClient, name: str) -> None:
    await sandbox.ok(name, user_id=ALICE)
    notice = await sandbox.notice("notify")
    assert notice["sub_type"] == "poke" and "group_id" not in notice
    assert (notice["user_id"], notice["sender_id"], notice["target_id"]) == (ALICE, BOT, ALICE)


@pytest.mark.parametrize("name", ["send_poke", "group_poke"])
async def test_group_poke_emits_a_group_poke(sandbox: SandboxClient, name: str) -> None:
    await sandbox.ok(name, group_id=LAB, user_id=CAROL)
    notice = await sandbox.notice("notify")
    assert (notice["sub_type"], notice["group_id"]) == ("poke", LAB)
    assert (notice["user_id"], notice["target_id"]) == (BOT, CAROL)
    assert notice["raw_info"][2]["txt"] == "戳了戳"


async def test_group_poke_of_a_non_member_is_1200(sandbox: SandboxClient) -> None:
    message = await failure(sandbox, "group_poke", 1200, group_id=PLAYGROUND, user_id=CAROL)
    assert str(CAROL) in message


async def test_friend_poke_of_a_stranger_is_1200(sandbox: SandboxClient) -> None:
    assert "not a friend" in await failure(sandbox, "friend_poke", 1200, user_id=DAVE)


async def test_poke_needs_a_user_id(sandbox: SandboxClient) -> None:
    assert "user_id" in await failure(sandbox, "group_poke", 1400, group_id=LAB)


# --- doubtful friend requests -------------------------------------------------------------------


async def test_no_friend_request_is_doubtful(sandbox: SandboxClient) -> None:
    await sandbox.ok("sandbox_friend_request", user_id=40001, comment="hello")
    assert await sandbox.ok("get_doubt_friends_add_request") == []


async def test_answering_an_unknown_doubtful_request_is_1200(sandbox: SandboxClient) -> None:
    message = await failure(sandbox, "set_doubt_friends_add_request", 1200, flag="u_40001")
    assert "u_40001" in message
    assert "flag" in await failure(sandbox, "set_doubt_friends_add_request", 1400)
