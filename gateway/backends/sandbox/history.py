"""Sandbox actions: reading stored messages back, recalling them, and read marks.

A recalled message stays in the table (`recalled = 1`): `get_msg` answers 1200 for it and the
histories leave it out. `mark_msg_as_read` keeps the last read message id per conversation in
the `kv` table (`read:<type>:<peer>`).
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from gateway.actions.message import GetFriendMsgHistory, GetGroupMsgHistory, MarkAsRead, MessageId
from gateway.backends.sandbox.forwards import with_content
from gateway.backends.sandbox.membership import ROLE_RANK
from gateway.backends.sandbox.membership import find_member as member_row
from gateway.backends.sandbox.message_store import (
    load_message,
    message_event,
    require_group,
    row_dict,
)
from gateway.protocol.envelope import ActionFailed, BadRequest

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import HandlerTable, Sandbox


def group_name_of(db: sqlite3.Connection, group_id: int) -> str:
    row = db.execute("SELECT group_name FROM groups WHERE group_id = ?", (group_id,)).fetchone()
    return str(row["group_name"]) if row else ""


async def get_msg(sandbox: Sandbox, p: MessageId) -> dict[str, Any]:
    """The message object (message_store.message_event), a forward's nodes as its `content`,
    and `emoji_likes_list`: the reactions, one entry per emoji (NapCat's get_msg)."""

    def read(db: sqlite3.Connection) -> dict[str, Any]:
        message = load_message(db, p.message_id)
        name = group_name_of(db, message["peer_id"]) if message["message_type"] == "group" else ""
        event = message_event(message, sandbox.self_id, name)
        with_content(db, event, sandbox.self_id)
        event["emoji_likes_list"] = emoji_likes_list(db, p.message_id)
        return event

    return await sandbox.store.read(read)


def emoji_likes_list(db: sqlite3.Connection, message_id: int) -> list[dict[str, str]]:
    """`[{emoji_id, emoji_type, likes_cnt}]` of a message, in the order the emojis came."""
    rows = db.execute(
        "SELECT emoji_id, emoji_type, COUNT(*) AS likes, MIN(time) AS first FROM emoji_likes "
        "WHERE message_id = ? GROUP BY emoji_id, emoji_type ORDER BY first, emoji_id",
        (message_id,),
    ).fetchall()
    return [
        {"emoji_id": r["emoji_id"], "emoji_type": r["emoji_type"], "likes_cnt": str(r["likes"])}
        for r in rows
    ]


async def _history(
    sandbox: Sandbox,
    message_type: str,
    peer: int,
    anchor: int | None,
    count: int,
    reverse: bool,
) -> dict[str, Any]:
    def read(db: sqlite3.Connection) -> list[dict[str, Any]]:
        if message_type == "group":
            require_group(db, peer, sandbox.self_id)
        rows = db.execute(
            "SELECT * FROM messages WHERE message_type = ? AND peer_id = ? AND recalled = 0 "
            "AND message_id <= ? ORDER BY message_id DESC LIMIT ?",
            (message_type, peer, anchor or 2**31, count),
        ).fetchall()
        name = group_name_of(db, peer) if message_type == "group" else ""
        events = [message_event(row_dict(r), sandbox.self_id, name) for r in rows]
        for event in events:
            with_content(db, event, sandbox.self_id)
        return events

    events = await sandbox.store.read(read)
    return {"messages": events if reverse else events[::-1]}


async def get_group_msg_history(sandbox: Sandbox, p: GetGroupMsgHistory) -> Any:
    return await _history(sandbox, "group", p.group_id, p.message_seq, p.count, p.reverse_order)


async def get_friend_msg_history(sandbox: Sandbox, p: GetFriendMsgHistory) -> Any:
    return await _history(sandbox, "private", p.user_id, p.message_seq, p.count, p.reverse_order)


async def delete_msg(sandbox: Sandbox, p: MessageId) -> None:
    self_id = sandbox.self_id

    def recall(db: sqlite3.Connection) -> dict[str, Any]:
        message = load_message(db, p.message_id)
        if message["sender_id"] != self_id:
            if message["message_type"] != "group":
                raise ActionFailed("the bot can only recall its own private messages")
            me = member_row(db, message["peer_id"], self_id)
            them = member_row(db, message["peer_id"], message["sender_id"])
            my_rank = ROLE_RANK[me["role"]] if me else -1
            their_rank = ROLE_RANK[them["role"]] if them else 0
            if my_rank <= their_rank:
                raise ActionFailed(
                    f"the bot may not recall message {p.message_id}: it needs a "
                    "higher role than the sender"
                )
        db.execute("UPDATE messages SET recalled = 1 WHERE message_id = ?", (p.message_id,))
        return message

    message = await sandbox.store.run(recall)
    publish_recall(sandbox, message, operator_id=self_id)
    if sandbox.shared_world is not None:  # the copies other sandbox accounts hold
        sandbox.shared_world.recalled(sandbox, message)


def publish_recall(sandbox: Sandbox, message: dict[str, Any], operator_id: int) -> None:
    """`group_recall` or `friend_recall` for a recalled message."""
    if message["message_type"] == "group":
        sandbox.notice(
            "group_recall",
            group_id=message["peer_id"],
            user_id=message["sender_id"],
            operator_id=operator_id,
            message_id=message["message_id"],
        )
    else:
        sandbox.notice(
            "friend_recall", user_id=message["peer_id"], message_id=message["message_id"]
        )


async def mark_msg_as_read(sandbox: Sandbox, p: MarkAsRead) -> None:
    if p.user_id is None and p.group_id is None and p.message_id is None:
        raise BadRequest("mark_msg_as_read: give user_id, group_id or message_id")

    def mark(db: sqlite3.Connection) -> None:
        if p.message_id is not None:
            message = load_message(db, p.message_id)
            key = f"read:{message['message_type']}:{message['peer_id']}"
            last = message["message_id"]
        else:
            kind, peer = ("group", p.group_id) if p.group_id is not None else ("private", p.user_id)
            key = f"read:{kind}:{peer}"
            row = db.execute(
                "SELECT MAX(message_id) FROM messages WHERE message_type = ? AND peer_id = ?",
                (kind, peer),
            ).fetchone()
            last = row[0] or 0
        db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, str(last)))

    await sandbox.store.run(mark)


HANDLERS: HandlerTable = {
    "get_msg": get_msg,
    "get_group_msg_history": get_group_msg_history,
    "get_friend_msg_history": get_friend_msg_history,
    "delete_msg": delete_msg,
    "mark_msg_as_read": mark_msg_as_read,
}
