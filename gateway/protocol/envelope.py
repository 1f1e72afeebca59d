"""The OneBot 11 response envelope, its retcodes, and the errors that carry them.

Errors carry protocol data (retcode, HTTP status, message) and are rendered once, at the edge.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import Any

Envelope = dict[str, Any]


class Retcode(IntEnum):
    """Retcodes the gateway itself mints (DESIGN.md, wire contract)."""

    OK = 0
    ASYNC = 1
    FAILED = 1200
    BAD_REQUEST = 1400
    FORBIDDEN = 1403
    NOT_FOUND = 1404


class ActionError(Exception):
    """An action that cannot be answered with data; rendered as a failed envelope."""

    retcode: int = Retcode.FAILED
    http_status: int = 200

    def __init__(self, message: str, *, echo: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.echo = echo
        """The caller's echo, when the error is raised before the call could carry it."""


class BadRequest(ActionError):
    """Bad JSON, a body that is not an object, or parameters that do not validate."""

    retcode = Retcode.BAD_REQUEST


class PayloadTooLarge(BadRequest):
    """A body over the entry's limit: HTTP 413 with a 1400 envelope."""

    http_status = 413


class ExpectationFailed(BadRequest):
    """An `Expect` header other than `100-continue`: HTTP 417 with a 1400 envelope."""

    http_status = 417


class Forbidden(ActionError):
    """A missing or wrong token: HTTP 403 with a 1403 envelope."""

    retcode = Retcode.FORBIDDEN
    http_status = 403


class ActionNotFound(ActionError):
    """An unknown action, or one the backend does not provide."""

    retcode = Retcode.NOT_FOUND


class ActionFailed(ActionError):
    """The action ran and failed in the backend; the message explains why."""

    retcode = Retcode.FAILED


def ok(data: Any = None, echo: Any = None) -> Envelope:
    """A success envelope."""
    return {
        "status": "ok",
        "retcode": 0,
        "data": data,
        "message": "",
        "wording": "",
        "echo": echo,
        "stream": "normal-action",
    }


def failed(retcode: int, message: str, echo: Any = None) -> Envelope:
    """A failure envelope; `wording` repeats `message` as NapCat does."""
    return {
        "status": "failed",
        "retcode": int(retcode),
        "data": None,
        "message": message,
        "wording": message,
        "echo": echo,
        "stream": "normal-action",
    }


def accepted(echo: Any = None) -> Envelope:
    """The OneBot `_async` answer: queued, outcome unknowable, `data` always null."""
    return {
        "status": "async",
        "retcode": int(Retcode.ASYNC),
        "data": None,
        "message": "",
        "wording": "",
        "echo": echo,
        "stream": "normal-action",
    }


def from_error(error: ActionError, echo: Any = None) -> Envelope:
    """Render an ActionError as its envelope (with the error's own echo when none is given)."""
    return failed(error.retcode, error.message, error.echo if echo is None else echo)


def encode(answer: Envelope, dumps: Callable[[Any], bytes]) -> bytes:
    """`answer` serialised by `dumps`; an answer whose data cannot be serialised (a backend bug:
    input is checked at parse time) becomes a 1200 envelope saying so, echo kept if it can be."""
    try:
        return dumps(answer)
    except TypeError as error:  # orjson.JSONEncodeError is a TypeError
        message = f"the answer could not be encoded: {error}"
        try:
            return dumps(failed(Retcode.FAILED, message, answer.get("echo")))
        except TypeError:
            return dumps(failed(Retcode.FAILED, message))
