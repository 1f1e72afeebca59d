"""NapCat's extended message actions on the sandbox, through the real HTTP and WebSocket adapters:
emoji reactions, single forwards, read marks, voice text, favourites, custom faces, inline
keyboards, ark cards and group albums. Each action is called under the spec's name and NapCat's
where they differ, and its effect is checked through another action or an event."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.sandbox_client import SandboxClient

SELF, ALICE, BOB, CAROL, DAVE, EVE = 10001, 20001, 20002, 20003, 20004, 20005
LAB, PLAYGROUND = 30001, 30002


def png(tag: str) -> bytes:
    """Distinct bytes with PNG's magic number (stored as `.png` media)."""
    return b"\x89PNG\r\n\x1a\n" + b"\x00" * 8 + tag.encode()


def b64(content: bytes) -> str:
    return "base64://" + base64.b64encode(content).decode()


def local(url: str) -> bytes:
    return Path(urlsplit(url).path).read_bytes()


def bad_param(body: dict[str, Any], field: str) -> bool:
    return body["retcode"] == 1400 and field in body["message"]


async def group_message(
    sandbox: SandboxClient, text: str = "react to me", user: int = CAROL
) -> int:
    data = await sandbox.ok(
        "sandbox_receive_message", message_type="group", group_id=LAB, user_id=user, message=text
    )
    return int(data["message_id"])


def is_sent(event: dict[str, Any]) -> bool:
    return event.get("post_type") == "message_sent"


# --- emoji reactions ----------------------------------------------------------------------------


async def test_emoji_like_is_reported_and_listed_consistently(sandbox: SandboxClient) -> None:
    message_id = await group_message(sandbox)
    assert await sandbox.ok("set_msg_emoji_like", message_id=message_id, emoji_id=76) == {
        "result": 0,
        "errMsg": "",
    }
    event = await sandbox.notice("group_msg_emoji_like")
    assert (event["group_id"], event["user_id"], event["message_id"], event["is_add"]) == (
        LAB,
        SELF,
        message_id,
        True,
    )
    assert event["likes"] == [{"emoji_id": "76", "count": 1}]

    await sandbox.ok(
        "sandbox_set_msg_emoji_like", message_id=message_id, emoji_id="76", user_id=BOB
    )
    assert (await sandbox.notice("group_msg_emoji_like"))["likes"] == [
        {"emoji_id": "76", "count": 2}
    ]
    likes = await sandbox.ok("get_emoji_likes", message_id=message_id, emoji_id="76")
    assert likes == {
        "emoji_like_list": [
            {"user_id": str(SELF), "nick_name": "Sandbox Bot"},
            {"user_id": str(BOB), "nick_name": "Bob"},
        ]
    }
    fetched = await sandbox.ok(
        "fetch_emoji_like", message_id=message_id, emojiId="76", emojiType="1"
    )
    assert [(u["tinyId"], u["nickName"]) for u in fetched["emojiLikesList"]] == [
        (str(SELF), "Sandbox Bot"),
        (str(BOB), "Bob"),
    ]
    assert (fetched["isFirstPage"], fetched["isLastPage"], fetched["result"]) == (True, True, 0)


async def test_taking_back_a_reaction_reports_is_add_false(sandbox: SandboxClient) -> None:
    message_id = await group_message(sandbox)
    await sandbox.ok("set_msg_emoji_like", message_id=message_id, emoji_id="128512")
    await sandbox.notice("group_msg_emoji_like")
    await sandbox.ok("set_msg_emoji_like", message_id=message_id, emoji_id="128512", set=False)
    event = await sandbox.notice("group_msg_emoji_like")
    assert event["is_add"] is False and event["likes"] == [{"emoji_id": "128512", "count": 0}]
    # A Unicode emoji (more than 3 digits) is emoji type 2.
    fetched = await sandbox.ok(
        "fetch_emoji_like", message_id=message_id, emoji_id="128512", emoji_type="2"
    )
    assert fetched["emojiLikesList"] == []


