"""The data schema of every OneBot 11 and NapCat message segment type, checked as a client would.

`check_segment` is the strict check the sandbox applies to every segment it stores: an unknown
type, a missing required field or a value of the wrong kind raises MessageError naming the
segment and the field. It also makes the data canonical, so what is stored and sent back does not
depend on how the client spelled it: `null` values are dropped and every scalar is a string
(OneBot 11 §5.1: parameter values are strings, which is what makes the array and the CQ-string
forms of one message equal), integers in their decimal form, flags `true`/`false`; only
onlinefile's isDir is a JSON boolean, as the sandbox's own online-file messages carry it. How a
stored segment is shown to bots (NapCat's numbers, a face's `raw`) is the sandbox's view of it.
Fields a schema does not name are kept as sent (clients echo received segments with extra keys).

The table is data, one line per field, and each kind is a plain function: checking a segment
is one dict lookup per field, cheap enough for every send.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.protocol.jsonio import type_name
from gateway.protocol.message import Message, MessageError, normalize


class Invalid(ValueError):
    """A field value that its kind refuses; the text completes "<field> ..."."""


Kind = Callable[[Any], Any]
"""Checks one field value and returns its canonical form; raises Invalid."""

INT32 = (-(2**31), 2**31 - 1)
UIN = (1, 2**63 - 1)  # QQ and group numbers: positive, carried as int64
_INT_RE = re.compile(r"-?[0-9]{1,20}")
_DECIMAL_RE = re.compile(r"-?[0-9]{1,20}(?:\.[0-9]{1,20})?")  # not float()'s "1_0", " 1", "inf"
_NODE_DEPTH = 3  # forward nodes nest at most three levels (NapCat)


def _shown(value: Any) -> str:
    """A short rendering of a bad value for an error message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and value.bit_length() > 64:
        return f"a {value.bit_length()}-bit integer"  # too long to print (or to convert)
    if isinstance(value, str):
        try:
            text = orjson.dumps(value).decode()
        except TypeError:  # a lone surrogate: escaped, so the error message stays encodable
            text = json.dumps(value)
    elif isinstance(value, int | float):
        text = repr(value)
    else:
        return type_name(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- kinds ------------------------------------------------------------------------------------


def string(value: Any) -> str:
    """Text; a number is accepted and written in decimal (OneBot 11: clients send numbers)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise Invalid(f"must be a string, got {_shown(value)}")


def nonempty(value: Any) -> str:
    """Text that names something (an id, a key): the empty string is refused."""
    text = string(value)
    if not text:
        raise Invalid("must not be empty")
    return text


def _integer(value: Any, low: int, high: int, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _INT_RE.fullmatch(value):
        number = int(value)
    else:
        raise Invalid(f"must be {what}, got {_shown(value)}")
    if not low <= number <= high:
        raise Invalid(f"must be {what} in {low}..{high}, got {_shown(number)}")
    return number


def integer(low: int, high: int, what: str = "an integer") -> Callable[[Any], str]:
    """An integer (a JSON number or its decimal string) in [low, high], written as a string."""

    def kind(value: Any) -> str:
        return str(_integer(value, low, high, what))

    return kind


def _yes(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    spelled = str(value).lower() if isinstance(value, str | int) else None
    if spelled in ("1", "true", "yes"):
        return True
    if spelled in ("0", "false", "no"):
        return False
    raise Invalid(f"must be true/false, yes/no or 1/0, got {_shown(value)}")


def flag(value: Any) -> str:
    """A yes/no parameter: OneBot 11 accepts 0/1, no/yes and false/true; written true/false."""
    return "true" if _yes(value) else "false"


def boolean(value: Any) -> bool:
    """As `flag`, kept a JSON boolean (NapCat's type for onlinefile's isDir)."""
    return _yes(value)


def choice(*allowed: str) -> Kind:
    """One of a fixed set of strings."""
    names = ", ".join(allowed)

    def kind(value: Any) -> str:
        if isinstance(value, str) and value in allowed:
            return value
        raise Invalid(f"must be one of {names}, got {_shown(value)}")

    return kind


def coordinate(limit: float) -> Kind:
    """A latitude or longitude: a finite number in [-limit, limit], as a string."""

    def kind(value: Any) -> str:
        if isinstance(value, int | float) and not isinstance(value, bool):
            number, text = float(value), str(value)
        elif isinstance(value, str) and _DECIMAL_RE.fullmatch(value):
            number, text = float(value), value
        else:
            raise Invalid(f"must be a decimal number, got {_shown(value)}")
        if not (math.isfinite(number) and -limit <= number <= limit):
            raise Invalid(f"must be a number in -{limit:g}..{limit:g}, got {_shown(value)}")
        return text

    return kind


def json_text(value: Any) -> str:
    """A JSON document: a string that parses, or an object/array (written as compact JSON)."""
    if isinstance(value, str):
        try:
            orjson.loads(value)
        except orjson.JSONDecodeError as error:
            raise Invalid(f"must be JSON text: {error}") from None
        return value
    if isinstance(value, dict | list):
        try:
            return orjson.dumps(value).decode()
        except TypeError as error:  # orjson.JSONEncodeError: a non-string key, a huge int...
            raise Invalid(f"cannot be encoded as JSON: {error}") from None
    raise Invalid(f"must be JSON text or an object, got {_shown(value)}")


def _decoded(value: Any, what: str) -> Any:
    """A structured value, or the JSON text of one: the CQ form can only carry text."""
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError as error:
            raise Invalid(f"must be {what} or JSON text of one: {error}") from None
    return value


def json_object(value: Any) -> dict[str, Any]:
    """A JSON object (or its JSON text), kept as the object."""
    value = _decoded(value, "an object")
    if not isinstance(value, dict):
        raise Invalid(f"must be an object, got {_shown(value)}")
    return value


def json_object_text(value: Any) -> str:
    """A JSON object (or its JSON text), written as compact JSON text: the spelling the CQ form
    carries, so both forms of a message store the same."""
    try:
        return orjson.dumps(json_object(value)).decode()
    except TypeError as error:  # orjson.JSONEncodeError: a non-string key, a huge int...
        raise Invalid(f"cannot be encoded as JSON: {error}") from None


def array(value: Any) -> list[Any]:
    """A JSON array (or its JSON text), its items kept as sent."""
    value = _decoded(value, "an array")
    if not isinstance(value, list):
        raise Invalid(f"must be an array, got {_shown(value)}")
    return value


def news(value: Any) -> list[dict[str, str]]:
    """A forward card's news lines: an array of `{"text": string}` (or its JSON text)."""
    value = _decoded(value, "an array")
    if not isinstance(value, list):
        raise Invalid(f"must be an array of {{text}} objects, got {_shown(value)}")
    out = []
    for item in value:
        if not isinstance(item, dict) or "text" not in item:
            raise Invalid("must be an array of {text} objects")
        out.append({"text": string(item["text"])})
    return out


def message_content(value: Any) -> Any:
    """A node's content: checked by the node rule, which needs the segment's path."""
    return value


# --- the table --------------------------------------------------------------------------------


Rule = Callable[[dict[str, Any], str], None]
"""A cross-field check on the canonical data, given the segment's path (`message[1]`); raises
MessageError naming the path and the type."""


@dataclass(frozen=True, slots=True)
class Schema:
    """One segment type's data: its fields' kinds, those required, and any cross-field rule."""

    fields: Mapping[str, Kind]
    required: tuple[str, ...] = ()
    one_of: tuple[str, ...] = ()  # at least one of these must be present
    rule: Rule | None = field(default=None)


MESSAGE_ID = integer(*INT32, "a 32-bit message id")
USER_ID = integer(*UIN, "a QQ number")
_FLAGS = {"cache": flag, "proxy": flag, "timeout": integer(0, INT32[1], "a number of seconds")}
_FILE = {
    "file": string,
    "url": string,
    "path": string,
    "name": string,
    "thumb": string,
    "file_size": integer(0, 2**63 - 1, "a size in bytes"),
    **_FLAGS,
}
_MUSIC_PLATFORMS = ("qq", "163", "xm", "kugou", "migu", "kuwo")


def _at_qq(value: Any) -> str:
    if value == "all":
        return "all"
    try:
        return USER_ID(value)
    except Invalid:
        raise Invalid(f'must be a QQ number or "all", got {_shown(value)}') from None


def _media_source(seg_type: str) -> Rule:
    """file / url / path: the first non-empty one is the source, so one must be non-empty."""

    def rule(data: dict[str, Any], where: str) -> None:
        if not (data.get("file") or data.get("url") or data.get("path")):
            raise MessageError(f"{where} ({seg_type}): file (or url or path) is required")

    return rule


def _music(data: dict[str, Any], where: str) -> None:
    """A platform card needs the song's id; a custom one (OneBot 11) its url, audio and title."""
    if data["type"] == "custom":
        missing = [name for name in ("url", "audio", "title") if name not in data]
        if missing:
            raise MessageError(f"{where} (music): a custom card needs {', '.join(missing)}")
    elif "id" not in data:
        raise MessageError(f"{where} (music): id is required for type {data['type']}")


def _reply(data: dict[str, Any], where: str) -> None:
    if "id" not in data and "seq" not in data:
        raise MessageError(f"{where} (reply): id (or seq) is required")


def _keyboard(data: dict[str, Any], where: str) -> None:
    if "content" not in data and "rows" not in data:
        raise MessageError(f"{where} (keyboard): content (or rows) is required")


def _node(data: dict[str, Any], where: str) -> None:
    """A reference node `{id}`, or a custom node `{user_id|uin, nickname|name, content}` whose
    content is a message in any form, checked like a top-level one and stored as an array."""
    label = f"{where} (node)"
    if where.count(".content[") >= _NODE_DEPTH:
        raise MessageError(f"{label}: forward nodes nest at most {_NODE_DEPTH} levels")
    if "content" not in data:
        if "id" not in data:
            raise MessageError(f"{label}: id, or user_id, nickname and content, are required")
        return
    if "user_id" not in data and "uin" not in data:
        raise MessageError(f"{label}: user_id (or uin) is required with content")
    if "nickname" not in data and "name" not in data:
        raise MessageError(f"{label}: nickname (or name) is required with content")
    path = f"{where}.data.content"
    content = normalize(data["content"], check=check_segment, path=path)
    if not content:
        raise MessageError(f"{path}: the message is empty")
    nodes = sum(1 for segment in content if segment["type"] == "node")
    if nodes and nodes != len(content):
        raise MessageError(f"{path}: node segments cannot be mixed with other segments")
    data["content"] = content


SCHEMAS: Mapping[str, Schema] = {
    # OneBot 11 and NapCat (reference/napcat-network.md §11.1, onebot11.md §5.3). `text` is
    # checked by the codec itself (normalize merges and stringifies it).
    "face": Schema(
        {
            "id": integer(0, INT32[1], "a face id"),
            "resultId": string,
            "chainCount": integer(0, INT32[1]),
            "raw": json_object,  # the NT element NapCat adds to a received face
        },
        required=("id",),
    ),
    "mface": Schema(
        {
            "emoji_package_id": integer(0, INT32[1], "a sticker package id"),
            "emoji_id": nonempty,
            "key": nonempty,
            "summary": string,
        },
        required=("emoji_package_id", "emoji_id", "key"),
    ),
    "at": Schema({"qq": _at_qq, "name": string}, required=("qq",)),
    "reply": Schema({"id": MESSAGE_ID, "seq": integer(0, 2**63 - 1, "a message seq")}, rule=_reply),
    "image": Schema(
        {
            **_FILE,
            "type": choice("flash"),
            "summary": string,
            "sub_type": integer(0, INT32[1]),
        },
        rule=_media_source("image"),
    ),
    "record": Schema({**_FILE, "magic": flag}, rule=_media_source("record")),
    "video": Schema(_FILE, rule=_media_source("video")),
    "file": Schema({**_FILE, "file_id": string}, rule=_media_source("file")),
    "json": Schema({"data": json_text, "config": json_object}, required=("data",)),
    "xml": Schema({"data": nonempty}, required=("data",)),
    "markdown": Schema({"content": string}, required=("content",)),
    "dice": Schema({"result": integer(1, 6, "a dice face")}),
    "rps": Schema({"result": integer(1, 3, "a rock-paper-scissors result")}),
    "shake": Schema({}),
    "poke": Schema(
        {"type": integer(*INT32), "id": integer(*INT32), "name": string},
        required=("type", "id"),
    ),
    "anonymous": Schema({"ignore": flag}),
    "share": Schema(
        {"url": nonempty, "title": string, "content": string, "image": string},
        required=("url", "title"),
    ),
    "contact": Schema({"type": choice("qq", "group"), "id": USER_ID}, required=("type", "id")),
    "location": Schema(
        {"lat": coordinate(90), "lon": coordinate(180), "title": string, "content": string},
        required=("lat", "lon"),
    ),
    "music": Schema(
        {
            "type": choice(*_MUSIC_PLATFORMS, "custom"),
            "id": nonempty,
            "url": nonempty,
            "audio": string,
            "title": string,
            "content": string,
            "image": string,
        },
        required=("type",),
        rule=_music,
    ),
    "forward": Schema({"id": nonempty, "content": array}, required=("id",)),
    "node": Schema(
        {
            "id": MESSAGE_ID,
            "user_id": USER_ID,
            "uin": USER_ID,
            "nickname": string,
            "name": string,
            "content": message_content,
            "source": string,
            "news": news,
            "summary": string,
            "prompt": string,
            "time": integer(0, 2**63 - 1, "a Unix time"),
        },
        rule=_node,
    ),
    "miniapp": Schema({"data": nonempty}, required=("data",)),
    "onlinefile": Schema(
        {
            "msgId": nonempty,
            "elementId": nonempty,
            "fileName": string,
            "fileSize": integer(0, 2**63 - 1, "a size in bytes"),
            "isDir": boolean,
        },
        required=("msgId", "elementId", "fileName", "fileSize", "isDir"),
    ),
    "flashtransfer": Schema({"fileSetId": nonempty}, required=("fileSetId",)),
    # An inline keyboard as go-cqhttp and Lagrange carry it (`{content: {rows: [...]}}`, or the
    # rows directly): what a simulated QQ bot sends in the sandbox (its cards module).
    "keyboard": Schema(
        {"content": json_object_text, "rows": array, "bot_appid": string}, rule=_keyboard
    ),
}


def check_segment(seg_type: str, data: dict[str, Any], where: str) -> dict[str, Any]:
    """The canonical data of one non-text segment; MessageError names `where`, type and field.

    `data` is the codec's own copy (normalize), so a rule may fill in canonical values.
    """
    schema = SCHEMAS.get(seg_type)
    if schema is None:
        raise MessageError(f"{where} ({seg_type}): unknown segment type")
    fields = schema.fields
    out: dict[str, Any] = {}
    for key, value in data.items():
        if value is None:  # a client's null means "not given": never stored or sent back
            continue
        kind = fields.get(key)
        if kind is None:
            out[key] = value
            continue
        try:
            out[key] = kind(value)
        except Invalid as error:
            raise MessageError(f"{where} ({seg_type}): {key} {error}") from None
    for key in schema.required:
        if key not in out:
            raise MessageError(f"{where} ({seg_type}): {key} is required")
    if schema.rule is not None:
        schema.rule(out, where)
    return out


def parse_strict(message: object, *, auto_escape: bool = False) -> Message:
    """`normalize` with every segment checked and made canonical (see the module docstring)."""
    return normalize(message, auto_escape=auto_escape, check=check_segment)
