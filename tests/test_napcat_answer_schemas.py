"""Every action the sandbox serves answers `data` of the shape NapCat's OpenAPI document gives.

One gateway for the module, one WebSocket client. `EXAMPLES` holds, per catalog action, the
parameters of a call that succeeds; the calls run in its order, so earlier answers (a message
sent, a file uploaded, a notice posted…) give later calls their ids, and the actions that
destroy state (recall, kick, leave, delete the friend, restart) come last. Each answer's `data`
is checked against NapCat's response schema (tests/napcat_schema.py), and the lists the schema
leaves untyped item by item against the document's components (`UNTYPED_ITEMS`: messages,
members, essence contents); every mismatch is listed at once. A served action without an
example fails `test_every_served_action_has_an_example`, so the coverage stays total.

The exceptions, each a dict of action -> why: `NAPCAT_SCHEMA_WRONG` where NapCat's document is
itself wrong about what NapCat answers (checked against the corrected schema instead);
`PENDING_ITEM_2` the message-shaped answers being reworked (issue 16 item 2) that do not match
yet; `REFUSED_HERE` the actions that cannot succeed in a test process (they must be refused);
`SKIPPED_HERE` the two whose engines take seconds to load (checked in their own tests). An
exception that is no longer needed fails `test_exception_lists_are_current`. The sandbox's own
actions, which NapCat does not have, are called but not checked (`NOT_IN_NAPCAT`).
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
import pytest_asyncio

from gateway.actions import default_catalog
from gateway.backends.sandbox.backend import HANDLERS
from gateway.backends.sandbox.extended_account import save_json
from gateway.backends.sandbox.extended_group import DOUBT_KEY
from tests import napcat_schema
from tests.conftest import run_gateway
from tests.stream_client import ws_stream

pytestmark = pytest.mark.asyncio(loop_scope="module")

BOT, ALICE, BOB, CAROL, DAVE, EVE = 10001, 20001, 20002, 20003, 20004, 20005
LAB, PLAYGROUND = 30001, 30002
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
SILK = b"#!SILK_V3" + b"\x01\x02\x03"
AVATAR = hashlib.md5(PNG).hexdigest().upper() + ".png"  # noqa: S324 - the media id
"""The media id of `PNG` once `set_qq_avatar` stored it."""


def b64(content: bytes) -> str:
    return "base64://" + base64.b64encode(content).decode()


NAPCAT_SCHEMA_WRONG: dict[str, str] = {
    action: why for action, (_schema, why) in napcat_schema.ERRATA.items()
}
"""Where NapCat's document is wrong about what NapCat itself answers: action -> why. The
answers are checked against the corrected schema `napcat_schema.ERRATA` holds with the reason
(get_msg, fetch_custom_face_detail, get_doubt_friends_add_request, cancel_online_file,
refuse_online_file), and each must still differ from the document, or the erratum goes."""

PENDING_ITEM_2: dict[str, str] = {}
"""Message-shaped answers that do not match NapCat's yet and are being reworked (issue 16 item
2): action -> what differs. Empty it as they are fixed; a fixed one fails
test_exception_lists_are_current until it is taken off."""

UNTYPED_ITEMS: dict[str, tuple[tuple[str, ...], str]] = {
    "get_group_msg_history": (("messages", "*"), "OB11Message"),
    "get_friend_msg_history": (("messages", "*"), "OB11Message"),
    "get_forward_msg": (("messages", "*"), "OB11Message"),
    "get_group_member_list": (("*",), "OB11GroupMember"),
    "get_essence_msg_list": (("*", "content", "*"), "OB11MessageData"),
}
"""Lists NapCat's document leaves untyped though its code fills them with what one of the
document's components describes: action -> (where in `data`, `*` every item; the component).
Each item is checked against the component too."""

REFUSED_HERE: dict[str, str] = {
    "bot_exit": "it ends the process by SIGTERM, so it refuses (1200) where nothing handles "
    "SIGTERM, as in this test's process; NapCat exits without answering at all, so there is no "
    "answer of NapCat's to compare with",
    "fetch_ptt_text": "the sandbox has no speech recognition: it refuses (1200) every voice "
    "record, naming why; the relay backend asks QQ",
}
"""Served actions that cannot succeed here: action -> why. Their example must be refused."""

SKIPPED_HERE: dict[str, str] = {
    "ocr_image": "loading the OCR model takes ~6 s, more than all other calls together; "
    "test_ocr checks its answer against NapCat's schema",
    "translate_en2zh": "loading the dictionary takes ~15 s; test_extended_system checks its "
    "answer against NapCat's schema",
}
"""Served actions not called here: action -> why, and where their answer is checked."""

NOT_IN_NAPCAT = {name for name in HANDLERS if name.startswith("sandbox_")}
"""Served actions NapCat does not have, the sandbox's own simulation controls: called (their
example must succeed), their answers not checked. (Actions newer than NapCat's document are
checked against the schema their code declares: `napcat_schema.NEWER`.)"""


@dataclass
class Run:
    """The calls made so far: each action's `data` (the final envelope's), for later params."""

    tmp: Path
    data: dict[str, Any] = field(default_factory=dict)
    kept: dict[str, Any] = field(default_factory=dict)
    """What setup calls outside the table made, for later examples."""
    envelopes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    ws: aiohttp.ClientWebSocketResponse | None = None
    backend: Any = None

    async def call(self, action: str, **params: Any) -> Any:
        """A setup call outside the table: its data, or AssertionError when it fails."""
        assert self.ws is not None
        answers = [a async for a in ws_stream(self.ws, action, params)]
        final = answers[-1]
        assert final["retcode"] == 0, f"setup call {action} failed: {final}"
        return final["data"]

    def file(self, name: str, content: bytes) -> str:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return str(path)


Example = dict[str, Any] | Callable[[Run], dict[str, Any] | Awaitable[dict[str, Any]]]


async def _incoming(run: Run) -> dict[str, Any]:
    return {"message_type": "group", "group_id": LAB, "user_id": CAROL, "message": "hello lab"}


def incoming_id(run: Run) -> int:
    message_id: int = run.data["sandbox_receive_message"]["message_id"]
    return message_id


async def said(run: Run, text: str, user_id: int = CAROL, group_id: int = LAB) -> int:
    data = await run.call(
        "sandbox_receive_message",
        message_type="group",
        group_id=group_id,
        user_id=user_id,
        message=text,
    )
    message_id: int = data["message_id"]
    return message_id


async def _essence(run: Run) -> dict[str, Any]:
    run.kept["essence"] = await said(run, "worth keeping")
    return {"message_id": run.kept["essence"]}


async def _voice(run: Run) -> dict[str, Any]:
    record = {"type": "record", "data": {"file": b64(SILK)}}
    sent = await run.call("send_private_msg", user_id=ALICE, message=[record])
    stored = await run.call("get_msg", message_id=sent["message_id"])
    run.kept["voice"] = stored["message"][0]["data"]["file"]
    return {"message_id": sent["message_id"]}


def _batch(run: Run) -> dict[str, Any]:
    uploaded = run.data["upload_image_to_qun_album"]
    return {"batch_id": uploaded["batch_id"], "lloc": uploaded["lloc"]}


async def _temporary_group_file(run: Run) -> dict[str, Any]:
    data = await run.call(
        "sandbox_upload_group_file",
        group_id=LAB,
        user_id=CAROL,
        name="tmp.txt",
        file=b64(b"tmp"),
        temporary=True,
    )
    return {"group_id": LAB, "file_id": data["file_id"]}


async def _quick(run: Run) -> dict[str, Any]:
    message_id = await said(run, "quick?")
    context = {
        "post_type": "message",
        "message_type": "group",
        "group_id": LAB,
        "user_id": CAROL,
        "message_id": message_id,
    }
    return {"context": context, "operation": {"reply": "sure"}}


async def _keyboard(run: Run) -> dict[str, Any]:
    keyboard = {
        "type": "keyboard",
        "data": {
            "content": {
                "rows": [
                    {
                        "buttons": [
                            {
                                "id": "help",
                                "render_data": {"label": "help", "visited_label": "help"},
                                "action": {
                                    "type": 2,
                                    "permission": {"type": 2},
                                    "data": "/help",
                                },
                            }
                        ]
                    }
                ]
            }
        },
    }
    data = await run.call("send_group_msg", group_id=LAB, message=[keyboard])
    return {"message_id": data["message_id"], "button_id": "help", "callback_data": "/help"}


async def _online_folder(run: Run) -> dict[str, Any]:
    run.file("folder/x.txt", b"x")
    return {"user_id": ALICE, "folder_path": str(run.tmp / "folder")}


async def _friend_offer(run: Run) -> dict[str, Any]:
    data = await run.call("sandbox_send_online_file", user_id=ALICE, file=b64(b"o"), name="o.txt")
    return {"user_id": ALICE, "msg_id": data["msg_id"], "element_id": data["element_id"]}


def _fileset(run: Run) -> dict[str, Any]:
    fileset_id: str = run.data["create_flash_task"]["createFlashTransferResult"]["fileSetId"]
    return {"fileset_id": fileset_id}


def _group_file(run: Run) -> str:
    file_id: str = run.data["upload_group_file"]["file_id"]
    return file_id


async def _deletable_group_file(run: Run) -> dict[str, Any]:
    data = await run.call("upload_group_file", group_id=LAB, file=b64(b"bye"), name="bye.txt")
    return {"group_id": LAB, "file_id": data["file_id"]}


def _folder_id(run: Run) -> str:
    folder_id: str = run.data["create_group_file_folder"]["groupItem"]["folderInfo"]["folderId"]
    return folder_id


def _album(run: Run) -> dict[str, Any]:
    return {"group_id": LAB, "album_id": "trip"}


def _lloc(run: Run) -> str:
    lloc: str = run.data["upload_image_to_qun_album"]["lloc"]
    return lloc


def _notice_id(run: Run) -> str:
    notices = run.data["_get_group_notice"]
    notice_id: str = notices[0]["notice_id"]
    return notice_id


def _face(run: Run) -> dict[str, Any]:
    face: dict[str, Any] = run.data["add_custom_face"]
    return face


async def _upload_stream(run: Run) -> dict[str, Any]:
    """The only chunk is sent by a setup call; the example completes the upload."""
    content = b"streamed"
    chunk = {
        "chunk_data": base64.b64encode(content).decode(),
        "chunk_index": 0,
        "total_chunks": 1,
        "file_size": len(content),
        "filename": "s.bin",
    }
    await run.call("upload_file_stream", stream_id="schema-check", **chunk)
    return {"stream_id": "schema-check", "is_complete": True}


async def _doubtful(run: Run) -> dict[str, Any]:
    """Nothing in the sandbox makes a request doubtful: one is written to its database."""
    assert run.backend is not None
    request = {"flag": "doubt-1", "uin": "40003", "nick": "Doubtful", "msg": "hi", "time": "0"}
    await run.backend.store.run(lambda db: save_json(db, DOUBT_KEY, [request]))
    return {}


EXAMPLES: dict[str, Example] = {
    # The account and the system.
    "get_login_info": {},
    "get_status": {},
    "get_version_info": {},
    "can_send_image": {},
    "can_send_record": {},
    "set_qq_profile": {"nickname": "Sandbox Bot", "personal_note": "testing"},
    "get_cookies": {"domain": "qun.qq.com"},
    "get_csrf_token": {},
    "get_credentials": {"domain": "qun.qq.com"},
    "_get_model_show": {"model": "iPhone"},
    "_set_model_show": {"model": "iPhone", "model_show": "iPhone"},
    "check_url_safely": {"url": "https://example.com"},
    "get_guild_list": {},
    "get_guild_service_profile": {},
    "set_online_status": {"status": 10, "ext_status": 0, "battery_status": 0},
    "set_diy_online_status": {"face_id": 1, "wording": "busy"},
    "set_self_longnick": {"long_nick": "a sandbox"},
    "set_qq_avatar": {"file": b64(PNG)},
    "nc_get_user_status": {"user_id": ALICE},
    "get_profile_like": {},
    "get_robot_uin_range": {},
    "get_clientkey": {},
    "get_rkey": {},
    "nc_get_rkey": {},
    "get_rkey_server": {},
    "translate_en2zh": {"words": ["apple"]},
    "ocr_image": {"image": b64(PNG)},
    # Messages.
    "sandbox_receive_message": _incoming,
    "send_group_msg": {"group_id": LAB, "message": "hi lab"},
    "send_private_msg": {"user_id": ALICE, "message": "hi alice"},
    "send_msg": {"message_type": "group", "group_id": PLAYGROUND, "message": "hi playground"},
    "get_msg": lambda run: {"message_id": run.data["send_group_msg"]["message_id"]},
    "get_group_msg_history": {"group_id": LAB},
    "get_friend_msg_history": {"user_id": ALICE},
    "send_group_forward_msg": {
        "group_id": LAB,
        "messages": [{"type": "node", "data": {"user_id": ALICE, "nickname": "A", "content": "x"}}],
    },
    "send_private_forward_msg": {
        "user_id": ALICE,
        "messages": [{"type": "node", "data": {"user_id": BOB, "nickname": "B", "content": "y"}}],
    },
    "send_forward_msg": {
        "message_type": "group",
        "group_id": LAB,
        "messages": [{"type": "node", "data": {"user_id": BOB, "nickname": "B", "content": "z"}}],
    },
    "get_forward_msg": lambda run: {"id": run.data["send_group_forward_msg"]["res_id"]},
    "mark_msg_as_read": {"group_id": LAB},
    "_mark_all_as_read": {},
    "get_recent_contact": {"count": 5},
    ".handle_quick_operation": _quick,
    "set_msg_emoji_like": lambda run: {"message_id": incoming_id(run), "emoji_id": "76"},
    "sandbox_set_msg_emoji_like": lambda run: {
        "message_id": incoming_id(run),
        "emoji_id": "76",
        "user_id": BOB,
    },
    "fetch_emoji_like": lambda run: {
        "message_id": incoming_id(run),
        "emojiId": "76",
        "emojiType": "1",
    },
    "get_emoji_likes": lambda run: {"message_id": incoming_id(run), "emoji_id": "76"},
    "forward_friend_single_msg": lambda run: {"message_id": incoming_id(run), "user_id": ALICE},
    "forward_group_single_msg": lambda run: {"message_id": incoming_id(run), "group_id": LAB},
    "fetch_ptt_text": _voice,
    "create_collection": lambda run: {"message_id": incoming_id(run)},
    "get_collection_list": {},
    "fetch_custom_face": {},
    "add_custom_face": {"file": b64(PNG), "file_name": "smile.png"},
    "fetch_custom_face_detail": {},
    "set_custom_face_desc": lambda run: {
        "emoji_id": _face(run)["emoId"],
        "res_id": _face(run)["resId"],
        "md5": _face(run)["md5"],
        "desc": "a smile",
    },
    "delete_custom_face": lambda run: {"res_id": _face(run)["resId"]},
    "click_inline_keyboard_button": _keyboard,
    "get_mini_app_ark": {"type": "bili", "title": "t", "desc": "d", "picUrl": "", "jumpUrl": ""},
    "send_ark_share": {"user_id": ALICE},
    "send_group_ark_share": {"group_id": LAB},
    "send_poke": {"user_id": ALICE},
    "set_input_status": {"user_id": ALICE, "event_type": 1},
    # Friends and requests.
    "get_stranger_info": {"user_id": DAVE},
    "get_friend_list": {},
    "get_friends_with_category": {},
    "get_unidirectional_friend_list": {},
    "get_online_clients": {},
    "send_like": {"user_id": ALICE, "times": 1},
    "set_friend_remark": {"user_id": BOB, "remark": "bobby"},
    "sandbox_poke": {"user_id": ALICE},
    "sandbox_send_like": {"user_id": ALICE},
    "sandbox_friend_request": {"user_id": 40001, "nickname": "Stranger"},
    "sandbox_group_request": {"group_id": LAB, "user_id": 40002, "nickname": "Joiner"},
    "get_group_system_msg": {},
    "get_doubt_friends_add_request": _doubtful,
    # Groups.
    "get_group_list": {},
    "get_group_info": {"group_id": LAB},
    "get_group_member_list": {"group_id": LAB},
    "get_group_member_info": {"group_id": LAB, "user_id": ALICE},
    "get_group_honor_info": {"group_id": LAB, "type": "all"},
    "get_group_at_all_remain": {"group_id": LAB},
    "get_group_shut_list": {"group_id": LAB},
    "get_group_info_ex": {"group_id": LAB},
    "get_group_detail_info": {"group_id": LAB},
    "set_group_ban": {"group_id": LAB, "user_id": DAVE, "duration": 60},
    "set_group_whole_ban": {"group_id": PLAYGROUND, "enable": False},
    "set_group_admin": {"group_id": PLAYGROUND, "user_id": BOB, "enable": True},
    "set_group_card": {"group_id": LAB, "user_id": CAROL, "card": "carol"},
    "set_group_name": {"group_id": PLAYGROUND, "group_name": "Bot Playground"},
    "set_group_portrait": {"group_id": PLAYGROUND, "file": b64(PNG)},
    "set_group_special_title": {"group_id": PLAYGROUND, "user_id": BOB, "special_title": "b"},
    "set_group_remark": {"group_id": LAB, "remark": "the lab"},
    "set_group_add_option": {"group_id": PLAYGROUND, "add_type": 1},
    "set_group_search": {"group_id": PLAYGROUND, "enable": True},
    "set_group_robot_add_option": {"group_id": PLAYGROUND, "robot_member_switch": 1},
    "set_group_member_invite_policy": {"group_id": PLAYGROUND, "policy": "require_approval"},
    "set_group_member_permissions": {"group_id": PLAYGROUND, "allow_member_upload_album": True},
    "set_group_new_member_history_visibility": {"group_id": PLAYGROUND, "visible": True},
    "get_group_ignore_add_request": {},
    "get_group_ignored_notifies": {},
    "set_group_sign": {"group_id": LAB},
    "get_group_signed_list": {"group_id": LAB},
    "sandbox_join_group": {"group_id": PLAYGROUND, "user_id": ALICE, "nickname": "Alice"},
    "sandbox_set_card": {"group_id": PLAYGROUND, "user_id": ALICE, "card": "al"},
    "sandbox_leave_group": {"group_id": PLAYGROUND, "user_id": ALICE},
    "set_essence_msg": _essence,
    "get_essence_msg_list": {"group_id": LAB},
    "delete_essence_msg": lambda run: {"message_id": run.kept["essence"]},
    "_send_group_notice": {"group_id": LAB, "content": "read me"},
    "_get_group_notice": {"group_id": LAB},
    "_del_group_notice": lambda run: {"group_id": LAB, "notice_id": _notice_id(run)},
    "set_group_todo": lambda run: {"group_id": LAB, "message_id": incoming_id(run)},
    "sandbox_get_group_todo": {"group_id": LAB},
    "complete_group_todo": lambda run: {"group_id": LAB, "message_id": incoming_id(run)},
    "cancel_group_todo": lambda run: {"group_id": LAB, "message_id": incoming_id(run)},
    # Albums.
    "upload_image_to_qun_album": {
        "group_id": LAB,
        "album_id": "trip",
        "album_name": "Trip",
        "file": b64(PNG),
    },
    "get_qun_album_list": {"group_id": LAB},
    "get_group_album_media_list": _album,
    "do_group_album_comment": lambda run: {**_album(run), "lloc": _lloc(run), "content": "nice"},
    "set_group_album_media_like": lambda run: {**_album(run), **_batch(run)},
    "cancel_group_album_media_like": lambda run: {**_album(run), **_batch(run)},
    "del_group_album_media": lambda run: {**_album(run), "lloc": _lloc(run)},
    # Files and media.
    "upload_group_file": {"group_id": LAB, "file": b64(b"report"), "name": "r.txt"},
    "upload_private_file": {"user_id": ALICE, "file": b64(b"doc"), "name": "d.txt"},
    "sandbox_upload_group_file": {
        "group_id": LAB,
        "user_id": CAROL,
        "name": "c.txt",
        "file": b64(b"c"),
    },
    "create_group_file_folder": {"group_id": LAB, "folder_name": "docs"},
    "get_group_file_system_info": {"group_id": LAB},
    "get_group_root_files": {"group_id": LAB},
    "get_group_files_by_folder": lambda run: {"group_id": LAB, "folder_id": _folder_id(run)},
    "get_group_file_url": lambda run: {"group_id": LAB, "file_id": _group_file(run)},
    "move_group_file": lambda run: {
        "group_id": LAB,
        "file_id": _group_file(run),
        "current_parent_directory": "/",
        "target_parent_directory": _folder_id(run),
    },
    "rename_group_file": lambda run: {
        "group_id": LAB,
        "file_id": _group_file(run),
        "current_parent_directory": _folder_id(run),
        "new_name": "report.txt",
    },
    "trans_group_file": _temporary_group_file,
    "get_private_file_url": lambda run: {"file_id": run.data["upload_private_file"]["file_id"]},
    "delete_group_file": _deletable_group_file,
    "delete_group_folder": lambda run: {"group_id": LAB, "folder_id": _folder_id(run)},
    "get_file": lambda run: {"file_id": run.data["upload_private_file"]["file_id"]},
    "get_image": lambda run: {"file": AVATAR},
    "get_record": lambda run: {"file": run.kept["voice"], "out_format": "mp3"},
    "download_file": {"base64": base64.b64encode(b"dl").decode(), "name": "dl.txt"},
    "clean_cache": {},
    # Online files and flash transfer.
    "send_online_file": lambda run: {"user_id": ALICE, "file_path": run.file("on.txt", b"on")},
    "send_online_folder": _online_folder,
    "get_online_file_msg": {"user_id": ALICE},
    "sandbox_send_online_file": {"user_id": ALICE, "file": b64(b"offer"), "name": "offer.txt"},
    "receive_online_file": _friend_offer,
    "refuse_online_file": _friend_offer,
    "cancel_online_file": lambda run: {
        "user_id": ALICE,
        "msg_id": run.data["send_online_file"]["msgId"],
    },
    "sandbox_answer_online_file": lambda run: {
        "user_id": ALICE,
        "msg_id": run.data["send_online_folder"]["msgId"],
        "answer": "receive",
    },
    "create_flash_task": lambda run: {"files": [run.file("f.txt", b"flash")], "name": "Set"},
    "send_flash_msg": lambda run: {**_fileset(run), "user_id": ALICE},
    "get_share_link": _fileset,
    "get_fileset_info": _fileset,
    "get_flash_file_list": _fileset,
    "get_flash_file_url": lambda run: {**_fileset(run), "file_index": 0},
    "download_fileset": _fileset,
    "get_fileset_id": lambda run: {"share_code": run.data["get_share_link"]["shareLink"]},
    "sandbox_send_flash_msg": {"user_id": ALICE, "files": [b64(b"from alice")]},
    # Streams.
    "upload_file_stream": _upload_stream,
    "download_file_stream": lambda run: {"file": run.data["upload_file_stream"]["file_path"]},
    "download_file_image_stream": lambda run: {"file": AVATAR},
    "download_file_record_stream": lambda run: {"file": run.kept["voice"], "out_format": "mp3"},
    "test_download_stream": {},
    "clean_stream_temp_file": {},
    # The simulation's own controls.
    "sandbox_emit": {"event": {"post_type": "notice", "notice_type": "x"}},
    "sandbox_emit_bench": {"count": 1},
    # Last: what takes state away.
    "set_friend_add_request": lambda run: {"flag": run.data["sandbox_friend_request"]["flag"]},
    "set_group_add_request": lambda run: {"flag": run.data["sandbox_group_request"]["flag"]},
    "set_doubt_friends_add_request": {"flag": "doubt-1"},
    "delete_msg": lambda run: {"message_id": run.data["send_private_msg"]["message_id"]},
    "sandbox_recall_message": lambda run: {"message_id": incoming_id(run)},
    "set_group_kick": {"group_id": LAB, "user_id": DAVE},
    "set_group_kick_members": {"group_id": PLAYGROUND, "user_ids": [EVE]},
    "delete_friend": {"user_id": CAROL},
    "set_group_leave": {"group_id": LAB},
    "set_restart": {},
    "bot_exit": {},
}
"""Per served action, the parameters of a call that succeeds (or a function of the run so far
giving them), in call order."""


def served() -> list[str]:
    """Every catalog action the sandbox serves (with the benchmark hook on)."""
    return [action.name for action in default_catalog() if action.name in HANDLERS]


@dataclass
class Results:
    """What the whole run gave: per action the envelopes (packets, then the final one)."""

    envelopes: dict[str, list[dict[str, Any]]]
    failed: dict[str, str]


def document() -> dict[str, Any]:
    # Every action, the process-level ones (restart, cache cleaning, exit) named as they must be.
    process_level = ["bot_exit", "set_restart", "clean_cache", "clean_stream_temp_file"]
    ws = {
        "name": "ws",
        "enable": True,
        "host": "127.0.0.1",
        "port": 0,
        "heartInterval": 0,
        "actions": {"allow": ["*", *process_level]},
    }
    return {
        "network": {"websocketServers": [ws]},
        "backend": {"type": "sandbox", "database": ":memory:", "benchHook": True},
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def results(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Results]:
    """Every example called once, in order, on one gateway."""
    run = Run(tmp_path_factory.mktemp("answers"))
    failed: dict[str, str] = {}
    async with run_gateway(document()) as gw, aiohttp.ClientSession() as http:
        url = gw.url("ws", "/").replace("http://", "ws://")
        async with http.ws_connect(url) as ws:
            run.ws, run.backend = ws, gw.supervisor.backend
            for action, example in EXAMPLES.items():
                if action in SKIPPED_HERE:
                    continue
                try:
                    params = example(run) if callable(example) else example
                    if inspect.isawaitable(params):
                        params = await params
                except Exception as error:  # reported as this action's failure
                    failed[action] = f"preparing its parameters failed: {error!r}"
                    continue
                answers = [a async for a in ws_stream(ws, action, params)]
                run.envelopes[action] = answers
                if answers[-1].get("retcode") != 0:
                    failed[action] = f"{params} -> {answers[-1]}"
                    continue
                run.data[action] = answers[-1]["data"]
    yield Results(run.envelopes, failed)


def _describe(where: str, error: jsonschema.ValidationError) -> str:
    path = "/".join([where, *(str(p) for p in error.absolute_path)])
    shown = json.dumps(error.instance, ensure_ascii=False)
    shown = shown if len(shown) <= 100 else shown[:100] + "…"
    return f"{path}: {error.message[:160]} (got {shown})"


def mismatches(action: str, envelopes: list[dict[str, Any]], errata: bool = True) -> list[str]:
    """Every way the answers' data (of each packet of a stream, then the final answer) differ
    from NapCat's schema; empty when they match."""
    found = []
    for envelope in envelopes:
        data = envelope.get("data")
        found += [_describe("data", e) for e in napcat_schema.errors(action, data, errata)]
        if action in UNTYPED_ITEMS:
            path, component = UNTYPED_ITEMS[action]
            for where, item in _items(data, path, "data"):
                errors = napcat_schema.component_errors(component, item)
                found += [_describe(where, e) for e in errors]
    return [f"{action}: {line}" for line in found]


