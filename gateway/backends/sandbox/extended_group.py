"""Sandbox actions: NapCat's extended group actions, typing status, pokes, doubtful requests.

Group options live in `groups.settings` (a JSON object, one key per option: see
DEFAULT_SETTINGS); a setter merges its fields into its key, so fields left out keep their value
and keys other modules store are kept. Changing options needs an admin or the owner; the remark
is the bot's own and needs only membership. Sign-ins are kept per group and day in `kv`
(`group_sign:<group_id>:<YYYY-MM-DD>`, a JSON list of `{user_id, time}` in signing order).
Doubtful friend requests would be a JSON list under `kv` `friend:doubt_requests`; nothing in the
sandbox flags a request as doubtful, so it stays empty unless a database is seeded with one.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Any

from gateway.actions.extended_group import (
    INPUT_EVENTS,
    GetDoubtFriendsAddRequest,
    GroupFilter,
    SendPoke,
    SetDoubtFriendsAddRequest,
    SetGroupAddOption,
    SetGroupKickMembers,
    SetGroupMemberInvitePolicy,
    SetGroupMemberPermissions,
    SetGroupNewMemberHistoryVisibility,
    SetGroupRemark,
    SetGroupRobotAddOption,
    SetGroupSearch,
    SetInputStatus,
)
from gateway.actions.group import GroupId
from gateway.backends.sandbox import groups, nt
from gateway.backends.sandbox.extended_account import load_json, save_json
from gateway.backends.sandbox.friends import _poke_raw_info, friend
from gateway.backends.sandbox.membership import (
    bot_in_group,
    ensure_user,
    group_info,
    member,
    remove_member,
    require_outranks,
    require_role,
)
from gateway.backends.sandbox.requests import _notify
from gateway.backends.sandbox.store import decode_json, encode_json
from gateway.protocol.envelope import ActionFailed

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import HandlerTable, Sandbox

DEFAULT_SETTINGS: dict[str, Any] = {
    "add_option": {"add_type": 1, "group_question": "", "group_answer": ""},
    "search": {"enable": True, "no_code_finger_open": 0, "no_finger_open": 0},
    "robot_add_option": {"robot_member_switch": 0, "robot_member_examine": 0},
    "member_invite_policy": "no_approval",
    "member_permissions": {
        "allow_member_upload_album": True,
        "allow_member_temporary_session": True,
        "allow_member_create_group": True,
    },
    "new_member_history_visible": False,
}
"""Every group's options before the bot changes them."""

STOPPED_TYPING = 2
"""`event_type` of the notice for the spec's `status: 0` (NapCat knows only 0 and 1)."""
DOUBT_KEY = "friend:doubt_requests"


# --- options ------------------------------------------------------------------------------------


def group_settings(group: sqlite3.Row) -> dict[str, Any]:
    """The group's options: DEFAULT_SETTINGS overlaid with what was stored."""
    stored = decode_json(group["settings"])
    return {
        key: default | stored.get(key, {})
        if isinstance(default, dict)
        else stored.get(key, default)
        for key, default in DEFAULT_SETTINGS.items()
    }


async def _store_option(sandbox: Sandbox, group_id: int, doing: str, key: str, value: Any) -> None:
    """Merge `value` into the option `key` (dict fields that are None are left unchanged);
    1200 unless the bot is an admin or the owner of the group."""

    def write(db: sqlite3.Connection) -> None:
        group, me = bot_in_group(db, group_id, sandbox.self_id)
        require_role(me, "admin", doing)
        settings = decode_json(group["settings"])
        if isinstance(value, dict):
            given = {name: v for name, v in value.items() if v is not None}
            settings[key] = settings.get(key, {}) | given
        else:
            settings[key] = value
        db.execute(
            "UPDATE groups SET settings = ? WHERE group_id = ?",
            (encode_json(settings, key), group_id),
        )

    await sandbox.store.run(write)


