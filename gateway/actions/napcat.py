"""Catalog: NapCat actions the sandbox cannot simulate; they are available through the relay.

Every action of NapCat's catalog (the `paths` of napcat-openapi-4.18.13.json) that no other
catalog module defines is listed here, so the dispatcher knows its name: on the relay backend the
call is forwarded upstream; on the sandbox, which has no handler for it, it answers 1404 "action
'x' is not available on the sandbox backend". The list was computed once from that file (which is
not shipped); a name leaves it when a module implements the action.
"""

from __future__ import annotations

from gateway.actions.catalog import Action, Params


class NapCatParams(Params):
    """Any parameters: they are passed upstream unchanged."""


SUMMARY = "NapCat action; available through the relay backend"
HINT = "it needs a real QQ login: use the relay backend in front of NapCat"

_UNAVAILABLE = (
    "get_ai_characters",
    "get_ai_record",
    "nc_get_packet_status",
    "send_group_ai_record",
    "send_packet",
)

# Names NapCat registers twice for one handler, and the names of NapCat's extended-actions
# overview page (spec-extended-actions.txt) that differ from the registered ones.
_ALIASES: dict[str, tuple[str, ...]] = {}

ACTIONS = tuple(
    Action(name, NapCatParams, SUMMARY, aliases=_ALIASES.get(name, ()), unavailable_hint=HINT)
    for name in _UNAVAILABLE
)
