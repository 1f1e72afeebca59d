"""Catalog: NapCat's extended group actions (extended info, remark, join and search options,
batch kick, sign-in, pending join requests), plus typing status, pokes and doubtful friend
requests.

Each action is registered under NapCat's name and, where it differs, the name of
spec-extended-actions.txt (`get_group_add_request`, `send_group_sign`, `group_poke`,
`friend_poke`); both spellings of a parameter are accepted where the two documents disagree.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from gateway.actions.catalog import Action, Params
from gateway.actions.group import GroupId

ADD_OPTIONS = {0: "anyone may join", 1: "approval required", 2: "nobody may join"}
"""Join options of `set_group_add_option` (spec-extended-actions.txt)."""

INPUT_EVENTS = {0: "对方正在说话...", 1: "对方正在输入..."}
"""NapCat's `event_type` values of `set_input_status` and the text QQ shows for each."""

InvitePolicy = Literal["disabled", "require_approval", "no_approval", "no_approval_under_100"]


class SetGroupRemark(GroupId):
    """Parameters of `set_group_remark`."""

    remark: str
    """The bot's private remark for the group; empty removes it."""


class SetGroupAddOption(GroupId):
    """Parameters of `set_group_add_option`."""

    add_type: int = Field(validation_alias=AliasChoices("add_type", "option"))
    """0 anyone may join, 1 approval required, 2 nobody may join (`option` in the spec)."""
    group_question: str = ""
    """Question asked of those who want to join."""
    group_answer: str = ""
    """Its expected answer."""

    @field_validator("add_type")
    @classmethod
    def _known_option(cls, value: int) -> int:
        if value not in ADD_OPTIONS:
            raise ValueError("must be 0 (anyone), 1 (approval required) or 2 (nobody)")
        return value


class SetGroupSearch(GroupId):
    """Parameters of `set_group_search`: the spec's `enable` or NapCat's two switches."""

    enable: bool | None = None
    """Whether the group can be found by searching."""
    no_code_finger_open: int | None = None
    """NapCat's raw NT switch, stored as given."""
    no_finger_open: int | None = None
    """NapCat's raw NT switch, stored as given."""

    @model_validator(mode="after")
    def _something(self) -> SetGroupSearch:
        if self.enable is None and self.no_code_finger_open is None and self.no_finger_open is None:
            raise ValueError("give enable (or NapCat's no_code_finger_open / no_finger_open)")
        return self


class SetGroupRobotAddOption(GroupId):
    """Parameters of `set_group_robot_add_option`; switches left out are unchanged."""

    robot_member_switch: int | None = None
    """Whether QQ bots may be added to the group (NT's raw value)."""
    robot_member_examine: int | None = None
    """Whether adding a QQ bot needs approval (NT's raw value)."""


class SetGroupMemberInvitePolicy(GroupId):
    """Parameters of `set_group_member_invite_policy`."""

    policy: InvitePolicy
    """disabled, require_approval, no_approval or no_approval_under_100."""


class SetGroupMemberPermissions(GroupId):
    """Parameters of `set_group_member_permissions`; permissions left out are unchanged."""

    allow_member_upload_album: bool | None = None
    """Members may upload to the group albums."""
    allow_member_temporary_session: bool | None = None
    """Members may start temporary chats with each other."""
    allow_member_create_group: bool | None = None
    """Members may create sub-groups from this group."""


class SetGroupNewMemberHistoryVisibility(GroupId):
    """Parameters of `set_group_new_member_history_visibility`."""

    visible: bool
    """New members can read the messages sent before they joined."""


class GroupFilter(Params):
    """Parameters of `get_group_ignore_add_request` and `get_group_ignored_notifies`."""

    group_id: int | None = None
    """Only requests to this group (the spec's parameter); every group when absent."""


class SetGroupKickMembers(GroupId):
    """Parameters of `set_group_kick_members`."""

    user_ids: list[int] = Field(min_length=1, validation_alias=AliasChoices("user_id", "user_ids"))
    """The members to remove (`user_id` in NapCat, `user_ids` in the spec); one id is a list."""
    reject_add_request: bool = False
    """Also refuse their future join requests."""

    @field_validator("user_ids", mode="before")
    @classmethod
    def _one_is_a_list(cls, value: Any) -> Any:
        return value if isinstance(value, list | tuple) else [value]


