"""Sandbox actions: the account's custom faces (QQ's 收藏表情, stickers).

A face's image is stored as media (see media.py); `custom_faces` keeps its `emoId` (a number),
`resId` (a random id, as QQ's resource ids), the content's MD5 and a description. Faces are
listed newest first; their `url` is a file:// URL of the cached copy, so a bot can send one back
as an image segment.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from gateway.actions.extended_message import (
    AddCustomFace,
    DeleteCustomFace,
    FaceCount,
    SetCustomFaceDesc,
)
from gateway.backends.sandbox import media
from gateway.protocol.envelope import ActionFailed, BadRequest

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import HandlerTable, Sandbox

_OK = {"result": 0, "errMsg": ""}


def _faces(db: sqlite3.Connection, count: int) -> list[dict[str, Any]]:
    rows = db.execute("SELECT * FROM custom_faces ORDER BY emo_id DESC LIMIT ?", (count,))
    faces = []
    for row in rows.fetchall():
        stored = media.media_row(db, row["media_id"])
        info = media.describe(db, stored, row["file_name"]) if stored is not None else None
        faces.append(
            {
                "emoId": row["emo_id"],
                "resId": row["res_id"],
                "md5": row["md5"].lower(),
                "url": info["url"] if info else "",
                "emoPath": info["path"] if info else "",
                "file": row["media_id"],
                "fileName": row["file_name"],
                "desc": row["description"],
                "isMarkFace": bool(row["is_mark_face"]),
                "isOrigin": bool(row["is_origin"]),
                "eId": row["emoji_id"],
                "epId": row["package_id"],
                "isExist": info is not None,
                "addTime": row["time"],
            }
        )
    return faces


async def fetch_custom_face(sandbox: Sandbox, p: FaceCount) -> list[str]:
    faces = await sandbox.store.run(lambda db: _faces(db, p.count))
    return [face["url"] for face in faces]


async def fetch_custom_face_detail(sandbox: Sandbox, p: FaceCount) -> list[dict[str, Any]]:
    return await sandbox.store.run(lambda db: _faces(db, p.count))


async def add_custom_face(sandbox: Sandbox, p: AddCustomFace) -> dict[str, Any]:
    source = await media.prepare(sandbox, p.file)

    def write(db: sqlite3.Connection) -> dict[str, Any]:
        info = media.ingest(db, "image", source, p.file_name)
        md5 = info["file"].split(".", 1)[0]
        if p.md5 is not None and p.md5.upper() != md5:
            raise BadRequest(f"md5: {p.md5!r} does not match the file's content ({md5.lower()})")
        if p.file_size is not None and p.file_size != info["file_size"]:
            raise BadRequest(
                f"file_size: {p.file_size} does not match the file ({info['file_size']} bytes)"
            )
        existing = db.execute("SELECT res_id FROM custom_faces WHERE md5 = ?", (md5,)).fetchone()
        if existing is not None:
            raise ActionFailed(f"this image is already a custom face (resId {existing['res_id']})")
        res_id = secrets.token_hex(16)
        cursor = db.execute(
            "INSERT INTO custom_faces (res_id, md5, media_id, file_name, emoji_id, package_id, "
            "is_mark_face, is_origin, time) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                res_id,
                md5,
                info["file"],
                info["file_name"],
                p.emoji_id,
                p.package_id,
                int(p.is_mark_face),
                int(p.is_origin),
                int(time.time()),
            ),
        )
        return {
            **_OK,
            "emoId": cursor.lastrowid,
            "resId": res_id,
            "md5": md5.lower(),
            "url": info["url"],
        }

    return await sandbox.store.run(write)


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


async def delete_custom_face(sandbox: Sandbox, p: DeleteCustomFace) -> dict[str, Any]:
    res_ids = {*_as_list(p.res_id), *_as_list(p.id), *_as_list(p.ids)}
    md5s = {m.upper() for m in _as_list(p.md5)}

    def write(db: sqlite3.Connection) -> list[str]:
        found = [
            row["res_id"]
            for row in db.execute("SELECT res_id, md5 FROM custom_faces").fetchall()
            if row["res_id"] in res_ids or row["md5"] in md5s
        ]
        if not found:
            wanted = ", ".join(sorted(res_ids | md5s))
            raise ActionFailed(f"no custom face matches {wanted}")
        db.executemany("DELETE FROM custom_faces WHERE res_id = ?", [(r,) for r in found])
        return found

    return {**_OK, "deleted": await sandbox.store.run(write)}


async def set_custom_face_desc(sandbox: Sandbox, p: SetCustomFaceDesc) -> dict[str, Any]:
    def write(db: sqlite3.Connection) -> None:
        row = db.execute("SELECT * FROM custom_faces WHERE emo_id = ?", (p.emoji_id,)).fetchone()
        if row is None:
            raise ActionFailed(f"no custom face with emoId {p.emoji_id}")
        if row["res_id"] != p.res_id or row["md5"] != p.md5.upper():
            raise ActionFailed(
                f"custom face {p.emoji_id} has resId {row['res_id']} and md5 "
                f"{row['md5'].lower()}, not the ones given"
            )
        db.execute("UPDATE custom_faces SET description = ? WHERE emo_id = ?", (p.desc, p.emoji_id))

    await sandbox.store.run(write)
    return dict(_OK)


HANDLERS: HandlerTable = {
    "fetch_custom_face": fetch_custom_face,
    "fetch_custom_face_detail": fetch_custom_face_detail,
    "add_custom_face": add_custom_face,
    "delete_custom_face": delete_custom_face,
    "set_custom_face_desc": set_custom_face_desc,
}
