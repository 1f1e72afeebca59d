"""Sandbox actions: group files and folders, private files.

An upload stores the content as media (see media.py), adds a `group_files` row and, as NapCat does
(it sends a message with a file element), a file message in the chat's history; the group's
members then see a `group_upload` notice. Folders are one level deep under the root `/`, as in QQ.
Creating and deleting folders needs admin or owner; deleting, moving or renaming a file needs
that or being its uploader. A simulated member's upload may be temporary (`busid` 104, gone after
14 days in QQ); `trans_group_file` makes it permanent (102), with the same rights as moving it.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from typing import TYPE_CHECKING, Any

from gateway.actions.file import (
    CreateGroupFileFolder,
    DeleteGroupFolder,
    GetGroupFilesByFolder,
    GetGroupRootFiles,
    GetPrivateFileUrl,
    GroupFileRef,
    GroupId,
    MoveGroupFile,
    RenameGroupFile,
    SandboxUploadGroupFile,
    UploadGroupFile,
    UploadPrivateFile,
)
from gateway.backends.sandbox import media, nt
from gateway.backends.sandbox.membership import find_member as member_row
from gateway.backends.sandbox.message_store import message_event, require_group, store_message
from gateway.backends.sandbox.notices import require_manager
from gateway.protocol.envelope import ActionFailed

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import HandlerTable, Sandbox

ROOT = "/"
LIMIT_COUNT = 10_000
TOTAL_SPACE = 10 * 1024**3
_OK = {"retCode": 0, "retMsg": "ok", "clientWording": ""}
PERMANENT, TEMPORARY = 102, 104
"""`busid` of a permanent group file and of a temporary one (`trans_group_file` makes it last)."""
TEMPORARY_LIFETIME = 14 * 24 * 3600
"""Seconds a temporary group file lasts: its `dead_time` is its upload time plus this."""


# --- uploads ------------------------------------------------------------------------------------


async def upload(
    sandbox: Sandbox,
    group_id: int,
    user_id: int,
    p: UploadGroupFile | SandboxUploadGroupFile,
) -> dict[str, Any]:
    """Store a group file uploaded by `user_id`, post its file message, publish both events."""
    source = await media.prepare(sandbox, p.file)

    def write(db: sqlite3.Connection) -> tuple[dict[str, Any], dict[str, Any], str]:
        group = require_group(db, group_id, sandbox.self_id)
        member = _speaking_member(db, group, user_id)
        folder = _folder_id(db, group_id, p.folder)
        info = media.ingest(db, "file", source, p.name)
        temporary = isinstance(p, SandboxUploadGroupFile) and p.temporary
        busid = TEMPORARY if temporary else PERMANENT
        file_id = _insert_file(db, group_id, folder, p.name, info, user_id, busid)
        sender = {key: member[key] for key in ("user_id", "nickname", "card", "role")}
        segments = [_file_segment(p.name, file_id, info)]
        message = store_message(db, "group", group_id, user_id, segments, sender)
        notice = {"id": file_id, "name": p.name, "size": info["file_size"], "busid": busid}
        return message, notice, group["group_name"]

    message, file, group_name = await sandbox.store.run(write)
    sandbox.publish(message_event(message, sandbox.self_id, group_name))
    sandbox.notice("group_upload", group_id=group_id, user_id=user_id, file=file)
    return {"file_id": file["id"]}


def _insert_file(
    db: sqlite3.Connection,
    group_id: int,
    folder: str,
    name: str,
    info: dict[str, Any],
    uploader: int,
    busid: int = PERMANENT,
) -> str:
    """Add a group file row for stored media `info`; returns the new file id."""
    file_id = ROOT + str(uuid.uuid4())
    db.execute(
        "INSERT INTO group_files (file_id, group_id, folder_id, file_name, size, uploader, "
        "upload_time, media_id, busid) VALUES (?,?,?,?,?,?,?,?,?)",
        (
            file_id,
            group_id,
            folder,
            name,
            info["file_size"],
            uploader,
            int(time.time()),
            info["file_id"],
            busid,
        ),
    )
    return file_id


def _speaking_member(db: sqlite3.Connection, group: sqlite3.Row, user_id: int) -> sqlite3.Row:
    """The uploader's member row; 1200 when not a member or muted (uploading posts a message)."""
    member = member_row(db, group["group_id"], user_id)
    if member is None:
        raise ActionFailed(f"user {user_id} is not a member of group {group['group_id']}")
    if member["mute_until"] > time.time():
        raise ActionFailed(f"user {user_id} is muted in group {group['group_id']}")
    if group["whole_ban"] and member["role"] == "member":
        raise ActionFailed(f"group {group['group_id']} is muted for members (whole ban)")
    return member