async def test_fetch_emoji_like_pages_with_its_cookie(sandbox: SandboxClient) -> None:
    message_id = await group_message(sandbox)
    for user in (ALICE, BOB, CAROL):
        await sandbox.ok(
            "sandbox_set_msg_emoji_like", message_id=message_id, emoji_id="2", user_id=user
        )
    first = await sandbox.ok(
        "fetch_emoji_like", message_id=message_id, emojiId="2", emojiType="1", count=2
    )
    assert [u["tinyId"] for u in first["emojiLikesList"]] == [str(ALICE), str(BOB)]
    assert (first["isFirstPage"], first["isLastPage"]) == (True, False)
    second = await sandbox.ok(
        "fetch_emoji_like",
        message_id=message_id,
        emojiId="2",
        emojiType="1",
        count=2,
        cookie=first["cookie"],
    )
    assert [u["tinyId"] for u in second["emojiLikesList"]] == [str(CAROL)]
    assert (second["isFirstPage"], second["isLastPage"], second["cookie"]) == (False, True, "")
    limited = await sandbox.ok("get_emoji_likes", message_id=message_id, emoji_id="2", count=1)
    assert len(limited["emoji_like_list"]) == 1


async def test_emoji_like_errors(sandbox: SandboxClient) -> None:
    private = await sandbox.ok(
        "sandbox_receive_message", message_type="private", user_id=ALICE, message="hi"
    )
    body = await sandbox.call("set_msg_emoji_like", message_id=private["message_id"], emoji_id=1)
    assert body["retcode"] == 1200 and "group messages only" in body["message"]
    message_id = await group_message(sandbox)
    assert bad_param(
        await sandbox.call("set_msg_emoji_like", message_id=message_id, emoji_id="smile"),
        "emoji_id",
    )
    assert bad_param(await sandbox.call("set_msg_emoji_like", emoji_id="1"), "message_id")
    assert bad_param(
        await sandbox.call("fetch_emoji_like", message_id=message_id, emojiId="1"), "emojiType"
    )
    assert bad_param(
        await sandbox.call(
            "fetch_emoji_like", message_id=message_id, emojiId="1", emojiType="1", cookie="x"
        ),
        "cookie",
    )
    other = await sandbox.call(
        "get_emoji_likes", message_id=message_id, emoji_id="1", group_id=PLAYGROUND
    )
    assert other["retcode"] == 1200 and "not in group" in other["message"]
    stranger = await sandbox.call(
        "sandbox_set_msg_emoji_like", message_id=message_id, emoji_id="1", user_id=EVE
    )
    assert stranger["retcode"] == 1200 and "not a member" in stranger["message"]


# --- single forwards, read marks, voice text ----------------------------------------------------


@pytest.mark.parametrize("action", ["forward_friend_single_msg", "forward_group_single_msg"])
async def test_forward_single_msg_sends_a_copy(sandbox: SandboxClient, action: str) -> None:
    original = await group_message(sandbox, "worth sharing [CQ:face,id=14]")
    target = (
        {"user_id": ALICE} if action == "forward_friend_single_msg" else {"group_id": PLAYGROUND}
    )
    assert await sandbox.ok(action, message_id=original, **target) is None
    event = await sandbox.event(is_sent)
    assert event["raw_message"] == "worth sharing [CQ:face,id=14]"
    assert event["message_id"] != original
    if "user_id" in target:
        assert (event["message_type"], event["target_id"]) == ("private", ALICE)
    else:
        assert (event["message_type"], event["group_id"]) == ("group", PLAYGROUND)
    copy = await sandbox.ok("get_msg", message_id=event["message_id"])
    assert copy["message"] == event["message"]


async def test_forward_single_msg_errors(sandbox: SandboxClient) -> None:
    original = await group_message(sandbox)
    assert bad_param(
        await sandbox.call("forward_friend_single_msg", message_id=original), "user_id"
    )
    assert bad_param(
        await sandbox.call("forward_group_single_msg", message_id=original), "group_id"
    )
    assert bad_param(await sandbox.call("forward_group_single_msg", group_id=LAB), "message_id")
    missing = await sandbox.call("forward_group_single_msg", message_id=99999, group_id=LAB)
    assert missing["retcode"] == 1200 and "99999" in missing["message"]
    stranger = await sandbox.call("forward_friend_single_msg", message_id=original, user_id=EVE)
    assert stranger["retcode"] == 1200 and "not a friend" in stranger["message"]