def _items(value: Any, path: tuple[str, ...], where: str) -> list[tuple[str, Any]]:
    """The values at `path` in `value` (`*`: each item of a list), with where they are; what
    is not there is skipped (the schema check reports a missing or mistyped list)."""
    if not path:
        return [(where, value)]
    step, rest = path[0], path[1:]
    if step == "*":
        items = value if isinstance(value, list) else []
        return [x for i, item in enumerate(items) for x in _items(item, rest, f"{where}/{i}")]
    if isinstance(value, dict) and step in value:
        return _items(value[step], rest, f"{where}/{step}")
    return []


def checked(results: Results) -> list[str]:
    """The actions whose answers are checked against NapCat's schema."""
    return [
        action
        for action in results.envelopes
        if action not in NOT_IN_NAPCAT | set(REFUSED_HERE) | set(PENDING_ITEM_2)
        and action not in results.failed
    ]


async def test_every_served_action_has_an_example() -> None:
    missing = [name for name in served() if name not in EXAMPLES]
    extra = [name for name in EXAMPLES if name not in HANDLERS]
    assert not missing, f"served actions without an example in EXAMPLES: {missing}"
    assert not extra, f"EXAMPLES for actions the sandbox does not serve: {extra}"


async def test_every_example_succeeds(results: Results) -> None:
    failed = {a: why for a, why in results.failed.items() if a not in REFUSED_HERE}
    assert not failed, "\n".join(f"{a}: {why}" for a, why in failed.items())
    for action in REFUSED_HERE:
        assert results.envelopes[action][-1]["retcode"] == 1200, results.envelopes[action]


