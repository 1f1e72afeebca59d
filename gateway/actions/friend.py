"""Catalog: friends and users, likes, pokes; the sandbox's simulated users' side of them."""

from __future__ import annotations

from pydantic import Field, model_validator

from gateway.actions.catalog import Action, NoParams, Params

LIKES_PER_DAY = 20
"""At most this many likes per user per day (QQ's limit for SVIP accounts)."""


class GetStrangerInfo(Params):
    """Parameters of `get_stranger_info`."""

    user_id: int
    """QQ number to look up."""
    no_cache: bool = False
    """Bypass caches (the sandbox has none)."""


class NoCache(Params):
    """Parameters of list actions that only take `no_cache`."""

    no_cache: bool = False
    """Bypass caches (the sandbox has none)."""


class SendLike(Params):
    """Parameters of `send_like`."""

    user_id: int
    """The user whose profile the bot likes."""
    times: int = Field(1, ge=1, le=LIKES_PER_DAY)
    """How many likes (1..20; at most 20 per user per day)."""


class DeleteFriend(Params):
    """Parameters of `delete_friend`: `user_id` or NapCat's `friend_id`."""

    user_id: int | None = None
    """The friend to delete."""
    friend_id: int | None = None
    """Same as `user_id` (NapCat's other name)."""
    temp_block: bool = False
    """Also block the user: their later friend requests are refused."""
    temp_both_del: bool = False
    """Delete on both sides (the sandbox always does)."""

    @model_validator(mode="after")
    def _one_id(self) -> DeleteFriend:
        if self.user_id is None and self.friend_id is None:
            raise ValueError("give user_id or friend_id")
        return self

    @property
    def target(self) -> int:
        """The friend's QQ number, whichever name carried it."""
        target = self.user_id if self.user_id is not None else self.friend_id
        assert target is not None
        return target


class SetFriendRemark(Params):
    """Parameters of `set_friend_remark`."""

    user_id: int
    """The friend."""
    remark: str
    """The new remark; empty removes it."""


class SandboxPoke(Params):
    """Parameters of `sandbox_poke`: a simulated user pokes someone."""

    user_id: int = Field(gt=0)
    """The user who pokes."""
    group_id: int | None = None
    """The group to poke in; a private (friend) poke when absent."""
    target_id: int | None = None
    """Who is poked; the bot when absent."""


class SandboxSendLike(Params):
    """Parameters of `sandbox_send_like`: a simulated user likes the bot's profile."""

    user_id: int = Field(gt=0)
    """The user who likes; unknown users are created."""
    times: int = Field(1, ge=1, le=LIKES_PER_DAY)
    """How many likes (1..20; at most 20 per user per day)."""
    nickname: str | None = None
    """Display name for a new user (default `User <id>`)."""


ACTIONS = (
    Action("get_stranger_info", GetStrangerInfo, "Public profile of any QQ user."),
    Action("get_friend_list", NoCache, "The bot's friends with remarks and categories."),
    Action(
        "get_friends_with_category",
        NoParams,
        "The bot's friends grouped by category.",
    ),
    Action(
        "get_unidirectional_friend_list",
        NoParams,
        "Users who added the bot one-way (none in the sandbox).",
    ),
    Action("get_online_clients", NoCache, "Other online devices of the account."),
    Action("send_like", SendLike, "Like a user's profile (1..20 times per day)."),
    Action("delete_friend", DeleteFriend, "Remove a friend."),
    Action("set_friend_remark", SetFriendRemark, "Set the bot's remark for a friend."),
    Action("sandbox_poke", SandboxPoke, "Sandbox: a simulated user pokes the bot or a member."),
    Action("sandbox_send_like", SandboxSendLike, "Sandbox: a simulated user likes the bot."),
)
