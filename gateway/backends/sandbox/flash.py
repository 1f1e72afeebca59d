"""Sandbox actions: flash transfer (QQ 闪传) file sets.

`create_flash_task` stores the given files as media and makes a file set with a share code; the
share link (`sandbox://flash-transfer/share?code=…`, it leads nowhere outside the sandbox) and
its code lead back to the set (`get_fileset_id`). `send_flash_msg` posts the bot's message with
NapCat's `flashtransfer` segment (`{fileSetId}`) in a private chat or a group, as QQ shows it.
`download_fileset` writes the files into the media cache, after which the set and its files
report them downloaded. Answers are NT's raw objects as NapCat passes them on (`result`,
`errMsg` and the fields napcat-core/data/flash.ts names), trimmed to what the sandbox knows.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from gateway.actions.flash import (
    CreateFlashTask,
    FilesetRef,
    GetFilesetId,
    GetFlashFileUrl,
    SandboxSendFlashMsg,
    SendFlashMsg,
)
from gateway.backends.sandbox import media
from gateway.backends.sandbox.friends import uid_of
from gateway.backends.sandbox.sending import send_to_friend, send_to_group
from gateway.protocol.envelope import ActionFailed, BadRequest

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import HandlerTable, Sandbox

LIFETIME = 7 * 24 * 3600
"""Seconds a file set stays available after its creation."""
SHARE_LINK = "sandbox://flash-transfer/share?code="
C2C, GROUP, TEMP_C2C = 1, 2, 100
"""NT chat types of a send target: a friend, a group, a temporary session from a group."""
UPLOADED, NOT_DOWNLOADED, DOWNLOADED = 3, 0, 2
"""NT's upload and download status values of a file (napcat-core/data/flash.ts)."""
_OK = {"result": 0, "errMsg": ""}


def _fileset(db: sqlite3.Connection, fileset_id: str) -> sqlite3.Row:
    row: sqlite3.Row | None = db.execute(
        "SELECT * FROM flash_filesets WHERE fileset_id = ?", (fileset_id,)
    ).fetchone()
    if row is None:
        raise ActionFailed(f"no flash transfer file set {fileset_id!r}")
    return row


def _files(db: sqlite3.Connection, fileset_id: str) -> list[sqlite3.Row]:
    return db.execute(
        "SELECT * FROM flash_files WHERE fileset_id = ? ORDER BY file_index", (fileset_id,)
    ).fetchall()


def _name(uri: str) -> str:
    """The file name a path or file:// URL gives; "" for other URIs (media.py names those)."""
    if uri.startswith("file://"):
        return Path(unquote(urlsplit(uri).path)).name
    return Path(uri).name if Path(uri).is_absolute() else ""


def _download_dir(db: sqlite3.Connection, fileset_id: str) -> Path:
    return media.cache_dir(db) / "flash" / fileset_id


# --- creating and sharing -----------------------------------------------------------------------


def _create(
    db: sqlite3.Connection,
    uploader: int,
    files: list[tuple[media.Source, str]],
    name: str,
    thumb_path: str,
) -> dict[str, Any]:
    """Store a file set uploaded by `uploader` (sources and their names); NT's
    `createFlashTransferResult`."""
    fileset_id, code, now = str(uuid.uuid4()), secrets.token_urlsafe(9), int(time.time())
    infos = [media.ingest(db, "file", source, n) for source, n in files]
    stored = [info["file_name"] for info in infos]
    twice = sorted({n for n in stored if stored.count(n) > 1})
    if twice:  # a file is found by its name (get_flash_file_url, the download folder)
        raise BadRequest(f"files: two files are named {twice[0]!r}")
    db.execute(
        "INSERT INTO flash_filesets (fileset_id, name, share_code, uploader, thumb_path, "
        "create_time, expire_time) VALUES (?,?,?,?,?,?,?)",
        (fileset_id, name or stored[0], code, uploader, thumb_path, now, now + LIFETIME),
    )
    db.executemany(
        "INSERT INTO flash_files (fileset_id, file_index, file_name, size, media_id) "
        "VALUES (?,?,?,?,?)",
        [
            (fileset_id, i, info["file_name"], info["file_size"], info["file_id"])
            for i, info in enumerate(infos)
        ],
    )
    return {
        "fileSetId": fileset_id,
        "shareLink": SHARE_LINK + code,
        "expireTime": str(now + LIFETIME),
        "expireLeftTime": str(LIFETIME),
    }


