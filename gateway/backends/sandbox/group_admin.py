"""Sandbox actions: the bot managing a group (kick, mute, admins, cards, titles, name, leaving).

Permissions are QQ's: admins and the owner manage members ranked below them, only the owner
appoints admins and gives titles. A refused action changes nothing. Events report changes only:
setting what is already set succeeds without a notice, as QQ shows no gray tip for it.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING

from gateway.actions.group import (
    SetGroupAdmin,
    SetGroupBan,
    SetGroupCard,
    SetGroupKick,
    SetGroupLeave,
    SetGroupName,
    SetGroupPortrait,
    SetGroupSpecialTitle,
    SetGroupWholeBan,
)
from gateway.backends.sandbox import media
from gateway.backends.sandbox.extended_account import save_json
from gateway.backends.sandbox.membership import (
    bot_in_group,
    member,
    remove_member,
    require_outranks,
    require_role,
    update_member,
)
from gateway.protocol.envelope import ActionFailed, BadRequest

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import HandlerTable, Sandbox

# Tables keyed by group whose rows go away with a dismissed group (members cascade).
_GROUP_TABLES = ("group_blocklist", "group_files", "group_folders", "essence", "notices")


def publish_card(sandbox: Sandbox, group_id: int, user_id: int, new: str, old: str) -> None:
    """A `group_card` notice."""
    sandbox.notice("group_card", group_id=group_id, user_id=user_id, card_new=new, card_old=old)


async def set_group_kick(sandbox: Sandbox, p: SetGroupKick) -> None:
    """Remove a member ranked below the bot (`group_decrease` kick, operator = the bot)."""

    def write(db: sqlite3.Connection) -> None:
        _group, me = bot_in_group(db, p.group_id, sandbox.self_id)
        require_outranks(me, member(db, p.group_id, p.user_id), "kick")
        remove_member(db, p.group_id, p.user_id)
        if p.reject_add_request:
            db.execute(
                "INSERT OR IGNORE INTO group_blocklist (group_id, user_id) VALUES (?, ?)",
                (p.group_id, p.user_id),
            )

    await sandbox.store.run(write)
    sandbox.notice(
        "group_decrease",
        sub_type="kick",
        group_id=p.group_id,
        user_id=p.user_id,
        operator_id=sandbox.self_id,
    )


async def set_group_ban(sandbox: Sandbox, p: SetGroupBan) -> None:
    """Mute a member ranked below the bot until now + duration; 0 lifts a running mute."""

    def write(db: sqlite3.Connection) -> bool:
        _group, me = bot_in_group(db, p.group_id, sandbox.self_id)
        target = member(db, p.group_id, p.user_id)
        require_outranks(me, target, "mute" if p.duration else "unmute")
        now = int(time.time())
        if p.duration == 0 and target["mute_until"] <= now:
            return False
        update_member(db, p.group_id, p.user_id, mute_until=now + p.duration if p.duration else 0)
        return True

    if await sandbox.store.run(write):
        sandbox.notice(
            "group_ban",
            sub_type="ban" if p.duration else "lift_ban",
            group_id=p.group_id,
            user_id=p.user_id,
            operator_id=sandbox.self_id,
            duration=p.duration,
        )


async def set_group_whole_ban(sandbox: Sandbox, p: SetGroupWholeBan) -> None:
    """Mute every member below admin (`group_ban` with user_id 0, duration -1; lift: 0)."""

    def write(db: sqlite3.Connection) -> bool:
        group, me = bot_in_group(db, p.group_id, sandbox.self_id)
        require_role(me, "admin", "mute the whole group")
        if bool(group["whole_ban"]) == p.enable:
            return False
        db.execute(
            "UPDATE groups SET whole_ban = ? WHERE group_id = ?", (int(p.enable), p.group_id)
        )
        return True

    if await sandbox.store.run(write):
        sandbox.notice(
            "group_ban",
            sub_type="ban" if p.enable else "lift_ban",
            group_id=p.group_id,
            user_id=0,
            operator_id=sandbox.self_id,
            duration=-1 if p.enable else 0,
        )


async def set_group_admin(sandbox: Sandbox, p: SetGroupAdmin) -> None:
    """The owner bot makes a member an admin or a member again (`group_admin` set / unset)."""

    def write(db: sqlite3.Connection) -> bool:
        _group, me = bot_in_group(db, p.group_id, sandbox.self_id)
        require_role(me, "owner", "appoint or dismiss admins")
        target = member(db, p.group_id, p.user_id)
        if target["user_id"] == me["user_id"]:
            raise ActionFailed(f"the bot owns group {p.group_id} and cannot change its own role")
        role = "admin" if p.enable else "member"
        if target["role"] == role:
            return False
        update_member(db, p.group_id, p.user_id, role=role)
        return True

    if await sandbox.store.run(write):
        sandbox.notice(
            "group_admin",
            sub_type="set" if p.enable else "unset",
            group_id=p.group_id,
            user_id=p.user_id,
        )


async def set_group_card(sandbox: Sandbox, p: SetGroupCard) -> None:
    """The bot's own card, or the card of a member ranked below it (`group_card`)."""

    def write(db: sqlite3.Connection) -> str | None:
        _group, me = bot_in_group(db, p.group_id, sandbox.self_id)
        target = member(db, p.group_id, p.user_id)
        if target["user_id"] != me["user_id"]:
            require_outranks(me, target, "change the card of")
        if target["card"] == p.card:
            return None
        update_member(db, p.group_id, p.user_id, card=p.card)
        return str(target["card"])

    old_card = await sandbox.store.run(write)
    if old_card is not None:
        publish_card(sandbox, p.group_id, p.user_id, p.card, old_card)


