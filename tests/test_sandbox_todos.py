"""Sandbox group todos over the real HTTP adapter; answers checked against NapCat's schema."""

from __future__ import annotations

from typing import Any

from tests.napcat_schema import validate_data
from tests.sandbox_client import SandboxClient

ALICE, CAROL = 20001, 20003
LAB, PLAYGROUND = 30001, 30002


async def said(sandbox: SandboxClient, text: str, group_id: int = LAB) -> int:
    data = await sandbox.ok(
        "sandbox_receive_message",
        message_type="group",
        group_id=group_id,
        user_id=CAROL if group_id == LAB else 20002,
        message=text,
    )
    message_id: int = data["message_id"]
    return message_id


async def todo(sandbox: SandboxClient, group_id: int = LAB) -> dict[str, Any] | None:
    data: dict[str, Any] | None = await sandbox.ok("sandbox_get_group_todo", group_id=group_id)
    return data


async def test_set_group_todo_pins_the_message(sandbox: SandboxClient) -> None:
    message_id = await said(sandbox, "ship the release")
    data = await sandbox.ok("set_group_todo", group_id=LAB, message_id=str(message_id))
    validate_data("set_group_todo", data)
    state = await todo(sandbox)
    assert state is not None
    assert (state["message_id"], state["operator_id"], state["completed"]) == (
        message_id,
        10001,
        False,
    )


async def test_message_seq_names_the_message_too(sandbox: SandboxClient) -> None:
    message_id = await said(sandbox, "by seq")
    await sandbox.ok("set_group_todo", group_id=LAB, message_seq=message_id)
    state = await todo(sandbox)
    assert state is not None and state["message_id"] == message_id


async def test_a_new_todo_replaces_the_old_one(sandbox: SandboxClient) -> None:
    first, second = await said(sandbox, "one"), await said(sandbox, "two")
    await sandbox.ok("set_group_todo", group_id=LAB, message_id=first)
    await sandbox.ok("set_group_todo", group_id=LAB, message_id=second)
    state = await todo(sandbox)
    assert state is not None and state["message_id"] == second
    body = await sandbox.call("complete_group_todo", group_id=LAB, message_id=first)
    assert body["retcode"] == 1200
    assert body["message"] == f"the todo of group {LAB} is on message {second}, not {first}"


async def test_complete_group_todo_marks_it_done(sandbox: SandboxClient) -> None:
    message_id = await said(sandbox, "review")
    await sandbox.ok("set_group_todo", group_id=LAB, message_id=message_id)
    data = await sandbox.ok("complete_group_todo", group_id=LAB, message_id=message_id)
    validate_data("complete_group_todo", data)
    state = await todo(sandbox)
    assert state is not None
    assert (state["completed"], state["completed_by"]) == (True, 10001)
    again = await sandbox.call("complete_group_todo", group_id=LAB, message_id=message_id)
    assert (again["retcode"], again["message"]) == (
        1200,
        f"the todo of group {LAB} is already done",
    )


async def test_cancel_group_todo_removes_it(sandbox: SandboxClient) -> None:
    message_id = await said(sandbox, "maybe later")
    await sandbox.ok("set_group_todo", group_id=LAB, message_id=message_id)
    data = await sandbox.ok("cancel_group_todo", group_id=LAB, message_id=message_id)
    validate_data("cancel_group_todo", data)
    assert await todo(sandbox) is None
    body = await sandbox.call("cancel_group_todo", group_id=LAB, message_id=message_id)
    assert (body["retcode"], body["message"]) == (1200, f"group {LAB} has no todo")


async def test_todos_are_per_group(sandbox: SandboxClient) -> None:
    lab, playground = await said(sandbox, "lab"), await said(sandbox, "pg", PLAYGROUND)
    await sandbox.ok("set_group_todo", group_id=LAB, message_id=lab)
    await sandbox.ok("set_group_todo", group_id=PLAYGROUND, message_id=playground)
    states = [await todo(sandbox, LAB), await todo(sandbox, PLAYGROUND)]
    assert [s["message_id"] if s else None for s in states] == [lab, playground]