async def _prepare(sandbox: Sandbox, uris: list[str]) -> list[tuple[media.Source, str]]:
    return [(await media.prepare(sandbox, uri), _name(uri)) for uri in uris]


async def create_flash_task(sandbox: Sandbox, p: CreateFlashTask) -> dict[str, Any]:
    """NT's `{result, errMsg, seq, createFlashTransferResult: {fileSetId, shareLink,
    expireTime, expireLeftTime}}`. Paths may be any file URI the sandbox reads (media.py)."""
    files = await _prepare(sandbox, p.files)
    created = await sandbox.store.run(
        lambda db: _create(db, sandbox.self_id, files, p.name, p.thumb_path or "")
    )
    return {**_OK, "seq": 0, "createFlashTransferResult": created}


async def sandbox_send_flash_msg(sandbox: Sandbox, p: SandboxSendFlashMsg) -> dict[str, Any]:
    """The user uploads a file set and sends it as a `flashtransfer` message, received like
    `sandbox_receive_message`'s; `{message_id, fileset_id}`. When the message cannot be sent
    (a muted member, an unknown group) the file set is removed again: nobody has seen it."""
    files = await _prepare(sandbox, p.files)
    created = await sandbox.store.run(lambda db: _create(db, p.user_id, files, p.name, ""))
    fileset_id = created["fileSetId"]
    message = {
        "message_type": "private" if p.group_id is None else "group",
        "user_id": p.user_id,
        "group_id": p.group_id,
        "message": [{"type": "flashtransfer", "data": {"fileSetId": fileset_id}}],
    }
    try:
        sent = await sandbox.invoke("sandbox_receive_message", message)
    except BaseException:
        await sandbox.store.run(lambda db: _remove(db, fileset_id))
        raise
    return {"message_id": sent["message_id"], "fileset_id": fileset_id}


def _remove(db: sqlite3.Connection, fileset_id: str) -> None:
    db.execute("DELETE FROM flash_files WHERE fileset_id = ?", (fileset_id,))
    db.execute("DELETE FROM flash_filesets WHERE fileset_id = ?", (fileset_id,))


async def get_share_link(sandbox: Sandbox, p: FilesetRef) -> dict[str, Any]:
    def read(db: sqlite3.Connection) -> dict[str, Any]:
        row = _fileset(db, p.fileset_id)
        return {
            "shareLink": SHARE_LINK + row["share_code"],
            "expireTimestamp": str(row["expire_time"]),
        }

    return {**_OK, **await sandbox.store.read(read)}


async def get_fileset_id(sandbox: Sandbox, p: GetFilesetId) -> dict[str, str]:
    """The code is what follows the first `=` of a link, or the whole text, as NapCat reads it."""
    code = p.share_code.split("=", 1)[1] if "=" in p.share_code else p.share_code

    def read(db: sqlite3.Connection) -> str:
        row = db.execute(
            "SELECT fileset_id FROM flash_filesets WHERE share_code = ?", (code,)
        ).fetchone()
        if row is None:
            raise ActionFailed(f"no flash transfer file set has the share code {code!r}")
        return str(row["fileset_id"])

    return {"fileset_id": await sandbox.store.read(read)}


