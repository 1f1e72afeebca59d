"""Catalog: group albums (QQ's 群相册): list albums and their media, upload, comment, like,
delete. Field names are NapCat's (`lloc` is a media item's id, `batch_id` the upload it came in);
the spec's `photo_id`, `comment` and `image` are accepted as aliases.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field

from gateway.actions.catalog import Action, Params


class GetQunAlbumList(Params):
    """Parameters of `get_qun_album_list`."""

    group_id: int
    """The group."""
    attach_info: str = ""
    """The previous page's `attach_info`; empty for the first page."""


class GetGroupAlbumMediaList(Params):
    """Parameters of `get_group_album_media_list`."""

    group_id: int
    """The group."""
    album_id: str
    """The album."""
    attach_info: str = ""
    """The previous page's `attach_info`; empty for the first page."""


class UploadImageToQunAlbum(Params):
    """Parameters of `upload_image_to_qun_album`. An album id the group does not have yet creates
    that album, named `album_name`."""

    group_id: int
    """The group."""
    album_id: str = Field(min_length=1)
    """The album."""
    file: str = Field(validation_alias=AliasChoices("file", "image"))
    """The image (`image` is accepted too): a path, file:// URL, base64://, data: URL, loopback
    URL or a media id."""
    album_name: str = ""
    """The album's name, used when the upload creates it (its id otherwise)."""


class DoGroupAlbumComment(Params):
    """Parameters of `do_group_album_comment`."""

    group_id: int
    """The group."""
    album_id: str
    """The album."""
    lloc: str = Field(validation_alias=AliasChoices("lloc", "photo_id"))
    """The media item (`photo_id` is accepted too)."""
    content: str = Field(min_length=1, validation_alias=AliasChoices("content", "comment"))
    """The comment (`comment` is accepted too)."""


class AlbumMediaLike(Params):
    """Parameters of `set_group_album_media_like` / `cancel_group_album_media_like`."""

    group_id: int
    """The group."""
    album_id: str
    """The album."""
    batch_id: str
    """The upload batch."""
    lloc: str | None = Field(None, validation_alias=AliasChoices("lloc", "photo_id"))
    """One media item of the batch; the whole batch when absent."""


class DelGroupAlbumMedia(Params):
    """Parameters of `del_group_album_media`."""

    group_id: int
    """The group."""
    album_id: str
    """The album."""
    lloc: str = Field(validation_alias=AliasChoices("lloc", "photo_id"))
    """The media item (`photo_id` is accepted too)."""


ACTIONS = (
    Action("get_qun_album_list", GetQunAlbumList, "A group's albums, a page at a time."),
    Action(
        "get_group_album_media_list",
        GetGroupAlbumMediaList,
        "The media of a group album with their likes and comments, a page at a time.",
    ),
    Action(
        "upload_image_to_qun_album",
        UploadImageToQunAlbum,
        "Store an image in a group album (creating the album when new).",
    ),
    Action("do_group_album_comment", DoGroupAlbumComment, "Comment on a group album's media."),
    Action(
        "set_group_album_media_like",
        AlbumMediaLike,
        "Like a group album's media item (or a whole upload batch).",
    ),
    Action(
        "cancel_group_album_media_like",
        AlbumMediaLike,
        "Take back a like on a group album's media item (or a whole upload batch).",
    ),
    Action(
        "del_group_album_media",
        DelGroupAlbumMedia,
        "Delete a media item from a group album (its uploader, an admin or the owner).",
    ),
)
