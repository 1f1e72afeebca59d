"""OneBot 11 messages: the segment array form, the CQ-code string form, and the codec between them.

Pure functions, no I/O, on the hot path: escaping is `str.replace`, parsing one compiled regex.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from gateway.protocol.jsonio import type_name

Segment = dict[str, Any]
Message = list[Segment]
Check = Callable[[str, dict[str, Any], str], dict[str, Any]]
"""A strict check of one non-text segment: (type, data, path) -> canonical data, or raises
MessageError (gateway.protocol.segments.check_segment)."""

# The grammar `[CQ:type(,key=value)*]`. Keys exclude whitespace so the spec's own counter-example
# `[CQ:face, id=178]` stays text instead of becoming a key " id". Values exclude raw `, [ ]` (the
# spec requires them escaped); a raw `&` is tolerated. No sub-pattern can match what the next one
# starts with, so matching is linear and cannot backtrack catastrophically.
_TYPE = r"[A-Za-z0-9_.\-]+"
_KEY = r"[^,=\[\]\s]+"
_CQ_RE = re.compile(rf"\[CQ:({_TYPE})((?:,{_KEY}=[^,\[\]]*)*)\]")
_TYPE_RE = re.compile(_TYPE)
_KEY_RE = re.compile(_KEY)


class MessageError(ValueError):
    """Malformed message input; the text names what is wrong and where (`message[2].data`)."""


# --- escaping ---------------------------------------------------------------------------------


def escape_text(s: str) -> str:
    """Escape plain text outside CQ codes: `&` `[` `]` only; the comma is not escaped in text."""
    return s.replace("&", "&amp;").replace("[", "&#91;").replace("]", "&#93;")


def unescape_text(s: str) -> str:
    """Reverse `escape_text` exactly. `&#44;` is not a text escape and stays literal.

    `&amp;` goes last, so `&amp;#91;` yields the literal `&#91;` rather than `[`.
    """
    if "&" not in s:
        return s
    return s.replace("&#91;", "[").replace("&#93;", "]").replace("&amp;", "&")


def escape_value(s: str) -> str:
    """Escape a CQ parameter value: `&` `[` `]` and also `,`."""
    return escape_text(s).replace(",", "&#44;")


def unescape_value(s: str) -> str:
    """Reverse `escape_value` exactly (`&amp;` last)."""
    if "&" not in s:
        return s
    return s.replace("&#44;", ",").replace("&#91;", "[").replace("&#93;", "]").replace("&amp;", "&")


# --- helpers ----------------------------------------------------------------------------------


def _text_segment(text: str) -> Segment:
    return {"type": "text", "data": {"text": text}}


def _flush_text(out: Message, pending: list[str]) -> None:
    """Emit the pending text pieces as one text segment; empty text is never emitted."""
    if pending:
        text = "".join(pending)
        pending.clear()
        if text:
            out.append(_text_segment(text))


def _cq_value(value: object, where: str) -> str | None:
    """Convert one data value to its (unescaped) CQ string; None means "omit the key"."""
    if isinstance(value, str):
        return value
    if value is None:
        return None
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict | list | tuple):
        try:
            return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError as error:  # orjson.JSONEncodeError is a TypeError
            raise MessageError(f"{where} cannot be encoded as JSON: {error}") from None
    raise MessageError(f"{where} cannot be converted to a CQ value, got {type_name(value)}")


# --- CQ string -> segments --------------------------------------------------------------------


def _parse_params(params: str) -> dict[str, Any]:
    """`,k=v,k2=v2` (validated by the regex) -> {k: v, k2: v2}; a repeated key: last wins."""
    data: dict[str, Any] = {}
    if params:
        for param in params[1:].split(","):
            key, _, value = param.partition("=")  # keys cannot contain `=`: first `=` splits
            data[key] = unescape_value(value)
    return data


def parse_cq(text: str) -> Message:
    """Parse a CQ-code string into a normalized segment array. Never raises.

    Every value decodes as a string. Syntactically invalid CQ codes (unterminated, `[CQ:]`, a
    parameter without `=` or with an empty key) stay literal text: content is never dropped.
    `[CQ:text,text=...]` is folded into the surrounding text. Adjacent text is merged and empty
    text is not emitted.
    """
    if "[CQ:" not in text:
        return [_text_segment(unescape_text(text))] if text else []
    out: Message = []
    pending: list[str] = []
    pos = 0
    for match in _CQ_RE.finditer(text):
        start = match.start()
        if start > pos:
            pending.append(unescape_text(text[pos:start]))
        pos = match.end()
        seg_type, data = match[1], _parse_params(match[2])
        if seg_type == "text":
            pending.append(data.get("text", ""))
            continue
        _flush_text(out, pending)
        out.append({"type": seg_type, "data": data})
    if pos < len(text):
        pending.append(unescape_text(text[pos:]))
    _flush_text(out, pending)
    return out


# --- segments -> CQ string --------------------------------------------------------------------


def _segment_to_cq(segment: Segment, where: str) -> str:
    """One segment as CQ text; raises MessageError when it has no CQ representation."""
    seg_type = segment.get("type")
    if not isinstance(seg_type, str) or not _TYPE_RE.fullmatch(seg_type):
        raise MessageError(f"{where}.type {seg_type!r} cannot be written as a CQ code")
    data = segment.get("data") or {}
    if not isinstance(data, dict):
        raise MessageError(f"{where}.data must be an object, got {type_name(data)}")
    if seg_type == "text":
        return escape_text(_cq_value(data.get("text"), f"{where}.data.text") or "")
    parts = ["[CQ:", seg_type]
    for key, value in data.items():
        if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
            raise MessageError(f"{where}.data key {key!r} cannot be written as a CQ parameter")
        if seg_type == "node" and key == "content" and isinstance(value, list):
            # OneBot 11 §5.3: a node's content is a message, written as its (escaped) CQ string
            converted: str | None = to_cq(value)
        else:
            converted = _cq_value(value, f"{where}.data.{key}")
        if converted is not None:
            parts += (",", key, "=", escape_value(converted))
    parts.append("]")
    return "".join(parts)


def to_cq(message: Sequence[Segment]) -> str:
    """Encode segments as a CQ string; `parse_cq(to_cq(m)) == m` for normalized string-valued m.

    Text becomes escaped plain text (never `[CQ:text,...]`). Other segments become
    `[CQ:type,k=v,...]` in data order. Values: str as is, bool as `true`/`false`, numbers via
    `str()`, a node's content (an array) as its CQ string, other dict/list as compact JSON,
    None omits the key; empty strings are kept as `k=` so round trips are exact. Raises
    MessageError for a type or key with no CQ spelling.
    """
    parts: list[str] = []
    for index, segment in enumerate(message):
        if not isinstance(segment, dict):
            raise MessageError(
                f"message[{index}]: segment must be an object, got {type_name(segment)}"
            )
        parts.append(_segment_to_cq(segment, f"message[{index}]"))
    return "".join(parts)


def raw_message(message: Sequence[Segment]) -> str:
    """The event field `raw_message`: always the CQ string of the message.

    Unlike NapCat we do not `trim()` it: leading or trailing whitespace is message content.
    """
    return to_cq(message)


def plain_text(message: Sequence[Segment]) -> str:
    """The concatenated text of the text segments (e.g. for command matching)."""
    return "".join(
        text
        for segment in message
        if segment.get("type") == "text"
        and isinstance(text := (segment.get("data") or {}).get("text"), str)
    )


# --- incoming messages ------------------------------------------------------------------------


def _checked_data(segment: dict[Any, Any], where: str) -> dict[str, Any]:
    """Validate and copy a segment's data; a missing or null data becomes `{}`."""
    data = segment.get("data")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise MessageError(f"{where}.data must be an object, got {type_name(data)}")
    for key in data:
        if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
            raise MessageError(
                f"{where}.data key {key!r} is not a valid parameter name "
                "(non-empty, no whitespace, none of , = [ ])"
            )
    return dict(data)


