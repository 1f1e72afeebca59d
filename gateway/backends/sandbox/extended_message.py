"""Sandbox actions: NapCat's extended message actions.

Emoji reactions are stored per message, emoji and user, so `set_msg_emoji_like`,
`fetch_emoji_like` and `get_emoji_likes` agree, and every change is reported as a
`group_msg_emoji_like` notice (QQ has reactions on group messages only). A single-message
forward sends a copy of the stored message as a new message. Favourites are stored rows; the
read marks of `_mark_all_as_read` are the `kv` keys `mark_msg_as_read` writes.

Custom faces, inline keyboards and ark cards, albums and the system actions are in `faces`,
`cards`, `albums` and `extended_system`.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Any

from gateway.actions.catalog import NoParams
from gateway.actions.extended_message import (
    CreateCollection,
    FetchEmojiLike,
    FetchPttText,
    ForwardSingleMsg,
    GetCollectionList,
    GetEmojiLikes,
    SandboxSetMsgEmojiLike,
    SetMsgEmojiLike,
)
from gateway.backends.sandbox.membership import find_member
from gateway.backends.sandbox.message_store import load_message
from gateway.backends.sandbox.sending import send_to_friend, send_to_group
from gateway.backends.sandbox.store import encode_json
from gateway.protocol.envelope import ActionFailed, BadRequest
from gateway.protocol.message import Message

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import HandlerTable, Sandbox

_OK = {"result": 0, "errMsg": ""}


# --- emoji reactions ----------------------------------------------------------------------------


def emoji_type(emoji_id: str) -> str:
    """NapCat's rule: ids longer than 3 digits are Unicode emoji (type 2), else QQ faces (1)."""
    return "2" if len(emoji_id) > 3 else "1"


async def react(sandbox: Sandbox, message_id: int, emoji_id: str, user_id: int, add: bool) -> None:
    """Add or take back `user_id`'s reaction; a change emits `group_msg_emoji_like`."""

    def write(db: sqlite3.Connection) -> tuple[int, bool, int]:
        message = load_message(db, message_id)
        if message["message_type"] != "group":
            raise ActionFailed(
                f"message {message_id} is a private message; QQ has emoji reactions on group "
                "messages only"
            )
        group_id = message["peer_id"]
        if find_member(db, group_id, user_id) is None:
            who = "the bot is" if user_id == sandbox.self_id else f"user {user_id} is"
            raise ActionFailed(f"{who} not a member of group {group_id}")
        if add:
            cursor = db.execute(
                "INSERT OR IGNORE INTO emoji_likes (message_id, emoji_id, emoji_type, user_id, "
                "time) VALUES (?,?,?,?,?)",
                (message_id, emoji_id, emoji_type(emoji_id), user_id, int(time.time())),
            )
        else:
            cursor = db.execute(
                "DELETE FROM emoji_likes WHERE message_id = ? AND emoji_id = ? AND user_id = ?",
                (message_id, emoji_id, user_id),
            )
        count = db.execute(
            "SELECT COUNT(*) FROM emoji_likes WHERE message_id = ? AND emoji_id = ?",
            (message_id, emoji_id),
        ).fetchone()[0]
        return group_id, cursor.rowcount > 0, count

    group_id, changed, count = await sandbox.store.run(write)
    if changed:
        sandbox.notice(
            "group_msg_emoji_like",
            group_id=group_id,
            user_id=user_id,
            message_id=message_id,
            likes=[{"emoji_id": emoji_id, "count": count}],
            is_add=add,
        )


def _likers(db: sqlite3.Connection, message_id: int, emoji_id: str, kind: str) -> list[sqlite3.Row]:
    load_message(db, message_id)
    rows: list[sqlite3.Row] = db.execute(
        "SELECT l.user_id, COALESCE(u.nickname, '') AS nickname FROM emoji_likes l "
        "LEFT JOIN users u USING (user_id) WHERE l.message_id = ? AND l.emoji_id = ? "
        "AND l.emoji_type = ? ORDER BY l.time, l.user_id",
        (message_id, emoji_id, kind),
    ).fetchall()
    return rows


async def set_msg_emoji_like(sandbox: Sandbox, p: SetMsgEmojiLike) -> dict[str, Any]:
    await react(sandbox, p.message_id, p.emoji_id, sandbox.self_id, p.set)
    return dict(_OK)


async def sandbox_set_msg_emoji_like(sandbox: Sandbox, p: SandboxSetMsgEmojiLike) -> None:
    await react(sandbox, p.message_id, p.emoji_id, p.user_id, p.set)


async def fetch_emoji_like(sandbox: Sandbox, p: FetchEmojiLike) -> dict[str, Any]:
    if p.cookie and not p.cookie.isdigit():
        raise BadRequest(f"cookie: {p.cookie!r} is not a cookie this sandbox issued")
    start = int(p.cookie or 0)
    rows = await sandbox.store.read(lambda db: _likers(db, p.message_id, p.emojiId, p.emojiType))
    page = rows[start : start + p.count]
    last = start + p.count >= len(rows)
    return {
        "emojiLikesList": [
            {"tinyId": str(r["user_id"]), "nickName": r["nickname"], "headUrl": ""} for r in page
        ],
        "cookie": "" if last else str(start + p.count),
        "isLastPage": last,
        "isFirstPage": start == 0,
        **_OK,
    }


