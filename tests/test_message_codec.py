"""The message codec: CQ strings <-> segment arrays, escaping, and normalization of input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.protocol.message import (
    Message,
    MessageError,
    escape_text,
    escape_value,
    normalize,
    parse_cq,
    plain_text,
    raw_message,
    to_cq,
    unescape_text,
    unescape_value,
)

# --- strategies -------------------------------------------------------------------------------

# Pieces that exercise the escaping and the grammar far more often than uniform unicode would.
_TRICKY = [
    "&",
    "[",
    "]",
    ",",
    "=",
    "&#44;",
    "&amp;",
    "&#91;",
    "&#93;",
    "&amp;#91;",
    "[CQ:",
    "[CQ:]",
    "[CQ:face,id=1]",
    "[CQ:at,qq=]",
    "[CQ:text,text=x]",
    "CQ:",
    "face",
    "id",
    " ",
    "\n",
    "中文",
    "😀",
]
tricky_text = st.lists(st.one_of(st.text(max_size=5), st.sampled_from(_TRICKY)), max_size=12).map(
    "".join
)
segment_types = st.from_regex(r"[a-z_]{1,10}", fullmatch=True).filter(lambda t: t != "text")
data_keys = st.from_regex(r"[a-z_]{1,8}", fullmatch=True)

text_segments = tricky_text.map(lambda s: {"type": "text", "data": {"text": s}})
other_segments = st.builds(
    lambda t, d: {"type": t, "data": d},
    segment_types,
    st.dictionaries(data_keys, tricky_text, max_size=4),
)
# normalize() merges adjacent text and drops empty text, so every generated array is normalized.
normalized_messages = st.lists(st.one_of(text_segments, other_segments), max_size=8).map(normalize)


def text(s: str) -> dict[str, Any]:
    return {"type": "text", "data": {"text": s}}


def seg(seg_type: str, **data: Any) -> dict[str, Any]:
    return {"type": seg_type, "data": data}


# --- properties -------------------------------------------------------------------------------


@given(normalized_messages)
def test_normalized_array_round_trips_through_cq(message: Message) -> None:
    assert parse_cq(to_cq(message)) == message


@given(st.text())
def test_any_text_round_trips_as_one_text_segment(s: str) -> None:
    assert parse_cq(to_cq([text(s)])) == ([text(s)] if s else [])


@given(tricky_text)
def test_tricky_text_round_trips_as_one_text_segment(s: str) -> None:
    assert parse_cq(to_cq([text(s)])) == ([text(s)] if s else [])


@given(st.one_of(st.text(), tricky_text))
def test_text_escaping_is_inverted_by_unescaping(s: str) -> None:
    assert unescape_text(escape_text(s)) == s


@given(st.one_of(st.text(), tricky_text))
def test_value_escaping_is_inverted_by_unescaping(s: str) -> None:
    assert unescape_value(escape_value(s)) == s


@given(st.one_of(st.text(), tricky_text))
def test_parse_never_raises_and_reencoding_is_idempotent(s: str) -> None:
    parsed = parse_cq(s)
    assert parse_cq(to_cq(parsed)) == parsed


@given(st.one_of(st.text(), tricky_text))
def test_parse_output_is_already_normalized(s: str) -> None:
    parsed = parse_cq(s)
    assert normalize(parsed) == parsed


# --- escaping ---------------------------------------------------------------------------------


def test_text_escaping_leaves_the_comma_alone() -> None:
    assert escape_text("a,b&[c]") == "a,b&amp;&#91;c&#93;"


def test_value_escaping_also_escapes_the_comma() -> None:
    assert escape_value("a,b&[c]") == "a&#44;b&amp;&#91;c&#93;"


def test_comma_escape_inside_text_stays_literal() -> None:
    assert parse_cq("1&#44;2") == [text("1&#44;2")]


def test_escaped_ampersand_before_bracket_code_yields_literal_code() -> None:
    assert parse_cq("&amp;#91;") == [text("&#91;")]
    assert unescape_value("&amp;#44;") == "&#44;"


def test_spec_text_example_escapes_and_unescapes() -> None:
    plain = "- [x] 使用 `&data` 获取地址"
    escaped = "- &#91;x&#93; 使用 `&amp;data` 获取地址"
    assert to_cq([text(plain)]) == escaped
    assert parse_cq(escaped) == [text(plain)]


def test_spec_share_example_decodes_values() -> None:
    cq = "[CQ:share,title=震惊&#44;小伙睡觉前居然...,url=http://baidu.com/?a=1&amp;b=2]"
    expected = [seg("share", title="震惊,小伙睡觉前居然...", url="http://baidu.com/?a=1&b=2")]
    assert parse_cq(cq) == expected
    assert to_cq(expected) == cq


# --- parse_cq ---------------------------------------------------------------------------------


def test_text_between_codes_becomes_text_segments() -> None:
    assert parse_cq("[CQ:face,id=178]看看我刚拍的照片[CQ:image,file=123.jpg]") == [
        seg("face", id="178"),
        text("看看我刚拍的照片"),
        seg("image", file="123.jpg"),
    ]


def test_unterminated_trailing_code_is_kept_as_text() -> None:
    assert parse_cq("hi [CQ:face,id=1") == [text("hi [CQ:face,id=1")]


def test_invalid_codes_are_kept_as_text() -> None:
    for raw in ["[CQ:]", "[CQ:face,id]", "[CQ:face,=1]", "[CQ:face,]", "[CQ:face, id=178]"]:
        assert parse_cq(raw) == [text(raw)], raw


def test_invalid_code_merges_with_surrounding_text() -> None:
    assert parse_cq("a[CQ:]b[CQ:at,qq=1]") == [text("a[CQ:]b"), seg("at", qq="1")]


def test_value_may_contain_equals_signs() -> None:
    assert parse_cq("[CQ:share,title=标题中有=等号,url=http://baidu.com]") == [
        seg("share", title="标题中有=等号", url="http://baidu.com")
    ]


def test_empty_value_is_preserved() -> None:
    assert parse_cq("[CQ:at,qq=]") == [seg("at", qq="")]
    assert to_cq([seg("at", qq="")]) == "[CQ:at,qq=]"


def test_code_without_params_has_empty_data() -> None:
    assert parse_cq("[CQ:shake]") == [seg("shake")]


def test_values_always_decode_as_strings() -> None:
    assert parse_cq("[CQ:face,id=178]") == [seg("face", id="178")]


def test_type_name_allows_dots_dashes_and_digits() -> None:
    assert parse_cq("[CQ:my.ext-type_2,k=v]") == [seg("my.ext-type_2", k="v")]


def test_non_ascii_text_and_values_round_trip() -> None:
    message = [text("你好😀"), seg("share", title="标题😀,逗号", url="https://例子.cn/?q=测试")]
    assert parse_cq(to_cq(message)) == message


def test_unknown_segment_type_round_trips() -> None:
    message = [seg("mface", emoji_id="abc", key="k=v"), text("x")]
    assert to_cq(message) == "[CQ:mface,emoji_id=abc,key=k=v]x"
    assert parse_cq(to_cq(message)) == message


def test_cq_text_code_folds_into_surrounding_text() -> None:
    assert parse_cq("a[CQ:text,text=b&#44;c]d") == [text("ab,cd")]


def test_empty_string_parses_to_empty_message() -> None:
    assert parse_cq("") == []


def test_stray_brackets_in_text_are_tolerated() -> None:
    assert parse_cq("a]b[c") == [text("a]b[c")]


# --- to_cq ------------------------------------------------------------------------------------


def test_text_segment_is_written_as_plain_text_not_cq_text() -> None:
    assert to_cq([text("a,b")]) == "a,b"


def test_params_follow_data_insertion_order() -> None:
    assert (
        to_cq([{"type": "image", "data": {"url": "u", "file": "f"}}]) == "[CQ:image,url=u,file=f]"
    )


def test_scalar_values_are_stringified() -> None:
    message = [seg("x", n=123, f=1.5, yes=True, no=False, gone=None)]
    assert to_cq(message) == "[CQ:x,n=123,f=1.5,yes=true,no=false]"


def test_object_and_array_values_become_escaped_compact_json() -> None:
    assert to_cq([seg("json", data={"a": [1, 2]})]) == '[CQ:json,data={"a":&#91;1&#44;2&#93;}]'
    assert parse_cq(to_cq([seg("json", data={"a": [1, 2]})])) == [seg("json", data='{"a":[1,2]}')]


def test_segment_without_data_has_no_params() -> None:
    assert (
        to_cq([{"type": "dice", "data": None}, {"type": "rps", "data": {}}]) == "[CQ:dice][CQ:rps]"
    )


def test_raw_message_keeps_surrounding_whitespace() -> None:
    assert raw_message([text("  hi \n")]) == "  hi \n"


def test_to_cq_rejects_type_without_cq_spelling() -> None:
    with pytest.raises(MessageError, match=r"message\[1\]\.type"):
        to_cq([text("a"), seg("bad type")])


def test_to_cq_rejects_value_it_cannot_convert() -> None:
    with pytest.raises(MessageError, match=r"message\[0\]\.data\.blob"):
        to_cq([seg("x", blob=b"bytes")])


# --- plain_text -------------------------------------------------------------------------------


def test_plain_text_concatenates_only_text() -> None:
    assert plain_text([text("/echo "), seg("at", qq="1"), text(" hi")]) == "/echo  hi"


# --- normalize --------------------------------------------------------------------------------


def test_normalize_parses_a_cq_string() -> None:
    assert normalize("hi[CQ:face,id=1]") == [text("hi"), seg("face", id="1")]


def test_normalize_with_auto_escape_takes_string_literally() -> None:
    assert normalize("[CQ:face,id=1]&amp;", auto_escape=True) == [text("[CQ:face,id=1]&amp;")]


def test_normalize_accepts_a_single_segment() -> None:
    assert normalize({"type": "face", "data": {"id": 1}}) == [seg("face", id=1)]


def test_normalize_keeps_non_text_values_as_given() -> None:
    message = [{"type": "node", "data": {"user_id": 10, "content": [text("x")]}}]
    assert normalize(message) == message


def test_normalize_merges_adjacent_text_and_drops_empty_text() -> None:
    message = [text("a"), text(""), text("b"), seg("at", qq="1"), text(""), text("c")]
    assert normalize(message) == [text("ab"), seg("at", qq="1"), text("c")]


def test_normalize_turns_missing_or_null_data_into_empty_object() -> None:
    assert normalize([{"type": "shake"}, {"type": "dice", "data": None}]) == [
        seg("shake"),
        seg("dice"),
    ]


def test_normalize_stringifies_numeric_text() -> None:
    assert normalize([{"type": "text", "data": {"text": 42}}]) == [text("42")]


def test_normalize_returns_new_dicts() -> None:
    original = [seg("face", id="1")]
    result = normalize(original)
    result[0]["data"]["id"] = "2"
    result[0]["type"] = "at"
    assert original == [seg("face", id="1")]


def test_normalize_empty_inputs_give_empty_message() -> None:
    assert normalize("") == []
    assert normalize("", auto_escape=True) == []
    assert normalize([]) == []


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (None, "got null"),
        (42, "got number"),
        (True, "got boolean"),
        ([text("a"), "b"], "message[1]: segment must be an object, got string"),
        ([text("a"), {"data": {}}], 'message[1]: segment has no "type"'),
        ([{"type": 1}], "message[0].type must be a string, got number"),
        ([{"type": ""}], "message[0].type '' is not a valid segment type"),
        ([{"type": "bad type"}], "message[0].type 'bad type' is not a valid segment type"),
        ([{"type": "face", "data": [1]}], "message[0].data must be an object, got array"),
        ({"type": "face", "data": "x"}, "message.data must be an object, got string"),
        ([{"type": "face", "data": {"a b": 1}}], "message[0].data key 'a b'"),
        ([{"type": "text", "data": {}}], 'message[0].data has no "text"'),
        ([{"type": "text", "data": {"text": None}}], "message[0].data.text must be a string"),
    ],
)
def test_normalize_rejects_malformed_input_naming_where(bad: Any, fragment: str) -> None:
    with pytest.raises(MessageError) as caught:
        normalize(bad)
    assert fragment in str(caught.value)


def test_message_error_is_a_value_error() -> None:
    assert issubclass(MessageError, ValueError)
