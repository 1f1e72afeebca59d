"""The opening handshake of a WebSocket (RFC 6455 §4.2.1), checked before aiohttp sees it.

aiohttp answers a malformed upgrade with a plain-text 400, and a non-ASCII key or version with
an HTTP 500; it also upgrades a POST. Here every malformed upgrade gets its 4xx with a 1400
envelope naming the header, like every other refusal of the gateway.
"""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from gateway.protocol import envelope, jsonio

VERSION = "13"


def handshake_refusal(request: web.BaseRequest) -> web.Response | None:
    """The answer to an upgrade request that is not a valid opening handshake, or None."""
    if request.method != "GET":
        return _refuse(f"a WebSocket upgrade must be a GET, not {request.method}")
    connection = request.headers.get("Connection", "")
    if "upgrade" not in (token.strip().lower() for token in connection.split(",")):
        return _refuse("a WebSocket upgrade needs `Connection: Upgrade`")
    version = request.headers.get("Sec-WebSocket-Version", "")
    if version.strip() != VERSION:
        # §4.4: tell the client which version this server speaks.
        return _refuse(f"Sec-WebSocket-Version must be {VERSION}", status=426, version_header=True)
    key = request.headers.get("Sec-WebSocket-Key", "")
    if not _valid_key(key):
        return _refuse("Sec-WebSocket-Key must be 16 bytes in base64")
    return None


def _valid_key(key: str) -> bool:
    try:
        raw = base64.b64decode(key.strip().encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        return False
    return len(raw) == 16


def _refuse(message: str, status: int = 400, *, version_header: bool = False) -> web.Response:
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if version_header:
        headers["Sec-WebSocket-Version"] = VERSION
    body = jsonio.dumps(envelope.failed(envelope.Retcode.BAD_REQUEST, message))
    return web.Response(body=body, status=status, headers=headers)
