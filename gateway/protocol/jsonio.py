"""JSON in and out: orjson on the fast path, a compiled JSON5 parser only when strict JSON fails.

Whatever `loads` returns can be encoded again by `dumps`: input that parses but could not be sent
back (a lone surrogate, an integer beyond 64 bits, NaN or Infinity) is refused at parse time, so
it never reaches a handler, a database row or an answer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson
import pyjson5

MAX_DEPTH = 1024
"""Nesting both parsers accept: orjson's own limit, so strict JSON and JSON5 refuse alike."""


class JsonError(ValueError):
    """Input that is neither JSON nor JSON5, or cannot be represented; the message says why."""


def loads(data: bytes | bytearray | str) -> Any:
    """Parse JSON, falling back to JSON5 (comments, single quotes, trailing commas, hex numbers).

    Raises JsonError naming the position of the first error, or what cannot be represented.
    Cost: orjson's for strict JSON; JSON5 runs at a few tens of MB/s, so callers bound the size
    of untrusted input they parse here (see `gateway.network.parser_pool`).
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as strict_error:
        return _loads_json5(data, strict_error)


def _loads_json5(data: bytes | bytearray | str, strict_error: orjson.JSONDecodeError) -> Any:
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as error:
            raise JsonError(f"not valid UTF-8 at byte {error.start}") from None
    else:
        text = data
    try:
        value = pyjson5.decode(text, maxdepth=MAX_DEPTH)
    except pyjson5.Json5NestingTooDeep:
        raise JsonError(f"nesting deeper than {MAX_DEPTH} levels") from None
    except (pyjson5.Json5Exception, RecursionError):
        # The strict parser's message names line, column and character; JSON5's names an offset.
        raise JsonError(str(strict_error)) from None
    _check_representable(value, text)
    return value


def _check_representable(value: Any, text: str) -> None:
    """Refuse what JSON5 admits but JSON answers cannot carry (strict JSON never yields it)."""
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError as error:
        # Integers beyond 64 bits, and lone surrogates written raw into a str.
        raise JsonError(f"a value cannot be represented: {error}") from None
    # orjson writes NaN and Infinity as null, so it would silently change them: look for them.
    if ("NaN" in text or "Infinity" in text) and _has_non_finite(value):
        raise JsonError("NaN and Infinity are not accepted")


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
