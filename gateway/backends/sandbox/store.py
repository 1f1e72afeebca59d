"""SQLite storage for the sandbox, kept off the event loop.

All access goes through one worker thread, so statements never run concurrently and the event loop
never blocks on disk. Each `run()` is one short transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS account (
    self_id INTEGER PRIMARY KEY,
    nickname TEXT NOT NULL,
    online INTEGER NOT NULL DEFAULT 1,
    long_nick TEXT NOT NULL DEFAULT '',
    sex TEXT NOT NULL DEFAULT 'unknown',
    age INTEGER NOT NULL DEFAULT 0
);
-- Every QQ user the sandbox knows: friends (is_friend = 1), group members, strangers.
CREATE TABLE IF NOT EXISTS users (
    user_id INTEGER PRIMARY KEY,
    nickname TEXT NOT NULL,
    is_friend INTEGER NOT NULL DEFAULT 0,
    remark TEXT NOT NULL DEFAULT '',
    category TEXT NOT NULL DEFAULT 'Friends',
    sex TEXT NOT NULL DEFAULT 'unknown',
    age INTEGER NOT NULL DEFAULT 0,
    likes INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS groups (
    group_id INTEGER PRIMARY KEY,
    group_name TEXT NOT NULL,
    group_remark TEXT NOT NULL DEFAULT '',
    whole_ban INTEGER NOT NULL DEFAULT 0,
    max_member_count INTEGER NOT NULL DEFAULT 200,
    settings TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS members (
    group_id INTEGER NOT NULL REFERENCES groups(group_id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL,
    role TEXT NOT NULL DEFAULT 'member',
    card TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL DEFAULT '',
    title_expire INTEGER NOT NULL DEFAULT 0,
    mute_until INTEGER NOT NULL DEFAULT 0,
    join_time INTEGER NOT NULL,
    last_sent INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (group_id, user_id)
);
-- Users a group refuses (set_group_kick with reject_add_request).
CREATE TABLE IF NOT EXISTS group_blocklist (
    group_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
-- message_id is the persistent int32 OneBot id. peer_id is the friend (private) or the group.
CREATE TABLE IF NOT EXISTS messages (
    message_id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_type TEXT NOT NULL,
    sub_type TEXT NOT NULL,
    peer_id INTEGER NOT NULL,
    sender_id INTEGER NOT NULL,
    time INTEGER NOT NULL,
    segments TEXT NOT NULL,
    raw_message TEXT NOT NULL,
    sender TEXT NOT NULL,
    recalled INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_by_chat ON messages (message_type, peer_id, message_id);
CREATE TABLE IF NOT EXISTS forwards (
    forward_id TEXT PRIMARY KEY,
    nodes TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    flag TEXT PRIMARY KEY,
    request_type TEXT NOT NULL,
    sub_type TEXT NOT NULL DEFAULT '',
    group_id INTEGER NOT NULL DEFAULT 0,
    user_id INTEGER NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    time INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
);
CREATE TABLE IF NOT EXISTS group_folders (
    folder_id TEXT PRIMARY KEY,
    group_id INTEGER NOT NULL,
    folder_name TEXT NOT NULL,
    creator INTEGER NOT NULL,
    create_time INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS group_files (
    file_id TEXT PRIMARY KEY,
    group_id INTEGER NOT NULL,
    folder_id TEXT NOT NULL DEFAULT '/',
    file_name TEXT NOT NULL,
    size INTEGER NOT NULL,
    uploader INTEGER NOT NULL,
    upload_time INTEGER NOT NULL,
    busid INTEGER NOT NULL DEFAULT 102,
    media_id TEXT NOT NULL DEFAULT ''
);
-- Stored media (images, records, uploaded files): content kept in the database.
CREATE TABLE IF NOT EXISTS media (
    media_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    file_name TEXT NOT NULL,
    size INTEGER NOT NULL,
    content BLOB NOT NULL,
    time INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS essence (
    group_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    operator_id INTEGER NOT NULL,
    operator_time INTEGER NOT NULL,
    PRIMARY KEY (group_id, message_id)
);
CREATE TABLE IF NOT EXISTS notices (
    notice_id TEXT PRIMARY KEY,
    group_id INTEGER NOT NULL,
    sender_id INTEGER NOT NULL,
    publish_time INTEGER NOT NULL,
    content TEXT NOT NULL,
    image TEXT NOT NULL DEFAULT '',
    pinned INTEGER NOT NULL DEFAULT 0,
    settings TEXT NOT NULL DEFAULT '{}'
);
-- Key/value state that needs no table of its own (credentials, counters).
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- Extended message actions (sandbox/extended_message.py, faces.py, albums.py).
-- Emoji reactions: one row per message, emoji and reacting user.
CREATE TABLE IF NOT EXISTS emoji_likes (
    message_id INTEGER NOT NULL,
    emoji_id TEXT NOT NULL,
    emoji_type TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    time INTEGER NOT NULL,
    PRIMARY KEY (message_id, emoji_id, user_id)
);
-- The account's favourites (create_collection).
CREATE TABLE IF NOT EXISTS collections (
    collection_id INTEGER PRIMARY KEY AUTOINCREMENT,
    category INTEGER NOT NULL,
    brief TEXT NOT NULL,
    raw_data TEXT NOT NULL,
    message_id INTEGER,
    author_id INTEGER NOT NULL,
    group_id INTEGER NOT NULL DEFAULT 0,
    time INTEGER NOT NULL
);
-- The account's custom faces (stickers); content in `media`.
CREATE TABLE IF NOT EXISTS custom_faces (
    emo_id INTEGER PRIMARY KEY AUTOINCREMENT,
    res_id TEXT NOT NULL UNIQUE,
    md5 TEXT NOT NULL UNIQUE,
    media_id TEXT NOT NULL,
    file_name TEXT NOT NULL,
    emoji_id TEXT NOT NULL DEFAULT '',
    package_id TEXT NOT NULL DEFAULT '0',
    description TEXT NOT NULL DEFAULT '',
    is_mark_face INTEGER NOT NULL DEFAULT 0,
    is_origin INTEGER NOT NULL DEFAULT 0,
    time INTEGER NOT NULL
);
-- Group albums, their media (lloc = a media item's id), comments and likes.
CREATE TABLE IF NOT EXISTS albums (
    group_id INTEGER NOT NULL,
    album_id TEXT NOT NULL,
    album_name TEXT NOT NULL,
    creator INTEGER NOT NULL,
    create_time INTEGER NOT NULL,
    modify_time INTEGER NOT NULL,
    PRIMARY KEY (group_id, album_id)
);
CREATE TABLE IF NOT EXISTS album_media (
    lloc TEXT PRIMARY KEY,
    group_id INTEGER NOT NULL,
    album_id TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    media_id TEXT NOT NULL,
    uploader INTEGER NOT NULL,
    upload_time INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS album_comments (
    comment_id INTEGER PRIMARY KEY AUTOINCREMENT,
    lloc TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    content TEXT NOT NULL,
    time INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS album_likes (
    lloc TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    time INTEGER NOT NULL,
    PRIMARY KEY (lloc, user_id)
);
"""


class Store:
    """One SQLite database, used from a single worker thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-db")
        self._db: sqlite3.Connection | None = None

    async def open(self) -> None:
        """Open (creating if needed) the database and bring its schema up to date."""
        await self._submit(self._open)

    async def close(self) -> None:
        """Close the database and stop the worker thread."""
        if self._db is not None:
            await self._submit(self._db.close)
            self._db = None
        self._executor.shutdown(wait=True)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` in one transaction on the worker thread."""

        def transaction() -> T:
            assert self._db is not None, "store is not open"
            with self._db:
                return fn(self._db)

        return await self._submit(transaction)

    async def _submit(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def _open(self) -> None:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys = ON")
        if self.path != ":memory:":
            db.execute("PRAGMA journal_mode = WAL")
        db.isolation_level = "DEFERRED"  # implicit transactions again, committed by `with db`
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            db.close()
            raise RuntimeError(
                f"{self.path}: database schema {version} is newer than this gateway "
                f"({SCHEMA_VERSION})"
            )
        # Every statement is idempotent, so tables added since the file was created appear.
        with db:
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._db = db
