"""Events as the lines of a chat log: what a failed expectation prints."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

SKIPPED_META = ("heartbeat",)


def where(event: Mapping[str, Any]) -> str:
    """`[group 30001]`, `[private 20001]`, or `[-]` for an event tied to neither."""
    if event.get("group_id") and event.get("message_type") != "private":  # not a temp session
        return f"[group {event['group_id']}]"
    if event.get("message_type") == "private" or event.get("post_type") == "request":
        return f"[private {event.get('target_id') or event.get('user_id')}]"
    if event.get("user_id"):
        return f"[private {event['user_id']}]"
    return "[-]"


def who(event: Mapping[str, Any]) -> str:
    sender = event.get("sender") or {}
    name = sender.get("card") or sender.get("nickname") or ""
    user_id = event.get("user_id", sender.get("user_id", ""))
    return f"{name}({user_id})" if name else str(user_id)


def line(event: Mapping[str, Any]) -> str | None:
    """One line for an event (None for meta events nobody reads in a chat log)."""
    post_type = event.get("post_type")
    if post_type == "message_sent":
        return f"{where(event)} BOT: {event.get('raw_message', '')}"
    if post_type == "message":
        return f"{where(event)} {who(event)}: {event.get('raw_message', '')}"
    if post_type == "notice":
        details = _details(event, ("notice_type", "time", "self_id", "post_type", "group_id"))
        return f"{where(event)} * notice {event.get('notice_type')}{details}"
    if post_type == "request":
        details = _details(event, ("request_type", "time", "self_id", "post_type", "group_id"))
        return f"{where(event)} * request {event.get('request_type')}{details}"
    if post_type == "meta_event" and event.get("meta_event_type") not in SKIPPED_META:
        return f"[-] * meta {event.get('meta_event_type')} {event.get('sub_type', '')}".rstrip()
    return None


def render(events: Iterable[Mapping[str, Any]], marker: int | None = None) -> str:
    """The chat log of `events`, one indented line each; `marker` (an index into `events`)
    gets `-->` in front, pointing at the event a failure is about."""
    lines = []
    for index, event in enumerate(events):
        text = line(event)
        if text is not None:
            lines.append(("--> " if index == marker else "    ") + text)
    return "\n".join(lines) if lines else "    (nothing happened)"


def _details(event: Mapping[str, Any], skip: tuple[str, ...]) -> str:
    parts = [f"{key}={value}" for key, value in event.items() if key not in skip]
    return (" " + " ".join(parts)) if parts else ""
