"""Stored segments as bots see them: the fields NapCat gives a message it reads back from QQ.

The sandbox stores segments as the client sent them, made canonical (gateway.protocol.segments:
every scalar a string) and with their media stored (message_store.store_media sets `file` to the
media id and adds `url` and `file_size`). A message object or event shows them the way NapCat
shows a message (napcat-network.md §11.1, NapCat's converter from QQ elements):

- image `{summary, file, sub_type, url, file_size}`: `sub_type` a number (0, or the one sent),
  `summary` "" unless one was sent; keys a client added on sending (`cache`, `type`…) are gone;
- mface: an image `{summary, file, url, key, emoji_id, emoji_package_id}` (QQ's market sticker);
- face `{id, raw, resultId?, chainCount?}`: `raw` QQ's face element (`faceIndex`, `faceType`…);
  `resultId` (a string) and `chainCount` (a number) only when the face carries them;
- record `{file, path, url, file_size}`, video `{file, url, file_size}`;
- file `{file (its name), file_id, file_size, url}`;
- reply `{id}` (a reply sent by `seq` names the same message: a message's `real_seq` is its id).

Nothing here reads the database. A message with none of these types is shown as stored: its
event costs a type lookup per segment and no copy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from gateway.protocol.message import Message, Segment, raw_message

View = Callable[[dict[str, Any]], Segment]

STICKER_URL = "https://gxh.vip.qq.com/club/item/parcel/item/{dir}/{id}/raw300.gif"
"""Where QQ serves a market sticker's image (NapCat's url for a received mface)."""
_BIG_FACES = 222  # QQ face ids from here on are "big" faces (faceType 2), as NapCat sends them


def _number(value: Any, default: int = 0) -> int:
    """A canonical integer string (or an int) as an int; `default` for anything else, or for a
    number beyond int32 (the segment schemas allow no more; a row edited by hand might)."""
    try:
        number = value if isinstance(value, int) else int(str(value))
    except ValueError:
        return default
    return number if -(2**31) <= number < 2**31 else default


def _media(data: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: data[key] for key in keys if key in data}


def _image(data: dict[str, Any]) -> Segment:
    shown = {
        "summary": str(data.get("summary", "")),
        "file": data.get("file", ""),
        "sub_type": _number(data.get("sub_type", 0)),
        **_media(data, ("url", "file_size")),
    }
    return {"type": "image", "data": shown}


def _mface(data: dict[str, Any]) -> Segment:
    emoji_id = str(data.get("emoji_id", ""))
    directory = emoji_id[:2]
    shown = {
        "summary": str(data.get("summary") or "[商城表情]"),
        "file": f"{directory}-{emoji_id}.gif",
        "url": STICKER_URL.format(dir=directory, id=emoji_id),
        "key": data.get("key", ""),
        "emoji_id": emoji_id,
        "emoji_package_id": _number(data.get("emoji_package_id", 0)),
    }
    return {"type": "image", "data": shown}


def _face(data: dict[str, Any]) -> Segment:
    index = _number(data.get("id", 0))
    element: dict[str, Any] = {
        "faceIndex": index,
        "faceType": 2 if index >= _BIG_FACES else 1,
    }
    shown: dict[str, Any] = {"id": str(data.get("id", index)), "raw": element}
    if "resultId" in data:
        element["resultId"] = shown["resultId"] = str(data["resultId"])
    if "chainCount" in data:
        element["chainCount"] = shown["chainCount"] = _number(data["chainCount"])
    return {"type": "face", "data": shown}


def _local_path(url: Any) -> str:
    """The path of a file:// URL (the sandbox's cached copy), "" for anything else."""
    if isinstance(url, str) and url.startswith("file://"):
        return unquote(urlsplit(url).path)
    return ""


def _record(data: dict[str, Any]) -> Segment:
    shown = {
        "file": data.get("file", ""),
        "path": _local_path(data.get("url")),
        **_media(data, ("url", "file_size")),
    }
    return {"type": "record", "data": shown}


def _video(data: dict[str, Any]) -> Segment:
    shown = {"file": data.get("file", ""), **_media(data, ("url", "file_size"))}
    return {"type": "video", "data": shown}


def _file(data: dict[str, Any]) -> Segment:
    if "file_id" in data:  # a group or private file message: named, with its own id already
        shown = _media(data, ("file", "file_id", "file_size", "url"))
    else:  # sent as a file segment: `file` is the media id, `name` the name it was sent with
        shown = {
            "file": data.get("name") or data.get("file", ""),
            "file_id": data.get("file", ""),
            **_media(data, ("file_size", "url")),
        }
    return {"type": "file", "data": shown}


def _reply(data: dict[str, Any]) -> Segment:
    return {"type": "reply", "data": {"id": str(data.get("id", data.get("seq", "")))}}


VIEWS: dict[str, View] = {
    "image": _image,
    "mface": _mface,
    "face": _face,
    "record": _record,
    "video": _video,
    "file": _file,
    "reply": _reply,
}
"""Segment type -> how a stored segment of that type is shown; other types are shown as stored."""


def view(segments: Message) -> Message:
    """The segments as bots see them: a new list; segments of other types are shared.

    Callers skip it for a message with no segment of a type in VIEWS (most messages)."""
    return [
        VIEWS[segment["type"]](segment["data"]) if segment["type"] in VIEWS else segment
        for segment in segments
    ]


def view_raw(viewed: Message) -> str:
    """`raw_message` of viewed segments: their CQ string, without an image's empty `summary`
    (NapCat omits empty values) and without a face's `raw` element, which NapCat writes there as
    JSON: noise that would break a bot matching `[CQ:face,id=1]`."""
    plain = []
    for segment in viewed:
        data = segment["data"]
        if segment["type"] == "face":
            segment = {"type": "face", "data": {k: v for k, v in data.items() if k != "raw"}}
        elif segment["type"] == "image" and data.get("summary") == "":
            segment = {"type": "image", "data": {k: v for k, v in data.items() if k != "summary"}}
        plain.append(segment)
    return raw_message(plain)
