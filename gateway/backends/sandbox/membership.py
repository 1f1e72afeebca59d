"""Group membership rules shared by the group and request handlers.

Lookups raise `ActionFailed` (1200) with a message naming what is missing, so a handler that
calls them inside `store.run` fails before it changes anything and the transaction rolls back.
Roles rank owner > admin > member: the bot acts on another member only from a higher rank, as QQ
allows.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from gateway.backends.sandbox.store import kept_row
from gateway.protocol.envelope import ActionFailed

ROLE_RANK = {"member": 0, "admin": 1, "owner": 2}


def article(role: str) -> str:
    """`an admin`, `a member`, `the owner`."""
    return {"owner": "the owner", "admin": "an admin"}.get(role, "a member")


def load_group(db: sqlite3.Connection, group_id: int) -> sqlite3.Row:
    """The group's row (kept by the writer, see store.kept_row); 1200 when there is no such
    group."""
    row = kept_row(db, "group", group_id)
    if row is None:
        raise ActionFailed(f"group {group_id} does not exist")
    return row


def find_member(db: sqlite3.Connection, group_id: int, user_id: int) -> sqlite3.Row | None:
    """A member row with the user's nickname, sex and age, or None."""
    row: sqlite3.Row | None = db.execute(
        "SELECT m.*, u.nickname, u.sex, u.age FROM members m JOIN users u USING (user_id) "
        "WHERE m.group_id = ? AND m.user_id = ?",
        (group_id, user_id),
    ).fetchone()
    return row


def bot_in_group(
    db: sqlite3.Connection, group_id: int, self_id: int
) -> tuple[sqlite3.Row, sqlite3.Row]:
    """(group, the bot's member row); 1200 when the group is unknown or the bot is not in it."""
    group = load_group(db, group_id)
    me = find_member(db, group_id, self_id)
    if me is None:
        raise ActionFailed(f"the bot is not in group {group_id}")
    return group, me


def speaker(db: sqlite3.Connection, group_id: int, user_id: int) -> sqlite3.Row | None:
    """What the send path needs of a member (role, card, title, mute_until; no nickname, sex,
    age or last_sent), from the rows the writer keeps (store.kept_row), or None."""
    return kept_row(db, "member", group_id, user_id)


def bot_speaks_in(
    db: sqlite3.Connection, group_id: int, self_id: int
) -> tuple[sqlite3.Row, sqlite3.Row]:
    """`bot_in_group` for the send path: (group, the bot's `speaker` row), the same 1200s."""
    group = load_group(db, group_id)
    me = speaker(db, group_id, self_id)
    if me is None:
        raise ActionFailed(f"the bot is not in group {group_id}")
    return group, me


def member(db: sqlite3.Connection, group_id: int, user_id: int) -> sqlite3.Row:
    """A member's row; 1200 when the user is not in the group."""
    row = find_member(db, group_id, user_id)
    if row is None:
        raise ActionFailed(f"user {user_id} is not a member of group {group_id}")
    return row


def require_role(me: sqlite3.Row, needed: str, doing: str) -> None:
    """1200 unless the bot's role is at least `needed` (`admin` or `owner`)."""
    if ROLE_RANK[me["role"]] < ROLE_RANK[needed]:
        who = "the owner" if needed == "owner" else "an admin or the owner"
        raise ActionFailed(
            f"only {who} may {doing} in group {me['group_id']}; the bot is {article(me['role'])}"
        )


def require_outranks(me: sqlite3.Row, target: sqlite3.Row, doing: str) -> None:
    """1200 unless the bot is an admin and ranks above `target` (never itself)."""
    group_id, user_id = me["group_id"], target["user_id"]
    if me["user_id"] == user_id:
        raise ActionFailed(f"the bot cannot {doing} itself in group {group_id}")
    require_role(me, "admin", doing)
    if ROLE_RANK[target["role"]] >= ROLE_RANK[me["role"]]:
        raise ActionFailed(
            f"the bot ({me['role']}) cannot {doing} user {user_id}, who is "
            f"{article(target['role'])} of group {group_id}"
        )


