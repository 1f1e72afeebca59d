"""The sandbox database: tables added by a newer build appear in an existing file; a call is
all or nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.backends.sandbox.store import Store
from gateway.protocol.envelope import ActionFailed, BadRequest
from tests.sandbox_client import sandbox_client, sandbox_document


async def test_missing_tables_are_created_in_an_existing_database(tmp_path: Path) -> None:
    database = tmp_path / "old.db"
    document = sandbox_document(str(database))
    async with sandbox_client(document) as first:
        sent = await first.ok("send_private_msg", user_id=20001, message="kept")
    with sqlite3.connect(database) as db:
        db.execute("DROP TABLE albums")  # as if written by a build before albums existed
    async with sandbox_client(document) as second:
        assert (await second.ok("get_msg", message_id=sent["message_id"]))["raw_message"] == "kept"
        albums = await second.ok("get_qun_album_list", group_id=30001)
    assert albums["album_list"] == []


async def test_a_call_that_raises_leaves_nothing_and_consumes_no_id() -> None:
    store = Store(":memory:")
    await store.open()
    try:

        def insert(db: sqlite3.Connection, text: str, fail: bool) -> int:
            cursor = db.execute(
                "INSERT INTO collections (category, brief, raw_data, author_id, time) "
                "VALUES (0, ?, '', 1, 0)",
                (text,),
            )
            if fail:
                raise ActionFailed("refused after writing")
            assert cursor.lastrowid is not None
            return cursor.lastrowid

        first = await store.run(lambda db: insert(db, "one", False))
        with pytest.raises(ActionFailed):
            await store.run(lambda db: insert(db, "failed", True))
        with pytest.raises(BadRequest, match="cannot be stored"):
            await store.run(lambda db: insert(db, "\ud800", False))
        with pytest.raises(BadRequest, match="cannot be stored"):
            await store.run(lambda db: db.execute("UPDATE collections SET time = ?", (2**70,)))
        second = await store.run(lambda db: insert(db, "two", False))
        rows = await store.run(
            lambda db: db.execute("SELECT brief, time FROM collections").fetchall()
        )
    finally:
        await store.close()
    assert second == first + 1
    assert [tuple(row) for row in rows] == [("one", 0), ("two", 0)]
