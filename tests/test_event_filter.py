"""Tests for gateway.event_filter: the eventFilter language, its errors and its API."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.event_filter import MATCH_ALL, EventFilter, FilterError, compile_filter

BOT_ID = 10001

GROUP_HELP = {
    "post_type": "message",
    "message_type": "group",
    "self_id": BOT_ID,
    "group_id": 123,
    "user_id": 456,
    "raw_message": "/help",
    "message": [{"type": "text", "data": {"text": "/help"}}],
    "sender": {"role": "admin", "nickname": "alice"},
    "time": 1700000000,
}


def matches(spec: dict[str, Any], event: dict[str, Any]) -> bool:
    return compile_filter(spec)(event)


def field_matches(test: Any, value: Any) -> bool:
    """Whether ``{"x": test}`` matches an event whose ``x`` is ``value``."""
    return matches({"x": test}, {"x": value})


def field_missing_matches(test: Any) -> bool:
    """Whether ``{"x": test}`` matches an event that has no ``x``."""
    return matches({"x": test}, {"y": 1})


def error_message(spec: Any) -> str:
    with pytest.raises(FilterError) as caught:
        compile_filter(spec)
    return str(caught.value)


# --- structure -------------------------------------------------------------------------


def test_empty_filter_matches_every_event() -> None:
    for event in (GROUP_HELP, {}, {"post_type": "meta_event"}):
        assert matches({}, event)
        assert MATCH_ALL(event)


def test_top_level_scalar_is_equality_on_the_field() -> None:
    assert matches({"post_type": "message"}, GROUP_HELP)
    assert not matches({"post_type": "notice"}, GROUP_HELP)


def test_all_keys_of_an_object_must_hold() -> None:
    assert matches({"post_type": "message", "group_id": 123}, GROUP_HELP)
    assert not matches({"post_type": "message", "group_id": 999}, GROUP_HELP)


def test_nested_object_navigates_into_the_field() -> None:
    assert matches({"sender": {"role": "admin"}}, GROUP_HELP)
    assert not matches({"sender": {"role": "member"}}, GROUP_HELP)


def test_navigating_into_a_non_object_finds_nothing() -> None:
    assert not matches({"raw_message": {"length": 5}}, GROUP_HELP)
    assert matches({"raw_message": {"length": {".neq": 5}}}, GROUP_HELP)


def test_dotted_key_is_a_literal_field_name() -> None:
    assert not matches({"sender.role": "admin"}, GROUP_HELP)
    assert matches({"sender.role": "admin"}, {"sender.role": "admin"})


def test_null_field_equals_null() -> None:
    assert field_matches(None, None)
    assert not field_matches(None, 0)


# --- missing fields --------------------------------------------------------------------


@pytest.mark.parametrize(
    "test",
    [
        "x",
        None,
        {".eq": 1},
        {".in": [1, 2]},
        {".in": "abc"},
        {".contains": "a"},
        {".regex": ".*"},
        {".gt": 0},
        {".gte": 0},
        {".lt": 0},
        {".lte": 0},
        {"nested": 1},
    ],
)
def test_missing_field_fails_positive_tests(test: Any) -> None:
    assert not field_missing_matches(test)


def test_missing_field_passes_neq() -> None:
    assert field_missing_matches({".neq": 1})


def test_missing_field_passes_not() -> None:
    assert field_missing_matches({".not": {".eq": 1}})
    assert matches({".not": {"x": 1}}, {"y": 1})


def test_missing_parent_fails_nested_test_and_passes_nested_neq() -> None:
    assert not matches({"sender": {"role": "admin"}}, {"post_type": "message"})
    assert matches({"sender": {"role": {".neq": "admin"}}}, {"post_type": "message"})


# --- .eq / .neq and lax equality -------------------------------------------------------


def test_eq_true_and_false() -> None:
    assert field_matches({".eq": "group"}, "group")
    assert not field_matches({".eq": "group"}, "private")


def test_neq_true_and_false() -> None:
    assert field_matches({".neq": "group"}, "private")
    assert not field_matches({".neq": "group"}, "group")


def test_numeric_string_in_filter_equals_number_in_event() -> None:
    assert matches({"group_id": "123"}, {"group_id": 123})


def test_number_in_filter_equals_numeric_string_in_event() -> None:
    assert matches({"group_id": 123}, {"group_id": "123"})


def test_int_and_float_spellings_are_equal() -> None:
    assert field_matches(1, 1.0)
    assert field_matches("1.0", 1)
    assert field_matches(100, "1e2")


def test_strings_not_spelled_as_json_numbers_stay_strings() -> None:
    assert not field_matches(123, "0123")
    assert not field_matches(123, " 123")
    assert not field_matches(123, "123abc")
    assert not field_matches(123, "١٢٣")  # Arabic-Indic digits


def test_bool_is_not_equal_to_one() -> None:
    assert not field_matches(True, 1)
    assert not field_matches(1, True)
    assert not field_matches({".eq": 1}, True)
    assert not field_matches("true", True)
    assert field_matches(True, True)


def test_very_long_digit_string_is_not_a_number() -> None:
    # Also guards against int()'s digit limit raising on hostile input.
    assert not field_matches(1, "1" * 5000)
    assert field_matches("1" * 5000, "1" * 5000)


def test_arrays_and_objects_never_equal_a_scalar() -> None:
    assert not field_matches({".eq": 1}, [1])
    assert not field_matches({".eq": 1}, {"a": 1})


# --- .in -------------------------------------------------------------------------------


def test_in_array_true_and_false() -> None:
    assert field_matches({".in": [111, 123, 222]}, 123)
    assert not field_matches({".in": [111, 222]}, 123)


def test_in_array_uses_lax_equality() -> None:
    assert field_matches({".in": ["123"]}, 123)
    assert field_matches({".in": [123]}, "123")
    assert not field_matches({".in": [1]}, True)


def test_in_string_is_a_substring_test() -> None:
    assert field_matches({".in": "group private"}, "group")
    assert not field_matches({".in": "group private"}, "guild")


def test_in_string_reads_a_number_value_as_text() -> None:
    assert field_matches({".in": "10001,10002"}, 10002)
    assert not field_matches({".in": "group"}, True)


def test_empty_in_array_matches_nothing() -> None:
    assert not field_matches({".in": []}, 1)


# --- .contains -------------------------------------------------------------------------


def test_contains_on_string_true_and_false() -> None:
    assert field_matches({".contains": "hel"}, "/help")
    assert not field_matches({".contains": "bye"}, "/help")


def test_contains_on_array_true_and_false() -> None:
    assert field_matches({".contains": "b"}, ["a", "b"])
    assert not field_matches({".contains": "c"}, ["a", "b"])


def test_contains_on_array_uses_lax_equality() -> None:
    assert field_matches({".contains": 123}, ["123", "456"])
    assert not field_matches({".contains": 1}, [True])


def test_contains_reads_numbers_as_text() -> None:
    assert field_matches({".contains": 514}, "114514")
    assert field_matches({".contains": "145"}, 114514)


def test_contains_fails_on_non_text_non_array() -> None:
    assert not field_matches({".contains": "a"}, {"a": 1})
    assert not field_matches({".contains": True}, "True")


# --- .regex ----------------------------------------------------------------------------


def test_regex_true_and_false() -> None:
    assert field_matches({".regex": "^/h"}, "/help")
    assert not field_matches({".regex": "^h"}, "/help")


def test_regex_searches_anywhere_unless_anchored() -> None:
    assert field_matches({".regex": "elp"}, "/help")


def test_regex_supports_inline_flags() -> None:
    assert field_matches({".regex": "(?i)^/HELP$"}, "/help")


def test_regex_reads_numbers_as_text_and_skips_other_types() -> None:
    assert field_matches({".regex": "^45"}, 456)
    assert not field_matches({".regex": "True"}, True)
    assert not field_matches({".regex": "."}, None)


def test_regex_is_compiled_once_at_compile_time(monkeypatch: pytest.MonkeyPatch) -> None:
    event_filter = compile_filter({"raw_message": {".regex": "^/"}})

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the pattern was compiled again during evaluation")

    for name in ("compile", "search", "match", "fullmatch"):
        monkeypatch.setattr(re, name, forbidden)
    assert [event_filter(GROUP_HELP), event_filter(GROUP_HELP)] == [True, True]
    assert event_filter({"raw_message": "hi"}) is False


def test_invalid_regex_fails_at_compile_time() -> None:
    assert error_message({"raw_message": {".regex": "("}}).startswith(
        ".raw_message.regex: invalid regular expression:"
    )


# --- comparisons -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "bound", "true_for", "false_for"),
    [
        (".gt", 10, 11, 10),
        (".gte", 10, 10, 9),
        (".lt", 10, 9, 10),
        (".lte", 10, 10, 11),
    ],
)
def test_comparison_true_and_false(op: str, bound: int, true_for: int, false_for: int) -> None:
    assert field_matches({op: bound}, true_for)
    assert not field_matches({op: bound}, false_for)


def test_comparison_accepts_numeric_string_values() -> None:
    assert field_matches({".gt": 100}, "123")
    assert field_matches({".lt": 1.5}, "1.25")


def test_comparison_fails_on_non_numbers() -> None:
    assert not field_matches({".gt": 0}, "abc")
    assert not field_matches({".gt": 0}, True)
    assert not field_matches({".gt": 0}, [1])


def test_two_comparisons_on_one_field_make_a_range() -> None:
    in_range = {".gte": 100, ".lt": 200}
    assert field_matches(in_range, 150)
    assert not field_matches(in_range, 200)


# --- logical operators -----------------------------------------------------------------


def test_top_level_and() -> None:
    spec = {".and": [{"post_type": "message"}, {"group_id": 123}]}
    assert matches(spec, GROUP_HELP)
    assert not matches(spec, {**GROUP_HELP, "group_id": 1})


def test_top_level_or() -> None:
    spec = {".or": [{"message_type": "private"}, {"group_id": 123}]}
    assert matches(spec, GROUP_HELP)
    assert not matches(spec, {**GROUP_HELP, "group_id": 1})


def test_top_level_not() -> None:
    assert matches({".not": {"post_type": "meta_event"}}, GROUP_HELP)
    assert not matches({".not": {"post_type": "message"}}, GROUP_HELP)


def test_and_inside_a_field_applies_to_its_value() -> None:
    spec = {"user_id": {".and": [{".gt": 100}, {".neq": 456}]}}
    assert matches(spec, {"user_id": 457})
    assert not matches(spec, {"user_id": 456})


def test_or_inside_a_field_applies_to_its_value() -> None:
    spec = {"raw_message": {".or": [{".regex": "^/"}, {".contains": "bot"}]}}
    assert matches(spec, {"raw_message": "hey bot"})
    assert not matches(spec, {"raw_message": "hey"})


def test_not_inside_a_field_applies_to_its_value() -> None:
    spec = {"sender": {"role": {".not": {".in": ["owner", "admin"]}}}}
    assert matches(spec, {"sender": {"role": "member"}})
    assert not matches(spec, GROUP_HELP)


def test_empty_and_matches_and_empty_or_does_not() -> None:
    assert matches({".and": []}, GROUP_HELP)
    assert not matches({".or": []}, GROUP_HELP)


# --- errors ----------------------------------------------------------------------------


def test_error_unknown_operator_lists_the_known_ones() -> None:
    message = error_message({".foo": 1})
    assert message.startswith(".foo: unknown operator '.foo' (expected one of .and, .contains,")
    assert message.endswith(".regex)")


def test_error_path_through_or_index_and_field() -> None:
    spec = {".or": [{"post_type": "notice"}, {"raw_message": {".regex": "[unclosed"}}]}
    assert error_message(spec).startswith(".or[1].raw_message.regex: invalid regular expression:")


def test_error_and_needs_an_array() -> None:
    assert error_message({".and": {"a": 1}}) == ".and: expected an array of filters, got object"


def test_error_or_items_must_be_filter_objects() -> None:
    message = error_message({"x": {".or": [{".eq": 1}, 2]}})
    assert message == ".x.or[1]: expected a filter object, got number"


def test_error_not_needs_a_filter_object() -> None:
    assert error_message({".not": [1]}) == ".not: expected a filter object, got array"


def test_error_value_operator_at_top_level() -> None:
    assert error_message({".eq": 1}).startswith(".eq: .eq tests a field's value")
    assert error_message({".and": [{".gt": 1}]}).startswith(".and[0].gt: .gt tests a field's")


def test_error_field_given_an_array_suggests_in() -> None:
    message = error_message({"group_id": [1, 2]})
    assert message == (
        ".group_id: expected a string, number, boolean, null or filter object, "
        "got array (use .in to list the allowed values)"
    )


@pytest.mark.parametrize("op", [".eq", ".neq", ".contains"])
def test_error_scalar_operator_given_an_object(op: str) -> None:
    message = error_message({"x": {op: {"a": 1}}})
    assert message == f".x{op}: expected a string, number, boolean or null, got object"


def test_error_in_needs_an_array_or_a_string() -> None:
    assert error_message({"x": {".in": 5}}) == ".x.in: expected an array or a string, got number"


def test_error_in_array_items_must_be_scalars() -> None:
    message = error_message({"x": {".in": [1, [2]]}})
    assert message == ".x.in[1]: expected a string, number, boolean or null, got array"


def test_error_regex_needs_a_string() -> None:
    message = error_message({"x": {".regex": 1}})
    assert message == ".x.regex: expected a string (a regular expression), got number"


@pytest.mark.parametrize("bound", ["10", True, None, [1]])
def test_error_comparison_needs_a_number(bound: Any) -> None:
    assert error_message({"x": {".gte": bound}}).startswith(".x.gte: expected a number, got ")


def test_error_spec_must_be_an_object() -> None:
    assert error_message([]) == "<filter>: expected a filter object, got array"


def test_error_keys_must_be_strings() -> None:
    assert error_message({"sender": {1: "a"}}) == ".sender: keys must be strings, got number 1"


def test_error_is_a_value_error_with_path_and_reason() -> None:
    with pytest.raises(ValueError, match=r"^\.x\.gt: ") as caught:
        compile_filter({"x": {".gt": "a"}})
    assert isinstance(caught.value, FilterError)
    assert caught.value.path == ".x.gt"
    assert caught.value.reason == "expected a number, got string"


# --- the EventFilter object ------------------------------------------------------------


def test_spec_attribute_holds_the_compiled_spec() -> None:
    spec = {"sender": {"role": "admin"}, ".or": [{"group_id": 1}]}
    assert compile_filter(spec).spec == spec


def test_later_changes_to_the_spec_do_not_affect_the_filter() -> None:
    spec: dict[str, Any] = {"sender": {"role": "admin"}}
    event_filter = compile_filter(spec)
    spec["sender"]["role"] = "member"
    assert event_filter(GROUP_HELP)
    assert event_filter.spec == {"sender": {"role": "admin"}}


def test_filters_with_equal_specs_are_equal_and_hash_alike() -> None:
    first = compile_filter({"a": 1, "b": {".in": [1, 2]}})
    second = compile_filter({"b": {".in": [1, 2]}, "a": 1})
    assert first == second
    assert hash(first) == hash(second)
    assert compile_filter({}) == MATCH_ALL


def test_true_and_one_make_different_filters() -> None:
    # Python's dict equality says {"a": True} == {"a": 1}; the filters behave differently.
    assert compile_filter({"a": True}) != compile_filter({"a": 1})


def test_event_filter_is_immutable() -> None:
    event_filter = compile_filter({"a": 1})
    with pytest.raises(AttributeError):
        event_filter.spec = {}


def test_match_all_is_an_event_filter_for_the_empty_spec() -> None:
    assert isinstance(MATCH_ALL, EventFilter)
    assert MATCH_ALL.spec == {}


# --- a realistic filter ----------------------------------------------------------------

COMMANDS_OR_MENTIONS = {
    "post_type": "message",
    "message_type": "group",
    ".or": [
        {"raw_message": {".regex": "^/"}},
        {"raw_message": {".contains": f"[CQ:at,qq={BOT_ID}]"}},
    ],
}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (GROUP_HELP, True),
        ({**GROUP_HELP, "raw_message": f"[CQ:at,qq={BOT_ID}] hello"}, True),
        ({**GROUP_HELP, "raw_message": "hello"}, False),
        ({**GROUP_HELP, "raw_message": "[CQ:at,qq=20002] /ban"}, False),
        ({**GROUP_HELP, "message_type": "private"}, False),
        ({"post_type": "notice", "notice_type": "group_increase", "group_id": 123}, False),
        ({"post_type": "meta_event", "meta_event_type": "heartbeat"}, False),
    ],
    ids=["command", "mention", "chatter", "mentions-someone-else", "private", "notice", "beat"],
)
def test_group_commands_or_mentions_filter(event: dict[str, Any], expected: bool) -> None:
    assert matches(COMMANDS_OR_MENTIONS, event) is expected


# --- properties ------------------------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(-3, 3, allow_nan=False)
    | st.sampled_from(["1", "1.0", "-0", "0123", "1e0", "true", "null", ""])
    | st.text(max_size=4)
)


@given(st.integers())
def test_lax_equality_is_symmetric_for_ids(number: int) -> None:
    assert field_matches(number, str(number))
    assert field_matches(str(number), number)


@given(_scalars, _scalars)
def test_neq_is_the_negation_of_eq(expected: Any, value: Any) -> None:
    assert field_matches({".neq": expected}, value) is not field_matches({".eq": expected}, value)


@given(_scalars, _scalars)
def test_in_singleton_array_agrees_with_eq(expected: Any, value: Any) -> None:
    assert field_matches({".in": [expected]}, value) is field_matches(expected, value)
