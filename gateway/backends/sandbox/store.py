"""SQLite storage for the sandbox, kept off the event loop, with group commit.

Writes go through one writer thread and its connection. `Store.run(fn)` queues a call; the
writer takes every call queued at that moment and runs them in one transaction, each one all
or nothing on its own (`Store._commit`), then commits once: calls that arrive while a batch
runs or commits join the next one. A caller gets its result only after the commit of its
batch. Reads
(`Store.read`) run on a reader thread with a connection of their own, so on a file database
(WAL) they never queue behind writes.

Durability (the README states it for users): the database is in WAL mode with
`synchronous = NORMAL`. A commit appends the batch to the WAL with a plain write, no sync: once
`run` has returned, the write is in the operating system's hands and survives the gateway being
killed (`kill -9`, a crash). The writer checkpoints at most SYNC_INTERVAL after a commit (and
SQLite also does when the WAL passes AUTOCHECKPOINT_PAGES); a checkpoint syncs the WAL and then
the database file. So a power loss or an operating-system crash may lose the calls acknowledged
in the last second or so, never more, and never leaves a damaged or half-written call.
`:memory:` keeps nothing past the process, and its reads run on the writer thread.

Nothing goes into the database that cannot be read back and sent: JSON columns are written with
`encode_json` (the wire's own encoder, strict) and read with `decode_json`, and a call that raises
is rolled back, so a failed action leaves no row, no event and no visibly consumed id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

import orjson
import structlog

from gateway.protocol import jsonio
from gateway.protocol.envelope import ActionFailed, BadRequest

T = TypeVar("T")

log = structlog.get_logger("gateway.sandbox.store")

MAX_BATCH = 1024
"""Most write calls in one transaction; more wait for the next one."""
MAX_READS = 64
"""Most reads the reader runs before it hands their results to the event loop."""
SYNC_INTERVAL = 1.0
"""Seconds from a commit to the checkpoint that syncs it: what a power loss may cost at most."""
AUTOCHECKPOINT_PAGES = 4096
"""SQLite checkpoints on its own once the WAL holds this many pages (16 MiB at 4 KiB): it bounds
the WAL when writes outrun SYNC_INTERVAL."""

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
-- Group todos, online files, flash transfer (sandbox/todos.py, online_files.py, flash.py).
-- A group has one todo at a time; cancelling it deletes the row.
CREATE TABLE IF NOT EXISTS group_todos (
    group_id INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL,
    operator_id INTEGER NOT NULL,
    time INTEGER NOT NULL,
    completed_by INTEGER NOT NULL DEFAULT 0,
    completed_time INTEGER NOT NULL DEFAULT 0
);
-- Online file and folder offers in private chats; msg_id and element_id are the onlinefile
-- segment's msgId and elementId. state: offered, received, refused or cancelled.
CREATE TABLE IF NOT EXISTS online_files (
    msg_id TEXT PRIMARY KEY,
    element_id TEXT NOT NULL,
    message_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    sender_id INTEGER NOT NULL,
    file_name TEXT NOT NULL,
    file_path TEXT NOT NULL DEFAULT '',
    file_size INTEGER NOT NULL,
    is_dir INTEGER NOT NULL DEFAULT 0,
    media_id TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'offered',
    time INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS online_files_by_friend ON online_files (user_id, time);
CREATE TABLE IF NOT EXISTS flash_filesets (
    fileset_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    share_code TEXT NOT NULL UNIQUE,
    uploader INTEGER NOT NULL,
    thumb_path TEXT NOT NULL DEFAULT '',
    create_time INTEGER NOT NULL,
    expire_time INTEGER NOT NULL,
    downloaded INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS flash_files (
    fileset_id TEXT NOT NULL,
    file_index INTEGER NOT NULL,
    file_name TEXT NOT NULL,
    size INTEGER NOT NULL,
    media_id TEXT NOT NULL,
    PRIMARY KEY (fileset_id, file_index)
);
"""