def _checked_type(segment: dict[Any, Any], where: str) -> str:
    if "type" not in segment:
        raise MessageError(f'{where}: segment has no "type"')
    seg_type = segment["type"]
    if not isinstance(seg_type, str):
        raise MessageError(f"{where}.type must be a string, got {type_name(seg_type)}")
    if not _TYPE_RE.fullmatch(seg_type):
        raise MessageError(
            f"{where}.type {seg_type!r} is not a valid segment type "
            "(one or more of letters, digits, _ . -)"
        )
    return seg_type


def _checked_text(data: dict[str, Any], where: str) -> str:
    """A text segment's text; numbers and booleans are stringified as `to_cq` would."""
    if "text" not in data:
        raise MessageError(f'{where}.data has no "text"')
    text = data["text"]
    if isinstance(text, str):
        return text
    if isinstance(text, bool | int | float):
        return _cq_value(text, where) or ""
    raise MessageError(f"{where}.data.text must be a string, got {type_name(text)}")


def _normalize_segments(
    segments: Sequence[object], single: bool, check: Check | None, path: str
) -> Message:
    """Validate and copy segments, merging text; `single` names the segment `path`, not
    `path[i]`. Indexes are the client's (before text is merged)."""
    out: Message = []
    pending: list[str] = []
    for index, segment in enumerate(segments):
        where = path if single else f"{path}[{index}]"
        if not isinstance(segment, dict):
            raise MessageError(f"{where}: segment must be an object, got {type_name(segment)}")
        seg_type = _checked_type(segment, where)
        data = _checked_data(segment, where)
        if seg_type == "text":
            pending.append(_checked_text(data, where))
            continue
        _flush_text(out, pending)
        out.append({"type": seg_type, "data": check(seg_type, data, where) if check else data})
    _flush_text(out, pending)
    return out


def _checked_cq(segments: Message, check: Check, path: str) -> Message:
    """A parsed CQ string's segments, checked; the index is the segment's in the parsed array."""
    for index, segment in enumerate(segments):
        if segment["type"] != "text":
            segment["data"] = check(segment["type"], segment["data"], f"{path}[{index}]")
    return segments


def normalize(
    message: object,
    *,
    auto_escape: bool = False,
    check: Check | None = None,
    path: str = "message",
) -> Message:
    """Validate an incoming message (CQ string, one segment, or array) into a new segment array.

    A string is parsed as CQ codes, or taken as one literal text segment when `auto_escape` is
    true (`auto_escape` has no effect on other forms). Segment and data dicts are new (values
    are shared, not deep-copied); data values are kept as given, unless `check` is given: then
    each non-text segment's data is replaced by what `check` returns. Text segments become
    `{"text": str}` (other keys dropped), adjacent ones are merged and empty ones dropped.
    An empty message gives `[]`. Raises MessageError naming the offending segment by `path`
    and index (`message[2]`) and the field.
    """
    if isinstance(message, str):
        if auto_escape:
            return [_text_segment(message)] if message else []
        parsed = parse_cq(message)
        return _checked_cq(parsed, check, path) if check else parsed
    if isinstance(message, dict):
        return _normalize_segments([message], True, check, path)
    if isinstance(message, list | tuple):
        return _normalize_segments(message, False, check, path)
    raise MessageError(
        f"{path} must be a string, a segment object or an array of segments, "
        f"got {type_name(message)}"
    )