async def get_group_info_ex(sandbox: Sandbox, p: GroupId) -> dict[str, Any]:
    """`get_group_info`'s object plus NT's `groupCode`, the owner, the admins and every option
    (DEFAULT_SETTINGS' keys) as last set."""

    def read(db: sqlite3.Connection) -> dict[str, Any]:
        group, _me = bot_in_group(db, p.group_id, sandbox.self_id)
        roles = db.execute(
            "SELECT user_id, role FROM members WHERE group_id = ? AND role != 'member' "
            "ORDER BY user_id",
            (p.group_id,),
        ).fetchall()
        return {
            **group_info(db, group),
            "groupCode": str(p.group_id),
            "owner_id": next((r["user_id"] for r in roles if r["role"] == "owner"), 0),
            "admin_ids": [r["user_id"] for r in roles if r["role"] == "admin"],
            **group_settings(group),
        }

    return await sandbox.store.read(read)


async def get_group_detail_info(sandbox: Sandbox, p: GroupId) -> dict[str, Any]:
    """The same answer as `get_group_info` (NapCat keeps both names)."""
    info: dict[str, Any] = await groups.get_group_info(sandbox, p)
    return info


async def set_group_remark(sandbox: Sandbox, p: SetGroupRemark) -> None:
    """The bot's remark, shown as `group_remark` by get_group_info and get_group_list."""

    def write(db: sqlite3.Connection) -> None:
        bot_in_group(db, p.group_id, sandbox.self_id)
        db.execute("UPDATE groups SET group_remark = ? WHERE group_id = ?", (p.remark, p.group_id))

    await sandbox.store.run(write)


async def set_group_add_option(sandbox: Sandbox, p: SetGroupAddOption) -> None:
    option = {"add_type": p.add_type, "group_question": p.group_question}
    option["group_answer"] = p.group_answer
    await _store_option(sandbox, p.group_id, "change the join option", "add_option", option)


async def set_group_search(sandbox: Sandbox, p: SetGroupSearch) -> None:
    switches = {"enable": p.enable, "no_code_finger_open": p.no_code_finger_open}
    switches["no_finger_open"] = p.no_finger_open
    await _store_option(sandbox, p.group_id, "change the search option", "search", switches)


async def set_group_robot_add_option(sandbox: Sandbox, p: SetGroupRobotAddOption) -> None:
    switches = {
        "robot_member_switch": p.robot_member_switch,
        "robot_member_examine": p.robot_member_examine,
    }
    await _store_option(sandbox, p.group_id, "change the bot option", "robot_add_option", switches)


async def set_group_member_invite_policy(sandbox: Sandbox, p: SetGroupMemberInvitePolicy) -> None:
    doing = "change the invite policy"
    await _store_option(sandbox, p.group_id, doing, "member_invite_policy", p.policy)


async def set_group_member_permissions(sandbox: Sandbox, p: SetGroupMemberPermissions) -> None:
    permissions = {
        "allow_member_upload_album": p.allow_member_upload_album,
        "allow_member_temporary_session": p.allow_member_temporary_session,
        "allow_member_create_group": p.allow_member_create_group,
    }
    doing = "change member permissions"
    await _store_option(sandbox, p.group_id, doing, "member_permissions", permissions)


async def set_group_new_member_history_visibility(
    sandbox: Sandbox, p: SetGroupNewMemberHistoryVisibility
) -> None:
    doing = "change the history visibility"
    await _store_option(sandbox, p.group_id, doing, "new_member_history_visible", p.visible)


# --- join requests ------------------------------------------------------------------------------


def _pending_requests(db: sqlite3.Connection, group_id: int | None) -> list[sqlite3.Row]:
    """Unanswered group requests (of one group when given), newest first."""
    rows: list[sqlite3.Row] = db.execute(
        "SELECT r.*, u.nickname, g.group_name FROM requests r "
        "LEFT JOIN users u ON u.user_id = r.user_id "
        "LEFT JOIN groups g ON g.group_id = r.group_id "
        "WHERE r.request_type = 'group' AND r.state = 'pending' "
        "AND (? IS NULL OR r.group_id = ?) ORDER BY r.time DESC, r.rowid DESC",
        (group_id, group_id),
    ).fetchall()
    return rows


async def get_group_ignore_add_request(sandbox: Sandbox, p: GroupFilter) -> list[dict[str, Any]]:
    """Pending join requests in `get_group_system_msg`'s `join_requests` shape. The sandbox
    filters nothing as QQ's risk control does, so the pending ones are what a bot must answer."""
    rows = await sandbox.store.read(lambda db: _pending_requests(db, p.group_id))
    return [
        _notify(row, sandbox.self_id) | {"requester_uin": row["user_id"]}
        for row in rows
        if row["sub_type"] == "add"
    ]


