"""Strict message segments: every type's data schema, the errors, and the canonical form.

The codec-level tests call `parse_strict` directly; the sandbox tests send through the real HTTP
API and read back with `get_msg`, so what the sandbox stores is what is checked.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from gateway.protocol.message import MessageError, to_cq
from gateway.protocol.segments import SCHEMAS, parse_strict
from tests.sandbox_client import sandbox_client

PNG = "base64://" + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16 + b"segments").decode()

# One valid segment of every type, as a client would send it (numbers where clients send
# numbers), and its canonical data: every scalar a string, nulls dropped.
VALID: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "face": ({"id": 14, "resultId": None, "chainCount": "2"}, {"id": "14", "chainCount": "2"}),
    "mface": (
        {"emoji_package_id": 1, "emoji_id": "e", "key": "k", "summary": "[s]"},
        {"emoji_package_id": "1", "emoji_id": "e", "key": "k", "summary": "[s]"},
    ),
    "at": ({"qq": 20001}, {"qq": "20001"}),
    "reply": ({"id": 7, "seq": "9"}, {"id": "7", "seq": "9"}),
    "image": (
        {"file": PNG, "type": None, "cache": True, "proxy": "1", "timeout": None, "sub_type": "0"},
        {"file": PNG, "cache": "true", "proxy": "true", "sub_type": "0"},
    ),
    "record": ({"file": PNG, "magic": False}, {"file": PNG, "magic": "false"}),
    "video": ({"url": PNG, "thumb": "t"}, {"url": PNG, "thumb": "t"}),
    "file": ({"file": PNG, "name": "a.png"}, {"file": PNG, "name": "a.png"}),
    "json": ({"data": {"app": "x"}}, {"data": '{"app":"x"}'}),
    "xml": ({"data": "<msg/>"}, {"data": "<msg/>"}),
    "markdown": ({"content": "# hi"}, {"content": "# hi"}),
    "dice": ({"result": 6}, {"result": "6"}),
    "rps": ({}, {}),
    "shake": ({}, {}),
    "poke": ({"type": 1, "id": -1}, {"type": "1", "id": "-1"}),
    "anonymous": ({"ignore": "yes"}, {"ignore": "true"}),
    "share": ({"url": "https://e.x/", "title": "t"}, {"url": "https://e.x/", "title": "t"}),
    "contact": ({"type": "group", "id": 30001}, {"type": "group", "id": "30001"}),
    "location": ({"lat": 39.9, "lon": "116.4"}, {"lat": "39.9", "lon": "116.4"}),
    "music": ({"type": "163", "id": 28949129}, {"type": "163", "id": "28949129"}),
    "forward": ({"id": "abc"}, {"id": "abc"}),
    "node": (
        {"user_id": 20001, "nickname": "n", "content": "[CQ:face,id=1]x"},
        {
            "user_id": "20001",
            "nickname": "n",
            "content": [
                {"type": "face", "data": {"id": "1"}},
                {"type": "text", "data": {"text": "x"}},
            ],
        },
    ),
    "miniapp": ({"data": "{}"}, {"data": "{}"}),
    "onlinefile": (
        {"msgId": "m", "elementId": "e", "fileName": "f", "fileSize": 3, "isDir": False},
        {"msgId": "m", "elementId": "e", "fileName": "f", "fileSize": "3", "isDir": False},
    ),
    "flashtransfer": ({"fileSetId": "s"}, {"fileSetId": "s"}),
    "keyboard": ({"content": {"rows": []}}, {"content": '{"rows":[]}'}),
}


def error_of(message: object) -> str:
    with pytest.raises(MessageError) as caught:
        parse_strict(message)
    return str(caught.value)


def test_every_schema_has_a_valid_example() -> None:
    assert set(VALID) == set(SCHEMAS)


@pytest.mark.parametrize("seg_type", sorted(VALID))
def test_each_type_is_accepted_and_made_canonical(seg_type: str) -> None:
    sent, canonical = VALID[seg_type]
    assert parse_strict([{"type": seg_type, "data": sent}]) == [
        {"type": seg_type, "data": canonical}
    ]


@pytest.mark.parametrize("seg_type", sorted(VALID))
def test_the_cq_form_of_each_type_gives_the_same_canonical_segment(seg_type: str) -> None:
    canonical = [{"type": seg_type, "data": VALID[seg_type][1]}]
    assert parse_strict(to_cq(canonical)) == canonical


@pytest.mark.parametrize(
    ("seg_type", "field"),
    [
        (seg_type, field)
        for seg_type, schema in SCHEMAS.items()
        for field in schema.required
        if field in VALID[seg_type][0]
    ],
)
def test_a_missing_required_field_is_named(seg_type: str, field: str) -> None:
    data = {k: v for k, v in VALID[seg_type][0].items() if k != field}
    assert error_of(
        [{"type": "text", "data": {"text": "a"}}, {"type": seg_type, "data": data}]
    ) == (f"message[1] ({seg_type}): {field} is required")


def test_the_issue_examples_are_refused_naming_index_type_and_field() -> None:
    assert error_of([{"type": "image"}]) == "message[0] (image): file (or url or path) is required"
    assert error_of([{"type": "bogus", "data": {"x": 1}}]) == (
        "message[0] (bogus): unknown segment type"
    )
    assert error_of([{"type": "at", "data": {"qq": "abc"}}]) == (
        'message[0] (at): qq must be a QQ number or "all", got "abc"'
    )
    face = {"type": "face", "data": {"id": "x"}}
    assert error_of([{"type": "text", "data": {"text": "a"}}] * 2 + [face]) == (
        'message[2] (face): id must be a face id, got "x"'
    )


def test_the_index_is_the_clients_even_when_text_is_merged() -> None:
    text = {"type": "text", "data": {"text": "t"}}
    assert error_of([text, text, text, {"type": "at", "data": {}}]).startswith("message[3] (at)")


def test_a_bad_value_is_shown_encodable_even_with_a_lone_surrogate() -> None:
    error = error_of([{"type": "face", "data": {"id": "\ud800" * 30}}])
    assert error.startswith('message[0] (face): id must be a face id, got "\\ud800')
    error.encode()  # no lone surrogate in the message itself


def test_a_cq_string_is_checked_too() -> None:
    assert error_of("hi [CQ:face,id=x]") == 'message[1] (face): id must be a face id, got "x"'
    assert error_of("[CQ:bogus,x=1]") == "message[0] (bogus): unknown segment type"


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        ({"type": "at", "data": {"qq": 2**63}}, "at): qq must be a QQ number"),
        ({"type": "at", "data": {"qq": 0}}, "at): qq must be a QQ number"),
        ({"type": "reply", "data": {"id": 2**31}}, "reply): id must be a 32-bit message id"),
        ({"type": "reply", "data": {"id": str(-(2**31) - 1)}}, "reply): id must be a 32-bit"),
        ({"type": "face", "data": {"id": -1}}, "face): id must be a face id in 0..2147483647"),
        ({"type": "contact", "data": {"type": "qq", "id": 2**64}}, "contact): id must be a QQ"),
        ({"type": "node", "data": {"id": 2**40}}, "node): id must be a 32-bit message id"),
        ({"type": "dice", "data": {"result": 7}}, "dice): result must be a dice face in 1..6"),
    ],
)
def test_integers_the_protocol_cannot_carry_are_refused(
    segment: dict[str, Any], expected: str
) -> None:
    assert expected in error_of([segment])


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        ({"type": "face", "data": {"id": True}}, "face): id must be a face id, got true"),
        ({"type": "face", "data": {"id": 1.5}}, "face): id must be a face id, got 1.5"),
        ({"type": "at", "data": {"qq": " 1"}}, 'qq must be a QQ number or "all", got " 1"'),
        ({"type": "contact", "data": {"type": "x", "id": 1}}, "type must be one of qq, group"),
        ({"type": "music", "data": {"type": "spotify", "id": 1}}, "type must be one of qq, 163"),
        ({"type": "music", "data": {"type": "qq"}}, "music): id is required for type qq"),
        ({"type": "music", "data": {"type": "custom", "url": "u"}}, "needs audio, title"),
        ({"type": "image", "data": {"file": ""}}, "image): file (or url or path) is required"),
        ({"type": "image", "data": {"file": ["x"]}}, "file must be a string, got array"),
        ({"type": "image", "data": {"file": "f", "type": "x"}}, "type must be one of flash"),
        ({"type": "record", "data": {"file": "f", "magic": "maybe"}}, "magic must be true/false"),
        ({"type": "json", "data": {"data": "{"}}, "json): data must be JSON text"),
        ({"type": "location", "data": {"lat": 91, "lon": 0}}, "lat must be a number in -90..90"),
        ({"type": "location", "data": {"lat": "nan", "lon": 0}}, "lat must be a decimal number"),
        ({"type": "location", "data": {"lat": 0, "lon": "1_0"}}, "lon must be a decimal number"),
        ({"type": "reply", "data": {}}, "reply): id (or seq) is required"),
        ({"type": "forward", "data": {"id": ""}}, "forward): id must not be empty"),
    ],
)
def test_a_bad_field_is_named_with_its_reason(segment: dict[str, Any], expected: str) -> None:
    assert expected in error_of([segment])


def test_onlinefile_isdir_stays_a_boolean() -> None:
    text = "[CQ:onlinefile,msgId=m,elementId=e,fileName=f,fileSize=1,isDir=true]"
    assert parse_strict(text)[0]["data"]["isDir"] is True


def test_null_values_are_dropped_and_unknown_fields_kept() -> None:
    segment = {"type": "at", "data": {"qq": "all", "name": None, "extra": "kept"}}
    assert parse_strict(segment) == [{"type": "at", "data": {"qq": "all", "extra": "kept"}}]


def test_node_contents_are_checked_with_their_path() -> None:
    bad = {"type": "node", "data": {"user_id": 1, "nickname": "n", "content": [{"type": "x"}]}}
    assert error_of([bad]) == "message[0].data.content[0] (x): unknown segment type"
    empty = {"type": "node", "data": {"user_id": 1, "nickname": "n", "content": ""}}
    assert error_of([empty]) == "message[0].data.content: the message is empty"
    assert "user_id (or uin) is required" in error_of(
        {"type": "node", "data": {"nickname": "n", "content": "x"}}
    )


def test_node_contents_cannot_mix_nodes_with_other_segments() -> None:
    inner = {"type": "node", "data": {"id": 1}}
    node: dict[str, Any] = {"type": "node", "data": {"uin": 1, "name": "n", "content": [inner]}}
    assert parse_strict([node])[0]["data"]["content"] == [{"type": "node", "data": {"id": "1"}}]
    node["data"]["content"] = [inner, {"type": "text", "data": {"text": "x"}}]
    assert "cannot be mixed" in error_of([node])


def test_nodes_nest_at_most_three_levels() -> None:
    def nest(levels: int) -> dict[str, Any]:
        content: Any = "leaf"
        for _ in range(levels):
            content = [
                {"type": "node", "data": {"user_id": 1, "nickname": "n", "content": content}}
            ]
        return content[0]  # type: ignore[no-any-return]  # built as a list of one node

    assert parse_strict([nest(3)])
    assert "nest at most 3 levels" in error_of([nest(4)])


# --- through the sandbox ----------------------------------------------------------------------


async def test_the_sandbox_refuses_a_bad_segment_with_1400_and_stores_nothing() -> None:
    async with sandbox_client() as sandbox:
        before = await sandbox.ok("get_friend_msg_history", user_id=20001)
        body = await sandbox.call(
            "send_private_msg",
            user_id=20001,
            message=[
                {"type": "text", "data": {"text": "hi"}},
                {"type": "face", "data": {"id": "x"}},
            ],
        )
        assert body["retcode"] == 1400
        assert 'message[1] (face): id must be a face id, got "x"' in body["message"]
        after = await sandbox.ok("get_friend_msg_history", user_id=20001)
        assert after == before


async def test_the_sandbox_stores_the_canonical_form_and_get_msg_returns_it() -> None:
    async with sandbox_client() as sandbox:
        sent = await sandbox.ok(
            "send_group_msg",
            group_id=30001,
            message=[
                {"type": "at", "data": {"qq": 20001, "name": None}},
                {"type": "contact", "data": {"type": "qq", "id": 20002, "name": None}},
                {"type": "location", "data": {"lat": 1.5, "lon": 2, "title": None}},
            ],
        )
        got = await sandbox.ok("get_msg", message_id=sent["message_id"])
        assert got["message"] == [
            {"type": "at", "data": {"qq": "20001"}},
            {"type": "contact", "data": {"type": "qq", "id": "20002"}},
            {"type": "location", "data": {"lat": "1.5", "lon": "2"}},
        ]
        raw = "[CQ:at,qq=20001][CQ:contact,type=qq,id=20002][CQ:location,lat=1.5,lon=2]"
        assert got["raw_message"] == raw


async def test_a_simulated_users_message_is_checked_too() -> None:
    async with sandbox_client() as sandbox:
        body = await sandbox.call(
            "sandbox_receive_message",
            message_type="private",
            user_id=20001,
            message="[CQ:at,qq=abc]",
        )
        assert body["retcode"] == 1400 and "(at): qq must be a QQ number" in body["message"]


async def test_forward_nodes_sent_with_send_forward_msg_are_checked() -> None:
    async with sandbox_client() as sandbox:
        body = await sandbox.call(
            "send_group_forward_msg",
            group_id=30001,
            messages=[
                {
                    "type": "node",
                    "data": {"user_id": 20001, "nickname": "n", "content": "[CQ:face,id=x]"},
                }
            ],
        )
        assert body["retcode"] == 1400
        assert "content[0] (face): id must be a face id" in body["message"]
