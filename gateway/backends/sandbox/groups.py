"""Sandbox actions: reading groups and members, and simulated users joining, leaving, renaming.

Management by the bot (kick, ban, admin, card, title, name, leave) lives in `group_admin`.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Any

from gateway.actions.catalog import Params
from gateway.actions.group import (
    GetGroupHonorInfo,
    GetGroupInfo,
    GetGroupMemberInfo,
    GroupId,
    GroupMember,
    SandboxJoinGroup,
    SandboxSetCard,
)
from gateway.backends.sandbox.group_admin import publish_card
from gateway.backends.sandbox.membership import (
    ROLE_RANK,
    add_member,
    bot_in_group,
    ensure_user,
    group_info,
    is_blocked,
    member,
    member_info,
    remove_member,
    update_member,
)
from gateway.backends.sandbox.store import decode_json
from gateway.protocol.envelope import ActionFailed

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import HandlerTable, Sandbox

AT_ALL_PER_DAY = 10
"""@all messages allowed per group per day, and per sender per group per day."""


def avatar(user_id: int) -> str:
    """The public avatar URL QQ serves for a user."""
    return f"https://q1.qlogo.cn/g?b=qq&nk={user_id}&s=640"


def today_start() -> int:
    """Unix time of the last local midnight (QQ's daily counters reset then)."""
    now = time.localtime()
    return int(time.mktime((now.tm_year, now.tm_mon, now.tm_mday, 0, 0, 0, 0, 0, -1)))


# --- reading ------------------------------------------------------------------------------------


async def get_group_list(sandbox: Sandbox, _: Params) -> list[dict[str, Any]]:
    def read(db: sqlite3.Connection) -> list[dict[str, Any]]:
        rows = db.execute(
            "SELECT g.* FROM groups g JOIN members m USING (group_id) "
            "WHERE m.user_id = ? ORDER BY g.group_id",
            (sandbox.self_id,),
        ).fetchall()
        return [group_info(db, row) for row in rows]

    return await sandbox.store.read(read)


async def get_group_info(sandbox: Sandbox, p: GroupId) -> dict[str, Any]:
    def read(db: sqlite3.Connection) -> dict[str, Any]:
        group, _me = bot_in_group(db, p.group_id, sandbox.self_id)
        return group_info(db, group)

    return await sandbox.store.read(read)


async def get_group_member_list(sandbox: Sandbox, p: GetGroupInfo) -> list[dict[str, Any]]:
    def read(db: sqlite3.Connection) -> list[dict[str, Any]]:
        _group, me = bot_in_group(db, p.group_id, sandbox.self_id)
        rows = db.execute(
            "SELECT m.*, u.nickname, u.sex, u.age FROM members m JOIN users u USING (user_id) "
            "WHERE m.group_id = ? ORDER BY m.join_time, m.user_id",
            (p.group_id,),
        ).fetchall()
        now = time.time()
        return [member_info(row, me, now) for row in rows]

    return await sandbox.store.read(read)


async def get_group_member_info(sandbox: Sandbox, p: GetGroupMemberInfo) -> dict[str, Any]:
    def read(db: sqlite3.Connection) -> dict[str, Any]:
        _group, me = bot_in_group(db, p.group_id, sandbox.self_id)
        return member_info(member(db, p.group_id, p.user_id), me, time.time())

    return await sandbox.store.read(read)


async def get_group_shut_list(sandbox: Sandbox, p: GroupId) -> list[dict[str, Any]]:
    """Muted members in the documented shape, plus NapCat's raw NT field names."""

    def read(db: sqlite3.Connection) -> list[dict[str, Any]]:
        bot_in_group(db, p.group_id, sandbox.self_id)
        rows = db.execute(
            "SELECT m.user_id, m.card, m.mute_until, u.nickname FROM members m "
            "JOIN users u USING (user_id) WHERE m.group_id = ? AND m.mute_until > ? "
            "ORDER BY m.mute_until",
            (p.group_id, int(time.time())),
        ).fetchall()
        return [
            {
                "user_id": row["user_id"],
                "nickname": row["nickname"],
                "card": row["card"],
                "shut_up_time": row["mute_until"],
                "uin": str(row["user_id"]),
                "nick": row["nickname"],
                "cardName": row["card"],
                "shutUpTime": row["mute_until"],
            }
            for row in rows
        ]

    return await sandbox.store.read(read)


async def get_group_honor_info(sandbox: Sandbox, p: GetGroupHonorInfo) -> dict[str, Any]:
    """Every list is always present (NapCat's shape). Only `talkative` is derived: today's most
    active senders by message count; the other honors are awarded by QQ's servers and stay empty.
    """

    def read(db: sqlite3.Connection) -> list[sqlite3.Row]:
        bot_in_group(db, p.group_id, sandbox.self_id)
        return _todays_talkers(db, p.group_id)

    talkers = await sandbox.store.read(read) if p.type in ("talkative", "all") else []
    honors: dict[str, Any] = {
        "group_id": p.group_id,
        "current_talkative": {},
        "talkative_list": [_honor(row) for row in talkers],
        "performer_list": [],
        "legend_list": [],
        "emotion_list": [],
        "strong_newbie_list": [],
    }
    if talkers:
        honors["current_talkative"] = _honor(talkers[0]) | {"day_count": 1}
    return honors


def _todays_talkers(db: sqlite3.Connection, group_id: int) -> list[sqlite3.Row]:
    """The ten most active senders today, most messages (then latest message) first."""
    rows: list[sqlite3.Row] = db.execute(
        "SELECT msg.sender_id AS user_id, u.nickname, COUNT(*) AS sent, "
        "MAX(msg.message_id) AS latest FROM messages msg JOIN users u "
        "ON u.user_id = msg.sender_id WHERE msg.message_type = 'group' AND msg.peer_id = ? "
        "AND msg.time >= ? GROUP BY msg.sender_id ORDER BY sent DESC, latest DESC LIMIT 10",
        (group_id, today_start()),
    ).fetchall()
    return rows


def _honor(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "user_id": row["user_id"],
        "nickname": row["nickname"],
        "avatar": avatar(row["user_id"]),
        "description": f"{row['sent']} messages today",
    }


async def get_group_at_all_remain(sandbox: Sandbox, p: GroupId) -> dict[str, Any]:
    """Counts today's stored @all messages: AT_ALL_PER_DAY per group and per sender."""

    def read(db: sqlite3.Connection) -> tuple[str, int, int]:
        _group, me = bot_in_group(db, p.group_id, sandbox.self_id)
        rows = db.execute(
            "SELECT sender_id, segments FROM messages WHERE message_type = 'group' "
            "AND peer_id = ? AND time >= ? AND segments LIKE '%\"all\"%'",
            (p.group_id, today_start()),
        ).fetchall()
        senders = [row["sender_id"] for row in rows if _mentions_all(row["segments"])]
        return me["role"], len(senders), senders.count(sandbox.self_id)

    role, by_group, by_bot = await sandbox.store.read(read)
    for_group = max(0, AT_ALL_PER_DAY - by_group)
    for_bot = max(0, AT_ALL_PER_DAY - by_bot)
    return {
        "can_at_all": ROLE_RANK[role] > 0 and for_group > 0 and for_bot > 0,
        "remain_at_all_count_for_group": for_group,
        "remain_at_all_count_for_uin": for_bot,
    }


def _mentions_all(segments: str) -> bool:
    try:
        decoded = decode_json(segments)
    except ValueError:
        return False  # an unreadable row (see message_store.row_dict) counts as no @all
    return isinstance(decoded, list) and any(
        isinstance(s, dict)
        and s.get("type") == "at"
        and str((s.get("data") or {}).get("qq")) == "all"
        for s in decoded
    )


# --- the simulated members' side ----------------------------------------------------------------


async def sandbox_join_group(sandbox: Sandbox, p: SandboxJoinGroup) -> None:
    """The user joins a group the bot is in (`group_increase` approve, operator 0)."""

    def write(db: sqlite3.Connection) -> None:
        bot_in_group(db, p.group_id, sandbox.self_id)
        if p.user_id == sandbox.self_id:
            raise ActionFailed("the bot joins a group by accepting an invitation")
        if is_blocked(db, p.group_id, p.user_id):
            raise ActionFailed(f"group {p.group_id} refuses user {p.user_id} (kicked and blocked)")
        ensure_user(db, p.user_id, p.nickname)
        add_member(db, p.group_id, p.user_id)

    await sandbox.store.run(write)
    sandbox.notice(
        "group_increase", sub_type="approve", group_id=p.group_id, user_id=p.user_id, operator_id=0
    )


async def sandbox_leave_group(sandbox: Sandbox, p: GroupMember) -> None:
    """The member leaves (`group_decrease` leave, operator = the member)."""

    def write(db: sqlite3.Connection) -> None:
        bot_in_group(db, p.group_id, sandbox.self_id)
        if p.user_id == sandbox.self_id:
            raise ActionFailed("sandbox_leave_group moves simulated users; use set_group_leave")
        leaver = member(db, p.group_id, p.user_id)
        if leaver["role"] == "owner":
            raise ActionFailed(f"user {p.user_id} owns group {p.group_id} and cannot leave it")
        remove_member(db, p.group_id, p.user_id)

    await sandbox.store.run(write)
    sandbox.notice(
        "group_decrease",
        sub_type="leave",
        group_id=p.group_id,
        user_id=p.user_id,
        operator_id=p.user_id,
    )


async def sandbox_set_card(sandbox: Sandbox, p: SandboxSetCard) -> None:
    """The member changes their own card (`group_card` when it differs)."""

    def write(db: sqlite3.Connection) -> str | None:
        bot_in_group(db, p.group_id, sandbox.self_id)
        if p.user_id == sandbox.self_id:
            raise ActionFailed(
                "sandbox_set_card changes a simulated member's card; use set_group_card"
            )
        old = member(db, p.group_id, p.user_id)["card"]
        if old == p.card:
            return None
        update_member(db, p.group_id, p.user_id, card=p.card)
        return str(old)

    old_card = await sandbox.store.run(write)
    if old_card is not None:
        publish_card(sandbox, p.group_id, p.user_id, p.card, old_card)


HANDLERS: HandlerTable = {
    "get_group_list": get_group_list,
    "get_group_info": get_group_info,
    "get_group_member_list": get_group_member_list,
    "get_group_member_info": get_group_member_info,
    "get_group_shut_list": get_group_shut_list,
    "get_group_honor_info": get_group_honor_info,
    "get_group_at_all_remain": get_group_at_all_remain,
    "sandbox_join_group": sandbox_join_group,
    "sandbox_leave_group": sandbox_leave_group,
    "sandbox_set_card": sandbox_set_card,
}
