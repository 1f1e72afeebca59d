"""Sandbox actions: NapCat's extended account actions.

State, all in `kv` unless said otherwise:

- `account:online_status`: `{status, ext_status, battery_status, custom}` as `set_online_status`
  and `set_diy_online_status` left it (`custom` is `{face_id, face_type, wording}` or null);
  `get_status` reports it as `online_status` and `nc_get_user_status` as the bot's status.
- `account:avatar`: the media id of the image `set_qq_avatar` stored (see `media`).
- the signature is `account.long_nick`, which `get_stranger_info` of the bot reads.
- `credentials:rkey`: `{created_at, private, group}`, the current rkeys, renewed once RKEY_TTL has
  passed. They and the client key are derived from the login's seed in `credentials`, so they are
  stable within a login and change with it.

Profile likes are read from the day counters `friends` keeps (`profile_like:<id>`,
`send_like:<id>`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from gateway.actions.catalog import NoParams
from gateway.actions.extended_account import (
    DIY_EXT_STATUS,
    GetProfileLike,
    GetRecentContact,
    SetDiyOnlineStatus,
    SetLongNick,
    SetOnlineStatus,
    SetQQAvatar,
    UserId,
)
from gateway.actions.friend import LIKES_PER_DAY
from gateway.backends.sandbox import media
from gateway.backends.sandbox.credentials import _SEED, _kv
from gateway.backends.sandbox.friends import uid_of
from gateway.backends.sandbox.message_store import message_event, row_dict
from gateway.backends.sandbox.store import decode_json, encode_json
from gateway.protocol.envelope import ActionFailed, BadRequest

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import HandlerTable, Sandbox

STATUS_KEY = "account:online_status"
AVATAR_KEY = "account:avatar"
RKEY_KEY = "credentials:rkey"
RKEY_TTL = 3600
"""Seconds an rkey pair is valid; then a new pair is issued."""
OFFLINE = 20
"""The status QQ reports for an account that is not logged in."""
_DEFAULT_STATUS: dict[str, Any] = {
    "status": 10,
    "ext_status": 0,
    "battery_status": 0,
    "custom": None,
}
_IMAGE_TYPES = (".png", ".jpg", ".gif", ".bmp", ".webp")
_ROBOT_UIN_RANGES = (
    ("3328144510", "3328144510"),
    ("2854196301", "2854216399"),
    ("66600000", "66600000"),
    ("3889000000", "3889999999"),
    ("4010000000", "4019999999"),
)


def load_json(db: sqlite3.Connection, key: str, default: Any) -> Any:
    """The JSON value stored under `key`, or `default`."""
    row = db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
    return decode_json(row["value"]) if row is not None else default


def save_json(db: sqlite3.Connection, key: str, value: Any) -> None:
    """Store `value` as JSON under `key`; 1400 when it could not be read back and sent."""
    db.execute(
        "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, encode_json(value, key))
    )


# --- online status ------------------------------------------------------------------------------


def online_status(db: sqlite3.Connection) -> dict[str, Any]:
    """`{status, ext_status, battery_status, custom}`: what the bot last set (10/0/0 at first)."""
    stored: dict[str, Any] = load_json(db, STATUS_KEY, {})
    return _DEFAULT_STATUS | stored


async def set_online_status(sandbox: Sandbox, p: SetOnlineStatus) -> None:
    """Replace the status (a custom status is cleared)."""
    state = {"status": p.status, "ext_status": p.ext_status, "battery_status": p.battery_status}
    await sandbox.store.run(lambda db: save_json(db, STATUS_KEY, state | {"custom": None}))


async def set_diy_online_status(sandbox: Sandbox, p: SetDiyOnlineStatus) -> str:
    """A custom status: online (10) with extended status 2000, the emoji and the text; the
    battery level is kept. Answers NapCat's error text, empty on success."""
    custom = {"face_id": p.face_id or 0, "face_type": p.face_type, "wording": p.text}

    def write(db: sqlite3.Connection) -> None:
        state = online_status(db) | {"status": 10, "ext_status": DIY_EXT_STATUS}
        save_json(db, STATUS_KEY, state | {"custom": custom})

    await sandbox.store.run(write)
    return ""


