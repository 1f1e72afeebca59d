"""Friend and user actions."""

from __future__ import annotations

from gateway.actions.catalog import Action, Params


class GetStrangerInfo(Params):
    """Parameters of `get_stranger_info`."""

    user_id: int
    """QQ number to look up."""
    no_cache: bool = False
    """Bypass caches (the sandbox has none)."""


ACTIONS = (Action("get_stranger_info", GetStrangerInfo, "Public profile of any QQ user."),)
