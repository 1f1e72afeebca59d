"""The rows the store's writer keeps for the send path (friends, groups, members) stay true:
every change an action makes is seen by the next send or received message, and a call that
changed a row and then failed leaves no trace in them."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from gateway.backends.sandbox.store import Store, kept_row
from gateway.protocol.envelope import ActionFailed
from tests.sandbox_client import SandboxClient, sandbox_client, sandbox_document
from tests.test_group_commit import Gate, until_queued

BOT, GROUP, OWNED = 10001, 30001, 30002


async def sent(client: SandboxClient, action: str, **params: Any) -> dict[str, Any]:
    """The stored message (as get_msg returns it) of a send or received message."""
    message_id = (await client.ok(action, **params))["message_id"]
    message: dict[str, Any] = await client.ok("get_msg", message_id=message_id)
    return message


async def test_sends_see_every_change_to_friends_groups_and_members(tmp_path: Path) -> None:
    async with sandbox_client(sandbox_document(str(tmp_path / "sandbox.db"))) as client:
        # The bot's private messages: the friend is looked up, then deleted.
        await client.ok("send_private_msg", user_id=20001, message="hi")
        await client.ok("delete_friend", user_id=20001)
        refused = await client.call("send_private_msg", user_id=20001, message="hi again")
        assert refused["retcode"] == 1200

        # The bot's group messages: its card and the group's name change between sends.
        first = await sent(client, "send_group_msg", group_id=GROUP, message="one")
        assert (first["sender"]["card"], first["group_name"]) == ("", "Gateway Lab")
        await client.ok("set_group_card", group_id=GROUP, user_id=BOT, card="the bot")
        await client.ok("set_group_name", group_id=GROUP, group_name="Renamed")
        second = await sent(client, "send_group_msg", group_id=GROUP, message="two")
        assert (second["sender"]["card"], second["group_name"]) == ("the bot", "Renamed")

        # Simulated members: muted, unmuted, then the whole group muted (admins still speak).
        said = {"message_type": "group", "group_id": GROUP, "message": "hello"}
        await client.ok("sandbox_receive_message", user_id=20004, **said)
        await client.ok("set_group_ban", group_id=GROUP, user_id=20004, duration=600)
        muted = await client.call("sandbox_receive_message", user_id=20004, **said)
        assert muted["retcode"] == 1200 and "muted" in muted["message"]
        await client.ok("set_group_ban", group_id=GROUP, user_id=20004, duration=0)
        await client.ok("sandbox_receive_message", user_id=20004, **said)
        await client.ok("set_group_whole_ban", group_id=GROUP, enable=True)
        whole = await client.call("sandbox_receive_message", user_id=20003, **said)
        assert whole["retcode"] == 1200
        await client.ok("send_group_msg", group_id=GROUP, message="the bot is an admin")

        # A member made an admin speaks as one; a newcomer joins as a member on first words.
        in_owned = {"message_type": "group", "group_id": OWNED, "message": "hey"}
        before = await sent(client, "sandbox_receive_message", user_id=20002, **in_owned)
        await client.ok("set_group_admin", group_id=OWNED, user_id=20002, enable=True)
        after = await sent(client, "sandbox_receive_message", user_id=20002, **in_owned)
        assert (before["sender"]["role"], after["sender"]["role"]) == ("member", "admin")
        new = await sent(client, "sandbox_receive_message", user_id=77777, **in_owned)
        assert new["sender"]["role"] == "member"
        await client.ok("set_group_kick", group_id=OWNED, user_id=77777)
        rejoined = await client.call("sandbox_receive_message", user_id=77777, **in_owned)
        assert rejoined["retcode"] == 0  # kicked without reject_add_request: joins again

        # The bot leaves (dismisses) the group it owns: nothing more can be sent there.
        await client.ok("set_group_leave", group_id=OWNED, is_dismiss=True)
        gone = await client.call("send_group_msg", group_id=OWNED, message="anyone?")
        assert gone["retcode"] == 1200


async def test_a_failed_call_leaves_no_trace_in_the_kept_rows(tmp_path: Path) -> None:
    """In one batch: a call changes the bot's card, looks the member up (so the changed row is
    kept), then fails; the send after it in the same batch, and a later one, use the card the
    database really holds."""
    async with sandbox_client(sandbox_document(str(tmp_path / "sandbox.db"))) as client:
        store = client.gw.supervisor.backend.store
        assert isinstance(store, Store)
        await client.ok("send_group_msg", group_id=GROUP, message="warm")  # the row is kept

        def change_then_fail(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE members SET card = 'rolled back' WHERE group_id = ? AND user_id = ?",
                (GROUP, BOT),
            )
            row = kept_row(db, "member", GROUP, BOT)
            assert row is not None and row["card"] == "rolled back"
            raise ActionFailed("refused after writing")

        gate = Gate(store)
        await gate.close()
        failing = asyncio.ensure_future(store.run(change_then_fail))
        send = asyncio.ensure_future(sent(client, "send_group_msg", group_id=GROUP, message="x"))
        await until_queued(store, 2)
        gate.open()
        assert isinstance((await asyncio.gather(failing, return_exceptions=True))[0], ActionFailed)
        in_batch = await send
        later = await sent(client, "send_group_msg", group_id=GROUP, message="y")
    assert in_batch["sender"]["card"] == later["sender"]["card"] == ""
