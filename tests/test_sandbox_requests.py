"""Sandbox requests through the real HTTP and WebSocket adapters: friend requests, join requests,
invitations of the bot, and answering them."""

from __future__ import annotations

from typing import Any

from tests.sandbox_client import SandboxClient

BOT, ALICE, BOB, CAROL, DAVE = 10001, 20001, 20002, 20003, 20004
LAB, NEW = 30001, 30900
GRACE = 40001


def is_request(event: dict[str, Any]) -> bool:
    return event.get("post_type") == "request"


async def failure(sandbox: SandboxClient, action: str, retcode: int, **params: Any) -> str:
    """The message of a call that must fail with `retcode`."""
    body = await sandbox.call(action, **params)
    assert body["retcode"] == retcode, body
    message: str = body["message"]
    return message


async def friend_request(sandbox: SandboxClient, user_id: int = GRACE) -> str:
    data = await sandbox.ok(
        "sandbox_friend_request", user_id=user_id, nickname="Grace", comment="hi bot"
    )
    flag: str = data["flag"]
    return flag


async def group_request(sandbox: SandboxClient, sub_type: str, **params: Any) -> str:
    fields = {"group_id": LAB, "user_id": GRACE, "comment": "let me in", **params}
    flag: str = (await sandbox.ok("sandbox_group_request", sub_type=sub_type, **fields))["flag"]
    return flag


async def friend_ids(sandbox: SandboxClient) -> set[int]:
    return {f["user_id"] for f in await sandbox.ok("get_friend_list")}


async def member_ids(sandbox: SandboxClient, group_id: int) -> set[int]:
    return {m["user_id"] for m in await sandbox.ok("get_group_member_list", group_id=group_id)}


# --- friend requests ----------------------------------------------------------------------------


async def test_friend_request_publishes_an_event_with_its_flag(sandbox: SandboxClient) -> None:
    flag = await friend_request(sandbox)
    event = await sandbox.event(is_request)
    assert event == {
        "time": event["time"],
        "self_id": BOT,
        "post_type": "request",
        "request_type": "friend",
        "user_id": GRACE,
        "comment": "hi bot",
        "flag": flag,
    }


async def test_flags_are_unique(sandbox: SandboxClient) -> None:
    assert await friend_request(sandbox, 40001) != await friend_request(sandbox, 40002)


async def test_approving_makes_a_friend_with_the_remark(sandbox: SandboxClient) -> None:
    flag = await friend_request(sandbox)
    await sandbox.ok("set_friend_add_request", flag=flag, approve=True, remark="grace")
    assert (await sandbox.notice("friend_add"))["user_id"] == GRACE
    listed = {f["user_id"]: f for f in await sandbox.ok("get_friend_list")}
    assert (listed[GRACE]["nickname"], listed[GRACE]["remark"]) == ("Grace", "grace")


async def test_refusing_adds_no_friend_and_closes_the_request(sandbox: SandboxClient) -> None:
    flag = await friend_request(sandbox)
    await sandbox.ok("set_friend_add_request", flag=flag, approve="false")
    assert GRACE not in await friend_ids(sandbox)
    message = await failure(sandbox, "set_friend_add_request", 1200, flag=flag)
    assert message == f"request {flag!r} was already rejected"


async def test_unknown_flag_is_1200(sandbox: SandboxClient) -> None:
    message = await failure(sandbox, "set_friend_add_request", 1200, flag="123")
    assert message == "no request has flag '123'"


async def test_friend_request_from_a_friend_is_1200(sandbox: SandboxClient) -> None:
    message = await failure(sandbox, "sandbox_friend_request", 1200, user_id=ALICE)
    assert "already a friend" in message


async def test_group_flag_given_to_the_friend_action_is_1200(sandbox: SandboxClient) -> None:
    flag = await group_request(sandbox, "add")
    message = await failure(sandbox, "set_friend_add_request", 1200, flag=flag)
    assert "use set_group_add_request" in message
    assert GRACE not in await friend_ids(sandbox)


async def test_quick_operation_approves_a_friend_request(sandbox: SandboxClient) -> None:
    await friend_request(sandbox)
    context = await sandbox.event(is_request)
    await sandbox.ok(
        ".handle_quick_operation", context=context, operation={"approve": True, "remark": "g"}
    )
    assert (await sandbox.notice("friend_add"))["user_id"] == GRACE


# --- join requests ------------------------------------------------------------------------------


async def test_join_request_publishes_a_group_add_event(sandbox: SandboxClient) -> None:
    flag = await group_request(sandbox, "add")
    event = await sandbox.event(is_request)
    assert (event["request_type"], event["sub_type"], event["group_id"], event["flag"]) == (
        "group",
        "add",
        LAB,
        flag,
    )