async def send_flash_msg(sandbox: Sandbox, p: SendFlashMsg) -> dict[str, Any]:
    """NT's `{errCode, errMsg, rsp: {sendStatus: [{result, msg, target}]}}` and, beyond it, the
    `message_id` of the message posted. A non-friend is reached through a shared group."""

    def check(db: sqlite3.Connection) -> tuple[bool, int | None]:
        """(whether user_id is a friend, a group shared with user_id)."""
        _fileset(db, p.fileset_id)
        if p.group_id is not None or p.user_id is None:
            return False, None
        user = db.execute("SELECT is_friend FROM users WHERE user_id = ?", (p.user_id,)).fetchone()
        row = db.execute(
            "SELECT a.group_id FROM members a JOIN members b USING (group_id) "
            "WHERE a.user_id = ? AND b.user_id = ? ORDER BY a.group_id LIMIT 1",
            (p.user_id, sandbox.self_id),
        ).fetchone()
        return bool(user and user["is_friend"]), int(row["group_id"]) if row else None

    friend, shared_group = await sandbox.store.read(check)
    segments = [{"type": "flashtransfer", "data": {"fileSetId": p.fileset_id}}]
    if p.group_id is not None:
        event = await send_to_group(sandbox, p.group_id, segments)
        target = {"destType": GROUP, "destUid": str(p.group_id)}
    else:
        assert p.user_id is not None
        event = await send_to_friend(sandbox, p.user_id, segments, None if friend else shared_group)
        target = {"destType": C2C if friend else TEMP_C2C, "destUid": uid_of(p.user_id)}
    status = {"result": 0, "msg": "", "target": target}
    return {
        "errCode": 0,
        "errMsg": "",
        "rsp": {"sendStatus": [status]},
        "message_id": event["message_id"],
    }


# --- reading ------------------------------------------------------------------------------------


def _file_item(row: sqlite3.Row, downloaded: bool, folder: Path) -> dict[str, Any]:
    return {
        "fileSetId": row["fileset_id"],
        "cliFileId": f"{row['fileset_id']}/{row['file_index']}",
        "srvFileId": row["media_id"],
        "parentId": "",
        "depth": 1,
        "cliFileIndex": row["file_index"],
        "isDir": False,
        "name": row["file_name"],
        "fileSize": str(row["size"]),
        "fileCount": 0,
        "uploadStatus": UPLOADED,
        "downloadStatus": DOWNLOADED if downloaded else NOT_DOWNLOADED,
        "saveFilePath": str(folder / row["file_name"]) if downloaded else "",
    }


async def get_flash_file_list(sandbox: Sandbox, p: FilesetRef) -> dict[str, Any]:
    """NT's `{seq, result, errMs, fileLists: [{parentId, depth, fileList, isEnd, …}]}` (`errMs`
    is NT's spelling); the sandbox's sets are one level deep."""

    def read(db: sqlite3.Connection) -> list[dict[str, Any]]:
        downloaded = bool(_fileset(db, p.fileset_id)["downloaded"])
        folder = _download_dir(db, p.fileset_id)
        return [_file_item(row, downloaded, folder) for row in _files(db, p.fileset_id)]

    files = await sandbox.store.run(read)  # the writer: cache_dir may record a new directory
    level = {
        "parentId": "",
        "depth": 1,
        "fileList": files,
        "paginationInfo": {},
        "isEnd": True,
        "isCache": False,
    }
    return {"seq": 0, "result": 0, "errMs": "", "fileLists": [level]}