async def get_emoji_likes(sandbox: Sandbox, p: GetEmojiLikes) -> dict[str, Any]:
    def read(db: sqlite3.Connection) -> list[sqlite3.Row]:
        message = load_message(db, p.message_id)
        if p.group_id is not None and (
            message["message_type"] != "group" or message["peer_id"] != p.group_id
        ):
            raise ActionFailed(f"message {p.message_id} is not in group {p.group_id}")
        return _likers(db, p.message_id, p.emoji_id, p.emoji_type or emoji_type(p.emoji_id))

    rows = await sandbox.store.read(read)
    if p.count:
        rows = rows[: p.count]
    return {
        "emoji_like_list": [
            {"user_id": str(r["user_id"]), "nick_name": r["nickname"]} for r in rows
        ]
    }


# --- forwarding and reading ---------------------------------------------------------------------


async def _forward(sandbox: Sandbox, p: ForwardSingleMsg, expected: str) -> None:
    message = await sandbox.store.read(lambda db: load_message(db, p.message_id))
    segments: Message = [{"type": s["type"], "data": dict(s["data"])} for s in message["segments"]]
    if p.group_id is not None:
        await send_to_group(sandbox, p.group_id, segments)
    elif p.user_id is not None:
        await send_to_friend(sandbox, p.user_id, segments)
    else:
        raise BadRequest(f"missing required parameter '{expected}'")


async def forward_friend_single_msg(sandbox: Sandbox, p: ForwardSingleMsg) -> None:
    await _forward(sandbox, p, "user_id")


async def forward_group_single_msg(sandbox: Sandbox, p: ForwardSingleMsg) -> None:
    await _forward(sandbox, p, "group_id")


async def mark_all_as_read(sandbox: Sandbox, _: NoParams) -> None:
    """Every chat's read mark moves to its newest message (the keys `mark_msg_as_read` uses)."""
    await sandbox.store.run(
        lambda db: db.execute(
            "INSERT OR REPLACE INTO kv (key, value) SELECT 'read:' || message_type || ':' || "
            "peer_id, CAST(MAX(message_id) AS TEXT) FROM messages GROUP BY message_type, peer_id"
        )
    )


async def fetch_ptt_text(sandbox: Sandbox, p: FetchPttText) -> dict[str, str]:
    message = await sandbox.store.read(lambda db: load_message(db, p.message_id))
    if not any(s["type"] == "record" for s in message["segments"]):
        raise ActionFailed(f"message {p.message_id} has no voice record")
    raise ActionFailed(
        "no speech recognition in the sandbox: voice records cannot be turned into text here "
        "(the relay backend asks QQ)"
    )


# --- favourites ---------------------------------------------------------------------------------


def _category(segments: Message) -> int:
    kinds = {s["type"] for s in segments}
    if "image" in kinds:
        return 2
    if kinds & {"record", "video", "file"}:
        return 3
    return 1


def _brief(segments: Message) -> str:
    text = "".join(s["data"].get("text", "") for s in segments if s["type"] == "text").strip()
    if not text:
        text = " ".join(f"[{s['type']}]" for s in segments)
    return text[:100]


async def create_collection(sandbox: Sandbox, p: CreateCollection) -> dict[str, Any]:
    def write(db: sqlite3.Connection) -> int:
        row: tuple[int, str, str, int | None, int, int]
        if p.message_id is not None:
            message = load_message(db, p.message_id)
            segments = message["segments"]
            row = (
                _category(segments),
                p.brief if p.brief is not None else _brief(segments),
                p.rawData if p.rawData is not None else encode_json(segments, "message"),
                p.message_id,
                message["sender_id"],
                message["peer_id"] if message["message_type"] == "group" else 0,
            )
        else:
            raw = p.rawData or ""
            row = (1, p.brief if p.brief is not None else raw[:100], raw, None, sandbox.self_id, 0)
        cursor = db.execute(
            "INSERT INTO collections (category, brief, raw_data, message_id, author_id, group_id, "
            "time) VALUES (?,?,?,?,?,?,?)",
            (*row, int(time.time())),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    collection_id = await sandbox.store.run(write)
    return {**_OK, "cid": str(collection_id)}


async def get_collection_list(sandbox: Sandbox, p: GetCollectionList) -> dict[str, Any]:
    def read(db: sqlite3.Connection) -> list[sqlite3.Row]:
        rows: list[sqlite3.Row] = db.execute(
            "SELECT * FROM collections WHERE ? = 0 OR category = ? "
            "ORDER BY collection_id DESC LIMIT ?",
            (p.category, p.category, p.count + 1),
        ).fetchall()
        return rows

    rows = await sandbox.store.read(read)
    items = [
        {
            "cid": str(r["collection_id"]),
            "type": r["category"],
            "category": r["category"],
            "brief": r["brief"],
            "rawData": r["raw_data"],
            "message_id": r["message_id"],
            "author": {"numId": str(r["author_id"]), "groupId": str(r["group_id"])},
            "collectTime": r["time"],
        }
        for r in rows[: p.count]
    ]
    return {
        **_OK,
        "collectionSearchList": {
            "collectionItemList": items,
            "hasMore": len(rows) > p.count,
            "bottomTimeStamp": str(items[-1]["collectTime"]) if items else "0",
        },
    }


HANDLERS: HandlerTable = {
    "set_msg_emoji_like": set_msg_emoji_like,
    "sandbox_set_msg_emoji_like": sandbox_set_msg_emoji_like,
    "fetch_emoji_like": fetch_emoji_like,
    "get_emoji_likes": get_emoji_likes,
    "forward_friend_single_msg": forward_friend_single_msg,
    "forward_group_single_msg": forward_group_single_msg,
    "_mark_all_as_read": mark_all_as_read,
    "fetch_ptt_text": fetch_ptt_text,
    "create_collection": create_collection,
    "get_collection_list": get_collection_list,
}
