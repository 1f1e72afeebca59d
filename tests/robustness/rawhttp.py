"""Raw HTTP/1.1 exchanges over asyncio streams: requests no real client would send.

aiohttp's client refuses non-UTF-8 headers, bad Content-Length values, `OPTIONS *` and the like;
here a request is the exact bytes written. `exchange` reads one answer back (or reports none), and
`problem` judges it against the wire contract (README: every answer is an envelope; 4xx only with
1400, or 403 with 1403).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

ENVELOPE_KEYS = frozenset({"status", "retcode", "data", "message", "wording", "echo"})
OK_RETCODES = frozenset({0, 1, 1200, 1400, 1404})
"""Retcodes an HTTP 200 may carry (README's table)."""
ANSWER_TIMEOUT = 5.0
"""How long an answer may take before it counts as never coming: a hang detector for the
failure case only (a passing run never waits for it), not a performance threshold."""


def request(
    method: bytes | str,
    target: bytes | str,
    body: bytes | str = b"",
    headers: Iterable[tuple[bytes | str, bytes | str]] = (),
    *,
    token: bytes | str | None = None,
    content_length: bool | None = None,
    version: bytes = b"HTTP/1.1",
) -> bytes:
    """The bytes of one request. `Host` is added unless given, `Content-Length` for a body (or
    when asked), `Connection: close` always, so one answer ends the exchange."""

    def raw(value: bytes | str) -> bytes:
        return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value

    extra = [(raw(name), raw(value)) for name, value in headers]
    lines = [raw(method) + b" " + raw(target) + b" " + version]
    if not any(name.lower() == b"host" for name, _ in extra):
        lines.append(b"Host: 127.0.0.1")
    if token is not None:
        lines.append(b"Authorization: Bearer " + raw(token))
    lines += [name + b": " + value for name, value in extra]
    data = raw(body)
    if content_length or (content_length is None and data):
        lines.append(b"Content-Length: %d" % len(data))
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + data


@dataclass
class Answer:
    status: int
    head: bytes
    body: bytes
    interim: list[int] = field(default_factory=list)
    """1xx statuses seen before the final answer (100 Continue)."""

    def json(self) -> Any:
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 20_000))  # an echo may be nested thousands deep
        try:
            return json.loads(self.body)
        except ValueError:
            return None
        finally:
            sys.setrecursionlimit(limit)

    def header(self, name: bytes) -> bytes | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    def __str__(self) -> str:
        body = self.body[:300].decode("utf-8", "backslashreplace")
        return f"HTTP {self.status}: {body}"


async def read_answer(reader: asyncio.StreamReader) -> Answer | None:
    """One final answer (1xx interim answers are collected on the way), or None on EOF."""
    interim: list[int] = []
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return None
        try:
            status = int(head.split(b" ", 2)[1])
        except (IndexError, ValueError):
            return Answer(-1, head, b"", interim)  # not HTTP at all: judged as a problem
        if status == 101:
            return Answer(status, head, b"", interim)  # switched protocols: no body follows
        if 100 <= status < 200:
            interim.append(status)
            continue
        answer = Answer(status, head, b"", interim)
        length = answer.header(b"content-length")
        try:
            if length is not None:
                answer.body = await reader.readexactly(int(length))
            else:
                answer.body = await reader.read()
                if answer.header(b"transfer-encoding") == b"chunked":  # stream actions' answers
                    answer.body = dechunk(answer.body)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        return answer


def dechunk(raw: bytes) -> bytes:
    """The body of a chunked transfer coding (RFC 9112 §7.1), as far as it is complete."""
    body, pos = bytearray(), 0
    while (end := raw.find(b"\r\n", pos)) >= 0:
        size = int(raw[pos:end].split(b";")[0], 16)
        if size == 0:
            break
        body += raw[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2
    return bytes(body)


async def exchange(port: int, data: bytes, *, half_close: bool = False) -> Answer | None:
    """Send `data` on a new connection and read the answer; None when none came (the server
    closed, or nothing within ANSWER_TIMEOUT). `half_close` shuts our side down after sending."""
    try:
        async with asyncio.timeout(ANSWER_TIMEOUT):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    except (OSError, TimeoutError):
        return None  # refused: the gateway is gone (the figures say whether it is alive)
    try:
        async with asyncio.timeout(ANSWER_TIMEOUT):
            writer.write(data)
            if half_close:
                writer.write_eof()
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            return await read_answer(reader)
    except TimeoutError:
        return None
    finally:
        await shut(writer)


async def shut(writer: asyncio.StreamWriter) -> None:
    """Close a connection; abort it when unsent data would keep it open (a peer that stopped
    reading never lets a plain close finish)."""
    writer.close()
    try:
        async with asyncio.timeout(ANSWER_TIMEOUT):
            await writer.wait_closed()
    except (ConnectionError, TimeoutError):
        writer.transport.abort()


def envelope_problem(body: Any) -> str | None:
    """Why a parsed body is not an envelope, or None."""
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    missing = ENVELOPE_KEYS - body.keys()
    if missing:
        return f"the envelope lacks {sorted(missing)}"
    if not isinstance(body["retcode"], int):
        return "retcode is not an integer"
    return None


def problem(answer: Answer | None) -> str | None:
    """Why an answer breaks the contract (README's table), or None when it keeps it."""
    if answer is None:
        return "no answer (connection closed or nothing within the hang timeout)"
    if answer.status >= 500:
        return f"5xx: {answer}"
    wrong = envelope_problem(answer.json())
    if wrong:
        return f"{wrong}: {answer}"
    retcode = answer.json()["retcode"]
    if answer.status == 200:
        if retcode not in OK_RETCODES:
            return f"HTTP 200 with retcode {retcode}: {answer}"
    elif answer.status == 403:
        if retcode != 1403:
            return f"HTTP 403 without retcode 1403: {answer}"
    elif 400 <= answer.status < 500:
        if retcode != 1400:
            return f"HTTP {answer.status} without retcode 1400: {answer}"
    else:
        return f"unexpected HTTP status: {answer}"
    return None