class Store:
    """One SQLite database: a writer thread that group-commits, and a reader thread.

    Use it from one event loop (the one `open` runs on). `run` and `read` may be called
    concurrently from any number of tasks; `close` waits for every accepted call to finish.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.batches = 0
        """Write transactions committed so far (one per batch)."""
        self.checkpoints = 0
        """Checkpoints (each one syncs the WAL, then the database file) run by the writer."""
        self.replays = 0
        """Batches run a second time, each call in a savepoint, because a call raised after
        writing (see `_commit`)."""
        self.concurrent_reads = False
        """True once open on a WAL file: `read` then runs on the reader thread."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writes: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._reads: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._reader: threading.Thread | None = None
        self._db: sqlite3.Connection | None = None
        self._read_db: sqlite3.Connection | None = None
        self._accepting = False
        self._failure: BaseException | None = None
        self._wal = False
        self._unsynced_since: float | None = None
        self._changes = 0

    @property
    def queued(self) -> int:
        """Calls waiting for the writer (not counting the batch it is running)."""
        return self._writes.qsize()

    # --- the API ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Open (creating if needed) the database and bring its schema up to date."""
        self._loop = asyncio.get_running_loop()
        self._failure = None
        self._wal = False
        self._unsynced_since = None
        self._writer = threading.Thread(
            target=self._write_loop, name="sandbox-db-writer", daemon=True
        )
        self._writer.start()
        try:
            await self._put(self._writes, _CONTROL, self._open)
            if self._wal:
                self._reader = threading.Thread(
                    target=self._read_loop, name="sandbox-db-reader", daemon=True
                )
                self._reader.start()
                await self._put(self._reads, _CONTROL, self._open_reader)
                self.concurrent_reads = True
        except BaseException:
            await self.close()
            raise
        self._accepting = True

    async def close(self) -> None:
        """Finish every call already accepted, close the database and stop the threads.

        Calls made after `close` began raise RuntimeError."""
        self._accepting = False
        self.concurrent_reads = False
        for jobs, thread in ((self._reads, self._reader), (self._writes, self._writer)):
            if thread is not None and thread.is_alive():
                jobs.put(None)
                await asyncio.to_thread(thread.join)
        self._reader = self._writer = None

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Run `fn(connection)` on the writer thread as one call; await what it returns.

        The contract: a call's writes are applied all or none, and independently of other
        calls. Calls queued together share one transaction (group commit). If `fn` raises, the
        database is as if it had never run (rows, AUTOINCREMENT counters, everything) and the
        exception propagates; no other call's writes are undone. `fn` may run twice: when a
        call raises after writing, its batch is rolled back and run again with a savepoint per
        call, so `fn` must act only on the connection (anything else it does, idempotently).
        If it returns, the future resolves only once the transaction holding its writes has
        committed: an answer built from the result is never sent for writes that could still
        be lost when the gateway is killed. If that commit fails, every call of the batch
        raises ActionFailed (1200) and none of them was stored.

        `fn` sees the writes of the calls before it in the same batch. It must not commit,
        roll back or begin a transaction itself.

        A value SQLite cannot bind (an integer beyond 64 bits, text with a lone surrogate)
        becomes BadRequest (1400): such values come from a caller's parameters.
        """
        # The hot path of every write: a plain function returning the future (no coroutine to
        # step through), and `_queue` inlined.
        if not self._accepting or self._failure is not None:
            self._refuse()
        future: asyncio.Future[T] = self._loop.create_future()  # type: ignore[union-attr]
        self._writes.put((_WRITE, fn, future))
        return future

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Run `fn(connection)`, which only reads; await what it returns.

        `fn` sees one committed state of the database, including every write whose `run` has
        resolved. On a file database (WAL) it runs on the reader thread and never waits for a
        batch of writes; on `:memory:` it runs on the writer thread between batches. A write
        inside `fn` raises sqlite3.OperationalError (the connection is query-only).
        """
        if self.concurrent_reads:
            return self._queue(self._reads, _READ, fn)
        return self._queue(self._writes, _READ, fn)

    # --- the event loop's side --------------------------------------------------------------

    def _queue(
        self,
        jobs: queue.SimpleQueue[_Job | None],
        kind: int,
        fn: Callable[[sqlite3.Connection], T],
    ) -> asyncio.Future[T]:
        if not self._accepting or self._failure is not None:
            self._refuse()
        return self._put(jobs, kind, fn)

    def _refuse(self) -> NoReturn:
        if self._failure is not None:
            raise ActionFailed(f"the sandbox database stopped: {self._failure!r}")
        raise RuntimeError("the sandbox store is not open")

    def _put(
        self, jobs: queue.SimpleQueue[_Job | None], kind: int, fn: Callable[[Any], T]
    ) -> asyncio.Future[T]:
        assert self._loop is not None
        future: asyncio.Future[T] = self._loop.create_future()
        jobs.put((kind, fn, future))
        return future

    def _send(self, outcomes: list[_Outcome]) -> None:
        """From a worker thread: settle the futures of a finished batch, on the loop, in order."""
        loop = self._loop
        if loop is None or not outcomes:
            return
        # A closed loop raises RuntimeError: nobody waits for these answers any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, outcomes)

    # --- the writer thread ------------------------------------------------------------------

    def _write_loop(self) -> None:
        jobs = self._writes
        batch: list[_Job] = []
        try:
            while True:
                try:
                    job = jobs.get(timeout=self._sync_timeout())
                except queue.Empty:
                    self._checkpoint()
                    continue
                stop = job is None
                batch = [] if job is None else [job]
                while not stop and len(batch) < MAX_BATCH:
                    try:
                        job = jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        stop = True
                    else:
                        batch.append(job)
                self._send(self._run_batch(batch))
                batch = []
                if stop:
                    break
                if self._sync_timeout() == 0.0:
                    self._checkpoint()
        except BaseException as error:  # a bug here must not leave callers waiting for ever
            self._failure = error
            log.error("store_writer_failed", error=repr(error), exc_info=True)
            self._fail_queued(jobs, batch, error)
        finally:
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()
                self._db = None

    def _run_batch(self, batch: list[_Job]) -> list[_Outcome]:
        """The writes of `batch` in one transaction, then its reads and control jobs."""
        outcomes: list[_Outcome] = []
        writes = [(fn, future) for kind, fn, future in batch if kind == _WRITE]
        if writes:
            outcomes += self._commit(writes)
        for kind, fn, future in batch:
            if kind == _CONTROL:
                outcomes.append(_attempt(fn, None, future))
            elif kind == _READ:
                outcomes.append(self._read_between_batches(fn, future))
        return outcomes

    def _commit(
        self, calls: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]]
    ) -> list[_Outcome]:
        """The calls in one transaction, committed once.

        Calls run bare first: a savepoint per call costs two statements, as much as the one
        INSERT a send is, and is needed only by a call that raises after it has written
        (one that raises first has nothing to undo; a statement that fails is undone by
        SQLite itself). When a call does that, the transaction is rolled back and the whole
        batch runs again, each call inside a savepoint of its own (`_call`)."""
        try:
            return self._run_batch_calls(calls, _bare_call)
        except _WroteThenFailed:
            db = self._db
            assert db is not None
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            forget_all(db)  # rows looked up in the rolled back transaction may hold its writes
            self.replays += 1
            return self._run_batch_calls(calls, _call)

    def _run_batch_calls(
        self,
        calls: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]],
        run_call: Callable[[sqlite3.Connection, Callable[[sqlite3.Connection], Any]], Any],
    ) -> list[_Outcome]:
        db = self._db
        assert db is not None, "store is not open"
        outcomes: list[_Outcome] = []
        kept: list[int] = []  # indexes into outcomes of the calls the open transaction holds
        try:
            statement(db, "BEGIN")
        except sqlite3.Error as error:
            return [(future, False, _not_stored(error)) for _, future in calls]
        for fn, future in calls:
            if not db.in_transaction:  # SQLite ended it after an I/O error: open the next one
                try:
                    statement(db, "BEGIN")
                except sqlite3.Error as error:
                    outcomes.append((future, False, _not_stored(error)))
                    continue
            try:
                outcomes.append((future, True, run_call(db, fn)))
            except _WroteThenFailed:
                raise
            except Exception as error:
                outcomes.append((future, False, error))
                if not db.in_transaction:
                    # SQLite rolled the whole transaction back (a full disk, an I/O error):
                    # the calls before this one in it are gone too, and must say so.
                    self._lose(outcomes, kept, error)
                    kept = []
                continue
            kept.append(len(outcomes) - 1)
        if db.in_transaction:
            try:
                statement(db, "COMMIT")
            except sqlite3.Error as error:
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                self._lose(outcomes, kept, error)
                return outcomes
            self.batches += 1
            if self._wal and self._unsynced_since is None and db.total_changes != self._changes:
                self._unsynced_since = time.monotonic()
            self._changes = db.total_changes
        return outcomes

    def _lose(self, outcomes: list[_Outcome], kept: list[int], error: BaseException) -> None:
        if self._db is not None:
            forget_all(self._db)  # rows looked up in the lost transaction may hold its writes
        if kept:
            log.error("store_batch_lost", calls=len(kept), error=repr(error))
        for index in kept:
            outcomes[index] = (outcomes[index][0], False, _not_stored(error))

    def _read_between_batches(
        self, fn: Callable[[sqlite3.Connection], Any], future: asyncio.Future[Any]
    ) -> _Outcome:
        db = self._db
        assert db is not None, "store is not open"
        db.execute("PRAGMA query_only = ON")
        try:
            return _read(db, fn, future)
        finally:
            db.execute("PRAGMA query_only = OFF")

    def _sync_timeout(self) -> float | None:
        """Seconds until the next checkpoint is due; None while nothing is unsynced."""
        if self._unsynced_since is None:
            return None
        return max(0.0, self._unsynced_since + SYNC_INTERVAL - time.monotonic())

    def _checkpoint(self) -> None:
        """Checkpoint the WAL: SQLite syncs it, copies it into the database file, syncs that.

        Until it has all been copied (a reader may hold on to part of it) the WAL counts as
        unsynced and the next checkpoint is due an interval later."""
        db = self._db
        if db is None:
            return
        try:
            busy, frames, copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as error:
            log.warning("store_checkpoint_failed", error=repr(error))
            busy, frames, copied = 1, 0, 0
        self.checkpoints += 1
        self._unsynced_since = time.monotonic() if busy or copied < frames else None

    def _fail_queued(
        self, jobs: queue.SimpleQueue[_Job | None], batch: list[_Job], error: BaseException
    ) -> None:
        failure = ActionFailed(f"the sandbox database stopped: {error!r}")
        outcomes: list[_Outcome] = [(future, False, failure) for _, _, future in batch]
        while True:
            try:
                job = jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                outcomes.append((job[2], False, failure))
        self._send(outcomes)

    def _open(self, _: None) -> None:
        # Autocommit mode: transactions are only the ones the writer opens, never implicit ones.
        db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, factory=_Connection
        )
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys = ON")
        if self.path != ":memory:":
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            self._wal = str(mode).lower() == "wal"
        if self._wal:
            # Commits reach the WAL (and so the OS) without a sync; `_checkpoint` syncs within
            # SYNC_INTERVAL. See the module docstring for what this promises.
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute(f"PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            db.close()
            raise RuntimeError(
                f"{self.path}: database schema {version} is newer than this gateway "
                f"({SCHEMA_VERSION})"
            )
        # Every statement is idempotent, so tables added since the file was created appear.
        db.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        db.keep_rows()
        self._db = db
        self._changes = db.total_changes

    # --- the reader thread ------------------------------------------------------------------

    def _read_loop(self) -> None:
        jobs = self._reads
        try:
            while True:
                job = jobs.get()
                stop = job is None
                batch = [] if job is None else [job]
                while not stop and len(batch) < MAX_READS:
                    try:
                        job = jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        stop = True
                    else:
                        batch.append(job)
                outcomes: list[_Outcome] = []
                for kind, fn, future in batch:
                    if kind == _CONTROL:
                        outcomes.append(_attempt(fn, None, future))
                    else:
                        assert self._read_db is not None, "reader is not open"
                        outcomes.append(_read(self._read_db, fn, future))
                self._send(outcomes)
                if stop:
                    break
        except BaseException as error:
            self._failure = error
            log.error("store_reader_failed", error=repr(error), exc_info=True)
            self._fail_queued(jobs, [], error)
        finally:
            if self._read_db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._read_db.close()
                self._read_db = None

    def _open_reader(self, _: None) -> None:
        db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, factory=_Connection
        )
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA query_only = ON")
        self._read_db = db