async def get_fileset_info(sandbox: Sandbox, p: FilesetRef) -> dict[str, Any]:
    """NT's `{result, errMsg, seq, isCache, fileSet}`; `fileSet` holds the FlashFileSetInfo
    fields the sandbox knows (name, counts, sizes, share link, uploader, times, statuses)."""
    self_id = sandbox.self_id

    def read(db: sqlite3.Connection) -> dict[str, Any]:
        row = _fileset(db, p.fileset_id)
        files = _files(db, p.fileset_id)
        total = sum(f["size"] for f in files)
        uploader = db.execute(
            "SELECT nickname FROM users WHERE user_id = ?", (row["uploader"],)
        ).fetchone()
        nickname = sandbox.nickname if row["uploader"] == self_id else (uploader or [""])[0]
        downloaded = bool(row["downloaded"])
        return {
            "fileSetId": row["fileset_id"],
            "taskId": row["fileset_id"],
            "name": row["name"],
            "totalFileCount": len(files),
            "totalFileSize": total,
            "firstLevelItemCount": len(files),
            "shareInfo": {"shareLink": SHARE_LINK + row["share_code"], "extractionCode": ""},
            "cover": {"id": "", "urls": [], "localCachePath": row["thumb_path"]},
            "uploaders": [
                {
                    "uin": str(row["uploader"]),
                    "nickname": nickname,
                    "uid": uid_of(row["uploader"]),
                    "sendEntrance": "",
                }
            ],
            "createTime": row["create_time"],
            "expireTime": row["expire_time"],
            "expireLeftTime": max(0, row["expire_time"] - int(time.time())),
            "uploadInfo": {
                "totalUploadedFileSize": total,
                "successCount": len(files),
                "failedCount": 0,
            },
            "downloadInfo": {
                "totalDownloadedFileSize": total if downloaded else 0,
                "totalFileSize": total,
                "totalDownloadFileCount": len(files) if downloaded else 0,
                "successCount": len(files) if downloaded else 0,
                "failedCount": 0,
            },
            "uploadStatus": UPLOADED,
            "downloadStatus": DOWNLOADED if downloaded else NOT_DOWNLOADED,
            "saveFileSetDir": str(_download_dir(db, p.fileset_id)) if downloaded else "",
        }

    fileset = await sandbox.store.run(read)  # the writer: cache_dir may record a new directory
    return {**_OK, "seq": 0, "isCache": False, "fileSet": fileset}


async def get_flash_file_url(sandbox: Sandbox, p: GetFlashFileUrl) -> dict[str, Any]:
    """`{result, errMsg, transferUrl}`: a file:// URL of a local copy. `file_name` is looked up
    first, then `file_index`, as NapCat does; a file that is in neither is a 1200."""

    def write(db: sqlite3.Connection) -> str:
        _fileset(db, p.fileset_id)
        files = _files(db, p.fileset_id)
        found = next((f for f in files if f["file_name"] == p.file_name), None)
        if found is None and p.file_index is not None and p.file_index < len(files):
            found = files[p.file_index]
        if found is None:
            wanted = f"named {p.file_name!r}" if p.file_name is not None else ""
            at = f"at index {p.file_index}" if p.file_index is not None else ""
            raise ActionFailed(
                f"file set {p.fileset_id!r} has no file {' or '.join(filter(None, (wanted, at)))}"
            )
        stored = media.media_row(db, found["media_id"])
        if stored is None:
            raise ActionFailed(f"the content of {found['file_name']!r} is missing")
        return str(media.describe(db, stored)["url"])

    return {**_OK, "transferUrl": await sandbox.store.run(write)}


async def download_fileset(sandbox: Sandbox, p: FilesetRef) -> dict[str, Any]:
    """Writes every file into `<media cache>/flash/<fileset_id>/`; `{result, errMsg,
    extraInfo: {saveFileSetDir}}`."""

    def write(db: sqlite3.Connection) -> str:
        _fileset(db, p.fileset_id)
        folder = _download_dir(db, p.fileset_id)
        for row in _files(db, p.fileset_id):
            stored = media.media_row(db, row["media_id"])
            if stored is None:
                raise ActionFailed(f"the content of {row['file_name']!r} is missing")
            media.materialize(db, stored, folder / Path(row["file_name"]).name)
        db.execute("UPDATE flash_filesets SET downloaded = 1 WHERE fileset_id = ?", (p.fileset_id,))
        return str(folder)

    return {**_OK, "extraInfo": {"saveFileSetDir": await sandbox.store.run(write)}}


HANDLERS: HandlerTable = {
    "create_flash_task": create_flash_task,
    "send_flash_msg": send_flash_msg,
    "get_share_link": get_share_link,
    "get_fileset_id": get_fileset_id,
    "get_fileset_info": get_fileset_info,
    "get_flash_file_list": get_flash_file_list,
    "get_flash_file_url": get_flash_file_url,
    "download_fileset": download_fileset,
    "sandbox_send_flash_msg": sandbox_send_flash_msg,
}