async def test_mark_all_as_read_moves_every_chats_read_mark(sandbox: SandboxClient) -> None:
    group = await group_message(sandbox)
    private = await sandbox.ok(
        "sandbox_receive_message", message_type="private", user_id=BOB, message="unread"
    )
    assert await sandbox.ok("_mark_all_as_read") is None
    backend: Any = sandbox.gw.supervisor.backend
    marks = await backend.store.run(
        lambda db: dict(db.execute("SELECT key, value FROM kv WHERE key LIKE 'read:%'").fetchall())
    )
    assert marks == {
        f"read:group:{LAB}": str(group),
        f"read:private:{BOB}": str(private["message_id"]),
    }


async def test_fetch_ptt_text_is_honest_about_speech_recognition(sandbox: SandboxClient) -> None:
    voice = await sandbox.ok(
        "sandbox_receive_message",
        message_type="private",
        user_id=ALICE,
        message=[{"type": "record", "data": {"file": b64(b"#!SILK_V3voice")}}],
    )
    body = await sandbox.call("fetch_ptt_text", message_id=voice["message_id"])
    assert body["retcode"] == 1200 and "no speech recognition in the sandbox" in body["message"]
    text = await sandbox.call("fetch_ptt_text", message_id=await group_message(sandbox))
    assert text["retcode"] == 1200 and "no voice record" in text["message"]
    assert bad_param(await sandbox.call("fetch_ptt_text"), "message_id")


# --- favourites ---------------------------------------------------------------------------------


async def test_collections_store_messages_and_raw_data(sandbox: SandboxClient) -> None:
    text = await group_message(sandbox, "remember this")
    picture = await sandbox.ok(
        "sandbox_receive_message",
        message_type="private",
        user_id=ALICE,
        message=[{"type": "image", "data": {"file": b64(png("fav"))}}],
    )
    first = await sandbox.ok("create_collection", message_id=text)
    await sandbox.ok("create_collection", message_id=picture["message_id"])
    await sandbox.ok("create_collection", rawData="a note", brief="note")

    listed = await sandbox.ok("get_collection_list")
    items = listed["collectionSearchList"]["collectionItemList"]
    assert [i["brief"] for i in items] == ["note", "[image]", "remember this"]
    assert items[2]["cid"] == first["cid"]
    assert (items[2]["message_id"], items[2]["author"]) == (
        text,
        {"numId": str(CAROL), "groupId": str(LAB)},
    )
    assert json.loads(items[2]["rawData"]) == [{"type": "text", "data": {"text": "remember this"}}]
    images = await sandbox.ok("get_collection_list", category=2)
    assert [i["message_id"] for i in images["collectionSearchList"]["collectionItemList"]] == [
        picture["message_id"]
    ]
    one = await sandbox.ok("get_collection_list", category="0", count="1")
    assert len(one["collectionSearchList"]["collectionItemList"]) == 1
    assert one["collectionSearchList"]["hasMore"] is True


async def test_collection_errors(sandbox: SandboxClient) -> None:
    assert bad_param(await sandbox.call("create_collection"), "message_id")
    missing = await sandbox.call("create_collection", message_id=424242)
    assert missing["retcode"] == 1200
    assert bad_param(await sandbox.call("get_collection_list", category=-1), "category")
    assert bad_param(await sandbox.call("get_collection_list", count="many"), "count")


# --- custom faces -------------------------------------------------------------------------------