_WRITE, _READ, _CONTROL = 0, 1, 2
_Job = tuple[int, Callable[[Any], Any], "asyncio.Future[Any]"]
_Outcome = tuple["asyncio.Future[Any]", bool, Any]


def _settle(outcomes: list[_Outcome]) -> None:
    """On the event loop: answer each waiting caller, in the order the calls ran."""
    for future, ok, value in outcomes:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _call(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """`fn(db)` inside the savepoint `call`: released when it returns, rolled back when it
    raises (unless SQLite has already ended the whole transaction)."""
    statement(db, "SAVEPOINT call")
    try:
        result = fn(db)
    except BaseException as error:
        forget_all(db)  # rows it looked up may hold what it wrote
        if db.in_transaction:
            statement(db, "ROLLBACK TO call")
            statement(db, "RELEASE call")
        if isinstance(error, OverflowError | UnicodeEncodeError):
            raise BadRequest(f"a value cannot be stored: {error}") from None
        raise
    statement(db, "RELEASE call")
    return result


class _WroteThenFailed(Exception):
    """A call raised after it had written, outside a savepoint: its batch must run again."""


def _bare_call(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """`fn(db)` without a savepoint. If it raises having changed rows (and the transaction is
    still open), raises _WroteThenFailed: only a rollback of the whole transaction undoes that."""
    before = db.total_changes
    try:
        result = fn(db)
        if not db.in_transaction:  # what a failed RELEASE of the savepoint would have said
            raise sqlite3.OperationalError("the call ended the transaction it ran in")
        return result
    except Exception as error:
        if db.in_transaction and db.total_changes != before:
            raise _WroteThenFailed from error
        if isinstance(error, OverflowError | UnicodeEncodeError):
            raise BadRequest(f"a value cannot be stored: {error}") from None
        raise


def _read(
    db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], Any], future: asyncio.Future[Any]
) -> _Outcome:
    """`fn(db)` in a read transaction of its own, so all its statements see one state."""
    statement(db, "BEGIN")
    try:
        return _attempt(fn, db, future)
    finally:
        if db.in_transaction:
            statement(db, "ROLLBACK")


