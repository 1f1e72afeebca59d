"""Sandbox actions: friend requests, join requests and invitations of the bot, from both sides.

A request is a `requests` row keyed by its flag: a random 16-digit string, like the numeric
sequence NapCat uses, so `get_group_system_msg` can report it as the numeric `request_id`. A
request is answered once (`state` pending → approved / rejected); answering it again fails.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from gateway.actions.request import (
    GetGroupSystemMsg,
    SandboxFriendRequest,
    SandboxGroupRequest,
    SetFriendAddRequest,
    SetGroupAddRequest,
)
from gateway.backends.sandbox.friends import block_key
from gateway.backends.sandbox.membership import (
    add_member,
    bot_in_group,
    ensure_user,
    find_member,
    is_blocked,
    member,
    require_role,
)
from gateway.protocol.envelope import ActionFailed

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import HandlerTable, Sandbox


def _new_flag(db: sqlite3.Connection) -> str:
    while True:
        flag = str(10**15 + secrets.randbelow(9 * 10**15))
        if db.execute("SELECT 1 FROM requests WHERE flag = ?", (flag,)).fetchone() is None:
            return flag


def _insert(
    db: sqlite3.Connection,
    request_type: str,
    sub_type: str,
    group_id: int,
    user_id: int,
    comment: str,
) -> str:
    flag = _new_flag(db)
    db.execute(
        "INSERT INTO requests (flag, request_type, sub_type, group_id, user_id, comment, time) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (flag, request_type, sub_type, group_id, user_id, comment, int(time.time())),
    )
    return flag


def _pending(db: sqlite3.Connection, flag: str, request_type: str) -> sqlite3.Row:
    """The pending request with this flag; 1200 when unknown, of the other kind, or answered."""
    row: sqlite3.Row | None = db.execute(
        "SELECT * FROM requests WHERE flag = ?", (flag,)
    ).fetchone()
    if row is None:
        raise ActionFailed(f"no request has flag {flag!r}")
    if row["request_type"] != request_type:
        other = row["request_type"]
        raise ActionFailed(f"flag {flag!r} is a {other} request; use set_{other}_add_request")
    if row["state"] != "pending":
        raise ActionFailed(f"request {flag!r} was already {row['state']}")
    return row


def _answer(db: sqlite3.Connection, flag: str, approve: bool) -> None:
    state = "approved" if approve else "rejected"
    db.execute("UPDATE requests SET state = ? WHERE flag = ?", (state, flag))


# --- the simulated users ask --------------------------------------------------------------------


async def sandbox_friend_request(sandbox: Sandbox, p: SandboxFriendRequest) -> Any:
    """Publish a `request` friend event; returns `{flag}`."""

    def write(db: sqlite3.Connection) -> str:
        if p.user_id == sandbox.self_id:
            raise ActionFailed("the bot cannot send itself a friend request")
        if db.execute("SELECT 1 FROM kv WHERE key = ?", (block_key(p.user_id),)).fetchone():
            raise ActionFailed(f"the bot blocked user {p.user_id}; their requests are refused")
        if ensure_user(db, p.user_id, p.nickname)["is_friend"]:
            raise ActionFailed(f"user {p.user_id} is already a friend of the bot")
        return _insert(db, "friend", "", 0, p.user_id, p.comment)

    flag = await sandbox.store.run(write)
    sandbox.publish(
        sandbox.event(
            "request", request_type="friend", user_id=p.user_id, comment=p.comment, flag=flag
        )
    )
    return {"flag": flag}


async def sandbox_group_request(sandbox: Sandbox, p: SandboxGroupRequest) -> Any:
    """Publish a `request` group event (`add` or `invite`); returns `{flag}`."""

    def write(db: sqlite3.Connection) -> str:
        if p.user_id == sandbox.self_id:
            raise ActionFailed("the requester must be a simulated user, not the bot")
        ensure_user(db, p.user_id, p.nickname)
        if p.sub_type == "add":
            _check_join_request(db, p, sandbox.self_id)
        else:
            _check_invitation(db, p, sandbox.self_id)
        return _insert(db, "group", p.sub_type, p.group_id, p.user_id, p.comment)

    flag = await sandbox.store.run(write)
    sandbox.publish(
        sandbox.event(
            "request",
            request_type="group",
            sub_type=p.sub_type,
            group_id=p.group_id,
            user_id=p.user_id,
            comment=p.comment,
            flag=flag,
        )
    )
    return {"flag": flag}


def _check_join_request(db: sqlite3.Connection, p: SandboxGroupRequest, self_id: int) -> None:
    # QQ shows join requests to admins and the owner only.
    _group, me = bot_in_group(db, p.group_id, self_id)
    require_role(me, "admin", "receive join requests")
    if is_blocked(db, p.group_id, p.user_id):
        raise ActionFailed(f"group {p.group_id} refuses user {p.user_id} (kicked and blocked)")
    if find_member(db, p.group_id, p.user_id) is not None:
        raise ActionFailed(f"user {p.user_id} is already a member of group {p.group_id}")


def _check_invitation(db: sqlite3.Connection, p: SandboxGroupRequest, self_id: int) -> None:
    """The inviter must be in the group; a group that does not exist yet is created with the
    inviter as its owner (and stays if the bot refuses)."""
    exists = db.execute("SELECT 1 FROM groups WHERE group_id = ?", (p.group_id,)).fetchone()
    if not exists:
        name = p.group_name or f"Group {p.group_id}"
        db.execute("INSERT INTO groups (group_id, group_name) VALUES (?, ?)", (p.group_id, name))
        add_member(db, p.group_id, p.user_id, role="owner")
        return
    if find_member(db, p.group_id, self_id) is not None:
        raise ActionFailed(f"the bot is already in group {p.group_id}")
    member(db, p.group_id, p.user_id)


# --- the bot answers ----------------------------------------------------------------------------


async def set_friend_add_request(sandbox: Sandbox, p: SetFriendAddRequest) -> None:
    """Approving makes the user a friend with `remark` (`friend_add`); refusing changes nothing
    else."""

    def write(db: sqlite3.Connection) -> int | None:
        request = _pending(db, p.flag, "friend")
        _answer(db, p.flag, p.approve)
        if not p.approve:
            return None
        db.execute(
            "UPDATE users SET is_friend = 1, remark = ? WHERE user_id = ?",
            (p.remark, request["user_id"]),
        )
        return int(request["user_id"])

    user_id = await sandbox.store.run(write)
    if user_id is not None:
        sandbox.notice("friend_add", user_id=user_id)


async def set_group_add_request(sandbox: Sandbox, p: SetGroupAddRequest) -> None:
    """Approving a join request adds the member (`group_increase` approve, operator = the bot);
    approving an invitation adds the bot (`group_increase` invite, operator = the inviter)."""

    def write(db: sqlite3.Connection) -> dict[str, Any] | None:
        request = _pending(db, p.flag, "group")
        if p.sub_type is not None and p.sub_type != request["sub_type"]:
            raise ActionFailed(
                f"request {p.flag!r} is an {request['sub_type']!r} request, not {p.sub_type!r}"
            )
        _answer(db, p.flag, p.approve)
        if request["sub_type"] == "add":
            return _answer_join(db, request, p.approve, sandbox.self_id)
        return _answer_invitation(db, request, p.approve, sandbox.self_id)

    increase = await sandbox.store.run(write)
    if increase is not None:
        sandbox.notice("group_increase", **increase)


def _answer_join(
    db: sqlite3.Connection, request: sqlite3.Row, approve: bool, self_id: int
) -> dict[str, Any] | None:
    group_id, user_id = request["group_id"], request["user_id"]
    _group, me = bot_in_group(db, group_id, self_id)
    require_role(me, "admin", "answer join requests")
    if not approve:
        return None
    if is_blocked(db, group_id, user_id):
        raise ActionFailed(f"group {group_id} refuses user {user_id} (kicked and blocked)")
    add_member(db, group_id, user_id)
    return {"sub_type": "approve", "group_id": group_id, "user_id": user_id, "operator_id": self_id}


def _answer_invitation(
    db: sqlite3.Connection, request: sqlite3.Row, approve: bool, self_id: int
) -> dict[str, Any] | None:
    group_id, inviter = request["group_id"], request["user_id"]
    if not approve:
        return None
    if db.execute("SELECT 1 FROM groups WHERE group_id = ?", (group_id,)).fetchone() is None:
        # The group was created with the invitation; recreate it if it is gone since.
        db.execute(
            "INSERT INTO groups (group_id, group_name) VALUES (?, ?)",
            (group_id, f"Group {group_id}"),
        )
        add_member(db, group_id, inviter, role="owner")
    add_member(db, group_id, self_id)
    return {"sub_type": "invite", "group_id": group_id, "user_id": self_id, "operator_id": inviter}


# --- listing ------------------------------------------------------------------------------------


async def get_group_system_msg(sandbox: Sandbox, p: GetGroupSystemMsg) -> dict[str, Any]:
    """NapCat's `{invited_requests, InvitedRequest, join_requests}`, newest first; join requests
    also carry go-cqhttp's `requester_uin`."""

    def read(db: sqlite3.Connection) -> list[sqlite3.Row]:
        rows: list[sqlite3.Row] = db.execute(
            "SELECT r.*, u.nickname, g.group_name FROM requests r "
            "LEFT JOIN users u ON u.user_id = r.user_id "
            "LEFT JOIN groups g ON g.group_id = r.group_id "
            "WHERE r.request_type = 'group' ORDER BY r.time DESC, r.rowid DESC LIMIT ?",
            (p.count,),
        ).fetchall()
        return rows

    rows = await sandbox.store.read(read)
    invited = [_notify(row, sandbox.self_id) for row in rows if row["sub_type"] == "invite"]
    joins = [
        _notify(row, sandbox.self_id) | {"requester_uin": row["user_id"]}
        for row in rows
        if row["sub_type"] == "add"
    ]
    return {"invited_requests": invited, "InvitedRequest": invited, "join_requests": joins}


def _notify(row: sqlite3.Row, self_id: int) -> dict[str, Any]:
    checked = row["state"] != "pending"
    return {
        "request_id": int(row["flag"]),
        "invitor_uin": row["user_id"],
        "invitor_nick": row["nickname"] or "",
        "group_id": row["group_id"],
        "group_name": row["group_name"] or "",
        "message": row["comment"],
        "checked": checked,
        "actor": self_id if checked else 0,
        "requester_nick": row["nickname"] or "",
    }


HANDLERS: HandlerTable = {
    "sandbox_friend_request": sandbox_friend_request,
    "sandbox_group_request": sandbox_group_request,
    "set_friend_add_request": set_friend_add_request,
    "set_group_add_request": set_group_add_request,
    "get_group_system_msg": get_group_system_msg,
}
