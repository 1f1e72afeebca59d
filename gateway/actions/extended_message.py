"""Catalog: NapCat's extended message actions: emoji reactions, single-message forwards, read
marks, favourites, custom faces, inline keyboards and ark cards.

Each action is listed under NapCat's registered name (what a relay forwards upstream), with the
names of spec-extended-actions.txt as aliases where they differ. Parameter fields carry NapCat's
spelling, so a relay forwards them unchanged; the spec's spelling is accepted as an alias.
Album, system and tool actions live in `albums` and `extended_system`, collected here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, model_validator

from gateway.actions import albums, extended_system
from gateway.actions.catalog import Action, NoParams, Params

EMOJI_ID = r"^[0-9]{1,10}$"
"""A QQ face id (1..3 digits) or a Unicode emoji's code point in decimal."""
EMOJI_TYPE = r"^[12]$"
"""1 for a QQ face, 2 for a Unicode emoji."""


class SetMsgEmojiLike(Params):
    """Parameters of `set_msg_emoji_like`."""

    message_id: int
    """The group message to react to."""
    emoji_id: str = Field(pattern=EMOJI_ID)
    """QQ face id (up to 3 digits, emoji type 1) or an emoji's code point (type 2)."""
    set: bool = True
    """Add the reaction (true) or take it back (false)."""


class SandboxSetMsgEmojiLike(SetMsgEmojiLike):
    """Parameters of `sandbox_set_msg_emoji_like`: a simulated member reacts."""

    user_id: int = Field(gt=0)
    """The reacting member."""


class FetchEmojiLike(Params):
    """Parameters of `fetch_emoji_like`."""

    message_id: int
    """The message."""
    emojiId: str = Field(pattern=EMOJI_ID, validation_alias=AliasChoices("emojiId", "emoji_id"))
    """The emoji (`emoji_id` is accepted too)."""
    emojiType: str = Field(
        pattern=EMOJI_TYPE, validation_alias=AliasChoices("emojiType", "emoji_type")
    )
    """1 for a QQ face, 2 for a Unicode emoji (`emoji_type` is accepted too)."""
    count: int = Field(20, ge=1, le=200)
    """Users per page (1..200)."""
    cookie: str = ""
    """The `cookie` of the previous page; empty for the first page."""


class GetEmojiLikes(Params):
    """Parameters of `get_emoji_likes`."""

    message_id: int
    """The message."""
    emoji_id: str = Field(pattern=EMOJI_ID)
    """The emoji."""
    group_id: int | None = None
    """The message's group (optional; checked when given)."""
    emoji_type: str | None = Field(None, pattern=EMOJI_TYPE)
    """1 or 2; derived from `emoji_id` when absent."""
    count: int = Field(0, ge=0)
    """At most this many users; 0 for all."""


class ForwardSingleMsg(Params):
    """Parameters of `forward_friend_single_msg` / `forward_group_single_msg`: the target is
    `group_id` when given, else `user_id` (as NapCat, both actions accept either)."""

    message_id: int
    """The message to forward."""
    user_id: int | None = None
    """A friend to forward it to."""
    group_id: int | None = None
    """A group to forward it to."""


class FetchPttText(Params):
    """Parameters of `fetch_ptt_text`."""

    message_id: int
    """A message with a voice record."""


class CreateCollection(Params):
    """Parameters of `create_collection`: a stored message (`message_id`, the spec's form) or
    NapCat's `rawData` and `brief`."""

    message_id: int | None = None
    """Collect this message."""
    rawData: str | None = None
    """Content to collect (NapCat's form)."""
    brief: str | None = None
    """Summary shown in the list (NapCat's form; derived from the message otherwise)."""

    @model_validator(mode="after")
    def _one_source(self) -> CreateCollection:
        if self.message_id is None and self.rawData is None:
            raise ValueError("give message_id (or NapCat's rawData and brief)")
        return self


