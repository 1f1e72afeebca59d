"""Sandbox actions: messages, both sides of the conversation.

Every message is stored with its segments and a persistent int32 `message_id` (SQLite's
AUTOINCREMENT key), so ids and history survive restarts. The bot's own messages are published as
`message_sent` (NapCat's shape); simulated users' messages as `message`.

A send is three steps: media URLs in the segments are fetched on the event loop
(`media.prepare_all`), then one transaction checks, stores the media and the message (segments
encoded strictly, see store.encode_json), then the event is published. A step that fails ends
the call with nothing stored and nothing published.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import structlog

from gateway.actions.message import (
    GetForwardMsg,
    GetFriendMsgHistory,
    GetGroupMsgHistory,
    MarkAsRead,
    MessageId,
    SandboxEmit,
    SandboxReceiveMessage,
    SendForwardMsg,
    SendGroupForwardMsg,
    SendGroupMsg,
    SendMsg,
    SendPrivateForwardMsg,
    SendPrivateMsg,
)
from gateway.backends.sandbox.membership import ROLE_RANK, bot_in_group, bot_speaks_in, speaker
from gateway.backends.sandbox.membership import find_member as member_row
from gateway.backends.sandbox.store import decode_json, encode_json, kept_row, statement
from gateway.protocol.envelope import ActionFailed, BadRequest
from gateway.protocol.message import (
    Message,
    MessageError,
    escape_text,
    normalize,
    parse_cq,
    raw_message,
)

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import HandlerTable, Sandbox
    from gateway.backends.sandbox.media import Source

log = structlog.get_logger("gateway.sandbox")


# --- storage and events -------------------------------------------------------------------------


def parse_message(message: Any, auto_escape: bool, field: str = "message") -> Message:
    """Normalise an incoming message; BadRequest (1400) says what is malformed."""
    try:
        segments = normalize(message, auto_escape=auto_escape)
    except MessageError as error:
        raise BadRequest(f"{field}: {error}") from None
    if not segments:
        raise BadRequest(f"{field}: the message is empty")
    if len(segments) > 1:  # one segment cannot be a mix
        nodes = sum(1 for s in segments if s["type"] == "node")
        if nodes and nodes != len(segments):
            raise BadRequest(f"{field}: node segments cannot be mixed with other segments")
    return segments


def require_group(db: sqlite3.Connection, group_id: int, self_id: int) -> sqlite3.Row:
    """The group row; 1200 when it does not exist or the bot is not in it."""
    return bot_in_group(db, group_id, self_id)[0]


def store_message(
    db: sqlite3.Connection,
    message_type: str,
    peer_id: int,
    sender_id: int,
    segments: Message,
    sender: dict[str, Any],
    sub_type: str = "",
) -> dict[str, Any]:
    """Insert a message and return its row as a dict. `sub_type` defaults per message type.

    BadRequest (1400), before anything is written, when the segments or the sender hold a value
    that could not be sent back (store.encode_json)."""
    sub_type = sub_type or ("normal" if message_type == "group" else "friend")
    now = int(time.time())
    encoded_segments = encode_json(segments, "message")
    encoded_sender = encode_json(sender, "sender")
    raw = _raw(segments)
    cursor = statement(
        db,
        "INSERT INTO messages (message_type, sub_type, peer_id, sender_id, time, segments, "
        "raw_message, sender) VALUES (?,?,?,?,?,?,?,?)",
        (
            message_type,
            sub_type,
            peer_id,
            sender_id,
            now,
            encoded_segments,
            raw,
            encoded_sender,
        ),
    )
    message_id = cursor.lastrowid
    if message_type == "group":
        statement(
            db,
            "UPDATE members SET last_sent = ? WHERE group_id = ? AND user_id = ?",
            (now, peer_id, sender_id),
        )
    return {
        "message_id": message_id,
        "message_type": message_type,
        "sub_type": sub_type,
        "peer_id": peer_id,
        "sender_id": sender_id,
        "time": now,
        "segments": segments,
        "raw_message": raw,
        "sender": sender,
        "recalled": 0,
    }


def _raw(segments: Message) -> str:
    """`raw_message(segments)`; for the most common message, one text segment, the escaped
    text itself (what the codec writes for text) without the general encoder's checks."""
    if len(segments) == 1 and segments[0]["type"] == "text":
        text = segments[0]["data"].get("text")
        if isinstance(text, str):
            return escape_text(text)
    return raw_message(segments)