async def test_answers_match_napcat_schemas(results: Results) -> None:
    found = [
        line
        for action in checked(results)
        for line in mismatches(action, results.envelopes[action])
    ]
    assert not found, f"{len(found)} mismatches with NapCat's schemas:\n" + "\n".join(found)
    print(f"{len(checked(results))} actions' answers match NapCat's schemas")


async def test_exception_lists_are_current(results: Results) -> None:
    fixed = [
        action
        for action in PENDING_ITEM_2
        if action in results.envelopes and not mismatches(action, results.envelopes[action])
    ]
    assert not fixed, f"these now match NapCat's schema; take them off PENDING_ITEM_2: {fixed}"
    right = [
        action
        for action in NAPCAT_SCHEMA_WRONG
        if action in results.envelopes
        and not mismatches(action, results.envelopes[action], errata=False)
    ]
    assert not right, f"these match NapCat's document after all; drop their errata: {right}"
    unknown = [a for a in (*PENDING_ITEM_2, *REFUSED_HERE, *SKIPPED_HERE) if a not in EXAMPLES]
    assert not unknown, f"exceptions for actions without an example: {unknown}"


async def test_actions_not_in_napcat_really_are_not() -> None:
    assert not NOT_IN_NAPCAT & set(napcat_schema.actions())
    assert not set(napcat_schema.NEWER) & set(napcat_schema.actions()), "now in the document"
    unchecked = set(served()) - NOT_IN_NAPCAT - set(napcat_schema.actions())
    assert unchecked <= set(napcat_schema.NEWER), f"served, with no NapCat schema: {unchecked}"
