"""Sandbox actions: the simulated users' side of the conversation.

`sandbox_receive_message` stores and publishes a message from a simulated user (a stranger for
an unknown id; joining a group by speaking in it; a private message with `group_id` from someone
who is not a friend is a temporary session from that group), `sandbox_recall_message` recalls
one, and `sandbox_emit` publishes an arbitrary event as the account.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Any

from gateway.actions.message import MessageId, SandboxEmit, SandboxReceiveMessage
from gateway.backends.sandbox.history import publish_recall
from gateway.backends.sandbox.membership import bot_speaks_in, ensure_user, speaker
from gateway.backends.sandbox.message_store import (
    NO_SOURCES,
    check_replies,
    has_media,
    load_message,
    message_event,
    parse_message,
    prepare_media,
    store_media,
    store_message,
    temp_sub_type,
)
from gateway.backends.sandbox.store import encode_json
from gateway.protocol.envelope import ActionFailed, BadRequest
from gateway.protocol.message import Message

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import HandlerTable, Sandbox


async def sandbox_receive_message(sandbox: Sandbox, p: SandboxReceiveMessage) -> Any:
    segments = parse_message(p.message, p.auto_escape)
    if p.message_type == "group":
        if p.group_id is None:
            raise BadRequest("missing required parameter 'group_id' for a group message")
        return await _receive_group(sandbox, p, p.group_id, segments)
    return await _receive_private(sandbox, p, segments)


async def _receive_private(
    sandbox: Sandbox, p: SandboxReceiveMessage, segments: Message
) -> dict[str, Any]:
    sources = await prepare_media(sandbox, segments) if has_media(segments) else NO_SOURCES

    def write(db: sqlite3.Connection) -> dict[str, Any]:
        check_replies(db, segments)
        store_media(db, segments, sources)
        user = ensure_user(db, p.user_id, p.sender.nickname)
        sender = {"user_id": p.user_id, "nickname": user["nickname"], "card": ""}
        sub_type = "friend" if user["is_friend"] else "other"
        if p.group_id is not None and not user["is_friend"]:
            # A temporary session: both must be in the group (a friend's chat stays a friend's).
            bot_speaks_in(db, p.group_id, sandbox.self_id)
            if speaker(db, p.group_id, p.user_id) is None:
                raise ActionFailed(
                    f"user {p.user_id} is not in group {p.group_id}: no temporary session"
                )
            sub_type = temp_sub_type(p.group_id)
        return store_message(db, "private", p.user_id, p.user_id, segments, sender, sub_type)

    message = await sandbox.store.run(write)
    sandbox.publish(message_event(message, sandbox.self_id))
    return {"message_id": message["message_id"]}


async def _receive_group(
    sandbox: Sandbox, p: SandboxReceiveMessage, group_id: int, segments: Message
) -> dict[str, Any]:
    sources = await prepare_media(sandbox, segments) if has_media(segments) else NO_SOURCES

    def write(db: sqlite3.Connection) -> tuple[dict[str, Any], str, bool, str | None]:
        group, _ = bot_speaks_in(db, group_id, sandbox.self_id)
        check_replies(db, segments)
        store_media(db, segments, sources)
        user = ensure_user(db, p.user_id, p.sender.nickname)
        joined = speaker(db, group_id, p.user_id) is None
        if joined:
            db.execute(
                "INSERT INTO members (group_id, user_id, join_time) VALUES (?,?,?)",
                (group_id, p.user_id, int(time.time())),
            )
        member = speaker(db, group_id, p.user_id)
        assert member is not None
        if member["mute_until"] > time.time():
            raise ActionFailed(f"user {p.user_id} is muted in group {group_id}")
        if group["whole_ban"] and member["role"] == "member":
            raise ActionFailed(f"group {group_id} is muted for members (whole ban)")
        old_card = None
        if p.sender.card is not None and p.sender.card != member["card"]:
            old_card = member["card"]
            db.execute(
                "UPDATE members SET card = ? WHERE group_id = ? AND user_id = ?",
                (p.sender.card, group_id, p.user_id),
            )
        sender = {
            "user_id": p.user_id,
            "nickname": user["nickname"],
            "card": p.sender.card if p.sender.card is not None else member["card"],
            "role": member["role"],
        }
        stored = store_message(db, "group", group_id, p.user_id, segments, sender)
        return stored, group["group_name"], joined, old_card

    message, name, joined, old_card = await sandbox.store.run(write)
    if joined:
        sandbox.notice(
            "group_increase",
            sub_type="approve",
            group_id=group_id,
            user_id=p.user_id,
            operator_id=0,
        )
    if old_card is not None:
        sandbox.notice(
            "group_card",
            group_id=group_id,
            user_id=p.user_id,
            card_new=message["sender"]["card"],
            card_old=old_card,
        )
    sandbox.publish(message_event(message, sandbox.self_id, name))
    return {"message_id": message["message_id"]}


async def sandbox_recall_message(sandbox: Sandbox, p: MessageId) -> None:
    def recall(db: sqlite3.Connection) -> dict[str, Any]:
        message = load_message(db, p.message_id)
        if message["sender_id"] == sandbox.self_id:
            raise ActionFailed(
                "sandbox_recall_message recalls a simulated user's message; "
                "use delete_msg for the bot's own"
            )
        db.execute("UPDATE messages SET recalled = 1 WHERE message_id = ?", (p.message_id,))
        return message

    message = await sandbox.store.run(recall)
    publish_recall(sandbox, message, operator_id=message["sender_id"])


async def sandbox_emit(sandbox: Sandbox, p: SandboxEmit) -> None:
    """1400 for an event that could not be encoded (checked as a stored value is): what is
    published must reach every subscriber."""
    if not isinstance(p.event.get("post_type"), str):
        raise BadRequest("event: a post_type string is required")
    event = {"time": int(time.time()), "self_id": sandbox.self_id, **p.event}
    encode_json(event, "event")
    sandbox.publish(event)


HANDLERS: HandlerTable = {
    "sandbox_receive_message": sandbox_receive_message,
    "sandbox_recall_message": sandbox_recall_message,
    "sandbox_emit": sandbox_emit,
}
