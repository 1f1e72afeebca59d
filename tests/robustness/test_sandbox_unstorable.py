"""Values the wire cannot carry never reach the sandbox's database, and a failed call leaves
no trace: no row, no event, no message id visibly consumed (DESIGN.md, robustness rules)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from tests.sandbox_client import SandboxClient, sandbox_client, sandbox_document

CAROL = 20003
LAB = 30001
BIG = 1180591620717411303424  # 2**70: beyond every 64-bit integer type


async def history(sandbox: SandboxClient, user_id: int = CAROL) -> list[dict[str, Any]]:
    """The whole private history with `user_id`; the call itself must succeed over HTTP."""
    async with sandbox.http.post(
        sandbox.gw.url("api", "/get_friend_msg_history"), json={"user_id": user_id, "count": 100}
    ) as response:
        assert response.status == 200, await response.text()
        body = await response.json()
    assert body["retcode"] == 0, body
    messages: list[dict[str, Any]] = body["data"]["messages"]
    return messages


async def in_process(sandbox: SandboxClient, action: str, **params: Any) -> dict[str, Any]:
    """The envelope of a call made through the dispatcher, bypassing every wire parser."""
    envelope: dict[str, Any] = await sandbox.gw.supervisor.dispatcher.call(action, params)
    return envelope


async def test_a_json5_body_with_a_huge_integer_stores_nothing(sandbox: SandboxClient) -> None:
    first = await sandbox.ok("send_private_msg", user_id=CAROL, message="before")
    before = await history(sandbox)
    # A trailing comma makes the body JSON5, whose parser keeps integers of any size.
    body = f'{{"user_id": {CAROL}, "message": [{{"type": "face", "data": {{"big": {BIG}}}}}],}}'
    async with sandbox.http.post(
        sandbox.gw.url("api", "/send_private_msg"),
        data=body.encode(),
        headers={"Content-Type": "application/json"},
    ) as response:
        assert response.status == 200
        answer = await response.json()
    assert answer["retcode"] == 1400, answer
    assert await history(sandbox) == before
    after = await sandbox.ok("send_private_msg", user_id=CAROL, message="after")
    assert after["message_id"] == first["message_id"] + 1


async def test_an_in_process_call_with_a_huge_integer_fails_and_leaves_no_trace(
    sandbox: SandboxClient,
) -> None:
    first = await sandbox.ok("send_private_msg", user_id=CAROL, message="before")
    before = await history(sandbox)
    message = [{"type": "face", "data": {"id": "14", "big": 2**70}}]
    answer = await in_process(sandbox, "send_private_msg", user_id=CAROL, message=message)
    assert answer["retcode"] == 1400 and "64-bit" in answer["message"], answer
    assert await history(sandbox) == before
    after = await sandbox.ok("send_private_msg", user_id=CAROL, message="after")
    assert after["message_id"] == first["message_id"] + 1
    # Nothing was published for the failed call: the next event is the later message's.
    event = await sandbox.event(lambda e: e.get("post_type") == "message_sent")
    assert event["message_id"] == first["message_id"]
    event = await sandbox.event(lambda e: e.get("post_type") == "message_sent")
    assert event["message_id"] == after["message_id"]


async def test_a_received_message_with_a_lone_surrogate_stores_nothing(
    sandbox: SandboxClient,
) -> None:
    before = await history(sandbox)
    answer = await in_process(
        sandbox,
        "sandbox_receive_message",
        message_type="private",
        user_id=CAROL,
        message=[{"type": "text", "data": {"text": "broken \ud800 text"}}],
    )
    assert answer["retcode"] == 1400, answer
    assert await history(sandbox) == before


async def test_a_failing_call_among_others_leaves_its_neighbours_intact(
    sandbox: SandboxClient,
) -> None:
    bad = [{"type": "face", "data": {"id": "14", "big": 2**70}}]
    answers = await asyncio.gather(
        in_process(sandbox, "send_private_msg", user_id=CAROL, message="one"),
        in_process(sandbox, "send_private_msg", user_id=CAROL, message=bad),
        in_process(
            sandbox,
            "sandbox_receive_message",
            message_type="private",
            user_id=CAROL,
            message="two",
        ),
        in_process(sandbox, "send_group_msg", group_id=LAB, message=bad),
        in_process(sandbox, "send_private_msg", user_id=CAROL, message="three"),
    )
    assert [a["retcode"] for a in answers] == [0, 1400, 0, 1400, 0]
    ids = [answers[i]["data"]["message_id"] for i in (0, 2, 4)]
    assert sorted(ids) == list(range(min(ids), min(ids) + 3))  # no id lost to the failures
    texts = [m["raw_message"] for m in await history(sandbox)]
    assert sorted(texts) == ["one", "three", "two"]


async def test_a_forward_node_with_a_huge_user_id_stores_no_bundle(sandbox: SandboxClient) -> None:
    # Plain JSON: the id is a string of digits, so no parser sees a big integer.
    node = {"type": "node", "data": {"user_id": str(BIG), "nickname": "x", "content": "hi"}}
    answer = await sandbox.call("send_private_forward_msg", user_id=CAROL, messages=[node])
    assert answer["retcode"] == 1400, answer
    assert await history(sandbox) == []


async def test_a_forward_to_a_stranger_leaves_no_bundle(tmp_path: Path) -> None:
    database = tmp_path / "sandbox.db"
    async with sandbox_client(sandbox_document(str(database))) as sandbox:
        node = {"type": "node", "data": {"user_id": "20001", "nickname": "A", "content": "hi"}}
        answer = await sandbox.call("send_private_forward_msg", user_id=99999, messages=[node])
        assert answer["retcode"] == 1200, answer
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT COUNT(*) FROM forwards").fetchone()[0] == 0


async def test_sandbox_emit_refuses_an_event_it_cannot_encode(sandbox: SandboxClient) -> None:
    answer = await in_process(
        sandbox, "sandbox_emit", event={"post_type": "notice", "notice_type": "x", "n": 2**70}
    )
    assert answer["retcode"] == 1400 and "64-bit" in answer["message"], answer
    await sandbox.ok("sandbox_emit", event={"post_type": "notice", "notice_type": "after"})
    event = await sandbox.event(lambda e: e.get("post_type") == "notice")
    assert event["notice_type"] == "after"


async def test_a_group_option_with_a_huge_integer_is_not_stored(sandbox: SandboxClient) -> None:
    # Plain JSON again: lax validation turns the string into an int of any size.
    answer = await sandbox.call("set_group_search", group_id=LAB, no_finger_open=str(BIG))
    assert answer["retcode"] == 1400, answer
    async with sandbox.http.post(
        sandbox.gw.url("api", "/get_group_info_ex"), json={"group_id": LAB}
    ) as response:
        assert response.status == 200, await response.text()
        info = await response.json()
    assert info["retcode"] == 0 and info["data"]["search"]["no_finger_open"] == 0, info


async def test_rows_written_by_older_builds_do_not_break_history(tmp_path: Path) -> None:
    database = tmp_path / "sandbox.db"
    document = sandbox_document(str(database))
    async with sandbox_client(document) as sandbox:
        for text in ("big", "nan", "garbage", "fine"):
            await sandbox.ok("send_private_msg", user_id=CAROL, message=text)
    # What an older build could write: Python's json module takes integers of any size and NaN.
    with sqlite3.connect(database) as db:
        db.execute(
            "UPDATE messages SET segments = ? WHERE raw_message = 'big'",
            (f'[{{"type": "face", "data": {{"id": "14", "big": {BIG}}}}}]',),
        )
        db.execute(
            "UPDATE messages SET sender = ? WHERE raw_message = 'nan'",
            ('{"user_id": 10001, "nickname": "bot", "level": NaN}',),
        )
        db.execute("UPDATE messages SET segments = '[{' WHERE raw_message = 'garbage'")
    async with sandbox_client(document) as sandbox:
        messages = await history(sandbox)
        assert [m["raw_message"] for m in messages] == ["big", "nan", "garbage", "fine"]
        assert messages[3]["message"] == [{"type": "text", "data": {"text": "fine"}}]
        for message in messages:
            got = await sandbox.call("get_msg", message_id=message["message_id"])
            assert got["retcode"] == 0, got