def _attempt(fn: Callable[[Any], Any], arg: Any, future: asyncio.Future[Any]) -> _Outcome:
    try:
        return (future, True, fn(arg))
    except (OverflowError, UnicodeEncodeError) as error:
        return (future, False, BadRequest(f"a value cannot be used: {error}"))
    except Exception as error:
        return (future, False, error)


def _not_stored(error: BaseException) -> ActionFailed:
    return ActionFailed(f"the database could not store this call, nothing was kept: {error}")


# --- rows the writer keeps ---------------------------------------------------------------------

MAX_KEPT_ROWS = 65_536
"""Most rows the writer's connection keeps; past it, it forgets them all and starts again."""

# Not last_sent: every group message changes it, and nothing that uses these rows reads it.
_MEMBER_COLUMNS = "group_id, user_id, role, card, title, title_expire, mute_until, join_time"
_KEPT = {
    "user": "SELECT * FROM users WHERE user_id = ?",
    "group": "SELECT * FROM groups WHERE group_id = ?",
    "member": (
        f"SELECT {_MEMBER_COLUMNS} FROM members "  # noqa: S608 - constant text
        "WHERE group_id = ? AND user_id = ?"
    ),
}
# TEMP triggers exist on the writer's connection only, and fire for every change it makes
# (foreign-key cascades and INSERT OR REPLACE included), whichever handler makes it.
_FORGET = f"""
CREATE TEMP TRIGGER forget_user_i AFTER INSERT ON users BEGIN
    SELECT forget_row('user', NEW.user_id, NULL); END;
CREATE TEMP TRIGGER forget_user_u AFTER UPDATE ON users BEGIN
    SELECT forget_row('user', OLD.user_id, NULL), forget_row('user', NEW.user_id, NULL); END;
CREATE TEMP TRIGGER forget_user_d AFTER DELETE ON users BEGIN
    SELECT forget_row('user', OLD.user_id, NULL); END;
CREATE TEMP TRIGGER forget_group_i AFTER INSERT ON groups BEGIN
    SELECT forget_row('group', NEW.group_id, NULL); END;
CREATE TEMP TRIGGER forget_group_u AFTER UPDATE ON groups BEGIN
    SELECT forget_row('group', OLD.group_id, NULL), forget_row('group', NEW.group_id, NULL); END;
CREATE TEMP TRIGGER forget_group_d AFTER DELETE ON groups BEGIN
    SELECT forget_row('group', OLD.group_id, NULL); END;
CREATE TEMP TRIGGER forget_member_i AFTER INSERT ON members BEGIN
    SELECT forget_row('member', NEW.group_id, NEW.user_id); END;
CREATE TEMP TRIGGER forget_member_u AFTER UPDATE OF {_MEMBER_COLUMNS} ON members BEGIN
    SELECT forget_row('member', OLD.group_id, OLD.user_id),
           forget_row('member', NEW.group_id, NEW.user_id); END;
CREATE TEMP TRIGGER forget_member_d AFTER DELETE ON members BEGIN
    SELECT forget_row('member', OLD.group_id, OLD.user_id); END;
"""