def row_dict(row: sqlite3.Row) -> dict[str, Any]:
    """A messages row with its JSON columns decoded, always encodable.

    A row this build would not have written (an older build's, or one edited by hand) still
    reads: unreadable segments are rebuilt from `raw_message`, an unreadable sender is reduced
    to the sender's id, and the row is logged. One bad row never fails a history call.
    """
    data = dict(row)
    try:
        segments = decode_json(data["segments"])
        if not isinstance(segments, list):
            raise ValueError(f"segments are {type(segments).__name__}, not a list")
    except ValueError as error:
        log.warning("stored_message_unreadable", message_id=data["message_id"], error=str(error))
        segments = _from_raw(data["raw_message"])
    try:
        sender = decode_json(data["sender"])
        if not isinstance(sender, dict):
            raise ValueError(f"sender is {type(sender).__name__}, not an object")
    except ValueError as error:
        log.warning("stored_sender_unreadable", message_id=data["message_id"], error=str(error))
        sender = {"user_id": data["sender_id"], "nickname": ""}
    data["segments"] = segments
    data["sender"] = sender
    return data


def _from_raw(raw: str) -> Message:
    try:
        return parse_cq(raw)
    except MessageError:
        return [{"type": "text", "data": {"text": raw}}]


def message_event(message: dict[str, Any], self_id: int, group_name: str = "") -> dict[str, Any]:
    """The OneBot message event for a stored message (`message_sent` for the bot's own)."""
    is_self = message["sender_id"] == self_id
    group = message["message_type"] == "group"
    event: dict[str, Any] = {
        "time": message["time"],
        "self_id": self_id,
        "post_type": "message_sent" if is_self else "message",
        "message_type": message["message_type"],
        "sub_type": message["sub_type"],
        "message_id": message["message_id"],
        "real_id": message["message_id"],
        "message_seq": message["message_id"],
        "user_id": message["sender_id"],
        "message": message["segments"],
        "raw_message": message["raw_message"],
        "message_format": "array",
        "font": 14,
        "sender": message["sender"],
    }
    if group:
        event["group_id"] = message["peer_id"]
        event["group_name"] = group_name
    if is_self:
        event["message_sent_type"] = "self"
        event["target_id"] = message["peer_id"]
    return event


def load_message(db: sqlite3.Connection, message_id: int) -> dict[str, Any]:
    """A stored, not recalled message; 1200 when there is none."""
    row = db.execute("SELECT * FROM messages WHERE message_id = ?", (message_id,)).fetchone()
    if row is None:
        raise ActionFailed(f"message {message_id} does not exist")
    if row["recalled"]:
        raise ActionFailed(f"message {message_id} was recalled")
    return row_dict(row)


def _group_name(db: sqlite3.Connection, group_id: int) -> str:
    row = db.execute("SELECT group_name FROM groups WHERE group_id = ?", (group_id,)).fetchone()
    return str(row["group_name"]) if row else ""


MEDIA_SEGMENTS = ("image", "record", "video", "file")


def media_uris(segments: Message) -> list[str]:
    """The file URIs of the media segments, in order (what `store_media` will store)."""
    uris = []
    for segment in segments:
        data = segment["data"]
        source = data.get("file") or data.get("url") or data.get("path")
        if segment["type"] in MEDIA_SEGMENTS and isinstance(source, str) and source:
            uris.append(source)
    return uris


def has_media(segments: Message) -> bool:
    """Whether any segment is a media segment (most messages have none)."""
    # A loop, not any(): no generator to build for the usual one or two segments.
    for segment in segments:  # noqa: SIM110
        if segment["type"] in MEDIA_SEGMENTS:
            return True
    return False


async def prepare_media(sandbox: Sandbox, segments: Message) -> Mapping[str, Source]:
    """Each media segment's Source, media URLs fetched: call before the transaction."""
    # Most messages carry no media: they skip the import and the scan of every segment's data.
    if not has_media(segments):
        return NO_SOURCES
    from gateway.backends.sandbox import media  # media imports this module

    return await media.prepare_all(sandbox, media_uris(segments))


