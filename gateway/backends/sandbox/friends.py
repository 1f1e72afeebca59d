"""Sandbox actions: users and friends, likes and pokes, from both sides.

Likes are counted per day in `kv`: `send_like:<user_id>` for the bot liking a user and
`profile_like:<user_id>` for a user liking the bot, each a JSON object
`{user_id, nickname, date, today, total, last_time}`; users.likes counts the likes a user received.
`friend_block:<user_id>` marks users `delete_friend` blocked (their friend requests are refused).
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Any

from gateway.actions.catalog import Params
from gateway.actions.friend import (
    LIKES_PER_DAY,
    DeleteFriend,
    GetStrangerInfo,
    SandboxPoke,
    SandboxSendLike,
    SendLike,
    SetFriendRemark,
)
from gateway.backends.sandbox import nt
from gateway.backends.sandbox.membership import bot_in_group, ensure_user, member
from gateway.backends.sandbox.store import decode_json, encode_json
from gateway.protocol.envelope import ActionFailed

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import HandlerTable, Sandbox

DEFAULT_CATEGORY = "Friends"
"""The category new friends go to; it always has id 0, like QQ's "My friends"."""


def uid_of(user_id: int) -> str:
    """The sandbox's stand-in for NTQQ's opaque `uid` of a user."""
    return f"u_{user_id}"


def block_key(user_id: int) -> str:
    """The kv key marking a user blocked by `delete_friend` with `temp_block`."""
    return f"friend_block:{user_id}"


def friend(db: sqlite3.Connection, user_id: int) -> sqlite3.Row:
    """A friend's users row; 1200 when the user is not a friend."""
    row: sqlite3.Row | None = db.execute(
        "SELECT * FROM users WHERE user_id = ? AND is_friend = 1", (user_id,)
    ).fetchone()
    if row is None:
        raise ActionFailed(f"user {user_id} is not a friend of the bot")
    return row


# --- profiles and friend lists ------------------------------------------------------------------


async def get_stranger_info(sandbox: Sandbox, p: GetStrangerInfo) -> dict[str, Any]:
    """NapCat's profile object (plus OneBot's `level`); 1200 for a user the sandbox lacks."""

    def read(db: sqlite3.Connection) -> dict[str, Any] | None:
        if p.user_id == sandbox.self_id:
            me = db.execute("SELECT * FROM account").fetchone()
            return _profile(p.user_id, me, "", me["long_nick"], 10 if me["online"] else 20)
        row = db.execute("SELECT * FROM users WHERE user_id = ?", (p.user_id,)).fetchone()
        return None if row is None else _profile(p.user_id, row, row["remark"], "", 10)

    profile = await sandbox.store.read(read)
    if profile is None:
        raise ActionFailed(f"get_stranger_info: user {p.user_id} does not exist in the sandbox")
    return profile


def _profile(
    user_id: int, row: sqlite3.Row, remark: str, long_nick: str, status: int
) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "uid": uid_of(user_id),
        "nickname": row["nickname"],
        "age": row["age"],
        "qid": "",
        "qqLevel": 0,
        "level": 0,
        "sex": row["sex"],
        "long_nick": long_nick,
        "reg_time": 0,
        "is_vip": False,
        "is_years_vip": False,
        "vip_level": 0,
        "remark": remark,
        "status": status,
        "login_days": 0,
    }


def _category_ids(db: sqlite3.Connection) -> dict[str, int]:
    """Category name → id: the default is 0, the others number from 1 in name order. Every
    user row counts, so a category keeps its id after its last friend is deleted."""
    names = {row[0] for row in db.execute("SELECT DISTINCT category FROM users")}
    names.discard(DEFAULT_CATEGORY)
    return {DEFAULT_CATEGORY: 0} | {name: i for i, name in enumerate(sorted(names), start=1)}


def _friend_entry(row: sqlite3.Row, category_id: int) -> dict[str, Any]:
    return {
        "user_id": row["user_id"],
        "nickname": row["nickname"],
        "remark": row["remark"],
        "sex": row["sex"],
        "level": 0,
        "age": row["age"],
        "qid": "",
        "login_days": 0,
        "birthday_year": 0,
        "birthday_month": 0,
        "birthday_day": 0,
        "phone_num": "",
        "email": "",
        "category_id": category_id,
        "categoryName": row["category"],
        "categoryId": category_id,
    }


def _friends(db: sqlite3.Connection) -> tuple[dict[str, int], list[dict[str, Any]]]:
    ids = _category_ids(db)
    rows = db.execute("SELECT * FROM users WHERE is_friend = 1 ORDER BY user_id").fetchall()
    return ids, [_friend_entry(row, ids[row["category"]]) for row in rows]


async def get_friend_list(sandbox: Sandbox, _: Params) -> list[dict[str, Any]]:
    _ids, friends = await sandbox.store.read(_friends)
    return friends


async def get_friends_with_category(sandbox: Sandbox, _: Params) -> list[dict[str, Any]]:
    """Every category, empty ones included, in id order."""
    ids, friends = await sandbox.store.read(_friends)
    return [
        {
            "categoryId": category_id,
            "categoryName": name,
            "categoryMbCount": len(
                members := [f for f in friends if f["categoryId"] == category_id]
            ),
            "buddyList": members,
        }
        for name, category_id in sorted(ids.items(), key=lambda item: item[1])
    ]


async def get_unidirectional_friend_list(_sandbox: Sandbox, _: Params) -> list[Any]:
    """Empty: simulated users only become friends both ways."""
    return []


async def get_online_clients(_sandbox: Sandbox, _: Params) -> list[Any]:
    """Empty: the simulated account is logged in on no other device."""
    return []


