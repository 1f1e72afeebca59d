"""Sandbox action: `.handle_quick_operation`, the full OneBot quick-operation set.

NapCat implements only `reply` (and approve for requests); here `delete`, `kick`, `ban` and
`ban_duration` work too. Each effect goes through the same action a bot would call, so
permissions and events are the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.actions.message import QuickOperation
from gateway.backends.sandbox.message_store import parse_message
from gateway.protocol.envelope import BadRequest

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import HandlerTable, Sandbox

DEFAULT_BAN_SECONDS = 30 * 60


async def handle_quick_operation(sandbox: Sandbox, p: QuickOperation) -> None:
    post_type = p.context.get("post_type")
    if post_type == "message":
        await _on_message(sandbox, p.context, p.operation)
    elif post_type == "request":
        await _on_request(sandbox, p.context, p.operation)
    elif p.operation:
        raise BadRequest(f"context: {post_type!r} events take no quick operation")


async def _on_message(sandbox: Sandbox, event: dict[str, Any], op: dict[str, Any]) -> None:
    group_id = event.get("group_id") if event.get("message_type") == "group" else None
    user_id = event.get("user_id")
    reply = op.get("reply")
    if reply not in (None, "", []):
        segments = parse_message(reply, bool(op.get("auto_escape")), "operation.reply")
        if group_id is not None:
            # The reply quotes the message; an @ only with `at_sender: true`. (OneBot 11 documents
            # true as the default, but NapCat and go-cqhttp add the @ only when asked: a bot
            # moving from them must not start @-ing people.)
            prefix: list[dict[str, Any]] = []
            if event.get("message_id") is not None:
                prefix.append({"type": "reply", "data": {"id": str(event["message_id"])}})
            if op.get("at_sender") is True:
                prefix += [
                    {"type": "at", "data": {"qq": str(user_id)}},
                    {"type": "text", "data": {"text": " "}},
                ]
            await sandbox.invoke(
                "send_group_msg", {"group_id": group_id, "message": prefix + segments}
            )
        else:
            await sandbox.invoke("send_private_msg", {"user_id": user_id, "message": segments})
    if group_id is None:
        return
    if op.get("delete") and event.get("message_id") is not None:
        await sandbox.invoke("delete_msg", {"message_id": event["message_id"]})
    if op.get("kick"):
        await sandbox.invoke("set_group_kick", {"group_id": group_id, "user_id": user_id})
    if op.get("ban"):
        duration = op.get("ban_duration", DEFAULT_BAN_SECONDS)
        await sandbox.invoke(
            "set_group_ban", {"group_id": group_id, "user_id": user_id, "duration": duration}
        )


async def _on_request(sandbox: Sandbox, event: dict[str, Any], op: dict[str, Any]) -> None:
    if "approve" not in op:
        return
    params: dict[str, Any] = {"flag": event.get("flag"), "approve": op["approve"]}
    if event.get("request_type") == "friend":
        if op.get("remark"):
            params["remark"] = op["remark"]
        await sandbox.invoke("set_friend_add_request", params)
        return
    params["sub_type"] = event.get("sub_type", "add")
    if op.get("reason"):
        params["reason"] = op["reason"]
    await sandbox.invoke("set_group_add_request", params)


HANDLERS: HandlerTable = {
    ".handle_quick_operation": handle_quick_operation,
}
