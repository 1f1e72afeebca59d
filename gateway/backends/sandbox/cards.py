"""Sandbox actions: inline keyboards and ark cards.

An inline keyboard is a `keyboard` segment (go-cqhttp's and Lagrange's shape: `{content: {rows:
[{buttons: [{id, render_data, action: {type, data, enter, reply, permission}}]}]}}`), which a
simulated QQ bot can send with `sandbox_receive_message`. Clicking a command button (type 2)
with `enter` sends its text to the chat as the bot; without `enter` the text is answered as
`promptText` (what QQ puts in the input box); a link button (0) answers its URL, a callback
button (1) its data. `permission` is honoured (0 listed users, 1 admins, 2 everyone).

Ark cards are JSON built from the parameters and from the stored users and groups; send one
as a `json` segment.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from gateway.actions.extended_message import (
    ClickInlineKeyboardButton,
    GetMiniAppArk,
    ShareContact,
    ShareGroup,
)
from gateway.backends.sandbox.membership import find_member, load_group
from gateway.backends.sandbox.message_store import load_message
from gateway.backends.sandbox.sending import send_to_friend, send_to_group
from gateway.backends.sandbox.store import decode_json
from gateway.protocol.envelope import ActionFailed, BadRequest
from gateway.protocol.message import Message

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import HandlerTable, Sandbox

_OK = {"result": 0, "errMsg": ""}


# --- inline keyboards ---------------------------------------------------------------------------


def _keyboard(segments: Message) -> dict[str, Any] | None:
    for segment in segments:
        if segment["type"] == "keyboard":
            content = segment["data"].get("content", segment["data"])
            if isinstance(content, str):
                try:
                    content = decode_json(content)  # always encodable in an answer
                except ValueError:
                    return None
            return content if isinstance(content, dict) else None
    return None


def _buttons(keyboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for row in keyboard.get("rows") or []:
        if isinstance(row, dict):
            yield from (b for b in row.get("buttons") or [] if isinstance(b, dict))


def _number(value: Any, default: int) -> int:
    """A button field as a number; a simulated bot may have sent anything."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


def _may_click(
    db: sqlite3.Connection, message: dict[str, Any], action: dict[str, Any], me: int
) -> bool:
    permission = action.get("permission") or {}
    kind = _number(permission.get("type"), 2)
    if kind == 0:
        return str(me) in {str(u) for u in permission.get("specify_user_ids") or []}
    if kind == 1:
        if message["message_type"] != "group":
            return False
        row = find_member(db, message["peer_id"], me)
        return row is not None and row["role"] in ("admin", "owner")
    return True


async def click_inline_keyboard_button(
    sandbox: Sandbox, p: ClickInlineKeyboardButton
) -> dict[str, Any]:
    def read(db: sqlite3.Connection) -> tuple[dict[str, Any], dict[str, Any]]:
        message = load_message(db, p.message)
        if p.group_id is not None and (
            message["message_type"] != "group" or message["peer_id"] != p.group_id
        ):
            raise ActionFailed(f"message {p.message} is not in group {p.group_id}")
        keyboard = _keyboard(message["segments"])
        if keyboard is None:
            raise ActionFailed(f"message {p.message} has no inline keyboard")
        appid = str(keyboard.get("bot_appid", ""))
        if p.bot_appid and appid and p.bot_appid != appid:
            raise ActionFailed(f"the keyboard of message {p.message} belongs to bot {appid}")
        for button in _buttons(keyboard):
            action = button.get("action") or {}
            if (p.button_id and str(button.get("id", "")) == p.button_id) or (
                not p.button_id and p.callback_data and action.get("data") == p.callback_data
            ):
                if not _may_click(db, message, action, sandbox.self_id):
                    raise ActionFailed(f"the bot may not click button {button.get('id')!r}")
                return message, button
        wanted = p.button_id or p.callback_data
        raise ActionFailed(f"message {p.message} has no button {wanted!r}")

    if not (p.button_id or p.callback_data):
        raise BadRequest("missing required parameter 'button_id' (or data)")
    message, button = await sandbox.store.read(read)
    action = button.get("action") or {}
    data = str(action.get("data", ""))
    answer = {**_OK, "status": 0, "promptText": "", "promptType": 0, "promptIcon": 0}
    kind = _number(action.get("type"), 2)
    if kind == 0:
        return {**answer, "url": data}
    if kind == 1:
        return {**answer, "callback_data": p.callback_data or data}
    if not _flag(action.get("enter")):
        return {**answer, "promptText": data}
    segments: Message = [{"type": "text", "data": {"text": data}}]
    if _flag(action.get("reply")):
        segments.insert(0, {"type": "reply", "data": {"id": str(message["message_id"])}})
    if message["message_type"] == "group":
        event = await send_to_group(sandbox, message["peer_id"], segments)
    else:
        event = await send_to_friend(sandbox, message["peer_id"], segments)
    return {**answer, "message_id": event["message_id"]}


