"""Stream actions' answers (napcat-network.md §8): intermediate packets, then a final envelope.

A stream action's handler returns a `PacketStream`: a producer the transport runs with its own
`Send`, which writes one packet (a whole envelope, same echo, `"stream": "stream-action"`) and
returns once the connection has taken it. The producer reads its next chunk only then, so a
file of any size is never more than a chunk in memory. On WebSocket each packet is a frame; on
HTTP, `JSON + "\\r\\n\\r\\n"` on one chunked response (`HTTP_SEPARATOR`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from gateway.protocol.envelope import Envelope, ok

STREAM_ACTION = "stream-action"
HTTP_SEPARATOR = b"\r\n\r\n"
"""What follows every packet and the final envelope on an HTTP stream response, as NapCat."""
ERROR_DATA: dict[str, str] = {"type": "error", "data_type": "error"}
"""The `data` of a stream action's failed envelope, as NapCat (a copy goes into each)."""

Send = Callable[[Envelope], Awaitable[None]]
"""Writes one intermediate envelope; returns once the connection took it (backpressure).
Raises ConnectionError when the caller is gone."""
Emit = Callable[[dict[str, Any]], Awaitable[None]]
"""What a producer calls with each packet's `data`."""


class PacketStream:
    """A stream action's answer: `produce(emit)` emits the intermediate packets' data in order
    and returns the final envelope's data."""

    __slots__ = ("produce",)

    def __init__(self, produce: Callable[[Emit], Awaitable[Any]]) -> None:
        self.produce = produce


def packet(data: Any, echo: Any) -> Envelope:
    """An intermediate packet's envelope (and a stream action's success envelope): a success
    envelope marked as a stream action's."""
    answer = ok(data, echo)
    answer["stream"] = STREAM_ACTION
    return answer


def mark_failed(answer: Envelope) -> Envelope:
    """A failed envelope as a stream action answers it: NapCat's error `data`, stream-marked."""
    answer["data"] = dict(ERROR_DATA)
    answer["stream"] = STREAM_ACTION
    return answer