NO_SOURCES: Mapping[str, Source] = MappingProxyType({})


def store_media(db: sqlite3.Connection, segments: Message, sources: Mapping[str, Source]) -> None:
    """Store the files media segments point at; rewrite `file` to the media id and add `url`.

    `sources` comes from `prepare_media` of the same segments. So `get_image`/`get_record`/
    `get_file` of a received or sent file work like NapCat's.
    """
    if not sources:  # no media segment with a source: nothing to store
        return
    from gateway.backends.sandbox.media import ingest  # media imports this module

    for segment in segments:
        data = segment["data"]
        source = data.get("file") or data.get("url") or data.get("path")
        if segment["type"] in MEDIA_SEGMENTS and isinstance(source, str) and source:
            stored = ingest(db, segment["type"], sources[source], str(data.get("name", "")))
            segment["data"] = {
                **{k: v for k, v in data.items() if k != "path"},
                "file": stored["file"],
                "url": stored["url"],
                "file_size": str(stored["file_size"]),
            }


def _check_replies(db: sqlite3.Connection, segments: Message) -> None:
    for segment in segments:
        if segment["type"] == "reply":
            target = str(segment["data"].get("id", ""))
            exists = (
                target.isdigit()
                and db.execute(
                    "SELECT 1 FROM messages WHERE message_id = ?", (int(target),)
                ).fetchone()
            )
            if not exists:
                raise BadRequest(
                    f"reply segment refers to message {target!r}, which does not exist"
                )


# --- the bot sends ------------------------------------------------------------------------------


def write_private(
    db: sqlite3.Connection,
    sandbox: Sandbox,
    user_id: int,
    segments: Message,
    sources: Mapping[str, Source],
    via_group: int | None = None,
) -> dict[str, Any]:
    """Inside a transaction: check and store a private message from the bot; the stored row.

    The friend and the members of `via_group` are the rows the writer keeps (store.kept_row):
    a send runs one INSERT and no lookup."""
    self_id = sandbox.self_id
    user = kept_row(db, "user", user_id)
    shared = (
        via_group is not None
        and speaker(db, via_group, user_id) is not None
        and speaker(db, via_group, self_id) is not None
    )
    if user is None or not (user["is_friend"] or shared):
        raise ActionFailed(
            f"user {user_id} is not a friend of the bot (pass group_id of a "
            "shared group for a temporary session)"
        )
    _check_replies(db, segments)
    store_media(db, segments, sources)
    sender = {"user_id": self_id, "nickname": sandbox.nickname, "card": ""}
    return store_message(db, "private", user_id, self_id, segments, sender)


def write_group(
    db: sqlite3.Connection,
    sandbox: Sandbox,
    group_id: int,
    segments: Message,
    sources: Mapping[str, Source],
) -> tuple[dict[str, Any], str]:
    """Inside a transaction: check and store a group message from the bot; (row, group name).

    The group and the bot's membership are the rows the writer keeps (store.kept_row)."""
    self_id = sandbox.self_id
    group, me = bot_speaks_in(db, group_id, self_id)
    if me["mute_until"] > time.time():
        raise ActionFailed(f"the bot is muted in group {group_id}")
    if group["whole_ban"] and me["role"] == "member":
        raise ActionFailed(f"group {group_id} is muted for members (whole ban)")
    _check_replies(db, segments)
    store_media(db, segments, sources)
    sender = {
        "user_id": self_id,
        "nickname": sandbox.nickname,
        "card": me["card"],
        "role": me["role"],
    }
    return store_message(db, "group", group_id, self_id, segments, sender), group["group_name"]


async def send_to_friend(
    sandbox: Sandbox, user_id: int, segments: Message, via_group: int | None = None
) -> dict[str, Any]:
    """Store and publish a private message from the bot; returns the event."""
    sources = await prepare_media(sandbox, segments) if has_media(segments) else NO_SOURCES
    message = await sandbox.store.run(
        lambda db: write_private(db, sandbox, user_id, segments, sources, via_group)
    )
    event = message_event(message, sandbox.self_id)
    sandbox.publish(event)
    return event


