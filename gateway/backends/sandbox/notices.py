"""Sandbox actions: group announcements (NapCat's `_send_group_notice` family).

Announcements are stored per group; publishing and deleting need the bot to be admin or owner, as
in QQ. QQ announces nothing to bots when an announcement changes, so no event is published.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from gateway.actions.notice import DelGroupNotice, GetGroupNotice, SendGroupNotice
from gateway.backends.sandbox import media, nt
from gateway.backends.sandbox.membership import find_member as member_row
from gateway.backends.sandbox.message_store import require_group
from gateway.backends.sandbox.store import decode_json, encode_json
from gateway.protocol.envelope import ActionFailed

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import HandlerTable, Sandbox


def require_manager(db: sqlite3.Connection, group_id: int, self_id: int, what: str) -> None:
    """1200 unless the bot is in the group as admin or owner; `what` names the attempt."""
    require_group(db, group_id, self_id)
    me = member_row(db, group_id, self_id)
    if me is None or me["role"] not in ("admin", "owner"):
        raise ActionFailed(f"{what} in group {group_id} needs the bot to be admin or owner")


async def send_group_notice(sandbox: Sandbox, p: SendGroupNotice) -> None:
    """`image` is stored as media; `_get_group_notice` lists it by media id."""
    settings = {
        "type": p.type,
        "confirm_required": p.confirm_required,
        "is_show_edit_card": p.is_show_edit_card,
        "tip_window_type": p.tip_window_type,
        "remind_ts": 0,
    }

    source = await media.prepare(sandbox, p.image) if p.image else None

    def write(db: sqlite3.Connection) -> None:
        require_manager(db, p.group_id, sandbox.self_id, "publishing an announcement")
        image = media.ingest(db, "image", source)["file"] if source else ""
        db.execute(
            "INSERT INTO notices (notice_id, group_id, sender_id, publish_time, content, image, "
            "pinned, settings) VALUES (?,?,?,?,?,?,?,?)",
            (
                secrets.token_hex(16),
                p.group_id,
                sandbox.self_id,
                int(time.time()),
                p.content,
                image,
                p.pinned,
                encode_json(settings, "settings"),
            ),
        )

    await sandbox.store.run(write)


async def get_group_notice(sandbox: Sandbox, p: GetGroupNotice) -> list[dict[str, Any]]:
    """NapCat's shape; each image is `{id, url}` (a media id and a file:// URL): the sandbox
    does not decode images, so NapCat's `height`/`width` are absent. `read_num` is 0: there are
    no simulated readers."""

    def read(db: sqlite3.Connection) -> list[dict[str, Any]]:
        require_group(db, p.group_id, sandbox.self_id)
        rows = db.execute(
            "SELECT * FROM notices WHERE group_id = ? ORDER BY pinned DESC, publish_time DESC, "
            "rowid DESC",
            (p.group_id,),
        ).fetchall()
        return [_notice(db, row) for row in rows]

    return await sandbox.store.run(read)


def _notice(db: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    images = []
    stored = media.media_row(db, row["image"]) if row["image"] else None
    if stored is not None:
        images.append({"id": row["image"], "url": media.describe(db, stored)["url"]})
    return {
        "notice_id": row["notice_id"],
        "sender_id": row["sender_id"],
        "publish_time": row["publish_time"],
        "message": {"text": row["content"], "image": images, "images": images},
        "settings": decode_json(row["settings"]),
        "pinned": row["pinned"],
        "read_num": 0,
    }


async def del_group_notice(sandbox: Sandbox, p: DelGroupNotice) -> dict[str, Any]:
    """Answers the kernel's general result, which NapCat passes through."""

    def write(db: sqlite3.Connection) -> None:
        require_manager(db, p.group_id, sandbox.self_id, "deleting an announcement")
        deleted = db.execute(
            "DELETE FROM notices WHERE group_id = ? AND notice_id = ?", (p.group_id, p.notice_id)
        ).rowcount
        if not deleted:
            raise ActionFailed(f"group {p.group_id} has no announcement {p.notice_id!r}")

    await sandbox.store.run(write)
    return nt.general_ok()


HANDLERS: HandlerTable = {
    "_send_group_notice": send_group_notice,
    "_get_group_notice": get_group_notice,
    "_del_group_notice": del_group_notice,
}
