"""Catalog: group information and management; the sandbox's simulated members' side of them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gateway.actions.catalog import Action, Params
from gateway.actions.friend import NoCache

MAX_BAN_SECONDS = 30 * 24 * 3600
"""QQ mutes a member for at most 30 days."""

HonorType = Literal["all", "talkative", "performer", "legend", "strong_newbie", "emotion"]


class GroupId(Params):
    """An action on one group."""

    group_id: int
    """The group."""


class GetGroupInfo(GroupId):
    """Parameters of `get_group_info` and `get_group_member_list`."""

    no_cache: bool = False
    """Bypass caches (the sandbox has none)."""


class GroupMember(Params):
    """An action on one member of a group."""

    group_id: int
    """The group."""
    user_id: int
    """The member."""


class GetGroupMemberInfo(GroupMember):
    """Parameters of `get_group_member_info`."""

    no_cache: bool = False
    """Bypass caches (the sandbox has none)."""


class GetGroupHonorInfo(GroupId):
    """Parameters of `get_group_honor_info`."""

    type: HonorType = "all"
    """Which honor list to fill: talkative, performer, legend, strong_newbie, emotion or all."""


class SetGroupKick(GroupMember):
    """Parameters of `set_group_kick`."""

    reject_add_request: bool = False
    """Also refuse the user's future join requests."""


class SetGroupBan(GroupMember):
    """Parameters of `set_group_ban`."""

    duration: int = Field(0, ge=0, le=MAX_BAN_SECONDS)
    """Mute for this many seconds (at most 30 days); 0 lifts a mute (NapCat's default)."""


class SetGroupWholeBan(GroupId):
    """Parameters of `set_group_whole_ban`."""

    enable: bool = True
    """Mute every member below admin (true) or lift it (false)."""


class SetGroupAdmin(GroupMember):
    """Parameters of `set_group_admin`."""

    enable: bool = True
    """Make the member an admin (true) or a plain member again (false)."""


class SetGroupCard(GroupMember):
    """Parameters of `set_group_card`."""

    card: str = ""
    """The new group card; empty removes it."""


class SetGroupName(GroupId):
    """Parameters of `set_group_name`."""

    group_name: str = Field(min_length=1)
    """The new group name."""


class SetGroupPortrait(GroupId):
    """Parameters of `set_group_portrait` (go-cqhttp's; NapCat has it)."""

    file: str = Field(min_length=1)
    """The image: a path, a loopback URL, base64:// data or a media id of this sandbox."""


class SetGroupLeave(GroupId):
    """Parameters of `set_group_leave`."""

    is_dismiss: bool = False
    """Dismiss the group; required when the bot is its owner, ignored otherwise."""


class SetGroupSpecialTitle(GroupMember):
    """Parameters of `set_group_special_title`."""

    special_title: str = ""
    """The title; empty removes it."""
    duration: int = Field(-1, ge=-1)
    """Seconds until the title expires; -1 (or 0) keeps it forever."""


class SandboxJoinGroup(GroupMember):
    """Parameters of `sandbox_join_group`: a simulated user joins a group."""

    user_id: int = Field(gt=0)
    """The user who joins; unknown users are created."""
    nickname: str | None = None
    """Display name for a new user (default `User <id>`)."""


class SandboxSetCard(GroupMember):
    """Parameters of `sandbox_set_card`: a simulated member changes their own card."""

    card: str = ""
    """The new card; empty removes it."""


ACTIONS = (
    Action("get_group_list", NoCache, "The groups the bot is in."),
    Action("get_group_info", GetGroupInfo, "A group's name, member count and mute state."),
    Action("get_group_member_list", GetGroupInfo, "Every member of a group."),
    Action("get_group_member_info", GetGroupMemberInfo, "One member's role, card, title, mute."),
    Action("get_group_honor_info", GetGroupHonorInfo, "Group honors (today's most talkative)."),
    Action("get_group_at_all_remain", GroupId, "How many @all the bot may still send today."),
    Action("get_group_shut_list", GroupId, "Members currently muted."),
    Action("set_group_kick", SetGroupKick, "Remove a member (admin or owner only)."),
    Action("set_group_ban", SetGroupBan, "Mute a member for a while; duration 0 lifts it."),
    Action("set_group_whole_ban", SetGroupWholeBan, "Mute or unmute every non-admin member."),
    Action("set_group_admin", SetGroupAdmin, "Make a member an admin or revoke it (owner only)."),
    Action("set_group_card", SetGroupCard, "Set a member's group card."),
    Action("set_group_name", SetGroupName, "Rename a group (admin or owner only)."),
    Action(
        "set_group_portrait",
        SetGroupPortrait,
        "Set a group's avatar image (admin or owner only); answers NapCat's {result, errMsg}.",
    ),
    Action("set_group_leave", SetGroupLeave, "Leave a group; the owner dismisses it."),
    Action(
        "set_group_special_title",
        SetGroupSpecialTitle,
        "Give a member a special title (owner only).",
        aliases=("set_special_title",),
    ),
    Action("sandbox_join_group", SandboxJoinGroup, "Sandbox: a simulated user joins a group."),
    Action("sandbox_leave_group", GroupMember, "Sandbox: a simulated member leaves a group."),
    Action("sandbox_set_card", SandboxSetCard, "Sandbox: a simulated member changes their card."),
)