def _file_segment(name: str, file_id: str, info: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "file",
        "data": {
            "file": name,
            "file_id": file_id,
            "file_size": str(info["file_size"]),
            "url": info["url"],
        },
    }


async def upload_group_file(sandbox: Sandbox, p: UploadGroupFile) -> dict[str, Any]:
    return await upload(sandbox, p.group_id, sandbox.self_id, p)


async def sandbox_upload_group_file(sandbox: Sandbox, p: SandboxUploadGroupFile) -> dict[str, Any]:
    if p.user_id == sandbox.self_id:
        raise ActionFailed("sandbox_upload_group_file simulates a member; use upload_group_file")
    return await upload(sandbox, p.group_id, p.user_id, p)


async def upload_private_file(sandbox: Sandbox, p: UploadPrivateFile) -> dict[str, Any]:
    """The file message goes into the friend's history; its `file_id` is the media id."""
    self_id = sandbox.self_id
    source = await media.prepare(sandbox, p.file)

    def write(db: sqlite3.Connection) -> dict[str, Any]:
        user = db.execute("SELECT is_friend FROM users WHERE user_id = ?", (p.user_id,)).fetchone()
        if user is None or not user["is_friend"]:
            raise ActionFailed(f"user {p.user_id} is not a friend of the bot")
        info = media.ingest(db, "file", source, p.name)
        segment = _file_segment(p.name, info["file_id"], info)
        sender = {"user_id": self_id, "nickname": sandbox.nickname, "card": ""}
        return store_message(db, "private", p.user_id, self_id, [segment], sender)

    message = await sandbox.store.run(write)
    sandbox.publish(message_event(message, self_id))
    return {"file_id": message["segments"][0]["data"]["file_id"]}


async def get_private_file_url(sandbox: Sandbox, p: GetPrivateFileUrl) -> dict[str, str]:
    def read(db: sqlite3.Connection) -> str:
        row = media.media_row(db, p.file_id)
        if row is None:
            raise ActionFailed(f"no private file with id {p.file_id!r}")
        return str(media.describe(db, row)["url"])

    return {"url": await sandbox.store.run(read)}


# --- folders ------------------------------------------------------------------------------------


def _folder_id(db: sqlite3.Connection, group_id: int, folder: str | None) -> str:
    """A folder id of the group (`/` for the root or when absent); 1200 when it does not exist."""
    if not folder or folder == ROOT:
        return ROOT
    row = db.execute(
        "SELECT 1 FROM group_folders WHERE group_id = ? AND folder_id = ?", (group_id, folder)
    ).fetchone()
    if row is None:
        raise ActionFailed(f"group {group_id} has no folder {folder!r}")
    return folder


async def create_group_file_folder(sandbox: Sandbox, p: CreateGroupFileFolder) -> dict[str, Any]:
    def write(db: sqlite3.Connection) -> dict[str, Any]:
        require_manager(db, p.group_id, sandbox.self_id, "creating a folder")
        taken = db.execute(
            "SELECT 1 FROM group_folders WHERE group_id = ? AND folder_name = ?",
            (p.group_id, p.folder_name),
        ).fetchone()
        if taken:
            raise ActionFailed(f"group {p.group_id} already has a folder named {p.folder_name!r}")
        folder_id = ROOT + str(uuid.uuid4())
        db.execute(
            "INSERT INTO group_folders (folder_id, group_id, folder_name, creator, create_time) "
            "VALUES (?,?,?,?,?)",
            (folder_id, p.group_id, p.folder_name, sandbox.self_id, int(time.time())),
        )
        return _folder_item(db, p.group_id, folder_id)

    return {"result": dict(_OK), "groupItem": await sandbox.store.run(write)}


def _folder_item(db: sqlite3.Connection, group_id: int, folder_id: str) -> dict[str, Any]:
    """NT's `groupItem` for a new folder, as NapCat passes it through."""
    folder = _folders(db, group_id, folder_id)[0]
    return {
        "peerId": str(group_id),
        "type": 2,
        "folderInfo": {
            "folderId": folder_id,
            "parentFolderId": ROOT,
            "folderName": folder["folder_name"],
            "createTime": folder["create_time"],
            "modifyTime": folder["create_time"],
            "createUin": str(folder["creator"]),
            "creatorName": folder["creator_name"],
            "totalFileCount": folder["total_file_count"],
        },
    }


