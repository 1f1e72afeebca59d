"""A call that stores media and then fails answers with its own error and keeps nothing.

The store runs such a call a second time (Store.run: a call that raised after writing is
replayed in a savepoint); the media of the second run must be found as in the first, so the
client gets the error that stopped the call, not a lookup error of the replay."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import AsyncIterator

import pytest

from gateway.backends.sandbox.backend import SandboxBackend
from gateway.bus import EventBus
from gateway.config import SandboxBackendConfig
from gateway.protocol.envelope import ActionFailed, BadRequest

IMAGE = {"type": "image", "data": {"file": "base64://" + base64.b64encode(b"GIF89a-x").decode()}}
CAROL, LAB = 20003, 30001


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxBackend]:
    backend = SandboxBackend(SandboxBackendConfig(database=":memory:"), EventBus())
    await backend.start()
    try:
        yield backend
    finally:
        await backend.stop()


async def kept(sandbox: SandboxBackend) -> tuple[int, int]:
    """(media rows, message rows)."""

    def count(db: sqlite3.Connection) -> tuple[int, int]:
        return (
            db.execute("SELECT COUNT(*) FROM media").fetchone()[0],
            db.execute("SELECT COUNT(*) FROM messages").fetchone()[0],
        )

    return await sandbox.store.read(count)


async def test_a_send_with_an_image_and_an_unstorable_value_is_a_1400(
    sandbox: SandboxBackend,
) -> None:
    message = [IMAGE, {"type": "face", "data": {"id": "14", "big": 2**70}}]
    with pytest.raises(BadRequest) as error:
        await sandbox.invoke("send_group_msg", {"group_id": LAB, "message": message})
    assert str(error.value).startswith("message: cannot be stored")
    assert await kept(sandbox) == (0, 0)
    assert sandbox.store.replays == 1  # the path under test: the call ran a second time


async def test_an_image_from_a_muted_member_is_refused_for_the_mute(
    sandbox: SandboxBackend,
) -> None:
    await sandbox.invoke("set_group_ban", {"group_id": LAB, "user_id": CAROL, "duration": 600})
    params = {"message_type": "group", "group_id": LAB, "user_id": CAROL, "message": [IMAGE]}
    with pytest.raises(ActionFailed) as error:
        await sandbox.invoke("sandbox_receive_message", params)
    assert str(error.value) == f"user {CAROL} is muted in group {LAB}"
    assert await kept(sandbox) == (0, 0)
    assert sandbox.store.replays == 1