async def send_to_group(sandbox: Sandbox, group_id: int, segments: Message) -> dict[str, Any]:
    """Store and publish a group message from the bot; returns the event."""
    sources = await prepare_media(sandbox, segments) if has_media(segments) else NO_SOURCES
    message, name = await sandbox.store.run(
        lambda db: write_group(db, sandbox, group_id, segments, sources)
    )
    event = message_event(message, sandbox.self_id, name)
    sandbox.publish(event)
    return event


async def _send(
    sandbox: Sandbox,
    message_type: str,
    target: int,
    segments: Message,
    via_group: int | None = None,
) -> dict[str, Any]:
    if segments[0]["type"] == "node":
        return await send_forward(sandbox, message_type, target, segments)
    if message_type == "group":
        event = await send_to_group(sandbox, target, segments)
    else:
        event = await send_to_friend(sandbox, target, segments, via_group)
    return {"message_id": event["message_id"]}


async def send_private_msg(sandbox: Sandbox, p: SendPrivateMsg) -> dict[str, Any]:
    segments = parse_message(p.message, p.auto_escape)
    if segments[0]["type"] == "node":
        return await send_forward(sandbox, "private", p.user_id, segments)
    # The most common call of all: one coroutine level fewer than through `_send`.
    event = await send_to_friend(sandbox, p.user_id, segments, p.group_id)
    return {"message_id": event["message_id"]}


async def send_group_msg(sandbox: Sandbox, p: SendGroupMsg) -> dict[str, Any]:
    return await _send(sandbox, "group", p.group_id, parse_message(p.message, p.auto_escape))


async def send_msg(sandbox: Sandbox, p: SendMsg) -> dict[str, Any]:
    message_type, target = route(p.message_type, p.user_id, p.group_id)
    return await _send(sandbox, message_type, target, parse_message(p.message, p.auto_escape))


def route(message_type: str | None, user_id: int | None, group_id: int | None) -> tuple[str, int]:
    """(type, target): `message_type` first (group replies carry user_id too), then the ids."""
    if message_type is None:
        message_type = "group" if group_id is not None else "private"
    target = group_id if message_type == "group" else user_id
    if target is None:
        field = "group_id" if message_type == "group" else "user_id"
        raise BadRequest(f"missing required parameter '{field}' for a {message_type} message")
    return message_type, target


# --- forward bundles ----------------------------------------------------------------------------


async def send_forward(
    sandbox: Sandbox, message_type: str, target: int, nodes: list[Any]
) -> dict[str, Any]:
    """Store a bundle of nodes and send a `forward` segment pointing at it, in one transaction
    (a bundle whose message cannot be sent is not kept)."""
    forward_id = secrets.token_hex(16)
    segments: Message = [{"type": "forward", "data": {"id": forward_id}}]

    def write(db: sqlite3.Connection) -> tuple[dict[str, Any], str]:
        bundle = encode_json(_resolve_nodes(db, nodes), "messages")
        db.execute("INSERT INTO forwards (forward_id, nodes) VALUES (?, ?)", (forward_id, bundle))
        if message_type == "group":
            return write_group(db, sandbox, target, segments, {})
        return write_private(db, sandbox, target, segments, {}), ""

    message, name = await sandbox.store.run(write)
    sandbox.publish(message_event(message, sandbox.self_id, name))
    return {"message_id": message["message_id"], "forward_id": forward_id, "res_id": forward_id}


def _resolve_nodes(db: sqlite3.Connection, nodes: list[Any]) -> list[dict[str, Any]]:
    bundle = []
    for index, node in enumerate(nodes):
        data = node.get("data") if isinstance(node, dict) and node.get("type") == "node" else None
        if not isinstance(data, dict):
            raise BadRequest(f"messages[{index}]: expected a node segment")
        if "id" in data and "content" not in data:
            original = load_message(db, int(str(data["id"])))
            bundle.append(
                {
                    "user_id": original["sender_id"],
                    "nickname": original["sender"].get("nickname", ""),
                    "time": original["time"],
                    "content": original["segments"],
                }
            )
            continue
        content = parse_message(data.get("content"), False, f"messages[{index}].data.content")
        user_id = data.get("user_id", data.get("uin"))
        nickname = data.get("nickname", data.get("name", ""))
        if user_id is None or not str(user_id).isdigit():
            raise BadRequest(f"messages[{index}].data.user_id: a QQ number is required")
        bundle.append(
            {
                "user_id": int(str(user_id)),
                "nickname": str(nickname),
                "time": int(time.time()),
                "content": content,
            }
        )
    if not bundle:
        raise BadRequest("messages: no nodes to forward")
    return bundle