async def test_custom_faces_add_list_describe_delete(sandbox: SandboxClient) -> None:
    added = await sandbox.ok("add_custom_face", file=b64(png("smile")), file_name="smile.png")
    second = await sandbox.ok("add_custom_face", file=b64(png("wink")))
    urls = await sandbox.ok("fetch_custom_face")
    assert urls == [second["url"], added["url"]]
    assert local(urls[1]) == png("smile")
    assert await sandbox.ok("fetch_custom_face", count=1) == [second["url"]]

    detail = await sandbox.ok("fetch_custom_face_detail")
    smile = detail[1]
    assert (smile["emoId"], smile["resId"], smile["md5"], smile["fileName"]) == (
        added["emoId"],
        added["resId"],
        added["md5"],
        "smile.png",
    )
    await sandbox.ok(
        "set_custom_face_desc",
        emoji_id=smile["emoId"],
        res_id=smile["resId"],
        md5=smile["md5"],
        desc="grinning",
    )
    assert (await sandbox.ok("fetch_custom_face_detail"))[1]["desc"] == "grinning"

    deleted = await sandbox.ok("delete_custom_face", res_id=smile["resId"])
    assert deleted["deleted"] == [smile["resId"]]
    await sandbox.ok("delete_custom_face", md5=[second["md5"]])
    assert await sandbox.ok("fetch_custom_face") == []


async def test_custom_face_errors(sandbox: SandboxClient) -> None:
    assert bad_param(await sandbox.call("add_custom_face"), "file")
    wrong = await sandbox.call("add_custom_face", file=b64(png("x")), md5="0" * 32)
    assert bad_param(wrong, "md5")
    await sandbox.ok("add_custom_face", file=b64(png("x")))
    again = await sandbox.call("add_custom_face", file=b64(png("x")))
    assert again["retcode"] == 1200 and "already a custom face" in again["message"]
    assert bad_param(await sandbox.call("delete_custom_face"), "res_id")
    nothing = await sandbox.call("delete_custom_face", ids=["nope"])
    assert nothing["retcode"] == 1200 and "nope" in nothing["message"]
    assert bad_param(
        await sandbox.call("set_custom_face_desc", emoji_id=1, res_id="r", md5="m"), "desc"
    )
    face = (await sandbox.ok("fetch_custom_face_detail"))[0]
    mismatch = await sandbox.call(
        "set_custom_face_desc", emoji_id=face["emoId"], res_id="other", md5=face["md5"], desc="d"
    )
    assert mismatch["retcode"] == 1200 and face["resId"] in mismatch["message"]


# --- inline keyboards ---------------------------------------------------------------------------

KEYBOARD = {
    "type": "keyboard",
    "data": {
        "content": {
            "bot_appid": "102000000",
            "rows": [
                {
                    "buttons": [
                        {
                            "id": "help",
                            "render_data": {"label": "Help", "style": 1},
                            "action": {
                                "type": 2,
                                "data": "/help",
                                "enter": True,
                                "reply": "true",
                                "permission": {"type": 2},
                            },
                        },
                        {
                            "id": "vote",
                            "render_data": {"label": "Vote"},
                            "action": {"type": 1, "data": "vote:1", "permission": {"type": 2}},
                        },
                    ]
                },
                {
                    "buttons": [
                        {
                            "id": "docs",
                            "render_data": {"label": "Docs"},
                            "action": {"type": 0, "data": "https://docs.example/"},
                        },
                        {
                            "id": "draft",
                            "render_data": {"label": "Draft"},
                            "action": {"type": 2, "data": "/draft ", "enter": False},
                        },
                        {
                            "id": "owner",
                            "render_data": {"label": "Owner only"},
                            "action": {
                                "type": 2,
                                "data": "/reset",
                                "enter": True,
                                "permission": {"type": 0, "specify_user_ids": [str(ALICE)]},
                            },
                        },
                    ]
                },
            ],
        }
    },
}


async def keyboard_message(sandbox: SandboxClient) -> int:
    data = await sandbox.ok(
        "sandbox_receive_message",
        message_type="group",
        group_id=LAB,
        user_id=29999,
        sender={"nickname": "Helper Bot"},
        message=[{"type": "markdown", "data": {"content": "# Menu"}}, KEYBOARD],
    )
    return int(data["message_id"])