async def get_group_ignored_notifies(sandbox: Sandbox, p: GroupFilter) -> dict[str, Any]:
    """`get_group_system_msg`'s shape, pending requests only."""
    rows = await sandbox.store.read(lambda db: _pending_requests(db, p.group_id))
    invited = [_notify(row, sandbox.self_id) for row in rows if row["sub_type"] == "invite"]
    joins = await get_group_ignore_add_request(sandbox, p)
    return {"invited_requests": invited, "InvitedRequest": invited, "join_requests": joins}


# --- members ------------------------------------------------------------------------------------


async def set_group_kick_members(sandbox: Sandbox, p: SetGroupKickMembers) -> None:
    """Remove every listed member or none: each must rank below the bot. One `group_decrease`
    kick per member, in the order given; `reject_add_request` blocks their rejoining."""
    targets = list(dict.fromkeys(p.user_ids))

    def write(db: sqlite3.Connection) -> None:
        _group, me = bot_in_group(db, p.group_id, sandbox.self_id)
        for user_id in targets:
            require_outranks(me, member(db, p.group_id, user_id), "kick")
        for user_id in targets:
            remove_member(db, p.group_id, user_id)
            if p.reject_add_request:
                db.execute(
                    "INSERT OR IGNORE INTO group_blocklist (group_id, user_id) VALUES (?, ?)",
                    (p.group_id, user_id),
                )

    await sandbox.store.run(write)
    for user_id in targets:
        sandbox.notice(
            "group_decrease",
            sub_type="kick",
            group_id=p.group_id,
            user_id=user_id,
            operator_id=sandbox.self_id,
        )


def _sign_key(group_id: int) -> str:
    return f"group_sign:{group_id}:{time.strftime('%Y-%m-%d')}"


async def set_group_sign(sandbox: Sandbox, p: GroupId) -> None:
    """Sign the bot in for today; signing in again the same day changes nothing."""

    def write(db: sqlite3.Connection) -> None:
        bot_in_group(db, p.group_id, sandbox.self_id)
        signs: list[dict[str, int]] = load_json(db, _sign_key(p.group_id), [])
        if all(sign["user_id"] != sandbox.self_id for sign in signs):
            signs.append({"user_id": sandbox.self_id, "time": int(time.time())})
            save_json(db, _sign_key(p.group_id), signs)

    await sandbox.store.run(write)


def _nickname(db: sqlite3.Connection, user_id: int) -> str:
    row = db.execute("SELECT nickname FROM users WHERE user_id = ?", (user_id,)).fetchone()
    return str(row["nickname"]) if row else ""


async def get_group_signed_list(sandbox: Sandbox, p: GroupId) -> list[dict[str, Any]]:
    """Today's sign-ins: `[{user_id, nick, time, rank}]`, rank 1 first."""

    def read(db: sqlite3.Connection) -> list[dict[str, Any]]:
        bot_in_group(db, p.group_id, sandbox.self_id)
        signs = load_json(db, _sign_key(p.group_id), [])
        return [
            {"user_id": sign["user_id"], "nick": _nickname(db, sign["user_id"])}
            | {"time": sign["time"], "rank": rank}
            for rank, sign in enumerate(signs, start=1)
        ]

    return await sandbox.store.read(read)


# --- typing and pokes ---------------------------------------------------------------------------


async def set_input_status(sandbox: Sandbox, p: SetInputStatus) -> dict[str, Any]:
    """A `notify` input_status notice from the bot: `user_id` the bot, `group_id` the group (0
    in a private chat), `target_id` the private chat's user (0 in a group), `event_type` and
    `status_text`. NapCat's event_type 0 speaking / 1 typing is used as given; the spec's status
    1 is typing and 0 "stopped" (event_type 2, empty text). Answers the kernel's general
    result, which NapCat passes through."""
    if p.event_type is not None:
        event_type, text = p.event_type, INPUT_EVENTS[p.event_type]
    else:
        event_type, text = (1, INPUT_EVENTS[1]) if p.status else (STOPPED_TYPING, "")

    def check(db: sqlite3.Connection) -> None:
        if p.group_id is not None:
            bot_in_group(db, p.group_id, sandbox.self_id)
        elif db.execute("SELECT 1 FROM users WHERE user_id = ?", (p.user_id,)).fetchone() is None:
            raise ActionFailed(f"user {p.user_id} does not exist in the sandbox")

    await sandbox.store.run(check)
    sandbox.notice(
        "notify",
        sub_type="input_status",
        user_id=sandbox.self_id,
        group_id=p.group_id or 0,
        target_id=0 if p.group_id is not None else p.user_id,
        event_type=event_type,
        status_text=text,
    )
    return nt.general_ok()


