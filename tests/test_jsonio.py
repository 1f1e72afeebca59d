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


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b'{"a": "\\ud800"}', "surrogate"),  # strict JSON refuses it; JSON5 must too
        (b'{"a": "\\udc00"}', "surrogate"),
        (b"{a: 123456789012345678901234567890}", "64-bit"),
        (b"[NaN]", "NaN"),
        (b"{a: [Infinity]}", "Infinity"),
        (b"{a: '\xff'}", "UTF-8"),
    ],
)
def test_loads_refuses_what_cannot_be_encoded_again(text: bytes, reason: str) -> None:
    with pytest.raises(jsonio.JsonError) as raised:
        jsonio.loads(text)
    assert reason.lower() in str(raised.value).lower() or "line 1 column" in str(raised.value)


def test_loads_keeps_nan_inside_strings() -> None:
    assert jsonio.loads(b"{a: 'NaN', b: 'Infinity'}") == {"a": "NaN", "b": "Infinity"}


def test_loads_refuses_nesting_past_the_strict_parsers_limit() -> None:
    with pytest.raises(jsonio.JsonError):
        jsonio.loads(b"[" * (jsonio.MAX_DEPTH + 1))
    assert jsonio.loads(b"[" * 100 + b"1," + b"]" * 100)  # JSON5 (trailing comma) still nests


def test_loads_bounded_refuses_documents_of_too_many_values() -> None:
    assert jsonio.loads_bounded(b"[1,2,3]", 4) == [1, 2, 3]
    with pytest.raises(jsonio.JsonError, match="more than 3 values"):
        jsonio.loads_bounded(b"[1,2,3]", 3)
