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
    "cancel_group_todo",
    "cancel_online_file",
    "clean_stream_temp_file",
    "complete_group_todo",
    "create_flash_task",
    "download_file_image_stream",
    "download_file_record_stream",
    "download_file_stream",
    "download_fileset",
    "get_ai_characters",
    "get_ai_record",
    "get_fileset_id",
    "get_fileset_info",
    "get_flash_file_list",
    "get_flash_file_url",
    "get_online_file_msg",
    "get_share_link",
    "nc_get_packet_status",
    "receive_online_file",
    "refuse_online_file",
    "send_flash_msg",
    "send_group_ai_record",
    "send_online_file",
    "send_online_folder",
    "send_packet",
    "set_group_todo",
    "test_download_stream",
    "trans_group_file",
    "upload_file_stream",
)

# Names NapCat registers twice for one handler, and the names of NapCat's extended-actions
# overview page (spec-extended-actions.txt) that differ from the registered ones.
_ALIASES: dict[str, tuple[str, ...]] = {}

ACTIONS = tuple(
    Action(name, NapCatParams, SUMMARY, aliases=_ALIASES.get(name, ()), unavailable_hint=HINT)
    for name in _UNAVAILABLE
)