async def test_command_button_sends_its_text(sandbox: SandboxClient) -> None:
    keyboard = await keyboard_message(sandbox)
    answer = await sandbox.ok(
        "click_inline_keyboard_button", message_id=keyboard, button_id="help", data="/help"
    )
    event = await sandbox.event(is_sent)
    assert (event["group_id"], event["raw_message"]) == (LAB, f"[CQ:reply,id={keyboard}]/help")
    assert answer["message_id"] == event["message_id"] and answer["result"] == 0
    stored = await sandbox.ok("get_msg", message_id=answer["message_id"])
    assert stored["message"] == [
        {"type": "reply", "data": {"id": str(keyboard)}},
        {"type": "text", "data": {"text": "/help"}},
    ]


async def test_napcat_parameters_and_other_button_kinds(sandbox: SandboxClient) -> None:
    keyboard = await keyboard_message(sandbox)
    callback = await sandbox.ok(
        "click_inline_keyboard_button",
        group_id=LAB,
        bot_appid="102000000",
        msg_seq=keyboard,
        callback_data="vote:1",
    )
    assert callback["callback_data"] == "vote:1" and "message_id" not in callback
    link = await sandbox.ok("click_inline_keyboard_button", msg_seq=keyboard, button_id="docs")
    assert link["url"] == "https://docs.example/"
    draft = await sandbox.ok("click_inline_keyboard_button", msg_seq=keyboard, button_id="draft")
    assert draft["promptText"] == "/draft "
    history = await sandbox.ok("get_group_msg_history", group_id=LAB)
    assert [m["message_id"] for m in history["messages"]] == [keyboard]


async def test_keyboard_errors(sandbox: SandboxClient) -> None:
    keyboard = await keyboard_message(sandbox)
    assert bad_param(
        await sandbox.call("click_inline_keyboard_button", button_id="help"), "message_id"
    )
    assert bad_param(
        await sandbox.call("click_inline_keyboard_button", message_id=keyboard), "button_id"
    )
    missing = await sandbox.call(
        "click_inline_keyboard_button", message_id=keyboard, button_id="nope"
    )
    assert missing["retcode"] == 1200 and "'nope'" in missing["message"]
    denied = await sandbox.call(
        "click_inline_keyboard_button", message_id=keyboard, button_id="owner"
    )
    assert denied["retcode"] == 1200 and "may not click" in denied["message"]
    other_bot = await sandbox.call(
        "click_inline_keyboard_button", message_id=keyboard, button_id="help", bot_appid="1"
    )
    assert other_bot["retcode"] == 1200 and "102000000" in other_bot["message"]
    plain = await sandbox.call(
        "click_inline_keyboard_button", message_id=await group_message(sandbox), button_id="help"
    )
    assert plain["retcode"] == 1200 and "no inline keyboard" in plain["message"]


# --- ark cards ----------------------------------------------------------------------------------


async def test_mini_app_ark_is_built_from_the_parameters(sandbox: SandboxClient) -> None:
    ark = await sandbox.ok(
        "get_mini_app_ark",
        app_id="1234567890",
        title="Gateway",
        desc="A OneBot gateway",
        picUrl="https://img.example/p.png",
        jumpUrl="pages/index",
    )
    detail = ark["data"]["meta"]["detail_1"]
    assert (detail["appid"], detail["desc"], detail["preview"], detail["url"]) == (
        "1234567890",
        "A OneBot gateway",
        "https://img.example/p.png",
        "pages/index",
    )
    assert ark["data"]["prompt"] == "[QQ小程序]Gateway"
    bili = await sandbox.ok(
        "get_mini_app_ark", type="bili", title="Video", desc="d", picUrl="p", jumpUrl="j"
    )
    assert bili["data"]["meta"]["detail_1"]["appid"] == "1109937557"
    raw = await sandbox.ok("get_mini_app_ark", appId="1", title="t", rawArkData="true")
    assert json.loads(raw["data"])["meta"]["detail_1"]["appid"] == "1"
    # The card is what a json segment sends.
    sent = await sandbox.ok(
        "send_group_msg",
        group_id=LAB,
        message=[{"type": "json", "data": {"data": json.dumps(ark["data"])}}],
    )
    stored = await sandbox.ok("get_msg", message_id=sent["message_id"])
    assert json.loads(stored["message"][0]["data"]["data"])["meta"]["detail_1"]["url"] == (
        "pages/index"
    )


