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

_UNAVAILABLE = (
    "_mark_all_as_read",
    "add_custom_face",
    "bot_exit",
    "cancel_group_album_media_like",
    "cancel_group_todo",
    "cancel_online_file",
    "clean_stream_temp_file",
    "click_inline_keyboard_button",
    "complete_group_todo",
    "create_collection",
    "create_flash_task",
    "del_group_album_media",
    "delete_custom_face",
    "do_group_album_comment",
    "download_file_image_stream",
    "download_file_record_stream",
    "download_file_stream",
    "download_fileset",
    "fetch_custom_face",
    "fetch_custom_face_detail",
    "fetch_emoji_like",
    "fetch_ptt_text",
    "forward_friend_single_msg",
    "forward_group_single_msg",
    "get_ai_characters",
    "get_ai_record",
    "get_clientkey",
    "get_collection_list",
    "get_doubt_friends_add_request",
    "get_emoji_likes",
    "get_fileset_id",
    "get_fileset_info",
    "get_flash_file_list",
    "get_flash_file_url",
    "get_group_album_media_list",
    "get_group_detail_info",
    "get_group_ignore_add_request",
    "get_group_ignored_notifies",
    "get_group_info_ex",
    "get_group_signed_list",
    "get_mini_app_ark",
    "get_online_file_msg",
    "get_profile_like",
    "get_qun_album_list",
    "get_recent_contact",
    "get_rkey",
    "get_rkey_server",
    "get_robot_uin_range",
    "get_share_link",
    "nc_get_packet_status",
    "nc_get_rkey",
    "nc_get_user_status",
    "receive_online_file",
    "refuse_online_file",
    "send_ark_share",
    "send_flash_msg",
    "send_group_ai_record",
    "send_group_ark_share",
    "send_online_file",
    "send_online_folder",
    "send_packet",
    "send_poke",
    "set_custom_face_desc",
    "set_diy_online_status",
    "set_doubt_friends_add_request",
    "set_group_add_option",
    "set_group_album_media_like",
    "set_group_kick_members",
    "set_group_remark",
    "set_group_robot_add_option",
    "set_group_search",
    "set_group_sign",
    "set_group_todo",
    "set_input_status",
    "set_msg_emoji_like",
    "set_online_status",
    "set_qq_avatar",
    "set_self_longnick",
    "test_download_stream",
    "trans_group_file",
    "translate_en2zh",
    "upload_file_stream",
    "upload_image_to_qun_album",
)

# Names NapCat registers twice for one handler, and the names of NapCat's extended-actions
# overview page (spec-extended-actions.txt) that differ from the registered ones.
_ALIASES = {
    "get_group_ignore_add_request": ("get_group_add_request",),
    "nc_get_user_status": ("get_user_status",),
    "send_ark_share": ("ArkSharePeer", "share_contact"),
    "send_group_ark_share": ("ArkShareGroup",),
    "send_poke": ("group_poke", "friend_poke"),
    "set_group_sign": ("send_group_sign",),
    "set_self_longnick": ("set_long_nick",),
    "translate_en2zh": ("translate_en_word_to_zn",),
}

ACTIONS = tuple(
    Action(name, NapCatParams, SUMMARY, aliases=_ALIASES.get(name, ())) for name in _UNAVAILABLE
)
