"""JSON in and out: orjson on the fast path, JSON5 only when strict JSON fails."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import json5
import orjson


class JsonError(ValueError):
    """Input that is neither JSON nor JSON5; the message says where parsing failed."""


def loads(data: bytes | str) -> Any:
    """Parse JSON, falling back to JSON5 (comments, single quotes, trailing commas).

    Raises JsonError naming the position of the first error.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as strict_error:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        try:
            return json5.loads(text)
        except ValueError:
            # The strict parser's message names line, column and character; JSON5's does not.
            raise JsonError(str(strict_error)) from None
        except RecursionError:
            raise JsonError("nesting too deep") from None


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
