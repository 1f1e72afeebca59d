"""Sandbox actions: the account's identity, status and version, and what it can send."""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Any

from gateway import __version__
from gateway.actions.catalog import Params
from gateway.backends.sandbox import extended_account

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import HandlerTable, Sandbox


async def get_login_info(sandbox: Sandbox, _: Params) -> dict[str, Any]:
    return {"user_id": sandbox.self_id, "nickname": sandbox.nickname}


async def get_status(sandbox: Sandbox, _: Params) -> dict[str, Any]:
    """`{online, good, stat}` plus `online_status`: the status `set_online_status` or
    `set_diy_online_status` set (`{status, ext_status, battery_status, custom}`)."""

    def read(db: sqlite3.Connection) -> tuple[bool, dict[str, Any]]:
        online = bool(db.execute("SELECT online FROM account").fetchone()[0])
        return online, extended_account.online_status(db)

    online, presence = await sandbox.store.read(read)
    return {
        "online": online,
        "good": True,
        "stat": {"uptime": int(time.time() - sandbox.started_at)},
        "online_status": presence,
    }


async def get_version_info(_sandbox: Sandbox, _: Params) -> dict[str, Any]:
    return {
        "app_name": "onebot-gateway",
        "app_version": __version__,
        "protocol_version": "v11",
        "backend": "sandbox",
    }


async def can_send_image(_sandbox: Sandbox, _: Params) -> dict[str, Any]:
    return {"yes": True}


async def can_send_record(_sandbox: Sandbox, _: Params) -> dict[str, Any]:
    return {"yes": True}


HANDLERS: HandlerTable = {
    "get_login_info": get_login_info,
    "get_status": get_status,
    "get_version_info": get_version_info,
    "can_send_image": can_send_image,
    "can_send_record": can_send_record,
}
