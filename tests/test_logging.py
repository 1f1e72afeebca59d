"""Secrets never reach log output, and redaction never mangles the rest of a line."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator

import structlog

from gateway import logging as gateway_logging


@contextlib.contextmanager
def configured(stream: io.StringIO) -> Iterator[None]:
    """The gateway's logging to `stream` for a while; structlog and the root logger restored."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    gateway_logging.configure("info", "json", stream)
    try:
        yield
    finally:
        gateway_logging.redactor.set_tokens([])
        structlog.reset_defaults()
        root.handlers, root.level = handlers, level


def render(tokens: list[str], **fields: object) -> dict[str, object]:
    stream = io.StringIO()
    with configured(stream):
        gateway_logging.redactor.set_tokens(tokens)
        structlog.get_logger("t").info("request_seen", **fields)
    return dict(json.loads(stream.getvalue()))


def test_standard_library_loggers_become_redacted_json_lines() -> None:
    stream = io.StringIO()
    with configured(stream):
        gateway_logging.redactor.set_tokens(["secret-token-1"])
        try:
            raise ValueError("boom secret-token-1")
        except ValueError:
            logging.getLogger("aiohttp.server").exception("Error handling request from %s", "::1")
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["event"] == "Error handling request from ::1"
    assert (line["logger"], line["level"]) == ("aiohttp.server", "error")
    assert "ValueError: boom ***" in line["exception"]


def test_secret_named_keys_are_masked() -> None:
    line = render([], token="abc", headers={"Authorization": "Bearer abc", "Accept": "x"})
    assert line["token"] == "***"
    assert line["headers"] == {"Authorization": "***", "Accept": "x"}


def test_known_token_values_are_scrubbed_inside_strings() -> None:
    line = render(["s3cret-token"], url="http://h/x", note="saw s3cret-token in a body")
    assert line["note"] == "saw *** in a body"


def test_query_and_bearer_tokens_are_scrubbed_whatever_their_length() -> None:
    line = render([], url="/send?access_token=t&x=1", header="Bearer t")
    assert line["url"] == "/send?access_token=***&x=1"
    assert line["header"] == "Bearer ***"


def test_a_short_token_does_not_mangle_other_text() -> None:
    line = render(["t"], address="http://127.0.0.1:3000", kind="httpServers")
    assert line["event"] == "request_seen"
    assert line["address"] == "http://127.0.0.1:3000" and line["kind"] == "httpServers"


def test_a_field_orjson_refuses_is_escaped_not_raised() -> None:
    line = render([], text="lone \ud800", number=2**70)
    assert (line["text"], line["number"]) == ("lone \ud800", 2**70)