async def send_poke(sandbox: Sandbox, p: SendPoke) -> None:
    """The bot pokes `target_id` (default `user_id`): in the group when `group_id` is given (the
    target must be a member; `notify` poke with group_id, user_id = the bot), else privately a
    friend or itself (`notify` poke with user_id = the friend and sender_id = the bot)."""
    target = p.target_id if p.target_id is not None else p.user_id
    self_id = sandbox.self_id

    def check(db: sqlite3.Connection) -> None:
        if p.group_id is not None:
            bot_in_group(db, p.group_id, self_id)
            member(db, p.group_id, target)
            return
        friend(db, p.user_id)
        if target not in (p.user_id, self_id):
            raise ActionFailed(
                f"in a private chat with user {p.user_id} the bot can poke them or itself only"
            )

    await sandbox.store.run(check)
    raw_info = _poke_raw_info(self_id, target)
    if p.group_id is not None:
        where = {"group_id": p.group_id, "user_id": self_id}
    else:
        where = {"user_id": p.user_id, "sender_id": self_id}
    sandbox.notice("notify", sub_type="poke", **where, target_id=target, raw_info=raw_info)


# --- doubtful friend requests -------------------------------------------------------------------


async def get_doubt_friends_add_request(
    sandbox: Sandbox, p: GetDoubtFriendsAddRequest
) -> list[dict[str, Any]]:
    """The stored doubtful requests, newest first (`[{flag, uin, nick, msg, time, …}]`)."""
    requests = await sandbox.store.read(lambda db: load_json(db, DOUBT_KEY, []))
    return list(reversed(requests))[: p.count]


async def set_doubt_friends_add_request(sandbox: Sandbox, p: SetDoubtFriendsAddRequest) -> None:
    """Accept the request (`friend_add`); 1200 for a flag that is not a doubtful request."""

    def write(db: sqlite3.Connection) -> int:
        requests: list[dict[str, Any]] = load_json(db, DOUBT_KEY, [])
        found = next((r for r in requests if str(r.get("flag")) == p.flag), None)
        if found is None:
            raise ActionFailed(f"no doubtful friend request has flag {p.flag!r}")
        save_json(db, DOUBT_KEY, [r for r in requests if r is not found])
        user_id = int(found["uin"])
        ensure_user(db, user_id, found.get("nick"))
        db.execute("UPDATE users SET is_friend = 1 WHERE user_id = ?", (user_id,))
        return user_id

    sandbox.notice("friend_add", user_id=await sandbox.store.run(write))


HANDLERS: HandlerTable = {
    "get_group_info_ex": get_group_info_ex,
    "get_group_detail_info": get_group_detail_info,
    "set_group_remark": set_group_remark,
    "set_group_add_option": set_group_add_option,
    "set_group_search": set_group_search,
    "set_group_robot_add_option": set_group_robot_add_option,
    "set_group_member_invite_policy": set_group_member_invite_policy,
    "set_group_member_permissions": set_group_member_permissions,
    "set_group_new_member_history_visibility": set_group_new_member_history_visibility,
    "get_group_ignore_add_request": get_group_ignore_add_request,
    "get_group_ignored_notifies": get_group_ignored_notifies,
    "set_group_kick_members": set_group_kick_members,
    "set_group_sign": set_group_sign,
    "get_group_signed_list": get_group_signed_list,
    "set_input_status": set_input_status,
    "send_poke": send_poke,
    "get_doubt_friends_add_request": get_doubt_friends_add_request,
    "set_doubt_friends_add_request": set_doubt_friends_add_request,
}
