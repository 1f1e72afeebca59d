"""Catalog: sending, reading, recalling and forwarding messages; quick operations."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, Field, model_validator

from gateway.actions.catalog import Action, Params


class _Outgoing(Params):
    message: Any
    """The message: a CQ-code string, one segment object, or an array of segments."""
    auto_escape: bool = False
    """Send a string message literally, without parsing CQ codes."""


class SendPrivateMsg(_Outgoing):
    """Parameters of `send_private_msg`."""

    user_id: int
    """Recipient."""
    group_id: int | None = None
    """A group both share, for a temporary session with a non-friend."""


class SendGroupMsg(_Outgoing):
    """Parameters of `send_group_msg`."""

    group_id: int
    """Target group."""


class SendMsg(_Outgoing):
    """Parameters of `send_msg`: routed on `message_type` first, then on which id is given."""

    message_type: Literal["private", "group"] | None = None
    """`private` or `group`; when absent, `group` if `group_id` is given."""
    user_id: int | None = None
    """Recipient of a private message (group replies from NoneBot carry it too)."""
    group_id: int | None = None
    """Target group."""


class MessageId(Params):
    """An action on one message."""

    message_id: int
    """The message's id."""


class GetForwardMsg(Params):
    """Parameters of `get_forward_msg`."""

    message_id: str | None = None
    """The forward id (as in a `forward` segment)."""
    id: str | None = None
    """Same as `message_id` (go-cqhttp's name)."""

    @model_validator(mode="after")
    def _one_id(self) -> GetForwardMsg:
        if not (self.message_id or self.id):
            raise ValueError("give message_id or id")
        return self


class _History(Params):
    message_seq: int | None = None
    """Newest message id to include; the latest messages when absent or 0."""
    count: int = Field(20, ge=1, le=200)
    """How many messages (1..200)."""
    reverse_order: bool = Field(
        False, validation_alias=AliasChoices("reverse_order", "reverseOrder")
    )
    """Newest first."""


class GetGroupMsgHistory(_History):
    """Parameters of `get_group_msg_history`."""

    group_id: int
    """The group."""


class GetFriendMsgHistory(_History):
    """Parameters of `get_friend_msg_history`."""

    user_id: int
    """The friend."""


class _Forward(Params):
    messages: list[Any] = Field(validation_alias=AliasChoices("messages", "message"))
    """Forward nodes: `{type: "node", data: {id}}` or `{type: "node", data: {user_id, nickname,
    content}}`. Also taken as `message` (NapCat takes either; its schema documents `message`)."""


class SendGroupForwardMsg(_Forward):
    """Parameters of `send_group_forward_msg`."""

    group_id: int
    """Target group."""


class SendPrivateForwardMsg(_Forward):
    """Parameters of `send_private_forward_msg`."""

    user_id: int
    """Recipient."""


class SendForwardMsg(_Forward):
    """Parameters of `send_forward_msg`."""

    message_type: Literal["private", "group"] | None = None
    """`private` or `group`; inferred from the ids when absent."""
    user_id: int | None = None
    """Recipient."""
    group_id: int | None = None
    """Target group."""


class MarkAsRead(Params):
    """Parameters of `mark_msg_as_read` and its NapCat variants."""

    user_id: int | None = None
    """A private chat."""
    group_id: int | None = None
    """A group chat."""
    message_id: int | None = None
    """Any message of the chat."""


class QuickOperation(Params):
    """Parameters of `.handle_quick_operation`."""

    context: dict[str, Any]
    """The event the operation answers (may be trimmed)."""
    operation: dict[str, Any]
    """The quick operation: reply, auto_escape, at_sender, delete, kick, ban, ban_duration,
    approve, remark, reason."""


class Sender(Params):
    """How a simulated sender presents itself."""

    nickname: str | None = None
    """Display name (new users take it; default `User <id>`)."""
    card: str | None = None
    """Group card; a change is stored and reported as a `group_card` notice."""


class SandboxReceiveMessage(_Outgoing):
    """Parameters of `sandbox_receive_message`: a simulated user sends the bot a message."""

    message_type: Literal["private", "group"]
    """Private chat or group."""
    user_id: int = Field(gt=0)
    """The sender; unknown users are created (as strangers, or as new members in a group)."""
    group_id: int | None = None
    """The group, for group messages; for a private one from someone who is not a friend, the
    group of a temporary session (both must be members)."""
    sender: Sender = Sender()
    """Optional nickname and card."""


class SandboxEmit(Params):
    """Parameters of `sandbox_emit`."""

    event: dict[str, Any]
    """A raw event; `time` and `self_id` are filled in when absent."""


ACTIONS = (
    Action("send_private_msg", SendPrivateMsg, "Send a private message; returns its message_id."),
    Action("send_group_msg", SendGroupMsg, "Send a group message; returns its message_id."),
    Action("send_msg", SendMsg, "Send a private or group message (routed on message_type)."),
    Action("delete_msg", MessageId, "Recall a message."),
    Action("get_msg", MessageId, "A stored message by id (ids survive restarts)."),
    Action("get_forward_msg", GetForwardMsg, "The nodes of a forward bundle."),
    Action("get_group_msg_history", GetGroupMsgHistory, "Recent messages of a group."),
    Action("get_friend_msg_history", GetFriendMsgHistory, "Recent messages with a friend."),
    Action("send_group_forward_msg", SendGroupForwardMsg, "Send forward nodes to a group."),
    Action("send_private_forward_msg", SendPrivateForwardMsg, "Send forward nodes privately."),
    Action("send_forward_msg", SendForwardMsg, "Send forward nodes to a group or friend."),
    Action(
        "mark_msg_as_read",
        MarkAsRead,
        "Mark a chat as read.",
        aliases=("mark_private_msg_as_read", "mark_group_msg_as_read"),
    ),
    Action(".handle_quick_operation", QuickOperation, "Apply a quick operation to an event."),
    Action(
        "sandbox_receive_message",
        SandboxReceiveMessage,
        "Sandbox: a simulated user sends the bot a message; returns its message_id.",
    ),
    Action(
        "sandbox_recall_message", MessageId, "Sandbox: the simulated sender recalls their message."
    ),
    Action("sandbox_emit", SandboxEmit, "Sandbox: publish a raw event."),
)