class _Connection(sqlite3.Connection):
    """A store connection: a cursor of its own for `statement`, and rows it can keep (the
    writer's does: `keep_rows`)."""

    kept: dict[tuple[Any, ...], sqlite3.Row | None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.own = self.cursor()

    def keep_rows(self) -> None:
        """Keep looked-up users, groups and members rows, each dropped as soon as a statement
        on this connection changes it (TEMP triggers call `forget_row`)."""
        kept: dict[tuple[Any, ...], sqlite3.Row | None] = {}

        def forget_row(kind: str, first: int, second: int | None) -> None:
            kept.pop((kind, first) if second is None else (kind, first, second), None)

        self.create_function("forget_row", 3, forget_row)
        self.executescript(_FORGET)
        self.kept = kept


def statement(db: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
    """`db.execute(sql, params)` for a statement whose rows nobody reads (INSERT, UPDATE,
    SAVEPOINT, ...), run on a cursor the store's connection keeps.

    A new cursor for every statement (what `db.execute` makes) costs about as much as a small
    INSERT: the connection registers each one. The kept cursor is reused by the next
    `statement`: read its `lastrowid` or `rowcount` at once.
    """
    own: sqlite3.Cursor | None = getattr(db, "own", None)
    if own is None:
        return db.execute(sql, params)
    return own.execute(sql, params)


def kept_row(db: sqlite3.Connection, kind: str, *key: int) -> sqlite3.Row | None:
    """The `users` (kind "user", key user_id), `groups` ("group", group_id) or `members`
    ("member", group_id and user_id; every column but last_sent) row, or None.

    On the writer's connection the row (or its absence) is kept until a statement changes it
    or a call is rolled back, so the send path looks up the friend, group and member without a
    query; elsewhere it is read. Use it where the row is only read: it is shared, and it is
    what the database holds at this point of the transaction.
    """
    kept: dict[tuple[Any, ...], sqlite3.Row | None] | None = getattr(db, "kept", None)
    if kept is None:
        row: sqlite3.Row | None = db.execute(_KEPT[kind], key).fetchone()
        return row
    entry = (kind, *key)
    try:
        return kept[entry]
    except KeyError:
        pass
    row = db.execute(_KEPT[kind], key).fetchone()
    if len(kept) >= MAX_KEPT_ROWS:
        kept.clear()
    kept[entry] = row
    return row


def forget_all(db: sqlite3.Connection) -> None:
    """Drop every kept row (after a rollback: they may hold writes that are gone)."""
    kept = getattr(db, "kept", None)
    if kept:
        kept.clear()


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