async def send_group_forward_msg(sandbox: Sandbox, p: SendGroupForwardMsg) -> Any:
    return await send_forward(sandbox, "group", p.group_id, p.messages)


async def send_private_forward_msg(sandbox: Sandbox, p: SendPrivateForwardMsg) -> Any:
    return await send_forward(sandbox, "private", p.user_id, p.messages)


async def send_forward_msg(sandbox: Sandbox, p: SendForwardMsg) -> Any:
    message_type, target = route(p.message_type, p.user_id, p.group_id)
    return await send_forward(sandbox, message_type, target, p.messages)


async def get_forward_msg(sandbox: Sandbox, p: GetForwardMsg) -> dict[str, Any]:
    forward_id = p.message_id or p.id
    row = await sandbox.store.read(
        lambda db: db.execute(
            "SELECT nodes FROM forwards WHERE forward_id = ?", (forward_id,)
        ).fetchone()
    )
    if row is None:
        raise ActionFailed(f"forward bundle {forward_id!r} does not exist")
    messages = [
        {
            "sender": {"user_id": n["user_id"], "nickname": n["nickname"]},
            "time": n["time"],
            "message": n["content"],
            "content": n["content"],
            "raw_message": raw_message(n["content"]),
            "message_format": "array",
        }
        for n in decode_json(row["nodes"])
    ]
    return {"messages": messages}


# --- reading and recalling ----------------------------------------------------------------------


async def get_msg(sandbox: Sandbox, p: MessageId) -> dict[str, Any]:
    def read(db: sqlite3.Connection) -> dict[str, Any]:
        message = load_message(db, p.message_id)
        name = _group_name(db, message["peer_id"]) if message["message_type"] == "group" else ""
        return message_event(message, sandbox.self_id, name)

    return await sandbox.store.read(read)


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
        name = _group_name(db, peer) if message_type == "group" else ""
        return [message_event(row_dict(r), sandbox.self_id, name) for r in rows]

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

    publish_recall(sandbox, await sandbox.store.run(recall), operator_id=self_id)


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


# --- the simulated users' side ------------------------------------------------------------------


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
        _check_replies(db, segments)
        store_media(db, segments, sources)
        user = ensure_user(db, p.user_id, p.sender.nickname)
        sender = {"user_id": p.user_id, "nickname": user["nickname"], "card": ""}
        sub_type = "friend" if user["is_friend"] else "other"
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
        _check_replies(db, segments)
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


def ensure_user(db: sqlite3.Connection, user_id: int, nickname: str | None) -> sqlite3.Row:
    """The user's row (kept by the writer, see store.kept_row), creating a stranger for an
    unknown id."""
    row = kept_row(db, "user", user_id)
    if row is None:
        db.execute(
            "INSERT OR IGNORE INTO users (user_id, nickname) VALUES (?, ?)",
            (user_id, nickname or f"User {user_id}"),
        )
        row = kept_row(db, "user", user_id)
        assert row is not None
    return row


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
    "send_private_msg": send_private_msg,
    "send_group_msg": send_group_msg,
    "send_msg": send_msg,
    "send_group_forward_msg": send_group_forward_msg,
    "send_private_forward_msg": send_private_forward_msg,
    "send_forward_msg": send_forward_msg,
    "get_forward_msg": get_forward_msg,
    "get_msg": get_msg,
    "get_group_msg_history": get_group_msg_history,
    "get_friend_msg_history": get_friend_msg_history,
    "delete_msg": delete_msg,
    "mark_msg_as_read": mark_msg_as_read,
    "sandbox_receive_message": sandbox_receive_message,
    "sandbox_recall_message": sandbox_recall_message,
    "sandbox_emit": sandbox_emit,
}
