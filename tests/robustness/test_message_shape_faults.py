"""Faults on the paths that show messages in NapCat's shape: any id given to get_forward_msg,
any reply `seq`, any group for a temporary session, and rows edited by hand (segments, bundles)
are an envelope, never an internal error, and one bad row never fails a read."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.robustness.conftest import FUZZ
from tests.sandbox_client import SandboxClient, sandbox_client, sandbox_document

ALICE, BOB, DAVE = 20001, 20002, 20004
BIG = 2**70
LAB = 30001

IDS = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["0", "1", "2147483647", "2147483648", "00000001", "١٢٣", " 1", "1e3"]),
)


def not_internal(body: dict[str, Any]) -> None:
    assert "internal error" not in str(body.get("message")), body


@FUZZ
@given(given_id=IDS)
async def test_any_forward_id_is_answered_or_refused(sandbox: SandboxClient, given_id: str) -> None:
    body = await sandbox.call("get_forward_msg", message_id=given_id)
    not_internal(body)
    assert body["retcode"] in (1200, 1400), body


@FUZZ
@given(seq=st.one_of(IDS, st.integers(min_value=-(2**70), max_value=2**70)))
async def test_any_reply_seq_is_sent_or_refused(sandbox: SandboxClient, seq: Any) -> None:
    message = [{"type": "reply", "data": {"seq": seq}}, {"type": "text", "data": {"text": "x"}}]
    body = await sandbox.call("send_private_msg", user_id=ALICE, message=message)
    not_internal(body)
    assert body["retcode"] in (0, 1400), body


@FUZZ
@given(group_id=st.integers(min_value=-(2**70), max_value=2**70).filter(lambda g: g != LAB))
async def test_a_temporary_session_from_any_other_group_is_refused(
    sandbox: SandboxClient, group_id: int
) -> None:
    body = await sandbox.call(
        "sandbox_receive_message",
        message_type="private",
        user_id=DAVE,
        group_id=group_id,
        message="x",
    )
    not_internal(body)
    assert body["retcode"] in (1200, 1400), body


async def test_rows_edited_by_hand_still_read(tmp_path: Path) -> None:
    database = tmp_path / "sandbox.db"
    document = sandbox_document(str(database))
    node = {"type": "node", "data": {"user_id": BOB, "nickname": "Bob", "content": "kept"}}
    async with sandbox_client(document) as sandbox:
        for text in ("segments", "keys", "raw", "numbers"):
            await sandbox.ok("send_private_msg", user_id=ALICE, message=f"[CQ:face,id=1]{text}")
        bundles = [
            await sandbox.ok("send_private_forward_msg", user_id=ALICE, messages=[node])
            for _ in range(6)
        ]
    with sqlite3.connect(database) as db:
        update = "UPDATE messages SET segments = ? WHERE raw_message LIKE ?"
        db.execute(update, ('[{"type": "image"}, 5]', "%segments"))
        keys = '[{"type": "image", "data": {"sub_type": "y"}}, {"type": "a b", "data": {"c d": 1}}]'
        numbers = f'[{{"type": "face", "data": {{"id": "{BIG}", "chainCount": "{BIG}"}}}}]'
        db.execute(update, (numbers, "%numbers"))
        db.execute(update, (keys, "%keys"))
        db.execute("UPDATE messages SET raw_message = 42 WHERE raw_message LIKE '%raw'")
        for bundle, nodes in zip(
            bundles,
            (
                "[{",
                '{"nodes": 5, "message_id": "x"}',
                '[{"content": [{"type": "text"}]}, 7, {"content": [], "user_id": "me"}]',
                '[{"user_id": 1, "content": [{"type": "node", "data": {"id": "3"}}]}]',
                f'{{"message_id": {2**62}, "nodes": [{{"user_id": "{BIG}", "time": "{BIG}", '
                '"content": [{"type": "text", "data": {"text": "big"}}]}]}',
                '[{"user_id": 1, "content": [{"type": "a b", "data": {}}, {"type": "face", '
                '"data": {"id": "x"}}]}]',
            ),
            strict=True,
        ):
            db.execute(
                "UPDATE forwards SET nodes = ? WHERE forward_id = ?", (nodes, bundle["res_id"])
            )
    async with sandbox_client(document) as sandbox:
        history = await sandbox.ok("get_friend_msg_history", user_id=ALICE)
        assert len(history["messages"]) == 10
        for message in history["messages"]:
            got = await sandbox.call("get_msg", message_id=message["message_id"])
            assert got["retcode"] == 0, got
        for bundle in bundles:
            for key in ("message_id", "res_id"):
                got = await sandbox.call("get_forward_msg", message_id=str(bundle[key]))
                assert got["retcode"] == 0, got
