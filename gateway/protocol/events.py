"""Builders for meta events (lifecycle, heartbeat) and the message-format conversion of events."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from gateway.protocol.message import to_cq


def lifecycle(self_id: int, sub_type: str = "connect") -> dict[str, Any]:
    """`meta_event/lifecycle`; NoneBot registers the bot only once it sees `connect`."""
    return {
        "time": int(time.time()),
        "self_id": self_id,
        "post_type": "meta_event",
        "meta_event_type": "lifecycle",
        "sub_type": sub_type,
    }


def heartbeat(self_id: int, status: Mapping[str, Any], interval_ms: int) -> dict[str, Any]:
    """`meta_event/heartbeat` with `status` and `interval` (ms until the next one)."""
    return {
        "time": int(time.time()),
        "self_id": self_id,
        "post_type": "meta_event",
        "meta_event_type": "heartbeat",
        "status": dict(status),
        "interval": interval_ms,
    }


def string_form(event: Mapping[str, Any]) -> dict[str, Any]:
    """A message event with `message` as its CQ string (`raw_message` is always that string)."""
    message = event.get("message")
    if not isinstance(message, list):
        return dict(event)
    raw = event.get("raw_message")
    return {
        **event,
        "message": raw if isinstance(raw, str) else to_cq(message),
        "message_format": "string",
    }
