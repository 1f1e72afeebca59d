"""Requests aiohttp's HTTP parser refuses before any handler runs: answered with an envelope.

A bad request line, header or `Content-Length` (anything the parser calls an HTTP processing
error) gets its 4xx with a 1400 envelope saying what was wrong, like every other refusal, and one
warning line without a traceback: any client can send such bytes, so a traceback per request
would let it flood the log. A crash in our own handler (500) stays an error with its traceback,
answered with a 1200 envelope.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler, RequestPayloadError

from gateway.protocol import envelope, jsonio

log = structlog.get_logger("gateway.http")

LOG_INTERVAL = 1.0
"""Malformed requests are logged at most once a second per listener, with a count."""


class EnvelopeRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering its own errors as envelopes."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # an answer has begun: the connection is broken
            raise ConnectionError("response already started; cannot send an error answer")
        server: Any = self._manager
        if isinstance(exc, ConnectionError):
            # The client went away mid-request (closed, or half-closed before its body ended):
            # there is no one to answer, and nothing of ours failed.
            log.info("client_gone", peer=request.remote, error=str(exc) or type(exc).__name__)
            body = envelope.failed(envelope.Retcode.BAD_REQUEST, "the connection closed early")
        elif status >= 500 or not isinstance(exc, HttpProcessingError):
            self.log_exception("request_crashed", peer=request.remote, exc_info=exc)
            body = envelope.failed(envelope.Retcode.FAILED, "internal error")
        else:
            reason = (message or getattr(exc, "message", "") or "malformed request").strip()
            server.count_malformed(request.remote, reason)
            body = envelope.failed(envelope.Retcode.BAD_REQUEST, f"malformed request: {reason}")
        response = web.Response(
            body=envelope.encode(body, jsonio.dumps),
            status=status,
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        error = kw.get("exc_info")
        if isinstance(error, RequestPayloadError | ConnectionError):
            # aiohttp drains what a finished request left unread; a client that went away
            # meanwhile is not an error of ours.
            log.info("client_gone", error=str(error) or type(error).__name__)
            return
        log.error(*args, **kw)


class EnvelopeServer(web.Server):
    """aiohttp's low-level server whose connections answer parser errors as envelopes."""

    def __init__(self, *args: Any, name: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.name = name
        self.malformed = 0
        self._unlogged = 0
        self._last_log = 0.0

    def __call__(self) -> RequestHandler:
        return EnvelopeRequestHandler(self, loop=self._loop, **self._kwargs)

    def count_malformed(self, peer: str | None, reason: str) -> None:
        """Count one malformed request; log it unless one was logged less than a second ago."""
        self.malformed += 1
        self._unlogged += 1
        now = time.monotonic()
        if now - self._last_log >= LOG_INTERVAL:
            log.warning(
                "malformed_request",
                server=self.name,
                peer=peer,
                reason=reason[:200],
                count=self._unlogged,
            )
            self._last_log = now
            self._unlogged = 0