async def delete_group_folder(sandbox: Sandbox, p: DeleteGroupFolder) -> dict[str, Any]:
    """Answers the kernel's `groupFileCommonResult`, which NapCat returns."""

    def write(db: sqlite3.Connection) -> None:
        require_manager(db, p.group_id, sandbox.self_id, "deleting a folder")
        folder = _folder_id(db, p.group_id, p.folder_id)
        if folder == ROOT:
            raise ActionFailed("the root folder cannot be deleted")
        db.execute(
            "DELETE FROM group_files WHERE group_id = ? AND folder_id = ?", (p.group_id, folder)
        )
        db.execute("DELETE FROM group_folders WHERE folder_id = ?", (folder,))

    await sandbox.store.run(write)
    return dict(_OK)


# --- listing ------------------------------------------------------------------------------------


def _files(
    db: sqlite3.Connection, group_id: int, folder_id: str, limit: int
) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT f.*, COALESCE(u.nickname, '') AS uploader_name FROM group_files f "
        "LEFT JOIN users u ON u.user_id = f.uploader WHERE f.group_id = ? AND f.folder_id = ? "
        "ORDER BY f.upload_time DESC, f.rowid DESC LIMIT ?",
        (group_id, folder_id, limit),
    ).fetchall()
    return [
        {
            "group_id": group_id,
            "file_id": r["file_id"],
            "file_name": r["file_name"],
            "busid": r["busid"],
            "size": r["size"],
            "file_size": r["size"],
            "upload_time": r["upload_time"],
            "dead_time": r["upload_time"] + TEMPORARY_LIFETIME if r["busid"] == TEMPORARY else 0,
            "modify_time": r["upload_time"],
            "download_times": 0,
            "uploader": r["uploader"],
            "uploader_name": r["uploader_name"],
        }
        for r in rows
    ]


def _folders(
    db: sqlite3.Connection, group_id: int, folder_id: str | None = None
) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT d.*, COALESCE(u.nickname, '') AS creator_name, "
        "(SELECT COUNT(*) FROM group_files f WHERE f.folder_id = d.folder_id) AS files "
        "FROM group_folders d LEFT JOIN users u ON u.user_id = d.creator "
        "WHERE d.group_id = ? AND (? IS NULL OR d.folder_id = ?) ORDER BY d.create_time, d.rowid",
        (group_id, folder_id, folder_id),
    ).fetchall()
    return [
        {
            "group_id": group_id,
            "folder_id": r["folder_id"],
            "folder": r["folder_id"],
            "folder_name": r["folder_name"],
            "create_time": r["create_time"],
            "creator": r["creator"],
            "creator_name": r["creator_name"],
            "total_file_count": r["files"],
        }
        for r in rows
    ]


def _listing(db: sqlite3.Connection, group_id: int, folder: str, count: int) -> dict[str, Any]:
    """`{files, folders}` of a folder, at most `count` entries, folders (root only) first."""
    folders = _folders(db, group_id)[:count] if folder == ROOT else []
    return {"files": _files(db, group_id, folder, count - len(folders)), "folders": folders}


async def get_group_root_files(sandbox: Sandbox, p: GetGroupRootFiles) -> dict[str, Any]:
    def read(db: sqlite3.Connection) -> dict[str, Any]:
        require_group(db, p.group_id, sandbox.self_id)
        return _listing(db, p.group_id, ROOT, p.file_count)

    return await sandbox.store.read(read)


async def get_group_files_by_folder(sandbox: Sandbox, p: GetGroupFilesByFolder) -> dict[str, Any]:
    """Folders are one level deep, so `folders` is empty below the root."""

    def read(db: sqlite3.Connection) -> dict[str, Any]:
        require_group(db, p.group_id, sandbox.self_id)
        return _listing(db, p.group_id, _folder_id(db, p.group_id, p.folder_id), p.file_count)

    return await sandbox.store.read(read)


async def get_group_file_system_info(sandbox: Sandbox, p: GroupId) -> dict[str, Any]:
    def read(db: sqlite3.Connection) -> dict[str, Any]:
        require_group(db, p.group_id, sandbox.self_id)
        count, used = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM group_files WHERE group_id = ?",
            (p.group_id,),
        ).fetchone()
        return {
            "file_count": count,
            "limit_count": LIMIT_COUNT,
            "used_space": used,
            "total_space": TOTAL_SPACE,
        }

    return await sandbox.store.read(read)


# --- single files -------------------------------------------------------------------------------


def _group_file(db: sqlite3.Connection, group_id: int, file_id: str, self_id: int) -> sqlite3.Row:
    """The file row in a group the bot is in; 1200 when there is none."""
    require_group(db, group_id, self_id)
    row: sqlite3.Row | None = db.execute(
        "SELECT * FROM group_files WHERE group_id = ? AND file_id = ?", (group_id, file_id)
    ).fetchone()
    if row is None:
        raise ActionFailed(f"group {group_id} has no file {file_id!r}")
    return row


