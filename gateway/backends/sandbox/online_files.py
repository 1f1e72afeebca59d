"""Sandbox actions: online files and folders between the bot and a friend.

An offer is a private message whose one segment is `onlinefile`
(`{msgId, elementId, fileName, fileSize, isDir}`, as NapCat reports it) plus an `online_files`
row that follows its state: offered, then received, refused or cancelled, once. The bot offers
a file or folder on its own machine (`send_online_file`, `send_online_folder`: only its name and
size travel, as nothing is transferred until the friend accepts); a simulated friend offers the
bot content (`sandbox_send_online_file`), stored as media so that `receive_online_file` hands the
bot a local copy. What the bot sees of the friend's side are NapCat's notices:
`online_file_send` (`receive`/`refuse`) when the friend answers the bot's offer, and
`online_file_receive` (`cancel`) when the friend withdraws their own (`sandbox_answer_online_file`).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.actions.online_file import (
    CancelOnlineFile,
    GetOnlineFileMsg,
    OnlineFileElement,
    SandboxAnswerOnlineFile,
    SandboxSendOnlineFile,
    SendOnlineFile,
    SendOnlineFolder,
)
from gateway.backends.sandbox import media
from gateway.backends.sandbox.friends import uid_of
from gateway.backends.sandbox.message_store import message_event, store_message
from gateway.protocol.envelope import ActionFailed, BadRequest

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import HandlerTable, Sandbox

FILE_ELEMENT, FOLDER_ELEMENT = 23, 30
"""NT element types of an online file and an online folder."""
MAX_FOLDER_ENTRIES = 10_000
"""Most directory entries `send_online_folder` walks to add up a folder's size."""
_OK = {"result": 0, "errMsg": ""}


def _nt_id() -> str:
    """A fresh 19-digit id in the form of NT's msgId and elementId."""
    return str(7 * 10**18 + secrets.randbelow(10**18))


def _friend(db: sqlite3.Connection, user_id: int) -> sqlite3.Row:
    row: sqlite3.Row | None = db.execute(
        "SELECT * FROM users WHERE user_id = ?", (user_id,)
    ).fetchone()
    if row is None or not row["is_friend"]:
        raise ActionFailed(f"user {user_id} is not a friend of the bot (online files are 1:1)")
    return row


def _offer(
    db: sqlite3.Connection,
    user_id: int,
    sender: dict[str, Any],
    entry: dict[str, Any],
) -> dict[str, Any]:
    """Store an offer's message and row; returns the message. `entry` holds the row's file
    fields (file_name, file_size, is_dir, file_path, media_id)."""
    msg_id, element_id = _nt_id(), _nt_id()
    segment = {
        "type": "onlinefile",
        "data": {
            "msgId": msg_id,
            "elementId": element_id,
            "fileName": entry["file_name"],
            "fileSize": str(entry["file_size"]),
            "isDir": bool(entry["is_dir"]),
        },
    }
    message = store_message(db, "private", user_id, sender["user_id"], [segment], sender)
    db.execute(
        "INSERT INTO online_files (msg_id, element_id, message_id, user_id, sender_id, "
        "file_name, file_path, file_size, is_dir, media_id, time) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            msg_id,
            element_id,
            message["message_id"],
            user_id,
            sender["user_id"],
            entry["file_name"],
            entry.get("file_path", ""),
            entry["file_size"],
            int(entry["is_dir"]),
            entry.get("media_id", ""),
            message["time"],
        ),
    )
    return message


def _local(path_text: str, what: str) -> Path:
    path = Path(path_text)
    if not path.is_absolute():
        raise BadRequest(f"{what}: {path_text!r} is not an absolute path")
    return path


def _folder_size(folder: Path) -> int:
    """The size of the regular files under `folder`, walking at most MAX_FOLDER_ENTRIES."""
    total, seen = 0, 0
    for parent, _dirs, names in os.walk(folder):
        for name in names:
            seen += 1
            if seen > MAX_FOLDER_ENTRIES:
                return total
            try:
                total += (Path(parent) / name).stat().st_size
            except OSError:
                continue
    return total


