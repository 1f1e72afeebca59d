"""Messages crossing between sandbox accounts of one world (exchange.py) never corrupt either
store: whatever one account's bot may send, the other stores a readable copy or nothing (and
counts it); both histories stay readable and the next message crosses as usual."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import event, given

from gateway.backends.sandbox.backend import SandboxBackend
from gateway.backends.sandbox.exchange import SandboxExchange
from gateway.backends.sandbox.message_store import store_message
from gateway.protocol.envelope import ActionFailed, BadRequest
from tests.conftest import capture_logs
from tests.robustness.conftest import FUZZ
from tests.robustness.test_segment_fuzz import messages
from tests.test_sandbox_shared_world import BOT, LAB, SharedWorld, messages_of, text

BETA = 10002


@pytest.fixture
async def world() -> AsyncIterator[SharedWorld]:
    """The built-in world's bot and account 10002 (whose media limit is 4 KiB)."""
    world = SharedWorld()
    await world.add()
    await world.add(self_id=BETA, nickname="Beta", media_max_size=4096)
    await world.published()
    try:
        yield world
    finally:
        for account in world.accounts:
            await account.stop()
        await world.exchange.settled()


async def readable(account: SandboxBackend) -> list[dict[str, Any]]:
    """The whole Gateway Lab history of an account, each message read back by id too."""
    history = await account.invoke("get_group_msg_history", {"group_id": LAB, "count": 200})
    listed: list[dict[str, Any]] = history["messages"]
    for message in listed:
        got = await account.invoke("get_msg", {"message_id": message["message_id"]})
        assert {key: got[key] for key in message} == message
    return listed


async def crosses_cleanly(world: SharedWorld, message: str = "still fine") -> None:
    """A plain message still crosses, and both stores read back whole."""
    a, b = world.accounts
    await a.invoke("send_group_msg", {"group_id": LAB, "message": message})
    [copy] = messages_of(await world.published(), BETA)
    assert text(copy) == message
    assert (await readable(b))[-1]["message_id"] == copy["message_id"]
    await readable(a)


@FUZZ
@given(message=messages())
async def test_whatever_the_bot_may_send_crosses_whole_or_not_at_all(
    world: SharedWorld, message: Any
) -> None:
    a, b = world.accounts
    before = len(await readable(b))
    failed = world.exchange.failed
    try:
        sent = await a.invoke("send_group_msg", {"group_id": LAB, "message": message})
    except (BadRequest, ActionFailed):
        event("refused by the sender")
        assert messages_of(await world.published(), BETA) == []
        return
    original = await a.invoke("get_msg", {"message_id": sent["message_id"]})
    copies = messages_of(await world.published(), BETA)
    stored = await readable(b)
    if world.exchange.failed > failed:  # media over B's limit: nothing of it kept
        event("refused by the receiver")
        assert copies == [] and len(stored) == before
        return
    # One copy, unless the message was only a reply to what B never got.
    types = [s["type"] for s in original["message"] if s["type"] != "reply"]
    assert len(copies) == (1 if types else 0)
    event("crossed" if copies else "only a reply: not copied")
    if copies:
        [copy] = copies
        assert stored[-1]["message_id"] == copy["message_id"]
        assert stored[-1]["message"] == copy["message"]
        assert [s["type"] for s in copy["message"] if s["type"] != "reply"] == types
        assert copy["user_id"] == a.self_id and copy["self_id"] == BETA


async def test_a_huge_message_crosses_whole(world: SharedWorld) -> None:
    a, b = world.accounts
    huge = "長" * (1024 * 1024) + "\x00\u202e[CQ:at,qq=all]&#91;"
    await a.invoke("send_group_msg", {"group_id": LAB, "message": huge, "auto_escape": True})
    [copy] = messages_of(await world.published(), BETA)
    assert text(copy) == huge
    stored = await b.invoke("get_msg", {"message_id": copy["message_id"]})
    assert text(stored) == huge and stored["raw_message"] == copy["raw_message"]
    await crosses_cleanly(world)


async def test_odd_but_valid_segments_are_copied_exactly(world: SharedWorld) -> None:
    a, b = world.accounts
    deep: Any = "bottom"
    for _ in range(40):
        deep = {"k": [deep]}
    message = [
        {"type": "text", "data": {"text": "🙂\u200d\ufeff\r\n\t", "x_y": "[k]", "ID": "k=v&#44;"}},
        {"type": "at", "data": {"qq": "all"}},
        {"type": "face", "data": {"id": "14", "extra": 2**63 - 1}},
        {
            "type": "json",
            "data": {"data": '{"app":"x","deep":' + str(deep).replace("'", '"') + "}"},
        },
        {"type": "forward", "data": {"id": "no-such-bundle"}},
    ]
    sent = await a.invoke("send_group_msg", {"group_id": LAB, "message": message})
    original = await a.invoke("get_msg", {"message_id": sent["message_id"]})
    [copy] = messages_of(await world.published(), BETA)
    assert copy["message"] == original["message"]
    assert copy["raw_message"] == original["raw_message"]
    assert (await b.invoke("get_msg", {"message_id": copy["message_id"]}))["message"] == copy[
        "message"
    ]
    await crosses_cleanly(world)


async def test_media_over_the_receivers_limit_is_counted_and_leaves_no_trace(
    world: SharedWorld,
) -> None:
    a, b = world.accounts
    await crosses_cleanly(world, "first")
    last = (await readable(b))[-1]["message_id"]
    big = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(8192)).decode()
    with capture_logs() as logs:
        sent = await a.invoke(
            "send_group_msg",
            {"group_id": LAB, "message": [{"type": "image", "data": {"file": "base64://" + big}}]},
        )
        assert messages_of(await world.published(), BETA) == []
    assert sent["message_id"] > 0 and world.exchange.failed == 1
    [failure] = [entry for entry in logs if entry["event"] == "sandbox_exchange_failed"]
    assert "larger than the sandbox's limit of 4096 bytes" in failure["error"]
    media = await b.store.read(lambda db: db.execute("SELECT COUNT(*) FROM media").fetchone()[0])
    assert media == 0
    await crosses_cleanly(world, "next")
    # The refused copy consumed no id in B's store.
    assert (await readable(b))[-1]["message_id"] == last + 1


async def test_a_full_inbox_drops_and_counts_what_does_not_fit() -> None:
    world = SharedWorld()
    world.exchange = SandboxExchange(inbox_size=3)
    try:
        a = await world.add()
        await world.add(self_id=BETA)
        await world.published()

        def stored(n: int) -> Callable[[sqlite3.Connection], dict[str, Any]]:
            segments = [{"type": "text", "data": {"text": f"{n}"}}]
            return lambda db: store_message(db, "group", LAB, BOT, segments, {})

        # Stored by A, not shared yet (A shares only on its own sends).
        rows = [await a.store.run(stored(n)) for n in range(10)]
        with capture_logs() as logs:
            for row in rows:  # at once: B's task cannot take any before the fourth arrives
                world.exchange.sent(a, row)
            copies = messages_of(await world.published(), BETA)
        assert [text(copy) for copy in copies] == ["0", "1", "2"]
        assert (world.exchange.delivered, world.exchange.failed) == (3, 7)
        [failure] = [entry for entry in logs if entry["event"] == "sandbox_exchange_failed"]
        assert failure["error"] == "its inbox is full (3 messages)"
        await crosses_cleanly(world, "room again")
    finally:
        for account in world.accounts:
            await account.stop()
        await world.exchange.settled()