# --- ark cards ----------------------------------------------------------------------------------

_PRESETS = {
    "bili": ("1109937557", "哔哩哔哩"),
    "weibo": ("1109224783", "微博"),
}
_TEMPLATE = "8C8E89B49BE609866298ADDFF2DBABA4"


def _token(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:32]


async def get_mini_app_ark(sandbox: Sandbox, p: GetMiniAppArk) -> dict[str, Any]:
    app_id, app_name = _PRESETS[p.type] if p.type else (p.appId or "", p.title)
    now = int(time.time())
    ark = {
        "app": "com.tencent.miniapp_01",
        "bizsrc": "",
        "view": f"view_{_TEMPLATE}",
        "ver": "1.0.0.19",
        "prompt": f"[QQ小程序]{p.title}",
        "config": {
            "type": "normal",
            "width": 0,
            "height": 0,
            "forward": 1,
            "autoSize": 0,
            "ctime": now,
            "token": _token(app_id, p.title, p.jumpUrl, now),
        },
        "meta": {
            "detail_1": {
                "appid": app_id,
                "appType": 0,
                "title": app_name,
                "desc": p.desc or p.title,
                "icon": p.iconUrl,
                "preview": p.picUrl,
                "url": p.jumpUrl,
                "qqdocurl": p.webUrl or p.jumpUrl,
                "scene": p.scene,
                "host": {"uin": sandbox.self_id, "nick": sandbox.nickname},
                "shareTemplateId": _TEMPLATE,
                "shareTemplateData": {},
                "showLittleTail": "",
                "gamePoints": "",
                "gamePointsUrl": "",
                "shareOrigin": 0,
            }
        },
    }
    if p.rawArkData:
        return {"data": json.dumps(ark, ensure_ascii=False)}
    return {"data": ark}


def _contact_ark(app: str, prompt: str, nickname: str, contact: str, jump: str) -> str:
    now = int(time.time())
    card = {
        "app": app,
        "bizsrc": "",
        "desc": "",
        "view": "contact",
        "ver": "1.0.0.1",
        "prompt": f"{prompt}：{nickname}",
        "meta": {
            "contact": {
                "avatar": "",
                "contact": contact,
                "jumpUrl": jump,
                "nickname": nickname,
                "tag": prompt,
                "tagIcon": "",
            }
        },
        "config": {"autosize": 1, "ctime": now, "token": _token(app, contact, now)},
    }
    return json.dumps(card, ensure_ascii=False)


def _group_ark(db: sqlite3.Connection, group_id: int) -> str:
    group = load_group(db, group_id)
    return _contact_ark(
        "com.tencent.troopsharecard",
        "推荐群聊",
        group["group_name"],
        f"群号：{group_id}",
        f"mqqapi://card/show_pslcard?src_type=internal&card_type=group&uin={group_id}",
    )


def _user_ark(db: sqlite3.Connection, user_id: int, phone: str) -> str:
    user = db.execute("SELECT nickname FROM users WHERE user_id = ?", (user_id,)).fetchone()
    if user is None:
        raise ActionFailed(f"user {user_id} is unknown to the sandbox")
    contact = f"QQ号：{user_id}" + (f"\n手机号：{phone}" if phone else "")
    return _contact_ark(
        "com.tencent.contact.lua",
        "推荐联系人",
        user["nickname"],
        contact,
        f"mqqapi://card/show_pslcard?src_type=internal&source=sharecard&version=1&uin={user_id}",
    )


async def send_ark_share(sandbox: Sandbox, p: ShareContact) -> dict[str, Any]:
    group_id, user_id = p.group_id, p.user_id
    if group_id is not None:
        card = await sandbox.store.read(lambda db: _group_ark(db, group_id))
        return {**_OK, "arkJson": card}
    assert user_id is not None
    card = await sandbox.store.read(lambda db: _user_ark(db, user_id, p.phone_number))
    return {**_OK, "arkMsg": card}


async def send_group_ark_share(sandbox: Sandbox, p: ShareGroup) -> str:
    return await sandbox.store.read(lambda db: _group_ark(db, p.group_id))


HANDLERS: HandlerTable = {
    "click_inline_keyboard_button": click_inline_keyboard_button,
    "get_mini_app_ark": get_mini_app_ark,
    "send_ark_share": send_ark_share,
    "send_group_ark_share": send_group_ark_share,
}
