"""NoneBot2 (nonebot-adapter-onebot) sends and receives every segment type through the sandbox.

The app (tests/nonebot_app/segments_bot.py) builds each segment type with NoneBot's own
builders, which put `null` in the options a caller leaves out, and sends it as an array and as
its CQ string; both must read back from `get_msg` the same, canonical and free of nulls. Then the
simulated user sends every type (as an array and as a CQ string) and the bot must parse each
event into exactly what `get_msg` returns (array post format) or what its `raw_message` says
(string post format: the CQ string of the message as stored).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.protocol.message import parse_cq, to_cq
from tests.nonebot_harness import NoneBotProcess, nonebot_forward_ws
from tests.sandbox_client import SandboxClient, sandbox_client, sandbox_document

APP = Path(__file__).parent / "nonebot_app" / "segments_bot.py"
GROUP, USER = 30001, 20003
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16 + b"nonebot-received"


def expected_sent(trigger: int) -> dict[str, list[dict[str, Any]]]:
    """The `get_msg` message of each non-media segment the app sends (but mface, which reads
    back as NapCat shows a sticker: an image)."""

    def one(seg_type: str, **data: Any) -> list[dict[str, Any]]:
        return [{"type": seg_type, "data": data}]

    text = {"type": "text", "data": {"text": "answer"}}
    return {
        "text": one("text", text="plain & [text], with commas"),
        "face": one("face", id="14", raw={"faceIndex": 14, "faceType": 1}),  # as NapCat shows it
        "at": one("at", qq="20001"),
        "at_all": one("at", qq="all"),
        "reply": [*one("reply", id=str(trigger)), text],
        "json": one("json", data='{"app":"com.tencent.test","meta":{}}'),
        "xml": one("xml", data="<msg><item/></msg>"),
        "markdown": one("markdown", content="# Title, *bold*"),
        "dice": one("dice"),
        "rps": one("rps"),
        "shake": one("shake"),
        "poke": one("poke", type="1", id="-1"),
        "anonymous": [*one("anonymous"), {"type": "text", "data": {"text": "anonymously"}}],
        "share": one("share", url="https://example.com/a?b=1&c=2", title="Title", content="Text"),
        "contact_user": one("contact", type="qq", id="20001"),
        "contact_group": one("contact", type="group", id="30001"),
        "location": one("location", lat="39.9042", lon="116.4074", title="Beijing"),
        "music": one("music", type="163", id="28949129"),
        "music_custom": one(
            "music",
            type="custom",
            url="https://m.example/",
            audio="https://m.example/a.mp3",
            title="Song",
        ),
        "miniapp": one("miniapp", data='{"app":"mini"}'),
        "onlinefile": one(
            "onlinefile", msgId="m1", elementId="e1", fileName="a.txt", fileSize="3", isDir=False
        ),
        "flashtransfer": one("flashtransfer", fileSetId="set-1"),
        "keyboard": one("keyboard", content='{"rows":[]}'),
    }


MEDIA = ("image", "record", "video", "file")


def has_null(value: Any) -> bool:
    if isinstance(value, dict):
        return any(v is None or has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(v is None or has_null(v) for v in value)
    return False


def reports(bot: NoneBotProcess, tag: str) -> list[dict[str, Any]]:
    """The JSON of every `<tag> {...}` line the app printed so far."""
    prefix = tag + " "
    return [json.loads(line[len(prefix) :]) for line in bot.output if line.startswith(prefix)]


def node_contents(nodes: list[dict[str, Any]]) -> list[tuple[Any, Any, Any]]:
    """Each forward node's sender and message (not its ids and time, new for each bundle)."""
    return [
        (node["sender"]["user_id"], node["sender"]["nickname"], node["message"]) for node in nodes
    ]


async def test_nonebot_sends_every_segment_type_as_array_and_cq_string(tmp_path: Path) -> None:
    async with sandbox_client() as sandbox:
        port = sandbox.gw.supervisor.adapters["ws"].port
        async with nonebot_forward_ws([f"ws://127.0.0.1:{port}/"], "", tmp_path, APP) as bot:
            await bot.wait_for_line("BOT_CONNECTED")
            trigger = await sandbox.ok(
                "sandbox_receive_message",
                message_type="group",
                group_id=GROUP,
                user_id=USER,
                message="SEGSEND",
            )
            await bot.wait_for_line("SEG_SEND_DONE", seconds=120)
    sent = {report["name"]: report for report in reports(bot, "SEG_SENT")}
    expected = expected_sent(trigger["message_id"])
    assert set(sent) == {*expected, *MEDIA, "mface", "node", "forward"}
    for name, report in sent.items():
        array, cq = report["array"], report["cq"]
        assert "error" not in array and "error" not in cq, (name, report)
        assert not has_null(array), (name, array)
        if name == "node":
            assert node_contents(array.pop("forward")) == node_contents(cq.pop("forward"))
            assert array["message"][0]["type"] == cq["message"][0]["type"] == "forward"
            continue
        assert array == cq, name  # both formats store one canonical message
        if name in expected:
            assert array["message"] == expected[name], name
    for name in MEDIA:  # stored: `file` is the media id, NoneBot's null options are gone
        data = sent[name]["array"]["message"][0]["data"]
        assert not data["file"].startswith("base64://") and data["url"], (name, data)
        assert "type" not in data and "timeout" not in data, (name, data)
    sticker = sent["mface"]["array"]["message"][0]
    assert sticker["type"] == "image" and sticker["data"]["emoji_id"] == "e1", sticker
    forward_id = sent["forward"]["array"]["message"][0]["data"]["id"]
    assert forward_id == sent["node"]["array"]["message"][0]["data"]["id"]


