"""The sandbox's messages as stored: parsing, the messages table, events, and their media.

Every message is stored with its segments and a persistent int32 `message_id` (SQLite's
AUTOINCREMENT key), so ids and history survive restarts. The bot's own messages are published as
`message_sent` (NapCat's shape); simulated users' messages as `message` (`message_event`).

A message that carries media is stored in two steps: `prepare_media` fetches media URLs on the
event loop, before the transaction; `store_media`, inside it, stores the files and rewrites the
segments to point at them. Segments and senders are encoded strictly (store.encode_json).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import structlog

from gateway.backends.sandbox.media import Source, ingest, prepare_all
from gateway.backends.sandbox.membership import bot_in_group
from gateway.backends.sandbox.segment_view import VIEWS, view, view_raw
from gateway.backends.sandbox.store import decode_json, encode_json, statement
from gateway.protocol.envelope import ActionFailed, BadRequest
from gateway.protocol.message import (
    Message,
    MessageError,
    escape_text,
    normalize,
    parse_cq,
    raw_message,
)
from gateway.protocol.segments import check_segment

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import Sandbox

log = structlog.get_logger("gateway.sandbox")


def parse_message(message: Any, auto_escape: bool, field: str = "message") -> Message:
    """Normalise an incoming message, every segment checked against its type's schema and made
    canonical (gateway.protocol.segments); BadRequest (1400) names what is malformed."""
    try:
        segments = normalize(message, auto_escape=auto_escape, check=check_segment, path=field)
    except MessageError as error:
        raise BadRequest(str(error)) from None
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
    """Insert a message and return its row as a dict. `sub_type` defaults per message type; a
    private message of a temporary session is stored as `temp_sub_type(group_id)`.

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


def temp_sub_type(group_id: int) -> str:
    """The stored sub_type of a private message in a temporary session from a group: shown as
    `sub_type: group` with the `group_id` and `temp_source: 0` (napcat-network.md §10.1)."""
    return f"{_TEMP}{group_id}"


_TEMP = "group:"
_SHOWN_AS_STORED = frozenset({"friend", "normal"})


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
    if not isinstance(data["raw_message"], str):  # SQLite keeps what a hand edit put there
        data["raw_message"] = str(data["raw_message"])
    try:
        segments = decode_json(data["segments"])
        if not well_formed(segments):
            raise ValueError("segments are not a list of {type, data} objects")
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


def well_formed(segments: Any) -> bool:
    """Whether a decoded value is a list of `{type: str, data: object}` (what this build
    stores; a row edited by hand may hold anything)."""
    return isinstance(segments, list) and all(
        isinstance(s, dict) and isinstance(s.get("type"), str) and isinstance(s.get("data"), dict)
        for s in segments
    )


def _from_raw(raw: str) -> Message:
    try:
        return parse_cq(raw)
    except MessageError:
        return [{"type": "text", "data": {"text": raw}}]


def message_event(message: dict[str, Any], self_id: int, group_name: str = "") -> dict[str, Any]:
    """The OneBot message object of a stored message, as an event and as `get_msg` and the
    histories answer it (`message_sent` for the bot's own; napcat-network.md §10.1).

    `message_id`, `real_id` and `message_seq` are the message's id, `real_seq` the same as a
    string (the sandbox's sequence: increasing in a chat, not QQ's per-chat count); `target_id`
    is the peer of a private message and the group of the bot's own group message. Segments are
    shown as NapCat shows them (segment_view); a message of plain text is sent as stored.
    """
    is_self = message["sender_id"] == self_id
    message_id = message["message_id"]
    segments = message["segments"]
    raw = message["raw_message"]
    # Most messages are text, and this runs for every send: the raw CQ string of text alone has
    # no "[" (escaped as &#91;), so one substring test tells it has no segment to show otherwise.
    if "[" in raw:
        for segment in segments:
            if segment["type"] in VIEWS:
                segments = view(segments)
                raw = _viewed_raw(segments, raw)
                break
    sub_type = message["sub_type"]
    temp_group = None
    if sub_type not in _SHOWN_AS_STORED:
        sub_type, temp_group = _unusual_sub_type(sub_type)
    event: dict[str, Any] = {
        "self_id": self_id,
        "user_id": message["sender_id"],
        "time": message["time"],
        "message_id": message_id,
        "message_seq": message_id,
        "real_id": message_id,
        "real_seq": str(message_id),
        "message_type": message["message_type"],
        "sender": message["sender"],
        "raw_message": raw,
        "font": 14,
        "sub_type": sub_type,
        "message": segments,
        "message_format": "array",
        "post_type": "message_sent" if is_self else "message",
    }
    if message["message_type"] == "group":
        event["group_id"] = message["peer_id"]
        event["group_name"] = group_name
        if is_self:
            event["target_id"] = message["peer_id"]
    else:  # NapCat gives every private message its peer as target_id, not only the bot's own
        event["target_id"] = message["peer_id"]
        if temp_group is not None:
            event["group_id"] = temp_group
            event["temp_source"] = 0
    if is_self:
        event["message_sent_type"] = "self"
    return event


