"""Account and system actions: login info, status, version, capabilities."""

from __future__ import annotations

from gateway.actions.catalog import Action, NoParams

ACTIONS = (
    Action("get_login_info", NoParams, "The bot account's user_id and nickname."),
    Action("get_status", NoParams, "Whether the account is online and healthy, with counters."),
    Action("get_version_info", NoParams, "Implementation name, version and protocol version."),
    Action("can_send_image", NoParams, "Whether images can be sent (`{yes: bool}`)."),
    Action("can_send_record", NoParams, "Whether voice records can be sent (`{yes: bool}`)."),
)
