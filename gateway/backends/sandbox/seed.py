"""Seeding a sandbox database from its world, once: after that the database is the truth.

The account is the world's `self`, or the config's `selfId`/`nickname` in its place, so several
accounts can share one world file. Every world group has the account as a member: where the
world lists it, with the role, card and title listed; elsewhere as a plain member. Its user row
has the account's nickname, whatever name a member list gives it. A world friend with the
account's own number is not a friend of itself.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from gateway.backends.sandbox.world import World
from gateway.config import ConfigError


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the account is: its QQ number (`self_id`) and nickname."""

    self_id: int
    nickname: str


def seed(
    db: sqlite3.Connection,
    world: World,
    self_id: int | None = None,
    nickname: str | None = None,
    database: str = "",
) -> Identity:
    """The account of the database, seeding an empty one from `world` first.

    `self_id` and `nickname` (the config's, None when not given) replace the world's `self`.
    A database seeded before holds its own account: ConfigError naming `backend.selfId` when
    the config asks for another number (serving the old one would answer as the wrong account);
    its nickname is kept (the account may have renamed itself since).
    """
    row = db.execute("SELECT self_id, nickname FROM account").fetchone()
    if row is not None:
        stored = int(row["self_id"])
        if self_id is not None and self_id != stored:
            raise ConfigError(
                f"backend.selfId: {self_id} is not the account of the database {database!r}, "
                f"which was seeded as {stored} (a database is seeded once); set selfId to "
                f"{stored}, or give this account another database"
            )
        return Identity(stored, str(row["nickname"]))
    me = Identity(
        self_id if self_id is not None else world.self.user_id,
        nickname if nickname is not None else world.self.nickname,
    )
    now = int(time.time())
    db.execute("INSERT INTO account (self_id, nickname) VALUES (?, ?)", (me.self_id, me.nickname))
    for friend in world.friends:
        if friend.user_id == me.self_id:
            continue
        db.execute(
            "INSERT INTO users (user_id, nickname, is_friend, remark, category) VALUES (?,?,1,?,?)",
            (friend.user_id, friend.nickname, friend.remark, friend.category),
        )
    if world.groups:  # a member of each: the account's row, under its own name
        db.execute("INSERT INTO users (user_id, nickname) VALUES (?, ?)", (me.self_id, me.nickname))
    for group in world.groups:
        db.execute(
            "INSERT INTO groups (group_id, group_name) VALUES (?, ?)",
            (group.group_id, group.group_name),
        )
        listed = False
        for member in group.members:
            listed = listed or member.user_id == me.self_id
            db.execute(
                "INSERT OR IGNORE INTO users (user_id, nickname) VALUES (?, ?)",
                (member.user_id, member.nickname),
            )
            db.execute(
                "INSERT INTO members (group_id, user_id, role, card, title, join_time) "
                "VALUES (?,?,?,?,?,?)",
                (group.group_id, member.user_id, member.role, member.card, member.title, now),
            )
        if not listed:
            db.execute(
                "INSERT INTO members (group_id, user_id, join_time) VALUES (?,?,?)",
                (group.group_id, me.self_id, now),
            )
    return me