def _unusual_sub_type(stored: str) -> tuple[str, int | None]:
    """(sub_type shown, group of a temporary session): a stranger's chat is `friend` as on
    NapCat (`other` in the rows of earlier builds)."""
    if stored.startswith(_TEMP) and stored[len(_TEMP) :].isdigit():
        return "group", int(stored[len(_TEMP) :])
    if stored == "other":
        return "friend", None
    return stored, None


def _viewed_raw(viewed: Message, stored: str) -> str:
    try:
        return view_raw(viewed)
    except MessageError:  # a row edited by hand (a key with no CQ spelling): keep what it says
        return stored


def load_message(db: sqlite3.Connection, message_id: int) -> dict[str, Any]:
    """A stored, not recalled message; 1200 when there is none."""
    row = db.execute("SELECT * FROM messages WHERE message_id = ?", (message_id,)).fetchone()
    if row is None:
        raise ActionFailed(f"message {message_id} does not exist")
    if row["recalled"]:
        raise ActionFailed(f"message {message_id} was recalled")
    return row_dict(row)


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
    # Most messages carry no media: they skip the scan of every segment's data.
    if not has_media(segments):
        return NO_SOURCES
    return await prepare_all(sandbox, media_uris(segments))


NO_SOURCES: Mapping[str, Source] = MappingProxyType({})


def store_media(
    db: sqlite3.Connection, segments: Message, sources: Mapping[str, Source]
) -> Message:
    """Store the files media segments point at; the segments to store, `file` rewritten to the
    media id and `url` added (a new list: `segments` is left as it was, so a call the store
    runs again, see Store.run, finds its sources again).

    `sources` comes from `prepare_media` of the same segments. So `get_image`/`get_record`/
    `get_file` of a received or sent file work like NapCat's.
    """
    if not sources:  # no media segment with a source: nothing to store
        return segments
    stored_segments: Message = []
    for segment in segments:
        data = segment["data"]
        source = data.get("file") or data.get("url") or data.get("path")
        if segment["type"] in MEDIA_SEGMENTS and isinstance(source, str) and source:
            stored = ingest(db, segment["type"], sources[source], str(data.get("name", "")))
            data = {
                **{k: v for k, v in data.items() if k != "path"},
                "file": stored["file"],
                "url": stored["url"],
                "file_size": str(stored["file_size"]),
            }
            segment = {**segment, "data": data}
        stored_segments.append(segment)
    return stored_segments


def check_replies(db: sqlite3.Connection, segments: Message) -> None:
    """1400 for a reply to a message that does not exist. A reply names it by `id`, or by `seq`:
    the message's `real_seq`, which in the sandbox is its id."""
    for segment in segments:
        if segment["type"] == "reply":
            data = segment["data"]
            target = str(data.get("id", data.get("seq", "")))
            exists = (
                target.isdigit()
                and int(target) < 2**31
                and db.execute(
                    "SELECT 1 FROM messages WHERE message_id = ?", (int(target),)
                ).fetchone()
            )
            if not exists:
                field = "id" if "id" in data else "seq"
                raise BadRequest(
                    f"reply segment refers to message {target!r} ({field}), which does not exist"
                )