class GetCollectionList(Params):
    """Parameters of `get_collection_list`."""

    category: int = Field(0, ge=0)
    """0 for every item; 1 text, 2 image, 3 voice/video/file."""
    count: int = Field(50, ge=1, le=1000)
    """At most this many items, newest first."""


class FaceCount(Params):
    """Parameters of `fetch_custom_face` / `fetch_custom_face_detail`."""

    count: int = Field(48, ge=1, le=1000)
    """At most this many faces, newest first."""


class AddCustomFace(Params):
    """Parameters of `add_custom_face`."""

    file: str
    """The image: a path, file:// URL, base64://, data: URL, loopback URL or a media id."""
    emoji_id: str = ""
    """Market-face emoji id, when it is one."""
    package_id: str = "0"
    """Market-face package id."""
    file_name: str = ""
    """Name; the file's own name when absent."""
    file_size: int | None = None
    """Checked against the content when given."""
    md5: str | None = None
    """Checked against the content when given (hex)."""
    is_mark_face: bool = False
    """A market face."""
    is_origin: bool = False
    """Keep the original image."""


class DeleteCustomFace(Params):
    """Parameters of `delete_custom_face`: faces by `res_id`, `id`, `ids` or `md5`."""

    res_id: str | list[str] | None = None
    """`resId` of `fetch_custom_face_detail`, or a list of them."""
    id: str | list[str] | None = None
    """Same as `res_id`."""
    ids: list[str] | None = None
    """A list of `resId`s."""
    md5: str | list[str] | None = None
    """A face's content MD5, or a list of them."""

    @model_validator(mode="after")
    def _something(self) -> DeleteCustomFace:
        if not any((self.res_id, self.id, self.ids, self.md5)):
            raise ValueError("give res_id, id, ids or md5")
        return self


class SetCustomFaceDesc(Params):
    """Parameters of `set_custom_face_desc`."""

    emoji_id: int
    """The face's `emoId` (from `fetch_custom_face_detail`)."""
    res_id: str
    """Its `resId`."""
    md5: str
    """Its `md5`."""
    desc: str
    """The new description."""


class ClickInlineKeyboardButton(Params):
    """Parameters of `click_inline_keyboard_button`: the keyboard's message by `message_id` (the
    spec) or NapCat's `msg_seq` (QQ's sequence number, which in the sandbox is the id too)."""

    message_id: int | None = None
    """The message carrying the keyboard."""
    msg_seq: int | None = None
    """NapCat's way to name that message."""
    button_id: str = ""
    """The button's `id`; when empty, the button whose data is `callback_data`."""
    callback_data: str = Field("", validation_alias=AliasChoices("callback_data", "data"))
    """The button's data (`data` is accepted too)."""
    group_id: int | None = None
    """The message's group (checked when given)."""
    bot_appid: str = ""
    """The keyboard's bot app id (checked when the keyboard names one)."""

    @model_validator(mode="after")
    def _message(self) -> ClickInlineKeyboardButton:
        if self.message_id is None and self.msg_seq is None:
            raise ValueError("give message_id (or NapCat's msg_seq)")
        return self

    @property
    def message(self) -> int:
        """The keyboard message's id, whichever name carried it."""
        message = self.message_id if self.message_id is not None else self.msg_seq
        assert message is not None
        return message


class GetMiniAppArk(Params):
    """Parameters of `get_mini_app_ark`: a preset `type` (bili, weibo) or an `app_id`, and what
    the card shows."""

    type: Literal["bili", "weibo"] | None = None
    """A preset mini app."""
    appId: str | None = Field(None, validation_alias=AliasChoices("app_id", "appId"))
    """The mini app's id (`app_id` or NapCat's `appId`); required without `type`."""
    title: str = ""
    """Card title."""
    desc: str = ""
    """Card description."""
    picUrl: str = ""
    """Preview picture URL."""
    jumpUrl: str = ""
    """Where the card leads in the mini app."""
    webUrl: str = ""
    """Web fallback URL."""
    iconUrl: str = ""
    """The mini app's icon URL."""
    scene: int = 1036
    """Share scene."""
    rawArkData: bool = False
    """Return the ark as a JSON string instead of an object."""

    @model_validator(mode="after")
    def _app(self) -> GetMiniAppArk:
        if self.type is None and not self.appId:
            raise ValueError("give app_id (or type: bili or weibo)")
        return self