async def test_approved_join_request_adds_the_member(sandbox: SandboxClient) -> None:
    flag = await group_request(sandbox, "add", nickname="Grace")
    await sandbox.ok("set_group_add_request", flag=flag, sub_type="add", approve=True)
    notice = await sandbox.notice("group_increase")
    assert (notice["sub_type"], notice["user_id"], notice["operator_id"]) == ("approve", GRACE, BOT)
    assert GRACE in await member_ids(sandbox, LAB)


async def test_refused_join_request_leaves_the_group_unchanged(sandbox: SandboxClient) -> None:
    flag = await group_request(sandbox, "add")
    await sandbox.ok("set_group_add_request", flag=flag, approve=False, reason="full")
    assert GRACE not in await member_ids(sandbox, LAB)
    requests = (await sandbox.ok("get_group_system_msg"))["join_requests"]
    assert (requests[0]["request_id"], requests[0]["checked"], requests[0]["actor"]) == (
        int(flag),
        True,
        BOT,
    )


async def test_join_request_from_a_member_is_1200(sandbox: SandboxClient) -> None:
    message = await failure(
        sandbox, "sandbox_group_request", 1200, group_id=LAB, user_id=CAROL, sub_type="add"
    )
    assert "already a member" in message


async def test_sub_type_must_match_the_request(sandbox: SandboxClient) -> None:
    flag = await group_request(sandbox, "add")
    message = await failure(sandbox, "set_group_add_request", 1200, flag=flag, type="invite")
    assert "is an 'add' request" in message
    assert GRACE not in await member_ids(sandbox, LAB)
    await sandbox.ok("set_group_add_request", flag=flag)


async def test_a_member_bot_receives_no_join_requests(sandbox: SandboxClient) -> None:
    invite = await group_request(sandbox, "invite", group_id=NEW, user_id=ALICE)
    await sandbox.ok("set_group_add_request", flag=invite)
    message = await failure(
        sandbox, "sandbox_group_request", 1200, group_id=NEW, user_id=GRACE, sub_type="add"
    )
    assert "only an admin or the owner may receive join requests" in message


# --- invitations --------------------------------------------------------------------------------


async def test_accepted_invitation_joins_the_bot_to_a_new_group(sandbox: SandboxClient) -> None:
    flag = await group_request(sandbox, "invite", group_id=NEW, user_id=ALICE, group_name="Club")
    await sandbox.ok("set_group_add_request", flag=flag, sub_type="invite")
    notice = await sandbox.notice("group_increase")
    assert (notice["sub_type"], notice["group_id"], notice["user_id"], notice["operator_id"]) == (
        "invite",
        NEW,
        BOT,
        ALICE,
    )
    info = await sandbox.ok("get_group_info", group_id=NEW)
    assert (info["group_name"], info["member_count"]) == ("Club", 2)
    roles = {
        m["user_id"]: m["role"] for m in await sandbox.ok("get_group_member_list", group_id=NEW)
    }
    assert roles == {ALICE: "owner", BOT: "member"}


async def test_refused_invitation_keeps_the_bot_out(sandbox: SandboxClient) -> None:
    flag = await group_request(sandbox, "invite", group_id=NEW, user_id=ALICE)
    await sandbox.ok("set_group_add_request", flag=flag, approve=False)
    message = await failure(sandbox, "get_group_info", 1200, group_id=NEW)
    assert message == f"the bot is not in group {NEW}"


async def test_invitation_to_a_group_the_bot_is_in_is_1200(sandbox: SandboxClient) -> None:
    message = await failure(
        sandbox, "sandbox_group_request", 1200, group_id=LAB, user_id=DAVE, sub_type="invite"
    )
    assert "already in group" in message


async def test_invitation_by_a_non_member_is_1200(sandbox: SandboxClient) -> None:
    await sandbox.ok("set_group_leave", group_id=LAB)
    message = await failure(
        sandbox, "sandbox_group_request", 1200, group_id=LAB, user_id=GRACE, sub_type="invite"
    )
    assert message == f"user {GRACE} is not a member of group {LAB}"
    assert (await sandbox.ok("get_group_system_msg"))["invited_requests"] == []


async def test_system_msg_lists_invitations_and_join_requests(sandbox: SandboxClient) -> None:
    invite = await group_request(sandbox, "invite", group_id=NEW, user_id=BOB, comment="join us")
    join = await group_request(sandbox, "add", nickname="Grace")
    listed = await sandbox.ok("get_group_system_msg")
    assert listed["invited_requests"] == listed["InvitedRequest"]
    assert listed["invited_requests"] == [
        {
            "request_id": int(invite),
            "invitor_uin": BOB,
            "invitor_nick": "Bob",
            "group_id": NEW,
            "group_name": f"Group {NEW}",
            "message": "join us",
            "checked": False,
            "actor": 0,
            "requester_nick": "Bob",
        }
    ]
    [request] = listed["join_requests"]
    assert (request["request_id"], request["requester_uin"], request["requester_nick"]) == (
        int(join),
        GRACE,
        "Grace",
    )