def _editable_file(
    db: sqlite3.Connection, group_id: int, file_id: str, self_id: int, what: str
) -> sqlite3.Row:
    """The file row, when the bot uploaded it or is admin/owner."""
    row = _group_file(db, group_id, file_id, self_id)
    if row["uploader"] != self_id:
        require_manager(db, group_id, self_id, f"{what} another member's file")
    return row


async def get_group_file_url(sandbox: Sandbox, p: GroupFileRef) -> dict[str, str]:
    def read(db: sqlite3.Connection) -> str:
        row = _group_file(db, p.group_id, p.file_id, sandbox.self_id)
        stored = media.media_row(db, row["media_id"])
        if stored is None:
            raise ActionFailed(f"the content of group file {p.file_id!r} is missing")
        return str(media.describe(db, stored)["url"])

    return {"url": await sandbox.store.run(read)}


async def delete_group_file(sandbox: Sandbox, p: GroupFileRef) -> dict[str, Any]:
    """Answers the kernel's result of the deletion, which NapCat passes through: the general
    result and `transGroupFileResult` listing the file as deleted."""

    def write(db: sqlite3.Connection) -> None:
        _editable_file(db, p.group_id, p.file_id, sandbox.self_id, "deleting")
        db.execute("DELETE FROM group_files WHERE file_id = ?", (p.file_id,))

    await sandbox.store.run(write)
    deleted = {"result": dict(_OK), "successFileIdList": [p.file_id], "failFileIdList": []}
    return {**nt.general_ok(), "transGroupFileResult": deleted}


async def move_group_file(sandbox: Sandbox, p: MoveGroupFile) -> dict[str, bool]:
    def write(db: sqlite3.Connection) -> None:
        row = _editable_file(db, p.group_id, p.file_id, sandbox.self_id, "moving")
        _check_parent(row, p.current_parent_directory)
        target = _folder_id(db, p.group_id, p.target_parent_directory)
        db.execute("UPDATE group_files SET folder_id = ? WHERE file_id = ?", (target, p.file_id))

    await sandbox.store.run(write)
    return {"ok": True}


async def rename_group_file(sandbox: Sandbox, p: RenameGroupFile) -> dict[str, bool]:
    def write(db: sqlite3.Connection) -> None:
        row = _editable_file(db, p.group_id, p.file_id, sandbox.self_id, "renaming")
        _check_parent(row, p.current_parent_directory)
        db.execute(
            "UPDATE group_files SET file_name = ? WHERE file_id = ?", (p.new_name, p.file_id)
        )

    await sandbox.store.run(write)
    return {"ok": True}


async def trans_group_file(sandbox: Sandbox, p: GroupFileRef) -> dict[str, bool]:
    """A temporary file (`busid` 104, from `sandbox_upload_group_file` with `temporary`) becomes
    permanent (102, no `dead_time`); as moving, it needs the uploader or an admin. QQ tells the
    group nothing, so no event."""

    def write(db: sqlite3.Connection) -> None:
        row = _editable_file(db, p.group_id, p.file_id, sandbox.self_id, "keeping")
        if row["busid"] != TEMPORARY:
            raise ActionFailed(f"group file {p.file_id!r} is already permanent")
        db.execute("UPDATE group_files SET busid = ? WHERE file_id = ?", (PERMANENT, p.file_id))

    await sandbox.store.run(write)
    return {"ok": True}


def _check_parent(row: sqlite3.Row, parent: str) -> None:
    if row["folder_id"] != (parent or ROOT):
        raise ActionFailed(
            f"file {row['file_id']!r} is in folder {row['folder_id']!r}, not {parent!r}"
        )


HANDLERS: HandlerTable = {
    "upload_group_file": upload_group_file,
    "sandbox_upload_group_file": sandbox_upload_group_file,
    "upload_private_file": upload_private_file,
    "get_private_file_url": get_private_file_url,
    "create_group_file_folder": create_group_file_folder,
    "delete_group_folder": delete_group_folder,
    "get_group_root_files": get_group_root_files,
    "get_group_files_by_folder": get_group_files_by_folder,
    "get_group_file_system_info": get_group_file_system_info,
    "get_group_file_url": get_group_file_url,
    "delete_group_file": delete_group_file,
    "move_group_file": move_group_file,
    "rename_group_file": rename_group_file,
    "trans_group_file": trans_group_file,
}