class ShareContact(Params):
    """Parameters of `send_ark_share` (`ArkSharePeer`, `share_contact`)."""

    user_id: int | None = None
    """Share this user's contact card."""
    group_id: int | None = None
    """Share this group's card (wins over `user_id`, as NapCat)."""
    phone_number: str = Field("", validation_alias=AliasChoices("phone_number", "phoneNumber"))
    """A phone number shown on a user's card."""

    @model_validator(mode="after")
    def _target(self) -> ShareContact:
        if self.user_id is None and self.group_id is None:
            raise ValueError("give user_id or group_id")
        return self


class ShareGroup(Params):
    """Parameters of `send_group_ark_share` (`ArkShareGroup`)."""

    group_id: int
    """The group to share."""


_ACTIONS = (
    Action(
        "set_msg_emoji_like",
        SetMsgEmojiLike,
        "React to a group message with an emoji (or take it back); emits group_msg_emoji_like.",
    ),
    Action(
        "fetch_emoji_like",
        FetchEmojiLike,
        "Users who reacted to a message with one emoji, a page at a time (`cookie`).",
    ),
    Action("get_emoji_likes", GetEmojiLikes, "Users who reacted to a message with one emoji."),
    Action(
        "sandbox_set_msg_emoji_like",
        SandboxSetMsgEmojiLike,
        "Sandbox: a simulated member reacts to a group message; emits group_msg_emoji_like.",
    ),
    Action(
        "forward_friend_single_msg",
        ForwardSingleMsg,
        "Forward one stored message to a friend (or a group); a new message is sent.",
    ),
    Action(
        "forward_group_single_msg",
        ForwardSingleMsg,
        "Forward one stored message to a group (or a friend); a new message is sent.",
    ),
    Action("_mark_all_as_read", NoParams, "Mark every chat as read."),
    Action(
        "fetch_ptt_text",
        FetchPttText,
        "Speech to text of a voice message (the sandbox has no speech recognition: 1200).",
    ),
    Action(
        "create_collection",
        CreateCollection,
        "Add a message (or NapCat's rawData and brief) to the account's favourites.",
    ),
    Action(
        "get_collection_list",
        GetCollectionList,
        "The account's favourites, newest first, by category (0 for all).",
    ),
    Action("fetch_custom_face", FaceCount, "URLs of the account's custom faces (stickers)."),
    Action(
        "fetch_custom_face_detail",
        FaceCount,
        "The account's custom faces with emoId, resId, md5, url and description.",
    ),
    Action("add_custom_face", AddCustomFace, "Store an image as a custom face."),
    Action("delete_custom_face", DeleteCustomFace, "Delete custom faces by resId or md5."),
    Action("set_custom_face_desc", SetCustomFaceDesc, "Change a custom face's description."),
    Action(
        "click_inline_keyboard_button",
        ClickInlineKeyboardButton,
        "Click a button of a message's inline keyboard: a command button sends its text, a "
        "link button answers its URL, a callback button answers its data.",
    ),
    Action(
        "get_mini_app_ark",
        GetMiniAppArk,
        "A mini-app card (ark JSON, `{data}`) built from the parameters; send it as a json "
        "segment.",
    ),
    Action(
        "send_ark_share",
        ShareContact,
        "A contact card (ark JSON) of a user (`arkMsg`) or a group (`arkJson`).",
        aliases=("ArkSharePeer", "share_contact"),
    ),
    Action(
        "send_group_ark_share",
        ShareGroup,
        "A group's share card as an ark JSON string.",
        aliases=("ArkShareGroup",),
    ),
)

ACTIONS: tuple[Action, ...] = (*_ACTIONS, *albums.ACTIONS, *extended_system.ACTIONS)