def is_blocked(db: sqlite3.Connection, group_id: int, user_id: int) -> bool:
    """Whether the group refuses this user (kicked with `reject_add_request`)."""
    row = db.execute(
        "SELECT 1 FROM group_blocklist WHERE group_id = ? AND user_id = ?", (group_id, user_id)
    ).fetchone()
    return row is not None


def add_member(db: sqlite3.Connection, group_id: int, user_id: int, role: str = "member") -> None:
    """Insert a new member joining now; 1200 when they are already in the group."""
    if find_member(db, group_id, user_id) is not None:
        raise ActionFailed(f"user {user_id} is already a member of group {group_id}")
    db.execute(
        "INSERT INTO members (group_id, user_id, role, join_time) VALUES (?, ?, ?, ?)",
        (group_id, user_id, role, int(time.time())),
    )


def remove_member(db: sqlite3.Connection, group_id: int, user_id: int) -> None:
    """Delete a member row."""
    db.execute("DELETE FROM members WHERE group_id = ? AND user_id = ?", (group_id, user_id))


def update_member(db: sqlite3.Connection, group_id: int, user_id: int, **columns: Any) -> None:
    """Set columns of one member row (column names come from code, never from clients)."""
    assignments = ", ".join(f"{name} = ?" for name in columns)
    db.execute(
        f"UPDATE members SET {assignments} WHERE group_id = ? AND user_id = ?",  # noqa: S608
        (*columns.values(), group_id, user_id),
    )


def group_info(db: sqlite3.Connection, group: sqlite3.Row) -> dict[str, Any]:
    """NapCat's group object; `group_all_shut` is -1 under a whole-group mute, else 0."""
    count = db.execute(
        "SELECT COUNT(*) FROM members WHERE group_id = ?", (group["group_id"],)
    ).fetchone()[0]
    return {
        "group_id": group["group_id"],
        "group_name": group["group_name"],
        "group_remark": group["group_remark"],
        "group_all_shut": -1 if group["whole_ban"] else 0,
        "member_count": count,
        "max_member_count": group["max_member_count"],
    }


def member_info(row: sqlite3.Row, me: sqlite3.Row | None, now: float) -> dict[str, Any]:
    """NapCat's member object. An expired title or mute reads as none; `card_changeable` says
    whether the bot (`me`) may change this member's card."""
    title_live = row["title_expire"] == 0 or row["title_expire"] > now
    changeable = me is not None and (
        me["user_id"] == row["user_id"] or ROLE_RANK[me["role"]] > ROLE_RANK[row["role"]]
    )
    return {
        "group_id": row["group_id"],
        "user_id": row["user_id"],
        "nickname": row["nickname"],
        "card": row["card"],
        "sex": row["sex"],
        "age": row["age"],
        "area": "",
        "level": "0",
        "qq_level": 0,
        "join_time": row["join_time"],
        "last_sent_time": row["last_sent"],
        "title_expire_time": row["title_expire"] if title_live else 0,
        "unfriendly": False,
        "card_changeable": changeable,
        "is_robot": False,
        "shut_up_timestamp": row["mute_until"] if row["mute_until"] > now else 0,
        "role": row["role"],
        "title": row["title"] if title_live else "",
        "qage": 0,
    }


def ensure_user(db: sqlite3.Connection, user_id: int, nickname: str | None) -> sqlite3.Row:
    """The user's row (kept by the writer, see store.kept_row), creating a stranger for an
    unknown id."""
    row = kept_row(db, "user", user_id)
    if row is None:
        db.execute(
            "INSERT OR IGNORE INTO users (user_id, nickname) VALUES (?, ?)",
            (user_id, nickname or f"User {user_id}"),
        )
        row = kept_row(db, "user", user_id)
        assert row is not None
    return row
