"""`httpServers[]`: the HTTP API adapter (reference/spec-http-api.txt, codes fixed in DESIGN.md).

`/:action` by GET (query) or POST (JSON, JSON5, urlencoded, or no content type); the query
overrides body fields; `/` answers a health envelope. An entry serving several accounts takes
the account from `/<self_id>/:action`, an `X-Self-ID` header or `self_id` in the parameters
(`?self_id=` included; see `gateway.network.binding` and `gateway.front`). Order of work for
every request: CORS preflight → token (403 + 1403) → body (413 / 1400) → dispatcher. Every
answer is an envelope; a stream action's come as NapCat writes them, on one chunked response
(`http_stream`).
"""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from typing import Any

import structlog
from aiohttp import HttpVersion11, web
from aiohttp.web_protocol import RequestPayloadError

from gateway import __version__
from gateway.actions.stream import STREAM_ACTIONS
from gateway.config import HttpServerConfig
from gateway.front import Caller
from gateway.logging import bind_log_context, reset_log_context
from gateway.network import body_parser
from gateway.network.binding import bind, split_account_path
from gateway.network.body_parser import BodyParser
from gateway.network.http_stream import HttpPackets
from gateway.network.listener import Listener, Services, envelope_response
from gateway.network.ws_connection import accept, is_upgrade, settings_for
from gateway.protocol import envelope, jsonio
from gateway.protocol.envelope import ActionError, BadRequest, ExpectationFailed, PayloadTooLarge

log = structlog.get_logger("gateway.http")

CORS_METHODS = "GET, POST, OPTIONS"
CORS_DEFAULT_HEADERS = "Authorization, Content-Type"
CORS_MAX_AGE = "600"
ANY_ORIGIN = {"Access-Control-Allow-Origin": "*"}