async def nc_get_user_status(sandbox: Sandbox, p: UserId) -> dict[str, int]:
    """The bot's own status as set (20 when the account is offline); any other user the sandbox
    knows is online without extended status, as `get_stranger_info` says. Unknown users: 1200."""

    def read(db: sqlite3.Connection) -> dict[str, int]:
        if p.user_id == sandbox.self_id:
            if not db.execute("SELECT online FROM account").fetchone()[0]:
                return {"status": OFFLINE, "ext_status": 0}
            state = online_status(db)
            return {"status": state["status"], "ext_status": state["ext_status"]}
        if db.execute("SELECT 1 FROM users WHERE user_id = ?", (p.user_id,)).fetchone() is None:
            raise ActionFailed(f"user {p.user_id} does not exist in the sandbox")
        return {"status": 10, "ext_status": 0}

    return await sandbox.store.read(read)


# --- profile ------------------------------------------------------------------------------------


async def set_self_longnick(sandbox: Sandbox, p: SetLongNick) -> dict[str, Any]:
    """Store the signature in `account.long_nick` (what `get_stranger_info` of the bot shows)."""
    await sandbox.store.run(
        lambda db: db.execute("UPDATE account SET long_nick = ?", (p.long_nick,))
    )
    return {"result": 0, "errMsg": ""}


def avatar(db: sqlite3.Connection) -> dict[str, Any] | None:
    """The avatar `set_qq_avatar` stored, described as `media.describe` does; None when unset."""
    media_id = load_json(db, AVATAR_KEY, None)
    row = media.media_row(db, media_id) if isinstance(media_id, str) else None
    return media.describe(db, row) if row is not None else None


async def set_qq_avatar(sandbox: Sandbox, p: SetQQAvatar) -> None:
    """Store the image as media and remember it as the avatar; 1400 when it is not an image."""

    source = await media.prepare(sandbox, p.file)

    def write(db: sqlite3.Connection) -> None:
        media_id = media.ingest(db, "image", source)["file"]
        if not media_id.lower().endswith(_IMAGE_TYPES):
            raise BadRequest("set_qq_avatar: parameter 'file' is not a PNG/JPEG/GIF/BMP/WebP")
        save_json(db, AVATAR_KEY, media_id)

    await sandbox.store.run(write)


# --- profile likes ------------------------------------------------------------------------------


def _likes(db: sqlite3.Connection, prefix: str, user_id: int | None) -> list[dict[str, Any]]:
    """The like counters under `prefix` (of one user when given), latest first."""
    if user_id is not None:
        states = [load_json(db, f"{prefix}{user_id}", None)]
    else:
        rows = db.execute(
            "SELECT value FROM kv WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)
        ).fetchall()
        states = [decode_json(row["value"]) for row in rows]
    found = [state for state in states if state]
    return sorted(found, key=lambda state: state["last_time"], reverse=True)


def _today(state: dict[str, Any]) -> int:
    return int(state["today"]) if state["date"] == time.strftime("%Y-%m-%d") else 0


def _vote_user(db: sqlite3.Connection, state: dict[str, Any]) -> dict[str, Any]:
    """NT's user entry of a like list, for the other side of one counter."""
    user = db.execute("SELECT * FROM users WHERE user_id = ?", (state["user_id"],)).fetchone()
    today = _today(state)
    return {
        "uid": uid_of(state["user_id"]),
        "uin": state["user_id"],
        "nick": user["nickname"] if user else state["nickname"],
        "age": user["age"] if user else 0,
        "gender": {"male": 1, "female": 2}.get(user["sex"] if user else "", 0),
        "isFriend": bool(user and user["is_friend"]),
        "count": state["total"],
        "bTodayVotedCnt": today,
        "bAvailableCnt": LIKES_PER_DAY - today,
        "latestTime": state["last_time"],
        "src": 0,
        "customId": 0,
        "giftCount": 0,
        "lastCharged": 0,
        "isvip": False,
        "isSvip": False,
    }


