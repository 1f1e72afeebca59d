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
CREATE TABLE account (
    self_id INTEGER PRIMARY KEY,
    nickname TEXT NOT NULL,
    online INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE users (
    user_id INTEGER PRIMARY KEY,
    nickname TEXT NOT NULL,
    is_friend INTEGER NOT NULL DEFAULT 0,
    remark TEXT NOT NULL DEFAULT '',
    category TEXT NOT NULL DEFAULT 'Friends'
);
CREATE TABLE groups (
    group_id INTEGER PRIMARY KEY,
    group_name TEXT NOT NULL
);
CREATE TABLE members (
    group_id INTEGER NOT NULL REFERENCES groups(group_id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL,
    role TEXT NOT NULL DEFAULT 'member',
    card TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL DEFAULT '',
    join_time INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
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
        if version == 0:
            with db:
                db.executescript(_SCHEMA)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif version > SCHEMA_VERSION:
            db.close()
            raise RuntimeError(
                f"{self.path}: database schema {version} is newer than this gateway "
                f"({SCHEMA_VERSION})"
            )
        self._db = db
