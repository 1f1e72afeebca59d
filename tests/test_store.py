"""The sandbox database: tables added by a newer build appear in an existing file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

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