async def test_mini_app_ark_errors(sandbox: SandboxClient) -> None:
    assert bad_param(await sandbox.call("get_mini_app_ark", title="t"), "app_id")
    assert bad_param(await sandbox.call("get_mini_app_ark", type="youtube"), "type")


@pytest.mark.parametrize("action", ["share_contact", "ArkSharePeer", "send_ark_share"])
async def test_share_contact_builds_contact_cards(sandbox: SandboxClient, action: str) -> None:
    user = await sandbox.ok(action, user_id=ALICE, phone_number="13800000000")
    card = json.loads(user["arkMsg"])
    assert card["app"] == "com.tencent.contact.lua"
    assert card["meta"]["contact"]["nickname"] == "Alice"
    assert f"QQ号：{ALICE}" in card["meta"]["contact"]["contact"]
    assert "13800000000" in card["meta"]["contact"]["contact"]
    group = await sandbox.ok(action, group_id=LAB)
    assert json.loads(group["arkJson"])["meta"]["contact"]["nickname"] == "Gateway Lab"
    assert bad_param(await sandbox.call(action), "user_id")
    unknown = await sandbox.call(action, user_id=99999)
    assert unknown["retcode"] == 1200 and "99999" in unknown["message"]


@pytest.mark.parametrize("action", ["ArkShareGroup", "send_group_ark_share"])
async def test_group_share_card_is_a_json_string(sandbox: SandboxClient, action: str) -> None:
    card = json.loads(await sandbox.ok(action, group_id=PLAYGROUND))
    assert card["app"] == "com.tencent.troopsharecard"
    assert card["meta"]["contact"]["nickname"] == "Bot Playground"
    assert bad_param(await sandbox.call(action), "group_id")
    missing = await sandbox.call(action, group_id=39999)
    assert missing["retcode"] == 1200 and "does not exist" in missing["message"]


@pytest.mark.parametrize(
    "action", ["send_packet", "get_ai_characters", "get_ai_record", "send_group_ai_record"]
)
async def test_what_needs_qq_itself_is_1404(sandbox: SandboxClient, action: str) -> None:
    body = await sandbox.call(action, group_id=LAB)
    assert body["retcode"] == 1404 and "sandbox" in body["message"]


# --- group albums -------------------------------------------------------------------------------


async def test_album_upload_list_comment_like_delete(sandbox: SandboxClient) -> None:
    assert await sandbox.ok("get_qun_album_list", group_id=LAB) == {
        "album_list": [],
        "attach_info": "",
        "has_more": False,
    }
    first = await sandbox.ok(
        "upload_image_to_qun_album",
        group_id=LAB,
        album_id="trip",
        album_name="Trip 2026",
        file=b64(png("beach")),
    )
    second = await sandbox.ok(
        "upload_image_to_qun_album", group_id=LAB, album_id="trip", image=b64(png("hill"))
    )
    albums = (await sandbox.ok("get_qun_album_list", group_id=LAB))["album_list"]
    assert [(a["album_id"], a["album_name"], a["upload_number"]) for a in albums] == [
        ("trip", "Trip 2026", 2)
    ]
    assert local(albums[0]["cover_url"]) == png("hill")
    assert albums[0]["creator"] == {"uin": SELF, "nick": "Sandbox Bot"}

    await sandbox.ok(
        "do_group_album_comment",
        group_id=LAB,
        album_id="trip",
        lloc=first["lloc"],
        content="nice beach",
    )
    await sandbox.ok(
        "do_group_album_comment",
        group_id=LAB,
        album_id="trip",
        photo_id=first["lloc"],
        comment="again",
    )
    await sandbox.ok(
        "set_group_album_media_like",
        group_id=LAB,
        album_id="trip",
        batch_id=first["batch_id"],
        lloc=first["lloc"],
    )
    media = (await sandbox.ok("get_group_album_media_list", group_id=LAB, album_id="trip"))[
        "media_list"
    ]
    assert [m["lloc"] for m in media] == [second["lloc"], first["lloc"]]
    beach = media[1]
    assert local(beach["url"]) == png("beach")
    assert (beach["like_count"], beach["liked"]) == (1, True)
    assert [(c["user_id"], c["content"]) for c in beach["comments"]] == [
        (SELF, "nice beach"),
        (SELF, "again"),
    ]
    assert (media[0]["like_count"], media[0]["comments"]) == (0, [])

    await sandbox.ok(
        "cancel_group_album_media_like", group_id=LAB, album_id="trip", batch_id=first["batch_id"]
    )
    await sandbox.ok("del_group_album_media", group_id=LAB, album_id="trip", lloc=second["lloc"])
    media = (await sandbox.ok("get_group_album_media_list", group_id=LAB, album_id="trip"))[
        "media_list"
    ]
    assert [(m["lloc"], m["like_count"]) for m in media] == [(first["lloc"], 0)]
    # The stored image stays readable through get_image.
    assert (await sandbox.ok("get_image", file=first["file"]))["file_size"] == str(
        len(png("beach"))
    )


