"""Shortcuts on the send path give exactly what the general code gives."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.backends.sandbox.message_store import _raw, parse_message
from gateway.protocol.message import raw_message


@given(st.text(min_size=1))
def test_the_raw_message_of_one_text_segment_is_the_codec_s(text: str) -> None:
    for segments in (
        parse_message(text, auto_escape=True),
        parse_message([{"type": "text", "data": {"text": text}}], auto_escape=False),
    ):
        assert _raw(segments) == raw_message(segments)


@given(st.lists(st.sampled_from(["a", "&", "[", "]", ",", "[CQ:face,id=1]", "&#91;"]), min_size=1))
def test_the_raw_message_of_any_cq_string_is_the_codec_s(parts: list[str]) -> None:
    segments = parse_message("".join(parts), auto_escape=False)
    assert _raw(segments) == raw_message(segments)