def received_segments(earlier: int) -> dict[str, dict[str, Any]]:
    """One segment of every type a user's message can carry (a node never is one: OneBot 11
    §5.3), as a client would write it; `earlier` is a message id to reply to."""
    media = "base64://" + base64.b64encode(PNG).decode()
    segments: dict[str, dict[str, Any]] = {
        "text": {"text": "a, b & [c]"},
        "face": {"id": 14},
        "mface": {"emoji_package_id": 1, "emoji_id": "e1", "key": "k1", "summary": "[s]"},
        "at": {"qq": 20001},
        "reply": {"id": earlier},
        "image": {"file": media, "summary": "[pic]", "sub_type": 0},
        "record": {"file": media},
        "video": {"file": media},
        "file": {"file": media, "name": "r.png"},
        "json": {"data": {"app": "x", "n": 1}},
        "xml": {"data": "<msg/>"},
        "markdown": {"content": "**md**"},
        "dice": {"result": 3},
        "rps": {"result": 2},
        "shake": {},
        "poke": {"type": 1, "id": -1, "name": None},
        "anonymous": {"ignore": True},
        "share": {"url": "https://example.com/", "title": "T", "image": None},
        "contact": {"type": "qq", "id": 20002},
        "location": {"lat": 1.5, "lon": -2, "title": "here"},
        "music": {"type": "qq", "id": "001"},
        "forward": {"id": "res-1"},
        "miniapp": {"data": "{}"},
        "onlinefile": {
            "msgId": "m",
            "elementId": "e",
            "fileName": "f",
            "fileSize": 1,
            "isDir": True,
        },
        "flashtransfer": {"fileSetId": "s"},
        "keyboard": {"content": {"rows": [{"buttons": []}]}},
    }
    return {name: {"type": name, "data": data} for name, data in segments.items()}


async def receive(sandbox: SandboxClient, message: Any) -> int:
    data = await sandbox.ok(
        "sandbox_receive_message",
        message_type="group",
        group_id=GROUP,
        user_id=USER,
        message=message,
    )
    return int(data["message_id"])


@pytest.mark.parametrize("post_format", ["array", "string"])
async def test_nonebot_receives_every_segment_type_as_get_msg_returns_it(
    tmp_path: Path, post_format: str
) -> None:
    document = sandbox_document()
    document["network"]["websocketServers"][0]["messagePostFormat"] = post_format
    async with sandbox_client(document) as sandbox:
        port = sandbox.gw.supervisor.adapters["ws"].port
        async with nonebot_forward_ws([f"ws://127.0.0.1:{port}/"], "", tmp_path, APP) as bot:
            await bot.wait_for_line("BOT_CONNECTED")
            earlier = await receive(sandbox, "earlier")
            await bot.wait_for_line("SEG_RECEIVED")
            sent: dict[int, tuple[str, str]] = {}
            for name, segment in received_segments(earlier).items():
                sent[await receive(sandbox, [segment])] = (name, "array")
                sent[await receive(sandbox, to_cq([segment]))] = (name, "cq")
            for _ in sent:
                await bot.wait_for_line("SEG_RECEIVED")
            got = {
                message_id: await sandbox.ok("get_msg", message_id=message_id)
                for message_id in sent
            }
    stored = {message_id: message["message"] for message_id, message in got.items()}
    received = {r["message_id"]: r for r in reports(bot, "SEG_RECEIVED")}
    by_name: dict[str, dict[str, Any]] = {}
    for message_id, (name, form) in sent.items():
        report = received[message_id]
        if post_format == "array":
            assert report["message"] == stored[message_id], (name, form)
        else:  # NoneBot parsed the event's CQ string: the message as stored, every value text
            assert report["message"] == parse_cq(got[message_id]["raw_message"]), (name, form)
        assert report["get_msg"] == stored[message_id], (name, form)
        assert not has_null(stored[message_id]), (name, form)
        by_name.setdefault(name, {})[form] = stored[message_id]
    for name, forms in by_name.items():
        assert forms["array"] == forms["cq"], name  # one canonical message from either form
    face = {"type": "face", "data": {"id": "14", "raw": {"faceIndex": 14, "faceType": 1}}}
    assert by_name["face"]["array"] == [face]
    assert by_name["poke"]["array"] == [{"type": "poke", "data": {"type": "1", "id": "-1"}}]
