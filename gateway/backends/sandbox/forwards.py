"""Forward bundles: the nodes a forward message carries, and how bots read them back.

`send_forward` (sending.py) stores a bundle in the `forwards` table under a random id, the `id`
of the message's `forward` segment: `{"message_id": <the forward message>, "nodes": [...]}`, each
node `{user_id, nickname, time, content}`; a node whose content is nodes holds them as `node`
segments of the same form. (Bundles of earlier builds are the bare list of nodes.)

Read back (`get_forward_msg`, and the `content` of a forward segment in `get_msg` and the
histories), every node is a whole message object, as NapCat answers: `message_id`, `user_id`,
`sender`, `time`, `message`, `raw_message`, `font`… in the chat the forward was sent to. A node's
`message_id` is derived from the bundle id and the node's place: it can be shown, not fetched
(NapCat's inner ids cannot be used either). A nested forward is a `forward` segment with its
nodes as `content`.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from typing import Any

import structlog

from gateway.backends.sandbox.message_store import message_event, well_formed
from gateway.backends.sandbox.segment_view import view_raw
from gateway.backends.sandbox.store import decode_json
from gateway.protocol.message import Message, MessageError

log = structlog.get_logger("gateway.sandbox")


@dataclass(frozen=True, slots=True)
class Chat:
    """Where a bundle's messages are shown: the chat the forward was sent to (a private chat with
    each node's sender when that is unknown)."""

    message_type: str = "private"
    peer_id: int = 0
    group_name: str = ""


def forward_id_of(segments: Message) -> str | None:
    """The bundle id of the first `forward` segment, or None."""
    for segment in segments:
        if segment["type"] == "forward":
            return str(segment["data"].get("id", ""))
    return None


def load_bundle(db: sqlite3.Connection, forward_id: str) -> tuple[list[Any], int | None] | None:
    """(nodes, id of the message that sent them) of a stored bundle; None when there is none."""
    row = db.execute("SELECT nodes FROM forwards WHERE forward_id = ?", (forward_id,)).fetchone()
    if row is None:
        return None
    try:
        bundle = decode_json(row["nodes"])
    except ValueError as error:
        log.warning("stored_forward_unreadable", forward_id=forward_id, error=str(error))
        return [], None
    if isinstance(bundle, dict):
        nodes, message_id = bundle.get("nodes"), bundle.get("message_id")
        valid_id = isinstance(message_id, int) and 0 < message_id < 2**31  # not hand-edited
        return (nodes if isinstance(nodes, list) else []), (message_id if valid_id else None)
    return (bundle if isinstance(bundle, list) else []), None


def chat_of(db: sqlite3.Connection, message_id: int | None) -> Chat:
    """The chat of the message that sent a bundle (recalled or not)."""
    if message_id is None:
        return Chat()
    row = db.execute(
        "SELECT m.message_type, m.peer_id, COALESCE(g.group_name, '') AS group_name "
        "FROM messages m LEFT JOIN groups g ON m.message_type = 'group' AND g.group_id = m.peer_id "
        "WHERE m.message_id = ?",
        (message_id,),
    ).fetchone()
    if row is None:
        return Chat()
    return Chat(row["message_type"], row["peer_id"], row["group_name"])


def node_messages(
    nodes: list[Any], forward_id: str, chat: Chat, self_id: int
) -> list[dict[str, Any]]:
    """The message objects of a bundle's nodes (see the module docstring); unreadable nodes of a
    hand-edited row are left out."""
    messages = []
    for index, node in enumerate(nodes):
        if not isinstance(node, dict) or not well_formed(node.get("content")):
            continue
        place = f"{forward_id}/{index}"
        user_id = _int(node.get("user_id", node.get("uin")))
        content: Message = node["content"]
        if content and all(segment.get("type") == "node" for segment in content):
            inner = [segment.get("data") for segment in content]
            content = [
                {
                    "type": "forward",
                    "data": {"id": place, "content": node_messages(inner, place, chat, self_id)},
                }
            ]
        message_id = _node_id(place)
        stored = {
            "message_id": message_id,
            "message_type": chat.message_type,
            "sub_type": "normal" if chat.message_type == "group" else "friend",
            "peer_id": chat.peer_id or user_id,
            "sender_id": user_id,
            "time": _int(node.get("time")),
            "segments": content,
            "raw_message": _raw(content),
            "sender": {
                "user_id": user_id,
                "nickname": str(node.get("nickname", node.get("name", ""))),
                "card": "",
            },
        }
        messages.append(message_event(stored, self_id, chat.group_name))
    return messages


def _raw(content: Message) -> str:
    # A nested forward's content (message objects) is left out of the CQ string.
    plain = [
        {"type": "forward", "data": {"id": s["data"].get("id", "")}}
        if s["type"] == "forward"
        else s
        for s in content
    ]
    try:
        return view_raw(plain)
    except MessageError:  # a node edited by hand (a type with no CQ spelling)
        return ""


def _node_id(place: str) -> int:
    """A positive int32 from the node's place (bundle id and index), stable across reads."""
    digest = hashlib.md5(place.encode()).digest()  # noqa: S324 (an id, not a secret)
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _int(value: Any) -> int:
    """A stored number (an int or its string; an int64, as every id and time), else 0."""
    try:
        number = int(str(value))
    except ValueError:
        return 0
    return number if 0 <= number < 2**63 else 0


def with_content(db: sqlite3.Connection, event: dict[str, Any], self_id: int) -> None:
    """Give the `forward` segments of a message object their nodes as `content` (what NapCat's
    `get_msg` and histories answer); a bundle that is gone leaves the segment as it is."""
    segments = event["message"]
    for position, segment in enumerate(segments):
        if segment["type"] != "forward":
            continue
        forward_id = str(segment["data"].get("id", ""))
        bundle = load_bundle(db, forward_id)
        if bundle is None:
            continue
        if event["message_type"] == "group":
            chat = Chat("group", event["group_id"], event.get("group_name", ""))
        else:
            chat = Chat("private", event.get("target_id", event["user_id"]))
        content = node_messages(bundle[0], forward_id, chat, self_id)
        if segments is event["message"]:
            segments = event["message"] = list(segments)  # the stored list is not ours to change
        segments[position] = {"type": "forward", "data": {**segment["data"], "content": content}}