# --- changing friends ---------------------------------------------------------------------------


async def delete_friend(sandbox: Sandbox, p: DeleteFriend) -> dict[str, Any]:
    """The user stays known (as a stranger) without remark; `temp_block` refuses their later
    friend requests. QQ reports no event for this. Answers the kernel's general result, which
    NapCat passes through."""

    def write(db: sqlite3.Connection) -> None:
        friend(db, p.target)
        db.execute("UPDATE users SET is_friend = 0, remark = '' WHERE user_id = ?", (p.target,))
        if p.temp_block:
            db.execute(
                "INSERT OR REPLACE INTO kv (key, value) VALUES (?, '1')", (block_key(p.target),)
            )

    await sandbox.store.run(write)
    return nt.general_ok()


async def set_friend_remark(sandbox: Sandbox, p: SetFriendRemark) -> None:
    def write(db: sqlite3.Connection) -> None:
        friend(db, p.user_id)
        db.execute("UPDATE users SET remark = ? WHERE user_id = ?", (p.remark, p.user_id))

    await sandbox.store.run(write)


# --- likes --------------------------------------------------------------------------------------


def count_likes(db: sqlite3.Connection, key: str, user: sqlite3.Row, times: int) -> None:
    """Add `times` to today's likes under `key`; 1200 past LIKES_PER_DAY."""
    row = db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
    state = decode_json(row["value"]) if row else {"total": 0}
    date = time.strftime("%Y-%m-%d")
    today = state["today"] if state.get("date") == date else 0
    if today + times > LIKES_PER_DAY:
        raise ActionFailed(
            f"likes between the bot and user {user['user_id']} are limited to {LIKES_PER_DAY} "
            f"a day; {today} already given today"
        )
    state |= {
        "user_id": user["user_id"],
        "nickname": user["nickname"],
        "date": date,
        "today": today + times,
        "total": state["total"] + times,
        "last_time": int(time.time()),
    }
    db.execute(
        "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, encode_json(state, key))
    )


async def send_like(sandbox: Sandbox, p: SendLike) -> None:
    """The bot likes a known user's profile; QQ reports no event to the sender."""

    def write(db: sqlite3.Connection) -> None:
        if p.user_id == sandbox.self_id:
            raise ActionFailed("the bot cannot like its own profile")
        user = db.execute("SELECT * FROM users WHERE user_id = ?", (p.user_id,)).fetchone()
        if user is None:
            raise ActionFailed(f"user {p.user_id} does not exist in the sandbox")
        count_likes(db, f"send_like:{p.user_id}", user, p.times)
        db.execute("UPDATE users SET likes = likes + ? WHERE user_id = ?", (p.times, p.user_id))

    await sandbox.store.run(write)


async def sandbox_send_like(sandbox: Sandbox, p: SandboxSendLike) -> None:
    """A user likes the bot (`notify` profile_like)."""

    def write(db: sqlite3.Connection) -> str:
        if p.user_id == sandbox.self_id:
            raise ActionFailed(
                "sandbox_send_like is a simulated user liking the bot; use send_like"
            )
        user = ensure_user(db, p.user_id, p.nickname)
        count_likes(db, f"profile_like:{p.user_id}", user, p.times)
        return str(user["nickname"])

    nickname = await sandbox.store.run(write)
    sandbox.notice(
        "notify",
        sub_type="profile_like",
        operator_id=p.user_id,
        operator_nick=nickname,
        times=p.times,
    )


# --- pokes --------------------------------------------------------------------------------------


def _poke_raw_info(poker: int, target: int) -> list[dict[str, str]]:
    """The gray-tip items NapCat passes through as `raw_info` ("<poker> 戳了戳 <target>")."""
    return [
        {"col": "1", "nm": "", "type": "qq", "uid": uid_of(poker)},
        {"jp": "", "src": "", "type": "img"},
        {"txt": "戳了戳", "type": "nor"},
        {"col": "1", "nm": "", "tp": "0", "type": "qq", "uid": uid_of(target)},
        {"txt": "", "type": "nor"},
    ]


async def sandbox_poke(sandbox: Sandbox, p: SandboxPoke) -> None:
    """A user pokes the bot or a member of a shared group, or (privately) the bot or themselves.
    A friend poke carries `sender_id` and no `group_id`, as NapCat reports it."""
    target = p.target_id if p.target_id is not None else sandbox.self_id
    group_id = p.group_id

    def check(db: sqlite3.Connection) -> None:
        if group_id is None:
            friend(db, p.user_id)
            if target not in (sandbox.self_id, p.user_id):
                raise ActionFailed(
                    f"in a private chat user {p.user_id} can poke the bot or themselves only"
                )
            return
        bot_in_group(db, group_id, sandbox.self_id)
        member(db, group_id, p.user_id)
        member(db, group_id, target)

    await sandbox.store.run(check)
    where = {"sender_id": p.user_id} if group_id is None else {"group_id": group_id}
    sandbox.notice(
        "notify",
        sub_type="poke",
        **where,
        user_id=p.user_id,
        target_id=target,
        raw_info=_poke_raw_info(p.user_id, target),
    )


HANDLERS: HandlerTable = {
    "get_stranger_info": get_stranger_info,
    "get_friend_list": get_friend_list,
    "get_friends_with_category": get_friends_with_category,
    "get_unidirectional_friend_list": get_unidirectional_friend_list,
    "get_online_clients": get_online_clients,
    "delete_friend": delete_friend,
    "set_friend_remark": set_friend_remark,
    "send_like": send_like,
    "sandbox_send_like": sandbox_send_like,
    "sandbox_poke": sandbox_poke,
}