async def set_group_name(sandbox: Sandbox, p: SetGroupName) -> None:
    """Rename the group (`notify` group_name, user_id = the bot)."""

    def write(db: sqlite3.Connection) -> bool:
        group, me = bot_in_group(db, p.group_id, sandbox.self_id)
        require_role(me, "admin", "rename the group")
        if group["group_name"] == p.group_name:
            return False
        db.execute(
            "UPDATE groups SET group_name = ? WHERE group_id = ?", (p.group_name, p.group_id)
        )
        return True

    if await sandbox.store.run(write):
        sandbox.notice(
            "notify",
            sub_type="group_name",
            group_id=p.group_id,
            user_id=sandbox.self_id,
            name_new=p.group_name,
        )


def portrait_key(group_id: int) -> str:
    """The kv key holding the media id of a group's avatar (`set_group_portrait`)."""
    return f"group:{group_id}:portrait"


async def set_group_portrait(sandbox: Sandbox, p: SetGroupPortrait) -> dict[str, object]:
    """Store the image as media and remember it as the group's avatar (admin or owner only)."""
    source = await media.prepare(sandbox, p.file)

    def write(db: sqlite3.Connection) -> None:
        _group, me = bot_in_group(db, p.group_id, sandbox.self_id)
        require_role(me, "admin", "set the group's avatar")
        media_id = media.ingest(db, "image", source)["file"]
        if not media_id.lower().endswith(media.IMAGE_TYPES):
            raise BadRequest("set_group_portrait: parameter 'file' is not a PNG/JPEG/GIF/BMP/WebP")
        save_json(db, portrait_key(p.group_id), media_id)

    await sandbox.store.run(write)
    return {"result": 0, "errMsg": ""}


async def set_group_leave(sandbox: Sandbox, p: SetGroupLeave) -> None:
    """The bot leaves (`group_decrease` leave); as owner it can only dismiss the group, which
    deletes it with its members, files, essence and notices (`group_decrease` disband)."""

    def write(db: sqlite3.Connection) -> str:
        _group, me = bot_in_group(db, p.group_id, sandbox.self_id)
        if me["role"] != "owner":
            remove_member(db, p.group_id, sandbox.self_id)
            return "leave"
        if not p.is_dismiss:
            raise ActionFailed(
                f"the bot owns group {p.group_id}: it cannot leave, only dismiss it "
                "(is_dismiss=true)"
            )
        for table in _GROUP_TABLES:
            db.execute(f"DELETE FROM {table} WHERE group_id = ?", (p.group_id,))  # noqa: S608
        db.execute("DELETE FROM groups WHERE group_id = ?", (p.group_id,))
        return "disband"

    sub_type = await sandbox.store.run(write)
    sandbox.notice(
        "group_decrease",
        sub_type=sub_type,
        group_id=p.group_id,
        user_id=sandbox.self_id,
        operator_id=sandbox.self_id,
    )


async def set_group_special_title(sandbox: Sandbox, p: SetGroupSpecialTitle) -> None:
    """The owner bot gives a member (or itself) a title (`notify` title); empty removes it."""

    def write(db: sqlite3.Connection) -> bool:
        _group, me = bot_in_group(db, p.group_id, sandbox.self_id)
        require_role(me, "owner", "give special titles")
        target = member(db, p.group_id, p.user_id)
        now = int(time.time())
        expire = now + p.duration if p.duration > 0 and p.special_title else 0
        live = target["title_expire"] == 0 or target["title_expire"] > now
        if (target["title"] if live else "") == p.special_title and target[
            "title_expire"
        ] == expire:
            return False
        update_member(db, p.group_id, p.user_id, title=p.special_title, title_expire=expire)
        return True

    if await sandbox.store.run(write):
        sandbox.notice(
            "notify",
            sub_type="title",
            group_id=p.group_id,
            user_id=p.user_id,
            title=p.special_title,
        )


HANDLERS: HandlerTable = {
    "set_group_kick": set_group_kick,
    "set_group_ban": set_group_ban,
    "set_group_whole_ban": set_group_whole_ban,
    "set_group_admin": set_group_admin,
    "set_group_card": set_group_card,
    "set_group_name": set_group_name,
    "set_group_portrait": set_group_portrait,
    "set_group_leave": set_group_leave,
    "set_group_special_title": set_group_special_title,
}
