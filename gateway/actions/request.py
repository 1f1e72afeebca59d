"""Catalog: friend and group requests; the sandbox's simulated users sending them."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field

from gateway.actions.catalog import Action, Params

GroupRequestType = Literal["add", "invite"]


class SetFriendAddRequest(Params):
    """Parameters of `set_friend_add_request`."""

    flag: str
    """The `flag` of the friend request event."""
    approve: bool = True
    """Accept (true) or refuse (false)."""
    remark: str = ""
    """Remark for the new friend."""


class SetGroupAddRequest(Params):
    """Parameters of `set_group_add_request`."""

    flag: str
    """The `flag` of the group request event."""
    sub_type: GroupRequestType | None = Field(
        None, validation_alias=AliasChoices("sub_type", "type")
    )
    """`add` or `invite` (OneBot's `type` too); when given it must match the request."""
    approve: bool = True
    """Accept (true) or refuse (false)."""
    reason: str = " "
    """Why a request is refused (NapCat's default is one space)."""
    count: int = 100
    """How many recent notifies NapCat searches for the flag (the sandbox looks it up directly)."""


class GetGroupSystemMsg(Params):
    """Parameters of `get_group_system_msg`."""

    count: int = Field(50, ge=1)
    """At most this many requests, newest first."""


class SandboxFriendRequest(Params):
    """Parameters of `sandbox_friend_request`: a simulated user asks to be the bot's friend."""

    user_id: int = Field(gt=0)
    """The user who asks; unknown users are created."""
    nickname: str | None = None
    """Display name for a new user (default `User <id>`)."""
    comment: str = ""
    """The verification message."""


class SandboxGroupRequest(Params):
    """Parameters of `sandbox_group_request`: a join request, or an invitation of the bot."""

    group_id: int = Field(gt=0)
    """The group: one the bot is in for `add`, one it is not in for `invite`."""
    user_id: int = Field(gt=0)
    """Who asks to join (`add`) or who invites the bot (`invite`); unknown users are created."""
    sub_type: GroupRequestType = "add"
    """`add`: the user asks to join; `invite`: the user invites the bot."""
    comment: str = ""
    """The verification or invitation message."""
    nickname: str | None = None
    """Display name for a new user (default `User <id>`)."""
    group_name: str | None = None
    """Name of a group that does not exist yet (`invite` only; default `Group <id>`); the
    inviter becomes its owner."""


ACTIONS = (
    Action("set_friend_add_request", SetFriendAddRequest, "Accept or refuse a friend request."),
    Action(
        "set_group_add_request",
        SetGroupAddRequest,
        "Accept or refuse a join request or an invitation of the bot.",
    ),
    Action(
        "get_group_system_msg", GetGroupSystemMsg, "Join requests and invitations, handled or not."
    ),
    Action(
        "sandbox_friend_request",
        SandboxFriendRequest,
        "Sandbox: a simulated user sends a friend request; returns its flag.",
    ),
    Action(
        "sandbox_group_request",
        SandboxGroupRequest,
        "Sandbox: a join request or an invitation of the bot; returns its flag.",
    ),
)