async def _send_offer(
    sandbox: Sandbox, user_id: int, path: Path, name: str, is_dir: bool
) -> dict[str, Any]:
    """The bot's offer of a local file or folder; NapCat's `{result, errMsg, msgId, elementId}`."""
    self_id = sandbox.self_id

    def write(db: sqlite3.Connection) -> dict[str, Any]:
        _friend(db, user_id)
        # Checked on the database thread: a stat (or a bounded walk) never blocks the loop.
        if is_dir and not path.is_dir():
            raise ActionFailed(f"local folder {str(path)!r} does not exist")
        if not is_dir and not path.is_file():
            raise ActionFailed(f"local file {str(path)!r} does not exist")
        size = _folder_size(path) if is_dir else path.stat().st_size
        entry = {
            "file_name": name or path.name,
            "file_size": size,
            "is_dir": is_dir,
            "file_path": str(path),
        }
        sender = {"user_id": self_id, "nickname": sandbox.nickname, "card": ""}
        return _offer(db, user_id, sender, entry)

    message = await sandbox.store.run(write)
    sandbox.publish(message_event(message, self_id))
    data = message["segments"][0]["data"]
    return {**_OK, "msgId": data["msgId"], "elementId": data["elementId"]}


async def send_online_file(sandbox: Sandbox, p: SendOnlineFile) -> dict[str, Any]:
    path = media.allowed_path(sandbox, _local(p.file_path, "file_path"), "file_path")
    return await _send_offer(sandbox, p.user_id, path, p.file_name or "", False)


async def send_online_folder(sandbox: Sandbox, p: SendOnlineFolder) -> dict[str, Any]:
    path = media.allowed_path(sandbox, _local(p.folder_path, "folder_path"), "folder_path")
    return await _send_offer(sandbox, p.user_id, path, p.folder_name or "", True)


async def get_online_file_msg(sandbox: Sandbox, p: GetOnlineFileMsg) -> dict[str, Any]:
    """NT's `{result, errMsg, msgList}`, newest first; each message carries its one element and,
    beyond NT's fields, the offer's `state` (offered, received, refused, cancelled)."""

    def read(db: sqlite3.Connection) -> list[dict[str, Any]]:
        _friend(db, p.user_id)
        rows = db.execute(
            "SELECT * FROM online_files WHERE user_id = ? ORDER BY time DESC, rowid DESC",
            (p.user_id,),
        ).fetchall()
        return [_nt_message(row) for row in rows]

    return {**_OK, "msgList": await sandbox.store.read(read)}


def _nt_message(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "msgId": row["msg_id"],
        "msgRandom": str(row["message_id"]),
        "senderUid": uid_of(row["sender_id"]),
        "peerUid": uid_of(row["user_id"]),
        "msgTime": str(row["time"]),
        "chatType": 1,
        "state": row["state"],
        "elements": [
            {
                "elementType": FOLDER_ELEMENT if row["is_dir"] else FILE_ELEMENT,
                "elementId": row["element_id"],
                "fileElement": {
                    "fileName": row["file_name"],
                    "filePath": row["file_path"],
                    "fileSize": str(row["file_size"]),
                },
            }
        ],
    }


def _pending(
    db: sqlite3.Connection, user_id: int, msg_id: str, offered_by: int, element_id: str | None
) -> sqlite3.Row:
    """The offer `msg_id` in the chat with `user_id`, made by `offered_by` and still pending;
    1200 naming what does not match."""
    row: sqlite3.Row | None = db.execute(
        "SELECT * FROM online_files WHERE msg_id = ? AND user_id = ?", (msg_id, user_id)
    ).fetchone()
    if row is None:
        raise ActionFailed(f"no online file offer with msg_id {msg_id!r} with user {user_id}")
    if element_id is not None and row["element_id"] != element_id:
        raise ActionFailed(f"online file offer {msg_id!r} has no element {element_id!r}")
    if row["sender_id"] != offered_by:
        side = "the bot" if row["sender_id"] != user_id else f"user {user_id}"
        raise ActionFailed(f"online file offer {msg_id!r} was made by {side}")
    if row["state"] != "offered":
        raise ActionFailed(f"online file offer {msg_id!r} is already {row['state']}")
    return row


