"""JSON in and out: strict and lenient parsing, compact output, non-string keys."""

from __future__ import annotations

import pytest

from gateway.protocol import jsonio


def test_dumps_is_compact_utf8() -> None:
    assert jsonio.dumps({"a": [1, "é"], "b": None}) == '{"a":[1,"é"],"b":null}'.encode()


def test_dumps_turns_non_string_keys_into_strings_at_any_depth() -> None:
    assert jsonio.dumps({1: "a", "b": [{2: 3}]}) == b'{"1":"a","b":[{"2":3}]}'


def test_dumps_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        jsonio.dumps({"a": object()})


def test_loads_falls_back_to_json5_and_names_the_strict_error() -> None:
    assert jsonio.loads(b"{a: 1, // note\n b: 'x',}") == {"a": 1, "b": "x"}
    with pytest.raises(jsonio.JsonError, match="line 1 column"):
        jsonio.loads(b'{"a": }')
