"""Catalog: group todos (NapCat's `set_group_todo` family).

A todo is a group message the admins pin as something to do; NapCat names the message by its
`message_id` or by its `message_seq` (napcat-network.md §9.8).
"""

from __future__ import annotations

from pydantic import model_validator

from gateway.actions.catalog import Action, Params


class GroupTodo(Params):
    """Parameters of `set_group_todo`, `complete_group_todo` and `cancel_group_todo`."""

    group_id: int
    """The group."""
    message_id: int | None = None
    """The group message the todo is about."""
    message_seq: int | None = None
    """The same message by its sequence number (taken first when both are given)."""

    @model_validator(mode="after")
    def _names_a_message(self) -> GroupTodo:
        if self.message_id is None and self.message_seq is None:
            raise ValueError("give message_id or message_seq")
        return self

    @property
    def message(self) -> int:
        """The message the call is about."""
        target = self.message_seq if self.message_seq is not None else self.message_id
        assert target is not None
        return target


class SandboxGetGroupTodo(Params):
    """Parameters of `sandbox_get_group_todo`."""

    group_id: int
    """The group."""


ACTIONS = (
    Action("set_group_todo", GroupTodo, "Make a group message the group's todo (admin or owner)."),
    Action("complete_group_todo", GroupTodo, "Mark the group's todo on a message as done."),
    Action("cancel_group_todo", GroupTodo, "Withdraw the group's todo on a message (admin/owner)."),
    Action(
        "sandbox_get_group_todo",
        SandboxGetGroupTodo,
        "Sandbox: the group's current todo and its state, or null.",
    ),
)
