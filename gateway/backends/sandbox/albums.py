"""Sandbox actions: group albums.

An album belongs to one group and is created by the first upload to an album id the group does
not have (QQ creates albums in its client; NapCat has no action for it). Each upload is a batch
(`batch_id`) of one media item (`lloc`) whose image is stored as media (see media.py). Likes
and comments are per item, listed with it; liking a batch likes each of its items. The bot must
be a member of the group; deleting an item needs its uploader, an admin or the owner.
Lists page with `attach_info`, an offset this module issues.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from gateway.actions.albums import (
    AlbumMediaLike,
    DelGroupAlbumMedia,
    DoGroupAlbumComment,
    GetGroupAlbumMediaList,
    GetQunAlbumList,
    UploadImageToQunAlbum,
)
from gateway.backends.sandbox import media
from gateway.backends.sandbox.membership import ROLE_RANK, bot_in_group
from gateway.protocol.envelope import ActionFailed, BadRequest

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import HandlerTable, Sandbox

ALBUMS_PER_PAGE = 20
MEDIA_PER_PAGE = 50
_OK = {"result": 0, "errMsg": ""}


def _offset(attach_info: str) -> int:
    if not attach_info:
        return 0
    if not attach_info.isdigit():
        raise BadRequest(f"attach_info: {attach_info!r} is not one this sandbox issued")
    return int(attach_info)


def _page(items: list[Any], start: int, size: int) -> tuple[list[Any], str, bool]:
    more = len(items) > start + size
    return items[start : start + size], str(start + size) if more else "", more


def _album(db: sqlite3.Connection, group_id: int, album_id: str) -> sqlite3.Row:
    row: sqlite3.Row | None = db.execute(
        "SELECT * FROM albums WHERE group_id = ? AND album_id = ?", (group_id, album_id)
    ).fetchone()
    if row is None:
        raise ActionFailed(f"group {group_id} has no album {album_id!r}")
    return row


def _item(db: sqlite3.Connection, group_id: int, album_id: str, lloc: str) -> sqlite3.Row:
    _album(db, group_id, album_id)
    row: sqlite3.Row | None = db.execute(
        "SELECT * FROM album_media WHERE group_id = ? AND album_id = ? AND lloc = ?",
        (group_id, album_id, lloc),
    ).fetchone()
    if row is None:
        raise ActionFailed(f"album {album_id!r} of group {group_id} has no media {lloc!r}")
    return row


def _nick(db: sqlite3.Connection, user_id: int) -> str:
    row = db.execute("SELECT nickname FROM users WHERE user_id = ?", (user_id,)).fetchone()
    return str(row["nickname"]) if row else ""


async def get_qun_album_list(sandbox: Sandbox, p: GetQunAlbumList) -> dict[str, Any]:
    start = _offset(p.attach_info)

    def read(db: sqlite3.Connection) -> list[dict[str, Any]]:
        bot_in_group(db, p.group_id, sandbox.self_id)
        albums = []
        for row in db.execute(
            "SELECT * FROM albums WHERE group_id = ? ORDER BY create_time, album_id",
            (p.group_id,),
        ).fetchall():
            media_ids = [
                r["media_id"]
                for r in db.execute(
                    "SELECT media_id FROM album_media WHERE group_id = ? AND album_id = ? "
                    "ORDER BY upload_time DESC, rowid DESC",
                    (p.group_id, row["album_id"]),
                ).fetchall()
            ]
            cover = media.media_row(db, media_ids[0]) if media_ids else None
            albums.append(
                {
                    "album_id": row["album_id"],
                    "album_name": row["album_name"],
                    "name": row["album_name"],
                    "desc": "",
                    "create_time": row["create_time"],
                    "modify_time": row["modify_time"],
                    "upload_number": len(media_ids),
                    "cover_url": media.describe(db, cover)["url"] if cover is not None else "",
                    "creator": {"uin": row["creator"], "nick": _nick(db, row["creator"])},
                }
            )
        return albums

    albums, attach_info, more = _page(await sandbox.store.run(read), start, ALBUMS_PER_PAGE)
    return {"album_list": albums, "attach_info": attach_info, "has_more": more}


async def get_group_album_media_list(sandbox: Sandbox, p: GetGroupAlbumMediaList) -> dict[str, Any]:
    start = _offset(p.attach_info)

    def read(db: sqlite3.Connection) -> list[dict[str, Any]]:
        bot_in_group(db, p.group_id, sandbox.self_id)
        _album(db, p.group_id, p.album_id)
        items = []
        for row in db.execute(
            "SELECT * FROM album_media WHERE group_id = ? AND album_id = ? "
            "ORDER BY upload_time DESC, rowid DESC",
            (p.group_id, p.album_id),
        ).fetchall():
            stored = media.media_row(db, row["media_id"])
            info = media.describe(db, stored) if stored is not None else None
            likers = [
                r["user_id"]
                for r in db.execute(
                    "SELECT user_id FROM album_likes WHERE lloc = ? ORDER BY time, user_id",
                    (row["lloc"],),
                ).fetchall()
            ]
            comments = [
                {
                    "comment_id": str(c["comment_id"]),
                    "user_id": c["user_id"],
                    "nick": _nick(db, c["user_id"]),
                    "content": c["content"],
                    "time": c["time"],
                }
                for c in db.execute(
                    "SELECT * FROM album_comments WHERE lloc = ? ORDER BY comment_id",
                    (row["lloc"],),
                ).fetchall()
            ]
            items.append(
                {
                    "lloc": row["lloc"],
                    "media_id": row["lloc"],
                    "batch_id": row["batch_id"],
                    "album_id": row["album_id"],
                    "file": row["media_id"],
                    "url": info["url"] if info else "",
                    "file_size": info["file_size"] if info else 0,
                    "uploader": row["uploader"],
                    "uploader_nick": _nick(db, row["uploader"]),
                    "upload_time": row["upload_time"],
                    "like_count": len(likers),
                    "liked": sandbox.self_id in likers,
                    "comments": comments,
                }
            )
        return items

    items, attach_info, more = _page(await sandbox.store.run(read), start, MEDIA_PER_PAGE)
    return {"media_list": items, "attach_info": attach_info, "has_more": more}


async def upload_image_to_qun_album(sandbox: Sandbox, p: UploadImageToQunAlbum) -> dict[str, Any]:
    source = await media.prepare(sandbox, p.file)

    def write(db: sqlite3.Connection) -> dict[str, Any]:
        bot_in_group(db, p.group_id, sandbox.self_id)
        info = media.ingest(db, "image", source)
        now = int(time.time())
        db.execute(
            "INSERT OR IGNORE INTO albums (group_id, album_id, album_name, creator, create_time, "
            "modify_time) VALUES (?,?,?,?,?,?)",
            (p.group_id, p.album_id, p.album_name or p.album_id, sandbox.self_id, now, now),
        )
        db.execute(
            "UPDATE albums SET modify_time = ? WHERE group_id = ? AND album_id = ?",
            (now, p.group_id, p.album_id),
        )
        lloc, batch_id = secrets.token_hex(12), str(time.time_ns() // 1000)
        db.execute(
            "INSERT INTO album_media (lloc, group_id, album_id, batch_id, media_id, uploader, "
            "upload_time) VALUES (?,?,?,?,?,?,?)",
            (lloc, p.group_id, p.album_id, batch_id, info["file"], sandbox.self_id, now),
        )
        return {
            **_OK,
            "album_id": p.album_id,
            "lloc": lloc,
            "batch_id": batch_id,
            "file": info["file"],
            "url": info["url"],
        }

    return await sandbox.store.run(write)


async def do_group_album_comment(sandbox: Sandbox, p: DoGroupAlbumComment) -> Any:
    def write(db: sqlite3.Connection) -> int:
        bot_in_group(db, p.group_id, sandbox.self_id)
        _item(db, p.group_id, p.album_id, p.lloc)
        cursor = db.execute(
            "INSERT INTO album_comments (lloc, user_id, content, time) VALUES (?,?,?,?)",
            (p.lloc, sandbox.self_id, p.content, int(time.time())),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    return {**_OK, "comment_id": str(await sandbox.store.run(write))}


def _targets(db: sqlite3.Connection, p: AlbumMediaLike) -> list[str]:
    if p.lloc is not None:
        item = _item(db, p.group_id, p.album_id, p.lloc)
        if item["batch_id"] != p.batch_id:
            raise ActionFailed(f"media {p.lloc!r} is not in batch {p.batch_id!r}")
        return [p.lloc]
    _album(db, p.group_id, p.album_id)
    llocs = [
        r["lloc"]
        for r in db.execute(
            "SELECT lloc FROM album_media WHERE group_id = ? AND album_id = ? AND batch_id = ?",
            (p.group_id, p.album_id, p.batch_id),
        ).fetchall()
    ]
    if not llocs:
        raise ActionFailed(
            f"album {p.album_id!r} of group {p.group_id} has no batch {p.batch_id!r}"
        )
    return llocs


async def _like(sandbox: Sandbox, p: AlbumMediaLike, like: bool) -> dict[str, Any]:
    def write(db: sqlite3.Connection) -> list[str]:
        bot_in_group(db, p.group_id, sandbox.self_id)
        llocs = _targets(db, p)
        if like:
            now = int(time.time())
            db.executemany(
                "INSERT OR IGNORE INTO album_likes (lloc, user_id, time) VALUES (?,?,?)",
                [(lloc, sandbox.self_id, now) for lloc in llocs],
            )
        else:
            db.executemany(
                "DELETE FROM album_likes WHERE lloc = ? AND user_id = ?",
                [(lloc, sandbox.self_id) for lloc in llocs],
            )
        return llocs

    return {**_OK, "lloc": await sandbox.store.run(write)}


async def set_group_album_media_like(sandbox: Sandbox, p: AlbumMediaLike) -> Any:
    return await _like(sandbox, p, True)


async def cancel_group_album_media_like(sandbox: Sandbox, p: AlbumMediaLike) -> Any:
    return await _like(sandbox, p, False)


async def del_group_album_media(sandbox: Sandbox, p: DelGroupAlbumMedia) -> Any:
    def write(db: sqlite3.Connection) -> None:
        _group, me = bot_in_group(db, p.group_id, sandbox.self_id)
        item = _item(db, p.group_id, p.album_id, p.lloc)
        if item["uploader"] != sandbox.self_id and ROLE_RANK[me["role"]] < ROLE_RANK["admin"]:
            raise ActionFailed(
                f"only the uploader, an admin or the owner may delete media {p.lloc!r} of "
                f"group {p.group_id}'s album; the bot is a member"
            )
        for table in ("album_media", "album_comments", "album_likes"):
            db.execute(f"DELETE FROM {table} WHERE lloc = ?", (p.lloc,))  # noqa: S608

    await sandbox.store.run(write)
    return dict(_OK)


HANDLERS: HandlerTable = {
    "get_qun_album_list": get_qun_album_list,
    "get_group_album_media_list": get_group_album_media_list,
    "upload_image_to_qun_album": upload_image_to_qun_album,
    "do_group_album_comment": do_group_album_comment,
    "set_group_album_media_like": set_group_album_media_like,
    "cancel_group_album_media_like": cancel_group_album_media_like,
    "del_group_album_media": del_group_album_media,
}