async def test_albums_are_per_group_and_page(sandbox: SandboxClient) -> None:
    for index in range(22):
        await sandbox.ok(
            "upload_image_to_qun_album",
            group_id=PLAYGROUND,
            album_id=f"a{index:02}",
            file=b64(png(f"p{index}")),
        )
    first = await sandbox.ok("get_qun_album_list", group_id=PLAYGROUND)
    assert len(first["album_list"]) == 20 and first["has_more"] is True
    rest = await sandbox.ok(
        "get_qun_album_list", group_id=PLAYGROUND, attach_info=first["attach_info"]
    )
    assert [a["album_id"] for a in rest["album_list"]] == ["a20", "a21"]
    assert rest["has_more"] is False
    assert (await sandbox.ok("get_qun_album_list", group_id=LAB))["album_list"] == []


async def test_album_errors(sandbox: SandboxClient) -> None:
    assert bad_param(await sandbox.call("get_qun_album_list"), "group_id")
    assert bad_param(
        await sandbox.call("upload_image_to_qun_album", group_id=LAB, album_id="x"), "file"
    )
    assert bad_param(await sandbox.call("get_group_album_media_list", group_id=LAB), "album_id")
    assert bad_param(
        await sandbox.call("do_group_album_comment", group_id=LAB, album_id="x", lloc="l"),
        "content",
    )
    assert bad_param(
        await sandbox.call("set_group_album_media_like", group_id=LAB, album_id="x"), "batch_id"
    )
    assert bad_param(
        await sandbox.call("del_group_album_media", group_id=LAB, album_id="x"), "lloc"
    )
    assert bad_param(
        await sandbox.call("get_qun_album_list", group_id=LAB, attach_info="next"), "attach_info"
    )
    none = await sandbox.call("get_group_album_media_list", group_id=LAB, album_id="missing")
    assert none["retcode"] == 1200 and "no album 'missing'" in none["message"]
    outside = await sandbox.call(
        "upload_image_to_qun_album", group_id=39999, album_id="x", file=b64(png("o"))
    )
    assert outside["retcode"] == 1200
    up = await sandbox.ok(
        "upload_image_to_qun_album", group_id=LAB, album_id="x", file=b64(png("e"))
    )
    wrong_batch = await sandbox.call(
        "set_group_album_media_like", group_id=LAB, album_id="x", batch_id="1", lloc=up["lloc"]
    )
    assert wrong_batch["retcode"] == 1200 and "not in batch" in wrong_batch["message"]
    gone = await sandbox.call("del_group_album_media", group_id=LAB, album_id="x", lloc="nope")
    assert gone["retcode"] == 1200 and "no media 'nope'" in gone["message"]
