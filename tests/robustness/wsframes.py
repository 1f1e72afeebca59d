"""A raw WebSocket client (RFC 6455) that sends what real clients refuse to.

aiohttp's client always masks, never sends invalid UTF-8 in a text frame and reassembles
fragments itself; the fuzz tests need to break each of those rules. Frames are built by hand
(`frame`) and written on an asyncio stream; server frames are parsed back (`read_frame`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import struct
from dataclasses import dataclass

from tests.robustness.rawhttp import shut

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CONTROL = {CLOSE, PING, PONG}
HANDSHAKE_TIMEOUT = 5.0
"""A hang detector for connecting and upgrading (never reached when the server works)."""
SEND_TIMEOUT = 30.0
"""How long a burst may take to be taken in: a hang detector, far above any real run."""
NO_CLOSE_FRAME = 1006
"""RFC 6455's code for "closed without a close frame" (never sent on the wire)."""


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    mask: bool = True,
    rsv: int = 0,
    length: int | None = None,
) -> bytes:
    """One frame. `rsv` sets RSV1-3 (bits 0b100, 0b010, 0b001); `length` overrides the declared
    payload length (to announce more than is sent). Masked with a random key unless `mask` is off.
    """
    declared = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv & 0x7) << 4 | opcode & 0xF])
    mask_bit = 0x80 if mask else 0
    if declared < 126:
        head += bytes([mask_bit | declared])
    elif declared < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", declared)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", declared)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + masked(payload, key)


def masked(payload: bytes, key: bytes) -> bytes:
    """XOR with the 4-byte key, as RFC 6455 §5.3 (its own inverse)."""
    if not payload:
        return b""
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(payload), "big"
    )


def describe(data: bytes, limit: int = 60) -> str:
    """Client frames (as `frame` builds them) in readable form: `TEXT+fin b'...'`, one each."""
    names = {CONTINUATION: "CONT", TEXT: "TEXT", BINARY: "BINARY", CLOSE: "CLOSE", PING: "PING"}
    names[PONG] = "PONG"
    out, at = [], 0
    while at + 2 <= len(data):
        first, second = data[at], data[at + 1]
        length, at = second & 0x7F, at + 2
        if length == 126:
            (length,), at = struct.unpack("!H", data[at : at + 2]), at + 2
        elif length == 127:
            (length,), at = struct.unpack("!Q", data[at : at + 8]), at + 8
        key = data[at : at + 4] if second & 0x80 else b""
        at += len(key)
        payload = data[at : at + length]
        at += length
        shown = masked(payload, key) if key else payload
        flags = ("+fin" if first & 0x80 else "") + (f"+rsv{first >> 4 & 7}" if first & 0x70 else "")
        flags += "" if key else "+unmasked"
        more = f"…({length} bytes)" if length > limit else ""
        out.append(f"{names.get(first & 0xF, hex(first & 0xF))}{flags} {shown[:limit]!r}{more}")
    return " | ".join(out)


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


@dataclass(frozen=True, slots=True)
class Frame:
    fin: bool
    opcode: int
    payload: bytes

    @property
    def close_code(self) -> int:
        """The code of a close frame (1005 when it carries none, as RFC 6455 says)."""
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else 1005


class HandshakeRefused(Exception):
    """The server answered the upgrade with something other than 101."""

    def __init__(self, status_line: bytes, head: bytes) -> None:
        super().__init__(status_line.decode("latin-1"))
        self.status_line = status_line
        self.head = head


class RawWebSocket:
    """A client connection whose frames are written raw. Use `connect`, then `close`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(
        cls, port: int, path: str = "/api", headers: dict[str, str] | None = None
    ) -> RawWebSocket:
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in (headers or {}).items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            await shut(writer)
            raise HandshakeRefused(b"no answer to the upgrade", b"") from None
        status_line = head.split(b"\r\n", 1)[0]
        if status_line.split()[1:2] != [b"101"]:
            await shut(writer)
            raise HandshakeRefused(status_line, head)
        return cls(reader, writer)

    async def send(self, *frames: bytes) -> None:
        """Write frames as one chunk (a burst arrives in as few segments as possible). A peer
        that stops reading for good is not waited for (the caller's read then reports it)."""
        self.writer.write(b"".join(frames))
        with contextlib.suppress(ConnectionError, TimeoutError):
            async with asyncio.timeout(SEND_TIMEOUT):
                await self.writer.drain()

    async def read_frame(self) -> Frame | None:
        """The server's next frame, or None at end of stream (closed without a close frame)."""
        try:
            first, second = await self.reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
            key = await self.reader.readexactly(4) if second & 0x80 else b""
            payload = await self.reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        return Frame(bool(first & 0x80), first & 0x0F, masked(payload, key) if key else payload)

    async def read_message(self) -> Frame | None:
        """The next data or close frame (pongs skipped; pings answered), or None at EOF.

        The server never fragments its frames, so a data frame is a whole message.
        """
        while True:
            got = await self.read_frame()
            if got is None or got.opcode not in (PING, PONG):
                return got
            if got.opcode == PING:
                await self.send(frame(PONG, got.payload))

    async def close(self) -> None:
        """Send a normal close (if still possible) and drop the connection."""
        if not self.writer.is_closing():
            with contextlib.suppress(ConnectionError, TimeoutError):
                self.writer.write(frame(CLOSE, close_payload(1000)))
                async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                    await self.writer.drain()
        await shut(self.writer)