def _settle(db: sqlite3.Connection, msg_id: str, state: str) -> None:
    db.execute("UPDATE online_files SET state = ? WHERE msg_id = ?", (state, msg_id))


async def receive_online_file(sandbox: Sandbox, p: OnlineFileElement) -> dict[str, Any]:
    """`{result, errMsg}` and, beyond NapCat's answer, where the received copy is:
    `{file_name, file_size, url, path}`."""

    def write(db: sqlite3.Connection) -> dict[str, Any]:
        row = _pending(db, p.user_id, p.msg_id, p.user_id, p.element_id)
        stored = media.media_row(db, row["media_id"])
        if stored is None:
            raise ActionFailed(f"the content of online file {p.msg_id!r} is missing")
        _settle(db, p.msg_id, "received")
        info = media.describe(db, stored, row["file_name"])
        return {key: info[key] for key in ("file_name", "file_size", "url", "path")}

    return {**_OK, **await sandbox.store.run(write)}


async def refuse_online_file(sandbox: Sandbox, p: OnlineFileElement) -> None:
    def write(db: sqlite3.Connection) -> None:
        _pending(db, p.user_id, p.msg_id, p.user_id, p.element_id)
        _settle(db, p.msg_id, "refused")

    await sandbox.store.run(write)


async def cancel_online_file(sandbox: Sandbox, p: CancelOnlineFile) -> None:
    def write(db: sqlite3.Connection) -> None:
        _pending(db, p.user_id, p.msg_id, sandbox.self_id, None)
        _settle(db, p.msg_id, "cancelled")

    await sandbox.store.run(write)


# --- the simulated friend's side ----------------------------------------------------------------


async def sandbox_send_online_file(sandbox: Sandbox, p: SandboxSendOnlineFile) -> dict[str, Any]:
    """The friend's offer reaches the bot as a private message; `{message_id, msg_id,
    element_id}`."""
    source = await media.prepare(sandbox, p.file)

    def write(db: sqlite3.Connection) -> dict[str, Any]:
        friend = _friend(db, p.user_id)
        info = media.ingest(db, "file", source, p.name)
        entry = {
            "file_name": p.name,
            "file_size": info["file_size"],
            "is_dir": False,
            "media_id": info["file_id"],
        }
        sender = {"user_id": p.user_id, "nickname": friend["nickname"], "card": ""}
        return _offer(db, p.user_id, sender, entry)

    message = await sandbox.store.run(write)
    sandbox.publish(message_event(message, sandbox.self_id))
    data = message["segments"][0]["data"]
    return {
        "message_id": message["message_id"],
        "msg_id": data["msgId"],
        "element_id": data["elementId"],
    }


async def sandbox_answer_online_file(sandbox: Sandbox, p: SandboxAnswerOnlineFile) -> None:
    """`receive`/`refuse` answer the bot's offer (notice `online_file_send`); `cancel` withdraws
    the friend's own (notice `online_file_receive`, sub_type `cancel`)."""
    offered_by = p.user_id if p.answer == "cancel" else sandbox.self_id
    state = {"receive": "received", "refuse": "refused", "cancel": "cancelled"}[p.answer]

    def write(db: sqlite3.Connection) -> None:
        _pending(db, p.user_id, p.msg_id, offered_by, None)
        _settle(db, p.msg_id, state)

    await sandbox.store.run(write)
    if p.answer == "cancel":
        sandbox.notice("online_file_receive", sub_type="cancel", peer_id=p.user_id)
    else:
        sandbox.notice("online_file_send", sub_type=p.answer, peer_id=p.user_id)


HANDLERS: HandlerTable = {
    "send_online_file": send_online_file,
    "send_online_folder": send_online_folder,
    "get_online_file_msg": get_online_file_msg,
    "receive_online_file": receive_online_file,
    "refuse_online_file": refuse_online_file,
    "cancel_online_file": cancel_online_file,
    "sandbox_send_online_file": sandbox_send_online_file,
    "sandbox_answer_online_file": sandbox_answer_online_file,
}
