"""SQLite storage for the sandbox, kept off the event loop.

All access goes through one worker thread, so statements never run concurrently and the event loop
never blocks on disk. Each `run()` is one call: all of its writes or none (see `Store.run`).

Nothing goes into the database that cannot be read back and sent: JSON columns are written with
`encode_json` (the wire's own encoder, strict) and read with `decode_json`, and a call that raises
is rolled back, so a failed action leaves no row, no event and no visibly consumed id.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson

from gateway.protocol import jsonio
from gateway.protocol.envelope import BadRequest

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
        """Run `fn(connection)` on the worker thread as one call, and return what it returns.

        The contract, which stays when several calls come to share one transaction (group
        commit): a call's writes are applied all or none, and independently of other calls.
        `fn` runs inside a savepoint of its own. If it raises, the database goes back to that
        savepoint (rows, AUTOINCREMENT counters, everything) and the exception propagates; no
        other call's writes are undone. If it returns, its writes are committed before `run`
        returns (today each call is its own transaction).

        A value SQLite cannot bind (an integer beyond 64 bits, text with a lone surrogate)
        becomes BadRequest (1400): such values come from a caller's parameters.
        """
        return await self._submit(functools.partial(self._transaction, fn))

    def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        assert db is not None, "store is not open"
        # Outside a transaction, SAVEPOINT begins one and RELEASE commits it. Group commit will
        # put a BEGIN before a batch of `_call`s and one COMMIT after them.
        return self._call(db, fn)

    @staticmethod
    def _call(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn(db)` inside the savepoint `call`: released when it returns, rolled back when it
        raises."""
        db.execute("SAVEPOINT call")
        try:
            result = fn(db)
        except BaseException as error:
            db.execute("ROLLBACK TO call")
            db.execute("RELEASE call")
            if isinstance(error, OverflowError | UnicodeEncodeError):
                raise BadRequest(f"a value cannot be stored: {error}") from None
            raise
        try:
            db.execute("RELEASE call")
        except sqlite3.Error:
            # The commit itself failed (disk full, I/O error): nothing of this call may remain.
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return result

    async def _submit(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def _open(self) -> None:
        # Autocommit mode: transactions are only the ones `_call` opens, never implicit ones.
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys = ON")
        if self.path != ":memory:":
            db.execute("PRAGMA journal_mode = WAL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            db.close()
            raise RuntimeError(
                f"{self.path}: database schema {version} is newer than this gateway "
                f"({SCHEMA_VERSION})"
            )
        # Every statement is idempotent, so tables added since the file was created appear.
        db.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        self._db = db


# --- JSON columns -------------------------------------------------------------------------------


def encode_json(value: Any, field: str) -> str:
    """`value` as the text of a JSON column, encoded as answers and events are (jsonio.dumps).

    BadRequest (1400) naming `field` when the value could not be sent back: an integer beyond
    64 bits, a lone surrogate, NaN or Infinity (which would come back as null), a type JSON does
    not have. Call it before the row is written, inside the call's transaction.
    """
    try:
        data = jsonio.dumps(value)
    except TypeError as error:  # orjson.JSONEncodeError is a TypeError
        raise BadRequest(f"{field}: cannot be stored: {error}") from None
    if b"null" in data and _has_non_finite(value):
        raise BadRequest(f"{field}: cannot be stored: NaN and Infinity are not JSON")
    return data.decode("utf-8")


def decode_json(text: str | bytes) -> Any:
    """The value of a JSON column, always one `jsonio.dumps` can encode.

    Rows written by older builds (Python's json module) may hold integers beyond 64 bits (they
    come back as floats, as the wire parser reads them) or NaN and Infinity (null). ValueError
    when the text is not JSON or holds what cannot be encoded even so (a lone surrogate).
    """
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:
        return orjson.loads(orjson.dumps(json.loads(text)))
    except (ValueError, TypeError) as error:  # json.JSONDecodeError, orjson.JSONEncodeError
        raise ValueError(f"a stored JSON value is unreadable: {error}") from None


def _has_non_finite(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False
