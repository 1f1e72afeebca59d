"""Catalog: NapCat's extended account actions: online status, signature, avatar, profile likes,
recent contacts, and the account's client key and rkeys.

Each action is registered under NapCat's name and, where it differs, the name of
spec-extended-actions.txt (`set_long_nick`, `get_user_status`); both spellings of a parameter
are accepted where the two documents disagree.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, field_validator, model_validator

from gateway.actions.catalog import Action, NoParams, Params

STATUS_CODES = {10: "online", 30: "away", 40: "invisible", 50: "busy", 60: "Q me", 70: "DND"}
"""QQ's basic online statuses (spec-extended-actions.txt)."""

EXT_STATUS_CODES = frozenset(
    {0, 1000, 1011, 1016, 1018, 1021, 1027, 1028, 1030, 1032, 1051, 1052, 1056, 1058, 1059}
    | {1060, 1061, 1062, 1063, 1070, 1071, 1201, 1300, 1401, 2001, 2003, 2006, 2012, 2013}
    | {2014, 2015, 2017, 2019, 2023, 2025, 2026, 2037, 2047}
)
"""Extended statuses QQ offers (0 = none; the rest are sub-statuses of 10 "online", e.g. 1028
listening to music, 1018 studying, 1016 sleeping, 1300 slacking off, 1401 emo). 2000, the
custom status, is set by `set_diy_online_status`."""

DIY_EXT_STATUS = 2000
"""The extended status QQ reports for a custom (DIY) status."""


class SetOnlineStatus(Params):
    """Parameters of `set_online_status`; every code must be one QQ knows."""

    status: int
    """Basic status: 10 online, 30 away, 40 invisible, 50 busy, 60 Q me, 70 do not disturb."""
    ext_status: int
    """Extended status (0 none, or one of EXT_STATUS_CODES, which need status 10)."""
    battery_status: int = Field(ge=0, le=100)
    """Battery level shown with the status, 0..100."""

    @field_validator("status")
    @classmethod
    def _known_status(cls, value: int) -> int:
        if value not in STATUS_CODES:
            raise ValueError(f"must be one of {', '.join(map(str, STATUS_CODES))}")
        return value

    @field_validator("ext_status")
    @classmethod
    def _known_ext_status(cls, value: int) -> int:
        if value not in EXT_STATUS_CODES:
            raise ValueError("must be 0 or one of QQ's extended status codes (e.g. 1028, 1018)")
        return value

    @model_validator(mode="after")
    def _ext_needs_online(self) -> SetOnlineStatus:
        if self.ext_status and self.status != 10:
            raise ValueError(f"ext_status {self.ext_status} needs status 10 (online)")
        return self


class SetDiyOnlineStatus(Params):
    """Parameters of `set_diy_online_status`: NapCat's face and wording, or the spec's text."""

    face_id: int | None = Field(None, ge=0)
    """The emoji shown with the status (NapCat's required field)."""
    face_type: int = 1
    """Kind of that emoji (NapCat's default 1)."""
    wording: str = " "
    """The status text (NapCat's default one space)."""
    status: str | None = None
    """The status text, as spec-extended-actions.txt names it; wins over `wording`."""

    @model_validator(mode="after")
    def _face_or_text(self) -> SetDiyOnlineStatus:
        if self.face_id is None and self.status is None:
            raise ValueError("give face_id (NapCat) or status (the custom status text)")
        return self

    @property
    def text(self) -> str:
        """The status text, whichever name carried it."""
        return self.status if self.status is not None else self.wording


class SetLongNick(Params):
    """Parameters of `set_self_longnick` / `set_long_nick`."""

    long_nick: str = Field(validation_alias=AliasChoices("longNick", "long_nick"))
    """The new signature (`longNick`; `long_nick` also accepted); empty clears it."""


class SetQQAvatar(Params):
    """Parameters of `set_qq_avatar`."""

    file: str = Field(min_length=1)
    """The image: a path, a loopback URL, base64:// data or a media id of this sandbox."""


class UserId(Params):
    """Parameters of `nc_get_user_status` / `get_user_status`."""

    user_id: int
    """The QQ user."""


class GetProfileLike(Params):
    """Parameters of `get_profile_like`."""

    user_id: int | None = None
    """Whose profile; the bot's when absent."""
    start: int = Field(0, ge=0)
    """Skip this many entries of each user list."""
    count: int = Field(10, ge=1)
    """At most this many entries in each user list."""


class GetRecentContact(Params):
    """Parameters of `get_recent_contact`."""

    count: int = Field(10, ge=1)
    """At most this many chats, most recent first."""


ACTIONS = (
    Action(
        "set_online_status",
        SetOnlineStatus,
        "Set the bot's online status, extended status and battery level.",
    ),
    Action(
        "set_diy_online_status",
        SetDiyOnlineStatus,
        "Set a custom status (emoji and text); get_status reports it.",
    ),
    Action(
        "set_self_longnick",
        SetLongNick,
        "Set the bot's signature (long nick).",
        aliases=("set_long_nick",),
    ),
    Action("set_qq_avatar", SetQQAvatar, "Set the bot's avatar image."),
    Action(
        "nc_get_user_status",
        UserId,
        "A user's online status and extended status.",
        aliases=("get_user_status",),
    ),
    Action("get_profile_like", GetProfileLike, "Likes a profile received and its owner gave."),
    Action("get_recent_contact", GetRecentContact, "Recent chats with their latest message."),
    Action("get_robot_uin_range", NoParams, "QQ number ranges of official QQ bot accounts."),
    Action("get_clientkey", NoParams, "The login's client key (stable within a login)."),
    Action("get_rkey", NoParams, "Image download keys (rkeys) for private and group chats."),
    Action("nc_get_rkey", NoParams, "The rkeys in NT's raw form."),
    Action("get_rkey_server", NoParams, "The rkeys as NapCat's rkey server answers them."),
)
