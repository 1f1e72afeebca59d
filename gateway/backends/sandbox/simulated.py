"""Sandbox actions: the simulated users' side of the conversation.

`sandbox_receive_message` stores and publishes a message from a simulated user (a stranger for
an unknown id; joining a group by speaking in it; a private message with `group_id` from someone
who is not a friend is a temporary session from that group), `sandbox_recall_message` recalls
one, and `sandbox_emit` publishes an arbitrary event as the account. Another sandbox account's
bot in the same world is received the same way (`write_group_receipt`, `write_private_receipt`:
see exchange.py).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from gateway.actions.message import MessageId, SandboxEmit, SandboxReceiveMessage
from gateway.backends.sandbox.history import publish_recall
from gateway.backends.sandbox.media import Source
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
    group_id = p.group_id
    if p.message_type == "group" and group_id is None:
        raise BadRequest("missing required parameter 'group_id' for a group message")
    who = Incoming(p.user_id, p.sender.nickname, p.sender.card)
    sources = await prepare_media(sandbox, segments) if has_media(segments) else NO_SOURCES
    self_id = sandbox.self_id
    if p.message_type == "group" and group_id is not None:
        receipt = await sandbox.store.run(
            lambda db: write_group_receipt(db, self_id, group_id, who, segments, sources)
        )
        publish_group_receipt(sandbox, receipt)
        return {"message_id": receipt.message["message_id"]}
    message = await sandbox.store.run(
        lambda db: write_private_receipt(db, self_id, who, segments, sources, group_id)
    )
    sandbox.publish(message_event(message, self_id))
    return {"message_id": message["message_id"]}


# --- the receiving side, shared with other sandbox accounts' messages (exchange.py) ------------


@dataclass(frozen=True, slots=True)
class Incoming:
    """Who a received message is from, as the receiving account is told."""

    user_id: int
    nickname: str | None = None
    """The name of a user the account does not know yet (`User <id>` when None)."""
    card: str | None = None
    """The sender's group card: a change is stored and reported (`group_card` notice)."""
    renames: bool = False
    """Whether `nickname` is the sender's current name, which a known user's row takes (another
    sandbox account's bot: the name it has now); otherwise a known user keeps the stored one."""


class GroupReceipt(NamedTuple):
    """A group message received and stored, and what publishing it must report."""

    message: dict[str, Any]
    group_name: str
    joined: bool
    """The sender was not a member and joined by speaking (a `group_increase` notice)."""
    old_card: str | None
    """The sender's card before this message changed it, or None (a `group_card` notice)."""


def write_private_receipt(
    db: sqlite3.Connection,
    self_id: int,
    who: Incoming,
    segments: Message,
    sources: Mapping[str, Source],
    group_id: int | None = None,
) -> dict[str, Any]:
    """Inside a transaction: store a private message to the account; the stored row. From
    someone who is not a friend, with `group_id`, it is a temporary session from that group
    (1200 unless both are members); a friend's chat stays a friend's."""
    check_replies(db, segments)
    segments = store_media(db, segments, sources)
    user = _known(db, who)
    sender = {"user_id": who.user_id, "nickname": user["nickname"], "card": ""}
    sub_type = "friend" if user["is_friend"] else "other"
    if group_id is not None and not user["is_friend"]:
        bot_speaks_in(db, group_id, self_id)
        if speaker(db, group_id, who.user_id) is None:
            raise ActionFailed(
                f"user {who.user_id} is not in group {group_id}: no temporary session"
            )
        sub_type = temp_sub_type(group_id)
    return store_message(db, "private", who.user_id, who.user_id, segments, sender, sub_type)


def write_group_receipt(
    db: sqlite3.Connection,
    self_id: int,
    group_id: int,
    who: Incoming,
    segments: Message,
    sources: Mapping[str, Source],
) -> GroupReceipt:
    """Inside a transaction: store a group message to the account (1200 when the account is
    not in the group, or the sender is muted there). A sender who is not a member joins."""
    group, _ = bot_speaks_in(db, group_id, self_id)
    check_replies(db, segments)
    segments = store_media(db, segments, sources)
    user = _known(db, who)
    joined = speaker(db, group_id, who.user_id) is None
    if joined:
        db.execute(
            "INSERT INTO members (group_id, user_id, join_time) VALUES (?,?,?)",
            (group_id, who.user_id, int(time.time())),
        )
    member = speaker(db, group_id, who.user_id)
    assert member is not None
    if member["mute_until"] > time.time():
        raise ActionFailed(f"user {who.user_id} is muted in group {group_id}")
    if group["whole_ban"] and member["role"] == "member":
        raise ActionFailed(f"group {group_id} is muted for members (whole ban)")
    old_card = None
    if who.card is not None and who.card != member["card"]:
        old_card = member["card"]
        db.execute(
            "UPDATE members SET card = ? WHERE group_id = ? AND user_id = ?",
            (who.card, group_id, who.user_id),
        )
    sender = {
        "user_id": who.user_id,
        "nickname": user["nickname"],
        "card": who.card if who.card is not None else member["card"],
        "role": member["role"],
    }
    stored = store_message(db, "group", group_id, who.user_id, segments, sender)
    return GroupReceipt(stored, group["group_name"], joined, old_card)


def publish_group_receipt(sandbox: Sandbox, receipt: GroupReceipt) -> None:
    """Publish a stored group message: the sender's joining and card change first."""
    message = receipt.message
    group_id, user_id = message["peer_id"], message["sender_id"]
    if receipt.joined:
        sandbox.notice(
            "group_increase", sub_type="approve", group_id=group_id, user_id=user_id, operator_id=0
        )
    if receipt.old_card is not None:
        sandbox.notice(
            "group_card",
            group_id=group_id,
            user_id=user_id,
            card_new=message["sender"]["card"],
            card_old=receipt.old_card,
        )
    sandbox.publish(message_event(message, sandbox.self_id, receipt.group_name))


def _known(db: sqlite3.Connection, who: Incoming) -> sqlite3.Row:
    user = ensure_user(db, who.user_id, who.nickname)
    if who.renames and who.nickname is not None and user["nickname"] != who.nickname:
        db.execute("UPDATE users SET nickname = ? WHERE user_id = ?", (who.nickname, who.user_id))
        user = ensure_user(db, who.user_id, who.nickname)
    return user


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