def _like_lists(
    db: sqlite3.Connection, states: list[dict[str, Any]], page: slice
) -> tuple[list[dict[str, Any]], int, int, int]:
    """(one page of user entries, total likes, likes today, time of the latest like)."""
    users = [_vote_user(db, state) for state in states[page]]
    total = sum(state["total"] for state in states)
    today = sum(_today(state) for state in states)
    return users, total, today, max((state["last_time"] for state in states), default=0)


async def get_profile_like(sandbox: Sandbox, p: GetProfileLike) -> dict[str, Any]:
    """`voteInfo`: likes the profile received; `favoriteInfo`: likes its owner gave. The sandbox
    knows the likes between the bot and users only: for the bot's profile, `sandbox_send_like`
    (received) and `send_like` (given); for a user's, the reverse with that user alone.
    `start`/`count` page each user list, latest first; the totals count every like."""
    owner = sandbox.self_id if p.user_id is None else p.user_id
    other = None if owner == sandbox.self_id else owner
    received, given = (
        ("send_like:", "profile_like:") if other is not None else ("profile_like:", "send_like:")
    )
    page = slice(p.start, p.start + p.count)

    def read(db: sqlite3.Connection) -> dict[str, Any]:
        votes, voted, new, visited = _like_lists(db, _likes(db, received, other), page)
        favorites, total, today, last = _like_lists(db, _likes(db, given, other), page)
        return {
            "uid": uid_of(owner),
            "time": str(int(time.time())),
            "favoriteInfo": {
                "userInfos": favorites,
                "total_count": total,
                "last_time": last,
                "today_count": today,
            },
            "voteInfo": {
                "userInfos": votes,
                "total_count": voted,
                "new_count": new,
                "new_nearby_count": 0,
                "last_visit_time": visited,
            },
        }

    return await sandbox.store.read(read)


# --- recent contacts ----------------------------------------------------------------------------


async def get_recent_contact(sandbox: Sandbox, p: GetRecentContact) -> list[dict[str, Any]]:
    """One entry per chat (friend or group) with its latest not recalled message, most recent
    chat first, in NapCat's shape (`lastestMsg` is the message as `get_msg` returns it)."""

    def read(db: sqlite3.Connection) -> list[dict[str, Any]]:
        rows = db.execute(
            "SELECT m.* FROM messages m JOIN (SELECT MAX(message_id) AS latest FROM messages "
            "WHERE recalled = 0 GROUP BY message_type, peer_id) l ON m.message_id = l.latest "
            "ORDER BY m.message_id DESC LIMIT ?",
            (p.count,),
        ).fetchall()
        return [_contact(db, row_dict(row), sandbox.self_id) for row in rows]

    return await sandbox.store.read(read)


def _contact(db: sqlite3.Connection, message: dict[str, Any], self_id: int) -> dict[str, Any]:
    group = message["message_type"] == "group"
    peer = message["peer_id"]
    if group:
        row = db.execute("SELECT * FROM groups WHERE group_id = ?", (peer,)).fetchone()
        name, remark = (row["group_name"], row["group_remark"]) if row else ("", "")
    else:
        row = db.execute("SELECT * FROM users WHERE user_id = ?", (peer,)).fetchone()
        name, remark = (row["nickname"], row["remark"]) if row else ("", "")
    sender = message["sender"]
    return {
        "lastestMsg": message_event(message, self_id, name if group else ""),
        "peerUin": str(peer),
        "remark": remark,
        "msgTime": str(message["time"]),
        "chatType": 2 if group else 1,
        "msgId": str(message["message_id"]),
        "sendNickName": sender.get("nickname", ""),
        "sendMemberName": sender.get("card", "") if group else "",
        "peerName": name,
    }


