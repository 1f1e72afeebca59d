"""Sandbox actions: group todos.

A group has at most one todo: a message of the group that an admin or the owner pins for
everyone (`set_group_todo` replaces the previous one). Any member may mark it done
(`complete_group_todo`); an admin or the owner withdraws it (`cancel_group_todo`). QQ shows each
change as a grey tip in the group, which NapCat does not report to bots, so no event is
published; `sandbox_get_group_todo` lets a test read the state. NapCat answers null to all three.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Any

from gateway.actions.todo import GroupTodo, SandboxGetGroupTodo
from gateway.backends.sandbox.membership import bot_in_group
from gateway.backends.sandbox.notices import require_manager
from gateway.protocol.envelope import ActionFailed

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import HandlerTable, Sandbox


def _check_message(db: sqlite3.Connection, group_id: int, message_id: int) -> None:
    """1200 unless `message_id` is a message of `group_id` that was not recalled."""
    row = db.execute(
        "SELECT message_type, peer_id, recalled FROM messages WHERE message_id = ?",
        (message_id,),
    ).fetchone()
    if row is None:
        raise ActionFailed(f"message {message_id} does not exist")
    if row["message_type"] != "group" or row["peer_id"] != group_id:
        raise ActionFailed(f"message {message_id} is not a message of group {group_id}")
    if row["recalled"]:
        raise ActionFailed(f"message {message_id} was recalled")


def _todo_on(db: sqlite3.Connection, group_id: int, message_id: int) -> sqlite3.Row:
    """The group's todo, which must be on `message_id`; 1200 naming what is there instead."""
    todo: sqlite3.Row | None = db.execute(
        "SELECT * FROM group_todos WHERE group_id = ?", (group_id,)
    ).fetchone()
    if todo is None:
        raise ActionFailed(f"group {group_id} has no todo")
    if todo["message_id"] != message_id:
        raise ActionFailed(
            f"the todo of group {group_id} is on message {todo['message_id']}, not {message_id}"
        )
    return todo


async def set_group_todo(sandbox: Sandbox, p: GroupTodo) -> None:
    def write(db: sqlite3.Connection) -> None:
        require_manager(db, p.group_id, sandbox.self_id, "setting a group todo")
        _check_message(db, p.group_id, p.message)
        db.execute(
            "INSERT OR REPLACE INTO group_todos (group_id, message_id, operator_id, time) "
            "VALUES (?,?,?,?)",
            (p.group_id, p.message, sandbox.self_id, int(time.time())),
        )

    await sandbox.store.run(write)


async def complete_group_todo(sandbox: Sandbox, p: GroupTodo) -> None:
    def write(db: sqlite3.Connection) -> None:
        bot_in_group(db, p.group_id, sandbox.self_id)
        if _todo_on(db, p.group_id, p.message)["completed_by"]:
            raise ActionFailed(f"the todo of group {p.group_id} is already done")
        db.execute(
            "UPDATE group_todos SET completed_by = ?, completed_time = ? WHERE group_id = ?",
            (sandbox.self_id, int(time.time()), p.group_id),
        )

    await sandbox.store.run(write)


async def cancel_group_todo(sandbox: Sandbox, p: GroupTodo) -> None:
    def write(db: sqlite3.Connection) -> None:
        require_manager(db, p.group_id, sandbox.self_id, "cancelling a group todo")
        _todo_on(db, p.group_id, p.message)
        db.execute("DELETE FROM group_todos WHERE group_id = ?", (p.group_id,))

    await sandbox.store.run(write)


async def sandbox_get_group_todo(sandbox: Sandbox, p: SandboxGetGroupTodo) -> dict[str, Any] | None:
    """`{group_id, message_id, operator_id, time, completed, completed_by, completed_time}`, or
    null when the group has no todo."""

    def read(db: sqlite3.Connection) -> dict[str, Any] | None:
        bot_in_group(db, p.group_id, sandbox.self_id)
        row = db.execute("SELECT * FROM group_todos WHERE group_id = ?", (p.group_id,)).fetchone()
        if row is None:
            return None
        return {**dict(row), "completed": bool(row["completed_by"])}

    return await sandbox.store.read(read)


HANDLERS: HandlerTable = {
    "set_group_todo": set_group_todo,
    "complete_group_todo": complete_group_todo,
    "cancel_group_todo": cancel_group_todo,
    "sandbox_get_group_todo": sandbox_get_group_todo,
}