class HttpServer(Listener):
    """One `httpServers` (or `httpSseServers`) entry; WebSockets on the same port when enabled."""

    entry: HttpServerConfig

    def __init__(self, entry: HttpServerConfig, services: Services) -> None:
        accounts = services.dispatcher.event_filter()
        ws_settings = settings_for(entry, accounts) if entry.enable_websocket else None
        super().__init__(
            entry, services, heart_interval=entry.heart_interval, ws_settings=ws_settings
        )
        self.add_routes()

    def add_routes(self) -> None:
        """Register routes; subclasses add theirs before the catch-all `/:action`."""
        self.route("*", self._handle, guarded=True)

    def screen(self, request: web.BaseRequest) -> web.StreamResponse | None:
        # A CORS preflight carries no token by design: it is answered before the token check.
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            origin = request.headers.get("Origin")
            allowed = self._allowed_origin(origin)
            if allowed is None:
                reason = (
                    f"CORS: origin {origin!r} is not allowed"
                    if self.entry.enable_cors
                    else f"CORS is disabled on server {self.name!r}"
                )
                return envelope_response(envelope.failed(1403, reason), 403)
            return web.Response(status=204, headers=self._preflight_headers(request, allowed))
        return super().screen(request)

    def cors_headers(self, request: web.BaseRequest) -> dict[str, str] | None:
        """CORS headers for an answer to `request`, or None when it needs none.

        Only requests with an `Origin` header (what browsers send on every cross-origin request)
        get them; an allow-list also adds `Vary: Origin` so caches keep answers apart.
        """
        origin = request.headers.get("Origin")
        if origin is None:
            return None
        allowed = self._allowed_origin(origin)
        if allowed is None:
            return None
        if allowed == "*":
            return ANY_ORIGIN
        return {"Access-Control-Allow-Origin": allowed, "Vary": "Origin"}

    def _allowed_origin(self, origin: str | None) -> str | None:
        """The `Access-Control-Allow-Origin` value for this request, or None for no CORS."""
        if not self.entry.enable_cors:
            return None
        if not self.entry.cors_origins:
            return "*"
        if origin is not None and origin in self.entry.cors_origins:
            return origin
        return None

    @staticmethod
    def _preflight_headers(request: web.BaseRequest, allowed: str) -> dict[str, str]:
        headers = {
            "Access-Control-Allow-Origin": allowed,
            "Access-Control-Allow-Methods": CORS_METHODS,
            "Access-Control-Allow-Headers": request.headers.get(
                "Access-Control-Request-Headers", CORS_DEFAULT_HEADERS
            ),
            "Access-Control-Max-Age": CORS_MAX_AGE,
        }
        if allowed != "*":
            headers["Vary"] = "Origin"
        return headers

    # --- requests ------------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        # Guarded inline (see Listener.route): counted in flight, screened, then served.
        self.in_flight += 1
        try:
            refusal = self.screen(request)
            if refusal is not None:
                return refusal
            if self.ws_settings is not None and is_upgrade(request):
                return await accept(
                    request,
                    self.ws_settings,
                    self.dispatcher,
                    self.bus,
                    self.websockets,
                    self.services.parser,
                )
            if not request.path.startswith("/"):
                return self._answer_target(request)
            path_id, path = split_account_path(request.path)
            caller: Caller = self.dispatcher
            if path_id is not None or "X-Self-ID" in request.headers:
                binding = bind(self.dispatcher, request, path_id)
                if isinstance(binding, ActionError):
                    return self._answer(request, envelope.from_error(binding), binding.http_status)
                caller = binding.caller
            action = path.split("/")[1]
            if not action:
                return self._answer(request, envelope.ok(self._health(caller)))
            if request.method not in ("GET", "POST"):
                message = f"method {request.method} is not allowed; use GET or POST"
                return self._answer(request, envelope.failed(1400, message), 405)
            try:
                payload = await read_payload(
                    request, self.entry.max_body_size, self.services.parser
                )
            except ActionError as error:
                return self._answer(request, envelope.from_error(error), error.http_status)
            echo = payload.pop("echo", None)
            context = bind_log_context(
                server=self.name, peer=request.remote, action=action, echo=echo
            )
            try:
                if self.entry.debug:
                    log.info("http_request", method=request.method, params=payload)
                if action in STREAM_ACTIONS:
                    return await self._stream(request, caller, action, payload, echo)
                body = await caller.call(action, payload, echo)
                if self.entry.debug:
                    log.info("http_response", response=body)
            finally:
                reset_log_context(context)
            return self._answer(request, body)
        finally:
            self.leave()

    async def _stream(
        self,
        request: web.BaseRequest,
        caller: Caller,
        action: str,
        payload: dict[str, Any],
        echo: Any,
    ) -> web.StreamResponse:
        cors = self.cors_headers(request) if self.entry.enable_cors else None
        packets = HttpPackets(request, cors)
        answer = await caller.call(action, payload, echo, packets.send)
        if self.entry.debug:
            log.info("http_response", response=answer)
        return await packets.finish(answer)

    def _answer_target(self, request: web.BaseRequest) -> web.Response:
        """A request target that is not a path: `OPTIONS *` asks what the server allows (RFC 9110
        §9.3.7); anything else (`GET *`, authority-form) is a bad request."""
        if request.method == "OPTIONS" and request.path == "*":
            return web.Response(status=204, headers={"Allow": "GET, POST, OPTIONS"})
        message = f"the request target must be a path like /get_status, got {request.path!r}"
        return self._answer(request, envelope.failed(1400, message), 400)

    def _answer(self, request: web.BaseRequest, body: Any, status: int = 200) -> web.Response:
        cors = self.cors_headers(request) if self.entry.enable_cors else None
        return envelope_response(body, status, cors)

    def _health(self, caller: Caller) -> dict[str, Any]:
        """What `/` (or `/<self_id>/`) answers: the server and the accounts it serves there
        (`backend` and `self_id` of the first, for one-account clients)."""
        accounts = caller.accounts()
        first = accounts[0] if accounts else None
        return {
            "app_name": "onebot-gateway",
            "app_version": __version__,
            "server": self.name,
            "backend": first.backend.kind if first else None,
            "self_id": first.self_id if first else None,
            "accounts": [
                {"name": a.name, "self_id": a.self_id, "backend": a.backend.kind} for a in accounts
            ],
        }


