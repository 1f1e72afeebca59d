"""Sandbox actions: the bot sends messages, one by one or as a forward bundle.

A send is three steps: media URLs in the segments are fetched on the event loop
(`message_store.prepare_media`), then one transaction checks, stores the media and the message,
then the event is published. A step that fails ends the call with nothing stored and nothing
published. While other sandbox accounts share the world, the stored message is then handed to
them (`shared_world`, exchange.py), which delivers it off this call's path.

A message of `node` segments, and the forward actions, store a bundle of nodes and send a
`forward` segment pointing at it (`get_forward_msg` reads the bundle back).
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gateway.actions.message import (
    GetForwardMsg,
    SendForwardMsg,
    SendGroupForwardMsg,
    SendGroupMsg,
    SendMsg,
    SendPrivateForwardMsg,
    SendPrivateMsg,
)
from gateway.backends.sandbox.forwards import chat_of, forward_id_of, load_bundle, node_messages
from gateway.backends.sandbox.media import Source
from gateway.backends.sandbox.membership import bot_speaks_in, speaker
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
from gateway.backends.sandbox.store import encode_json, kept_row
from gateway.protocol.envelope import ActionFailed, BadRequest
from gateway.protocol.message import Message

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import HandlerTable, Sandbox


def write_private(
    db: sqlite3.Connection,
    sandbox: Sandbox,
    user_id: int,
    segments: Message,
    sources: Mapping[str, Source],
    via_group: int | None = None,
) -> dict[str, Any]:
    """Inside a transaction: check and store a private message from the bot; the stored row.
    To a user who is not a friend, through `via_group`, it is a temporary session's message.

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
    check_replies(db, segments)
    segments = store_media(db, segments, sources)
    sender = {"user_id": self_id, "nickname": sandbox.nickname, "card": ""}
    # A friend is written to as a friend, group_id or not (NapCat's rule); others in a session.
    temp = "" if user["is_friend"] or via_group is None else temp_sub_type(via_group)
    return store_message(db, "private", user_id, self_id, segments, sender, temp)


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
    check_replies(db, segments)
    segments = store_media(db, segments, sources)
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
    if sandbox.shared_world is not None:
        sandbox.shared_world.sent(sandbox, message)
    return event


async def send_to_group(sandbox: Sandbox, group_id: int, segments: Message) -> dict[str, Any]:
    """Store and publish a group message from the bot; returns the event."""
    sources = await prepare_media(sandbox, segments) if has_media(segments) else NO_SOURCES
    message, name = await sandbox.store.run(
        lambda db: write_group(db, sandbox, group_id, segments, sources)
    )
    event = message_event(message, sandbox.self_id, name)
    sandbox.publish(event)
    if sandbox.shared_world is not None:
        sandbox.shared_world.sent(sandbox, message)
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
    (a bundle whose message cannot be sent is not kept). The bundle records the message's id,
    so `get_forward_msg` shows its nodes in that chat (forwards.py)."""
    nodes = parse_message(nodes, False, "messages")  # each node checked (segments.check_segment)
    forward_id = secrets.token_hex(16)
    segments: Message = [{"type": "forward", "data": {"id": forward_id}}]

    def write(db: sqlite3.Connection) -> tuple[dict[str, Any], str]:
        resolved = _resolve_nodes(db, nodes, "messages")
        if message_type == "group":
            message, name = write_group(db, sandbox, target, segments, {})
        else:
            message, name = write_private(db, sandbox, target, segments, {}), ""
        bundle = {"message_id": message["message_id"], "nodes": resolved}
        db.execute(
            "INSERT INTO forwards (forward_id, nodes) VALUES (?, ?)",
            (forward_id, encode_json(bundle, "messages")),
        )
        return message, name

    message, name = await sandbox.store.run(write)
    sandbox.publish(message_event(message, sandbox.self_id, name))
    if sandbox.shared_world is not None:
        sandbox.shared_world.sent(sandbox, message)
    return {"message_id": message["message_id"], "forward_id": forward_id, "res_id": forward_id}


def _resolve_nodes(db: sqlite3.Connection, nodes: list[Any], path: str) -> list[dict[str, Any]]:
    """Bundle nodes `{user_id, nickname, time, content}` of checked node segments: a reference
    node `{id}` copies the stored message; nodes in a node's content are resolved the same way."""
    bundle = []
    for index, node in enumerate(nodes):
        where = f"{path}[{index}]"
        data = node.get("data") if isinstance(node, dict) and node.get("type") == "node" else None
        if not isinstance(data, dict):
            raise BadRequest(f"{where}: expected a node segment")
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
        content = parse_message(data.get("content"), False, f"{where}.data.content")
        if content[0]["type"] == "node":  # a nested forward (parse_message: all nodes or none)
            inner = _resolve_nodes(db, content, f"{where}.data.content")
            content = [{"type": "node", "data": node} for node in inner]
        user_id = data.get("user_id", data.get("uin"))
        nickname = data.get("nickname", data.get("name", ""))
        if user_id is None or not str(user_id).isdigit():
            raise BadRequest(f"{where}.data.user_id: a QQ number is required")
        bundle.append(
            {
                "user_id": int(str(user_id)),
                "nickname": str(nickname),
                "time": int(str(data["time"])) if "time" in data else int(time.time()),
                "content": content,
            }
        )
    if not bundle:
        raise BadRequest(f"{path}: no nodes to forward")
    return bundle


async def send_group_forward_msg(sandbox: Sandbox, p: SendGroupForwardMsg) -> Any:
    return await send_forward(sandbox, "group", p.group_id, p.messages)


async def send_private_forward_msg(sandbox: Sandbox, p: SendPrivateForwardMsg) -> Any:
    return await send_forward(sandbox, "private", p.user_id, p.messages)


async def send_forward_msg(sandbox: Sandbox, p: SendForwardMsg) -> Any:
    message_type, target = route(p.message_type, p.user_id, p.group_id)
    return await send_forward(sandbox, message_type, target, p.messages)


async def get_forward_msg(sandbox: Sandbox, p: GetForwardMsg) -> dict[str, Any]:
    """The nodes of a forward, each a message object (forwards.py). `message_id` (or `id`) is
    the forward message's id, as NapCat takes it, or the bundle id of its `forward` segment."""
    given = str(p.message_id or p.id)

    def read(db: sqlite3.Connection) -> dict[str, Any]:
        forward_id = given
        if given.isdigit() and load_bundle(db, given) is None:
            message = load_message(db, _message_id(given))
            found = forward_id_of(message["segments"])
            if found is None:
                raise ActionFailed(f"message {given} is not a forward message")
            forward_id = found
        bundle = load_bundle(db, forward_id)
        if bundle is None:
            raise ActionFailed(f"forward bundle {forward_id!r} does not exist")
        nodes, message_id = bundle
        chat = chat_of(db, message_id)
        return {"messages": node_messages(nodes, forward_id, chat, sandbox.self_id)}

    return await sandbox.store.read(read)


def _message_id(text: str) -> int:
    number = int(text)
    if number >= 2**31:
        raise ActionFailed(f"message {text} does not exist")
    return number


HANDLERS: HandlerTable = {
    "send_private_msg": send_private_msg,
    "send_group_msg": send_group_msg,
    "send_msg": send_msg,
    "send_group_forward_msg": send_group_forward_msg,
    "send_private_forward_msg": send_private_forward_msg,
    "send_forward_msg": send_forward_msg,
    "get_forward_msg": get_forward_msg,
}
