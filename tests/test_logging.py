"""Secrets never reach log output, and redaction never mangles the rest of a line."""

from __future__ import annotations

import io
import json

import structlog

from gateway import logging as gateway_logging


def render(tokens: list[str], **fields: object) -> dict[str, object]:
    stream = io.StringIO()
    gateway_logging.configure("info", "json", stream)
    gateway_logging.redactor.set_tokens(tokens)
    try:
        structlog.get_logger("t").info("request_seen", **fields)
    finally:
        gateway_logging.redactor.set_tokens([])
        structlog.reset_defaults()
    return dict(json.loads(stream.getvalue()))


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
