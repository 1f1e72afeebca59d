"""JSON in and out: orjson on the fast path, a compiled JSON5 parser only when strict JSON fails.

Whatever `loads` returns can be encoded again by `dumps`: input that parses but could not be sent
back (a lone surrogate, an integer beyond 64 bits, NaN or Infinity) is refused at parse time, so
it never reaches a handler, a database row or an answer.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import orjson
import pyjson5

MAX_DEPTH = 254
"""Nesting accepted: what orjson can write back (an answer nests its echo one level deeper, and
the envelope's own level is the request's)."""
_LONG_DIGITS = re.compile(rb"\d{20}")
_LONG_DIGITS_TEXT = re.compile(r"\d{20}")


class JsonError(ValueError):
    """Input that is neither JSON nor JSON5, or cannot be represented; the message says why.

    `document` is the parsed input when it parsed but holds something that cannot be written
    back (so a caller may still answer with its `echo`), else None.
    """

    def __init__(self, message: str, document: Any = None) -> None:
        super().__init__(message)
        self.document = document

    def __reduce__(self) -> Any:  # crosses the body parser's process boundary
        return (JsonError, (str(self), self.document))


def loads(data: bytes | bytearray | str) -> Any:
    """Parse JSON, falling back to JSON5 (comments, single quotes, trailing commas, hex numbers).

    Raises JsonError naming the position of the first error, or what cannot be represented.
    Cost: orjson's for strict JSON; JSON5 runs at a few tens of MB/s, so callers bound the size
    of untrusted input they parse here (see `gateway.network.body_parser`).
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as strict_error:
        return _loads_json5(data, str(strict_error))
    if len(data) >= 20:
        # orjson reads an integer beyond 64 bits as a float, silently changing it: a document
        # with a run of 20 digits is read again exactly, and refused if such an integer is there.
        found = (
            _LONG_DIGITS_TEXT.search(data) if isinstance(data, str) else _LONG_DIGITS.search(data)
        )
        if found:
            return _loads_json5(data, None)
        if len(data) > 2 * MAX_DEPTH:
            # orjson reads 1024 levels but writes 254: deep input must be writable.
            _check_representable(value, json5=False)
    return value


def _loads_json5(data: bytes | bytearray | str, strict_error: str | None) -> Any:
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as error:
            raise JsonError(f"not valid UTF-8 at byte {error.start}") from None
    else:
        text = data
    try:
        value = pyjson5.decode(text, maxdepth=MAX_DEPTH + 1)
    except pyjson5.Json5NestingTooDeep:
        raise JsonError(f"nesting deeper than {MAX_DEPTH} levels") from None
    except (pyjson5.Json5Exception, RecursionError) as error:
        # The strict parser's message names line, column and character; JSON5's names an offset.
        raise JsonError(strict_error or str(error), _lenient_document(text)) from None
    _check_representable(value, json5=True)
    return value


def _check_representable(value: Any, *, json5: bool) -> None:
    """Refuse what parses but JSON answers cannot carry: integers beyond 64 bits, lone
    surrogates, nesting past MAX_DEPTH (orjson refuses to write them), NaN and Infinity (orjson
    would write them as null, silently)."""
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError as error:
        reason = "nesting too deep" if "Recursion" in str(error) else str(error)
        raise JsonError(f"a value cannot be represented: {reason}", value) from None
    if json5 and _has_non_finite(value):  # strict JSON has no NaN, and orjson refuses 1e400
        raise JsonError(
            "NaN and Infinity (or numbers too large for a double) are not accepted", value
        )


def _has_non_finite(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _lenient_document(text: str) -> Any:
    """The document as the standard library reads it (it admits lone surrogate escapes, which
    both strict parsers refuse), so a refusal can still carry the caller's echo; None if that
    fails too. Only ever reached on input that is being refused."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def salvage_echo(error: JsonError) -> Any:
    """The `echo` of a document refused only for something it holds elsewhere (so the caller
    can still match the refusal to its call), or None."""
    document = error.document
    if not isinstance(document, dict) or "echo" not in document:
        return None
    echo = document["echo"]
    try:
        orjson.dumps(echo)
    except orjson.JSONEncodeError:
        return None
    return None if _has_non_finite(echo) else echo


def count_values(value: Any, limit: int) -> int:
    """How many JSON values `value` holds (itself included), counting stops past `limit`."""
    count = 0
    stack = [value]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def dumps(obj: Any) -> bytes:
    """Serialise to compact UTF-8 JSON; non-string dict keys become strings."""
    # Strict first: orjson's OPT_NON_STR_KEYS doubles the cost of every dict, and only a rare
    # answer has an integer key.
    try:
        return orjson.dumps(obj)
    except orjson.JSONEncodeError:
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)


def type_name(value: Any) -> str:
    """The JSON name of a value's type (`object`, `array`, `null`, ...), for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def loads_bounded(data: bytes | bytearray | str, max_values: int) -> Any:
    """`loads`, refusing a document of more than `max_values` JSON values (JsonError).

    Run in the body parser's worker process: what comes back has to be rebuilt on the event
    loop, so its size in values bounds that cost.
    """
    value = loads(data)
    if count_values(value, max_values) > max_values:
        raise JsonError(f"the document holds more than {max_values} values")
    return value
