"""Catalog: the bot account's profile, web credentials, device model, URL checks and guilds."""

from __future__ import annotations

from pydantic import Field

from gateway.actions.catalog import Action, NoParams, Params


class SetQQProfile(Params):
    """Parameters of `set_qq_profile`."""

    nickname: str = Field(min_length=1)
    """New nickname (`get_login_info` reports it)."""
    personal_note: str | None = None
    """New personal signature (long nick); unchanged when absent."""
    sex: int | None = Field(None, ge=0, le=2)
    """0 unknown, 1 male, 2 female; unchanged when absent."""


class Domain(Params):
    """Parameters of `get_cookies`."""

    domain: str = Field(min_length=1)
    """The web domain the cookies are for (e.g. `qun.qq.com`)."""


class Credentials(Params):
    """Parameters of `get_credentials` (the extended-actions spec lists none)."""

    domain: str = ""
    """The web domain the cookies are for; without one, the account's own cookies."""


class GetModelShow(Params):
    """Parameters of `_get_model_show`."""

    model: str = ""
    """The device model asked about."""


class SetModelShow(Params):
    """Parameters of `_set_model_show` (NapCat ignores them; the sandbox stores `model_show`)."""

    model: str = ""
    """The device model."""
    model_show: str = ""
    """The name to show for it; kept when empty."""


class CheckUrlSafely(Params):
    """Parameters of `check_url_safely`."""

    url: str
    """The URL to check."""


ACTIONS = (
    Action("set_qq_profile", SetQQProfile, "Change the bot's nickname, signature and sex."),
    Action("get_cookies", Domain, "Web cookies for a domain and the matching bkn."),
    Action("get_csrf_token", NoParams, "The web CSRF token (bkn) as a number."),
    Action("get_credentials", Credentials, "Cookies for a domain and the CSRF token together."),
    Action("_get_model_show", GetModelShow, "How the bot's device model is shown."),
    Action("_set_model_show", SetModelShow, "Set how the bot's device model is shown."),
    Action("check_url_safely", CheckUrlSafely, "A URL's safety level (1 safe, 2 unknown, 3 bad)."),
    Action("get_guild_list", NoParams, "Guilds (QQ channels) the bot is in: none (null)."),
    Action("get_guild_service_profile", NoParams, "The bot's guild profile: none (null)."),
)
