"""Catalog: group announcements (NapCat's `_send_group_notice` family)."""

from __future__ import annotations

from pydantic import Field

from gateway.actions.catalog import Action, Params


class _Group(Params):
    group_id: int
    """The group."""


class SendGroupNotice(_Group):
    """Parameters of `_send_group_notice`."""

    content: str = Field(min_length=1)
    """The announcement's text."""
    image: str | None = None
    """An image, in any file URI form (base64://, file://, a path, a media id, a loopback URL)."""
    pinned: int = Field(0, ge=0, le=1)
    """1 to pin the announcement."""
    type: int = 1
    """Announcement type (NapCat's default 1)."""
    confirm_required: int = Field(1, ge=0, le=1)
    """1 to ask members to confirm they read it."""
    is_show_edit_card: int = Field(0, ge=0, le=1)
    """1 to prompt members to edit their group card."""
    tip_window_type: int = 0
    """Pop-up style (NapCat's default 0)."""


class GetGroupNotice(_Group):
    """Parameters of `_get_group_notice`."""


class DelGroupNotice(_Group):
    """Parameters of `_del_group_notice`."""

    notice_id: str
    """The announcement's id, from `_get_group_notice`."""


ACTIONS = (
    Action("_send_group_notice", SendGroupNotice, "Publish a group announcement (admin/owner)."),
    Action("_get_group_notice", GetGroupNotice, "A group's announcements, newest first."),
    Action("_del_group_notice", DelGroupNotice, "Delete a group announcement (admin/owner)."),
)