# --- keys ---------------------------------------------------------------------------------------


async def get_robot_uin_range(_sandbox: Sandbox, _: NoParams) -> list[dict[str, str]]:
    """The fixed ranges of QQ's official bot accounts that NapCat and LLOneBot report (the
    sandbox has no QQ server to ask)."""
    return [{"minUin": low, "maxUin": high} for low, high in _ROBOT_UIN_RANGES]


def _derive(db: sqlite3.Connection, purpose: str) -> bytes:
    """A secret for `purpose`, derived from this login's credential seed."""
    seed = _kv(db, _SEED, lambda: secrets.token_hex(32))
    return hmac.new(seed.encode(), purpose.encode(), hashlib.sha256).digest()


async def get_clientkey(sandbox: Sandbox, _: NoParams) -> dict[str, str]:
    """`{clientkey}`: 64 hex digits, the same for every call within a login."""
    key = await sandbox.store.run(lambda db: _derive(db, f"clientkey:{sandbox.self_id}"))
    return {"clientkey": key.hex().upper()}


def current_rkeys(db: sqlite3.Connection, self_id: int) -> dict[str, Any]:
    """`{created_at, private, group}`: the stored pair, or a new one once RKEY_TTL has passed."""
    state: dict[str, Any] | None = load_json(db, RKEY_KEY, None)
    now = int(time.time())
    if state is None or now >= state["created_at"] + RKEY_TTL:
        state = {"created_at": now}
        for kind in ("private", "group"):
            digest = _derive(db, f"rkey:{self_id}:{kind}:{now}")
            state[kind] = "&rkey=CAQS" + base64.urlsafe_b64encode(digest).decode().rstrip("=")
        save_json(db, RKEY_KEY, state)
    return state


async def get_rkey(sandbox: Sandbox, _: NoParams) -> list[dict[str, Any]]:
    """`[{type, rkey, created_at, ttl}]` for `private` and `group`."""
    state = await sandbox.store.run(lambda db: current_rkeys(db, sandbox.self_id))
    return [
        {"type": kind, "rkey": state[kind], "created_at": state["created_at"], "ttl": RKEY_TTL}
        for kind in ("private", "group")
    ]


async def nc_get_rkey(sandbox: Sandbox, _: NoParams) -> list[dict[str, Any]]:
    """NT's raw list: `type` 10 private, 20 group; `ttl` and `time` as strings."""
    state = await sandbox.store.run(lambda db: current_rkeys(db, sandbox.self_id))
    return [
        {
            "rkey": state[kind],
            "ttl": str(RKEY_TTL),
            "time": str(state["created_at"]),
            "type": code,
        }
        for kind, code in (("private", 10), ("group", 20))
    ]


async def get_rkey_server(sandbox: Sandbox, _: NoParams) -> dict[str, Any]:
    """`{private_rkey, group_rkey, expired_time, name}`, the shape of NapCat's rkey server."""
    state = await sandbox.store.run(lambda db: current_rkeys(db, sandbox.self_id))
    return {
        "private_rkey": state["private"],
        "group_rkey": state["group"],
        "expired_time": state["created_at"] + RKEY_TTL,
        "name": "onebot-gateway sandbox",
    }


HANDLERS: HandlerTable = {
    "set_online_status": set_online_status,
    "set_diy_online_status": set_diy_online_status,
    "nc_get_user_status": nc_get_user_status,
    "set_self_longnick": set_self_longnick,
    "set_qq_avatar": set_qq_avatar,
    "get_profile_like": get_profile_like,
    "get_recent_contact": get_recent_contact,
    "get_robot_uin_range": get_robot_uin_range,
    "get_clientkey": get_clientkey,
    "get_rkey": get_rkey,
    "nc_get_rkey": nc_get_rkey,
    "get_rkey_server": get_rkey_server,
}
