"""Segment fuzz: random segment data is either accepted in canonical form or refused with 1400.

Two layers. The codec (`parse_strict`) gets many examples: it raises nothing but MessageError,
and what it accepts is canonical (no nulls, checking it again changes nothing, its CQ string
checks back to the same segments). The fuzzed gateway process gets fewer: a send answers 200
with retcode 0 or 1400, never 5xx, and what was accepted reads back from `get_msg` as sent.

Media sources are only `base64://` values or non-strings (a number would name a media id), so no
example reads a file or reaches the network; node segments never reference a message id (that
is a 1200 when the message does not exist, not a malformed input).
"""

from __future__ import annotations

import base64
import functools
from typing import Any

import aiohttp
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.protocol.message import MessageError, to_cq
from gateway.protocol.segments import SCHEMAS, parse_strict
from tests.robustness.conftest import FUZZ, TOKEN, FuzzedGateway

MEDIA_FIELDS = frozenset({"file", "url", "path", "thumb"})
PNG = "base64://" + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"fuzz").decode()

EDGE_INTS = st.sampled_from([0, 1, -1, 6, 2**31 - 1, 2**31, -(2**31) - 1, 2**63 - 1, 2**63])
LIKELY_STRINGS = st.sampled_from(
    ["", "1", "0", "-1", "14", "all", "abc", "flash", "qq", "group", "163", "custom", "true",
     "no", "maybe", "39.9", "nan", "1e400", '{"a":1}', "[1]", "{", "<x/>", " 7", "0x10",
     "99999999999999999999999", "[CQ:face,id=1]", "&#44;,&[]"]
)  # fmt: skip
SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    EDGE_INTS,
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    LIKELY_STRINGS,
    st.text(max_size=12),
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
MEDIA_VALUE = st.sampled_from([PNG, "", None, True, ["x"]])
ODD_KEYS = st.sampled_from(["extra", "x_y", "ID", "a b", "", "k=v", "[k]"])


@st.composite
def segments(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    """A segment of a known type (mostly) with a random subset of its fields, random values."""
    seg_type = draw(st.sampled_from(sorted(SCHEMAS)) | st.sampled_from(["text", "bogus", "Face"]))
    fields = sorted(SCHEMAS[seg_type].fields) if seg_type in SCHEMAS else ["text", "x"]
    data: dict[str, Any] = {}
    keys = st.sampled_from(fields) | ODD_KEYS if fields else ODD_KEYS
    for key in draw(st.lists(keys, max_size=6, unique=True)):
        if seg_type == "node" and key == "id":
            continue
        if seg_type == "node" and key == "content":
            data[key] = draw(messages(depth + 1)) if depth < 2 else draw(LIKELY_STRINGS)
        elif key in MEDIA_FIELDS:
            data[key] = draw(MEDIA_VALUE)
        else:
            data[key] = draw(VALUE)
    return {"type": seg_type, "data": draw(st.sampled_from([data, data, None, []]))}


@functools.cache  # one strategy per depth, not one per draw of a node's content
def messages(depth: int = 0) -> st.SearchStrategy[Any]:
    """A message in any of the forms a client may send."""
    array = st.lists(segments(depth), min_size=1, max_size=4)
    return st.one_of(array, array, segments(depth), array.map(_cq_or_text))


def _cq_or_text(message: list[dict[str, Any]]) -> Any:
    """The CQ string of a message when it has one (the string form of the fuzz)."""
    try:
        return to_cq(message)
    except MessageError:
        return message


def _extras_are_strings(message: list[dict[str, Any]]) -> bool:
    """Whether every field no schema names holds a string (only those survive a CQ string)."""
    for segment in message:
        fields = SCHEMAS[segment["type"]].fields if segment["type"] in SCHEMAS else {}
        for key, value in segment["data"].items():
            if key == "content" and segment["type"] == "node":
                if not _extras_are_strings(value):
                    return False
            elif key not in fields and not isinstance(value, str):
                return False
    return True


@settings(FUZZ, max_examples=min(FUZZ.max_examples * 10, 2000))
@given(message=messages())
def test_the_codec_accepts_canonically_or_refuses_with_a_message_error(message: Any) -> None:
    try:
        checked = parse_strict(message)
    except MessageError as error:
        refusal = str(error)
        assert refusal.startswith("message"), refusal  # it names the segment
        return
    for segment in checked:
        assert None not in segment["data"].values()
    assert parse_strict(checked) == checked
    if _extras_are_strings(checked):
        assert parse_strict(to_cq(checked)) == checked


async def _call(http: aiohttp.ClientSession, port: int, action: str, **params: Any) -> Any:
    async with http.post(
        f"http://127.0.0.1:{port}/{action}",
        json=params,
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as response:
        assert response.status < 500, f"{action} answered {response.status}"
        return await response.json()


@FUZZ
@given(message=messages())
async def test_a_send_is_stored_canonically_or_refused_with_1400(
    fuzzed_gateway: FuzzedGateway, message: Any
) -> None:
    async with aiohttp.ClientSession() as http:
        port = fuzzed_gateway.http_port
        body = await _call(http, port, "send_group_msg", group_id=30001, message=message)
        assert body["retcode"] in (0, 1400), body
        if body["retcode"] == 1400:
            assert body["message"], body
            return
        got = await _call(http, port, "get_msg", message_id=body["data"]["message_id"])
        assert got["retcode"] == 0, got
        stored = got["data"]["message"]
        assert stored and all(None not in segment["data"].values() for segment in stored)
    assert fuzzed_gateway.alive