class SetInputStatus(Params):
    """Parameters of `set_input_status`: a chat and NapCat's `event_type` or the spec's `status`."""

    user_id: int | None = None
    """The private chat's user."""
    group_id: int | None = None
    """The group chat (the spec's extension); wins over `user_id`."""
    event_type: int | None = None
    """NapCat's kind: 0 speaking, 1 typing."""
    status: int | None = None
    """The spec's switch: 1 typing, 0 stopped."""

    @field_validator("event_type")
    @classmethod
    def _known_event(cls, value: int | None) -> int | None:
        if value is not None and value not in INPUT_EVENTS:
            raise ValueError("must be 0 (speaking) or 1 (typing)")
        return value

    @field_validator("status")
    @classmethod
    def _known_status(cls, value: int | None) -> int | None:
        if value is not None and value not in (0, 1):
            raise ValueError("must be 1 (typing) or 0 (not typing)")
        return value

    @model_validator(mode="after")
    def _chat_and_kind(self) -> SetInputStatus:
        if self.user_id is None and self.group_id is None:
            raise ValueError("give user_id (a private chat) or group_id")
        if self.event_type is None and self.status is None:
            raise ValueError("give event_type (NapCat) or status (1 typing, 0 not typing)")
        return self


class SendPoke(Params):
    """Parameters of `send_poke`, `group_poke` and `friend_poke` (one handler, as in NapCat)."""

    user_id: int
    """The friend (private poke) or the member to poke (group poke)."""
    group_id: int | None = None
    """Poke in this group; a private poke when absent."""
    target_id: int | None = None
    """Who is poked, when not `user_id` (in a private chat: the friend or the bot)."""


class GetDoubtFriendsAddRequest(Params):
    """Parameters of `get_doubt_friends_add_request`."""

    count: int = Field(50, ge=1)
    """At most this many requests, newest first."""


class SetDoubtFriendsAddRequest(Params):
    """Parameters of `set_doubt_friends_add_request`."""

    flag: str = Field(min_length=1)
    """The request's `flag` from `get_doubt_friends_add_request`."""
    approve: bool = True
    """Accept (NapCat can only accept: a refusal is ignored)."""


ACTIONS = (
    Action(
        "get_group_info_ex", GroupId, "A group's info with its join, search and member options."
    ),
    Action("get_group_detail_info", GroupId, "A group's name, remark, counts and mute state."),
    Action("set_group_remark", SetGroupRemark, "Set the bot's remark for a group."),
    Action("set_group_add_option", SetGroupAddOption, "Set who may join and the join question."),
    Action("set_group_search", SetGroupSearch, "Set whether the group can be found by search."),
    Action(
        "set_group_robot_add_option",
        SetGroupRobotAddOption,
        "Set whether QQ bots may be added to the group.",
    ),
    Action(
        "set_group_member_invite_policy",
        SetGroupMemberInvitePolicy,
        "Set whether members' invitations need approval.",
    ),
    Action(
        "set_group_member_permissions",
        SetGroupMemberPermissions,
        "Set what members may do (albums, temporary chats, sub-groups).",
    ),
    Action(
        "set_group_new_member_history_visibility",
        SetGroupNewMemberHistoryVisibility,
        "Set whether new members see earlier messages.",
    ),
    Action(
        "get_group_ignore_add_request",
        GroupFilter,
        "Pending join requests.",
        aliases=("get_group_add_request",),
    ),
    Action("get_group_ignored_notifies", GroupFilter, "Pending join requests and invitations."),
    Action("set_group_kick_members", SetGroupKickMembers, "Remove several members at once."),
    Action(
        "set_group_sign",
        GroupId,
        "Sign in to a group for today.",
        aliases=("send_group_sign",),
    ),
    Action("get_group_signed_list", GroupId, "Who signed in to a group today, in order."),
    Action("set_input_status", SetInputStatus, "Show the bot typing (or speaking) in a chat."),
    Action(
        "send_poke",
        SendPoke,
        "Poke a friend, or a member of a group when group_id is given.",
        aliases=("group_poke", "friend_poke"),
    ),
    Action(
        "get_doubt_friends_add_request",
        GetDoubtFriendsAddRequest,
        "Friend requests QQ flagged as doubtful (the sandbox flags none).",
    ),
    Action(
        "set_doubt_friends_add_request",
        SetDoubtFriendsAddRequest,
        "Accept a doubtful friend request.",
    ),
)
