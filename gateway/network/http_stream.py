"""A stream action over the HTTP API (napcat-network.md §8): one chunked response carrying each
packet, then the final envelope, every one as `JSON + "\\r\\n\\r\\n"`, without a Content-Type,
as NapCat writes them. Every stream action answers so, its failures included."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import hdrs, web

from gateway.protocol import envelope, jsonio
from gateway.protocol.envelope import Envelope
from gateway.protocol.stream import HTTP_SEPARATOR


class PacketResponse(web.StreamResponse):
    """A chunked response that goes out without a Content-Type (aiohttp adds
    `application/octet-stream` to any response with a body)."""

    async def _prepare_headers(self) -> None:
        # aiohttp's hook between deciding the headers and writing them.
        await super()._prepare_headers()
        self.headers.popall(hdrs.CONTENT_TYPE, None)


class HttpPackets:
    """Writes one stream call's packets on its request's response, started at the first one."""

    def __init__(self, request: web.BaseRequest, headers: Mapping[str, str] | None) -> None:
        self.request = request
        self.response = PacketResponse(headers=headers)
        self.response.enable_chunked_encoding()

    async def send(self, packet: Envelope) -> None:
        """Write one packet (`gateway.protocol.stream.Send`); aiohttp's writer waits for the
        socket to drain whenever it holds more than its limit (backpressure)."""
        await self._write(jsonio.dumps(packet))

    async def finish(self, answer: Envelope) -> web.StreamResponse:
        """Write the final envelope and end the response (unless the caller has gone)."""
        try:
            await self._write(envelope.encode(answer, jsonio.dumps))
            await self.response.write_eof()
        except ConnectionError:
            pass  # the caller left mid-stream; the dispatcher has already counted the call
        return self.response

    async def _write(self, data: bytes) -> None:
        if not self.response.prepared:
            await self.response.prepare(self.request)
        await self.response.write(data + HTTP_SEPARATOR)
