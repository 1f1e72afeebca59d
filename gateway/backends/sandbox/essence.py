"""Sandbox actions: group essence (highlighted) messages.

Setting and removing need the bot to be admin or owner, as in QQ, and publish an `essence`
notice with sub_type `add` / `delete` (NapCat never reports `delete`; QQ clients do show it). A
message stays in the essence list after it is recalled, as in QQ. The sandbox's `msg_seq` is the
message id and `msg_random` a number derived from it, stable across restarts.

Both setting and removing answer the kernel's result, which NapCat passes through: `errCode`,
`errMsg` and `rsp` with the digest's operator, time and message (`msgContent` is left empty: the
sandbox does not rebuild the kernel's message elements).
"""

from __future__ import annotations

import sqlite3
import time
import zlib
from typing import TYPE_CHECKING, Any

from gateway.actions.essence import DeleteEssenceMsg, GetEssenceMsgList, SetEssenceMsg
from gateway.backends.sandbox.message_store import load_message, require_group, row_dict
from gateway.backends.sandbox.notices import require_manager
from gateway.protocol.envelope import ActionFailed

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import HandlerTable, Sandbox


def msg_random(group_id: int, message_id: int) -> int:
    """The `msg_random` the sandbox reports for a message (QQ's is random; ours is derived)."""
    return zlib.crc32(f"{group_id}:{message_id}".encode()) & 0x7FFFFFFF


def _essence_notice(
    sandbox: Sandbox, sub_type: str, group_id: int, message_id: int, sender_id: int
) -> None:
    sandbox.notice(
        "essence",
        sub_type=sub_type,
        group_id=group_id,
        user_id=sender_id,
        message_id=message_id,
        sender_id=sender_id,
        operator_id=sandbox.self_id,
    )


def _digest_answer(
    group_id: int, message: dict[str, Any], operator_id: int, when: int, removed: bool
) -> dict[str, Any]:
    """The kernel's answer to adding or removing an essence message (QQ numbers as strings, as
    the kernel writes 64-bit numbers)."""
    message_id = int(message["message_id"])
    digest = {
        "groupCode": str(group_id),
        "msgSeq": message_id,
        "msgRandom": msg_random(group_id, message_id),
        "msgContent": [],
        "textSize": "0",
        "picSize": "0",
        "videoSize": "0",
        "senderUin": str(message["sender_id"]),
        "senderTime": int(message["time"]),
        "addDigestUin": str(operator_id),
        "addDigestTime": when,
        "startTime": 0,
        "latestMsgSeq": 0,
        "opType": 2 if removed else 1,
    }
    rsp = {
        "wording": "",
        "digestUin": str(operator_id),
        "digestTime": when,
        "msg": digest,
        "errorCode": 0,
    }
    return {"errCode": 0, "errMsg": "success", "rsp": rsp}


async def set_essence_msg(sandbox: Sandbox, p: SetEssenceMsg) -> dict[str, Any]:
    now = int(time.time())

    def write(db: sqlite3.Connection) -> tuple[int, dict[str, Any]]:
        message = load_message(db, p.message_id)
        if message["message_type"] != "group":
            raise ActionFailed(f"message {p.message_id} is not a group message")
        group_id = message["peer_id"]
        require_manager(db, group_id, sandbox.self_id, "setting an essence message")
        taken = db.execute(
            "SELECT 1 FROM essence WHERE group_id = ? AND message_id = ?", (group_id, p.message_id)
        ).fetchone()
        if taken:
            raise ActionFailed(f"message {p.message_id} is already an essence message")
        db.execute(
            "INSERT INTO essence (group_id, message_id, operator_id, operator_time) "
            "VALUES (?,?,?,?)",
            (group_id, p.message_id, sandbox.self_id, now),
        )
        return group_id, message

    group_id, message = await sandbox.store.run(write)
    _essence_notice(sandbox, "add", group_id, p.message_id, message["sender_id"])
    return _digest_answer(group_id, message, sandbox.self_id, now, removed=False)


async def delete_essence_msg(sandbox: Sandbox, p: DeleteEssenceMsg) -> dict[str, Any]:
    now = int(time.time())

    def write(db: sqlite3.Connection) -> tuple[int, dict[str, Any]]:
        row = _find(db, p)
        group_id, message_id = row["group_id"], row["message_id"]
        require_manager(db, group_id, sandbox.self_id, "removing an essence message")
        db.execute(
            "DELETE FROM essence WHERE group_id = ? AND message_id = ?", (group_id, message_id)
        )
        message = {"message_id": message_id, "sender_id": row["sender_id"], "time": row["time"]}
        return group_id, message

    group_id, message = await sandbox.store.run(write)
    _essence_notice(sandbox, "delete", group_id, message["message_id"], message["sender_id"])
    return _digest_answer(group_id, message, sandbox.self_id, now, removed=True)


def _find(db: sqlite3.Connection, p: DeleteEssenceMsg) -> sqlite3.Row:
    """The essence row (with the message's sender) that `p` names; 1200 when there is none."""
    message_id = p.message_id if p.message_id is not None else p.msg_seq
    row: sqlite3.Row | None = db.execute(
        "SELECT e.*, m.sender_id, m.time FROM essence e JOIN messages m USING (message_id) "
        "WHERE e.message_id = ? AND (? IS NULL OR e.group_id = ?)",
        (message_id, p.group_id, p.group_id),
    ).fetchone()
    if row is not None and p.message_id is None and p.msg_random is not None:
        row = row if p.msg_random == msg_random(row["group_id"], row["message_id"]) else None
    if row is None:
        raise ActionFailed(f"message {message_id} is not an essence message" + _where(p))
    return row


def _where(p: DeleteEssenceMsg) -> str:
    if p.message_id is not None:
        return ""
    return f" of group {p.group_id} (msg_seq {p.msg_seq}, msg_random {p.msg_random})"


async def get_essence_msg_list(sandbox: Sandbox, p: GetEssenceMsgList) -> list[dict[str, Any]]:
    def read(db: sqlite3.Connection) -> list[dict[str, Any]]:
        require_group(db, p.group_id, sandbox.self_id)
        rows = db.execute(
            "SELECT e.*, m.sender_id, m.sender, m.segments, m.raw_message, "
            "COALESCE(u.nickname, '') AS operator_nick FROM essence e "
            "JOIN messages m USING (message_id) LEFT JOIN users u ON u.user_id = e.operator_id "
            "WHERE e.group_id = ? ORDER BY e.operator_time DESC, e.message_id DESC",
            (p.group_id,),
        ).fetchall()
        return [_entry(row) for row in rows]

    return await sandbox.store.read(read)


def _entry(row: sqlite3.Row) -> dict[str, Any]:
    message = row_dict(row)
    return {
        "msg_seq": row["message_id"],
        "msg_random": msg_random(row["group_id"], row["message_id"]),
        "sender_id": row["sender_id"],
        "sender_nick": message["sender"].get("nickname", ""),
        "operator_id": row["operator_id"],
        "operator_nick": row["operator_nick"],
        "message_id": row["message_id"],
        "operator_time": row["operator_time"],
        "content": message["segments"],
    }


HANDLERS: HandlerTable = {
    "set_essence_msg": set_essence_msg,
    "delete_essence_msg": delete_essence_msg,
    "get_essence_msg_list": get_essence_msg_list,
}