async def read_payload(request: web.BaseRequest, limit: int, parser: BodyParser) -> dict[str, Any]:
    """Merge the body (POST) with the query string; the query wins. Raises BadRequest kinds."""
    # The common request (a JSON POST without a query string) takes the fewest steps: each
    # header or property read here is a measurable share of a ~60 µs request.
    query = (
        {k: v for k, v in request.query.items() if k != "access_token"}
        if request.query_string
        else None
    )
    if request.method == "GET":
        return query or {}
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"request body of {length} bytes exceeds the limit of {limit} bytes")
    if request.headers.get("Expect") is not None:
        await _continue(request)
    media_type = request.headers.get("Content-Type", "").partition(";")[0].strip().lower()
    if media_type.startswith("multipart/"):
        raise BadRequest("multipart bodies are not supported; send JSON or urlencoded")
    raw = await read_body(request, limit)
    # `curl -d '{...}'` labels a JSON body as a form: one that opens like a JSON object is JSON
    # (no real form starts with `{`).
    if media_type == "application/x-www-form-urlencoded" and not JSON_OBJECT_START.match(raw):
        body: Any = parse_form(raw, request.charset)
        return {**body, **query} if query else body
    if not raw or raw.isspace():  # not `strip()`: that copies a large body whole
        body = {}
    else:
        try:
            body = await parser.loads(raw)
        except jsonio.JsonError as error:
            raise BadRequest(
                f"invalid JSON body: {error}", echo=jsonio.salvage_echo(error)
            ) from None
        if not isinstance(body, dict):
            raise BadRequest(f"the JSON body must be an object, got {jsonio.type_name(body)}")
    return {**body, **query} if query else body


MAX_FORM_FIELDS = 10_000
JSON_OBJECT_START = re.compile(rb"\s*\{")
INLINE_BODY = body_parser.INLINE_LIMIT
"""Bodies read whole (`request.read()`); larger or unsized ones are read a slice at a time."""
YIELD_EVERY = 1024 * 1024
"""Bytes of a large body gathered between two turns of the event loop."""


async def read_body(request: web.BaseRequest, limit: int) -> bytes | bytearray:
    """The body, read a slice at a time when large; BadRequest when it cannot be decoded."""
    try:
        if request.content_length is not None and request.content_length <= INLINE_BODY:
            return await request.read()
        return await read_large(request, limit)
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes") from None
    except RequestPayloadError as error:  # e.g. a Content-Encoding the body is not in
        raise BadRequest(f"cannot read the body: {error}") from None


async def read_large(request: web.BaseRequest, limit: int) -> bytearray:
    """A body that is large or of unknown size, read without holding the loop.

    (`request.read()` drains whatever is already buffered in one go and then copies it whole:
    a measured 100 ms for 64 MiB during which no other client is served.)
    """
    body = bytearray()
    since_yield = 0
    while chunk := await request.content.readany():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        since_yield += len(chunk)
        if since_yield >= YIELD_EVERY:
            since_yield = 0
            await asyncio.sleep(0)
    return body


def parse_form(raw: bytes | bytearray, charset: str | None) -> dict[str, str]:
    """An urlencoded body as a dict (the last of repeated keys wins); BadRequest when the body
    or a percent-escape is not text in its charset (UTF-8 unless declared)."""
    # Parsed here rather than by `request.post()`, which lets UnicodeDecodeError and an unknown
    # charset's LookupError escape as HTTP 500.
    encoding = charset or "utf-8"
    try:
        text = raw.decode(encoding)
        pairs = urllib.parse.parse_qsl(
            text,
            keep_blank_values=True,
            encoding=encoding,
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except LookupError:
        raise BadRequest(f"unknown charset {charset!r} in Content-Type") from None
    except UnicodeDecodeError as error:
        raise BadRequest(f"urlencoded body is not valid {encoding}: {error.reason}") from None
    except ValueError:
        raise BadRequest(f"urlencoded body has more than {MAX_FORM_FIELDS} fields") from None
    return dict(pairs)


async def _continue(request: web.BaseRequest) -> None:
    """Answer `Expect: 100-continue` (curl sends it before large bodies and otherwise waits a
    second). Only reached once the token and the declared size have passed, so a refused
    client never uploads its body. (An aiohttp Application does this in its router; the
    listeners run on the low-level server.)"""
    if request.version != HttpVersion11:
        return
    expectation = request.headers["Expect"]
    if expectation.lower() != "100-continue":
        raise ExpectationFailed(f"unsupported Expect: {expectation!r}")
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the interim answer is not part of the response
