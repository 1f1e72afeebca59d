"""Catalog: group essence (highlighted) messages."""

from __future__ import annotations

from pydantic import model_validator

from gateway.actions.catalog import Action, Params


class SetEssenceMsg(Params):
    """Parameters of `set_essence_msg`."""

    message_id: int
    """A stored group message."""


class DeleteEssenceMsg(Params):
    """Parameters of `delete_essence_msg`: `message_id`, or `msg_seq` + `msg_random` +
    `group_id` as `get_essence_msg_list` reports them."""

    message_id: int | None = None
    """The essence message's id."""
    msg_seq: int | None = None
    """Its `msg_seq` from `get_essence_msg_list` (in the sandbox, the message id)."""
    msg_random: int | None = None
    """Its `msg_random` from `get_essence_msg_list`; checked when given."""
    group_id: int | None = None
    """The group, with `msg_seq`."""

    @model_validator(mode="after")
    def _identified(self) -> DeleteEssenceMsg:
        if self.message_id is None and (self.msg_seq is None or self.group_id is None):
            raise ValueError("give message_id, or msg_seq, msg_random and group_id")
        return self


class GetEssenceMsgList(Params):
    """Parameters of `get_essence_msg_list`."""

    group_id: int
    """The group."""


ACTIONS = (
    Action("set_essence_msg", SetEssenceMsg, "Make a group message an essence message."),
    Action("delete_essence_msg", DeleteEssenceMsg, "Remove a message from the group's essence."),
    Action("get_essence_msg_list", GetEssenceMsgList, "A group's essence messages, newest first."),
)
