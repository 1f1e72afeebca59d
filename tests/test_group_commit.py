"""Group commit in the sandbox store: calls queued together share one transaction, each one
still all or nothing on its own; answers come only after the commit; reads never wait for a
batch. At the gateway: concurrent sends get distinct, persistent, ordered ids, and every
acknowledged send survives `kill -9`.

A batch is made deterministic by holding the writer inside a first call (a gate) while the others
queue up: when the gate opens, the writer takes all of them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.backends.sandbox.store import Store
from gateway.protocol.envelope import ActionFailed, BadRequest
from tests.conftest import GatewayProcess, run_gateway
from tests.sandbox_client import sandbox_document

INSERT = (
    "INSERT INTO collections (category, brief, raw_data, author_id, time) VALUES (0, ?, '', 1, ?)"
)


def insert(text: str, time: int = 0) -> Callable[[sqlite3.Connection], int]:
    def write(db: sqlite3.Connection) -> int:
        cursor = db.execute(INSERT, (text, time))
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    return write


def insert_then_fail(text: str) -> Callable[[sqlite3.Connection], int]:
    def write(db: sqlite3.Connection) -> int:
        db.execute(INSERT, (text, 0))
        raise ActionFailed("refused after writing")

    return write


def briefs(path: Path) -> list[tuple[int, str]]:
    """(id, brief) of every collection row, read by a connection of the test's own."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT collection_id, brief FROM collections ORDER BY 1").fetchall()
    return [(int(i), str(b)) for i, b in rows]


class Gate:
    """Holds the writer inside a call until `open()`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.entered = threading.Event()
        self.released = threading.Event()
        self.call: asyncio.Future[None] | None = None

    def _hold(self, db: sqlite3.Connection) -> None:
        self.entered.set()
        # Lets go by itself after 30 s, so a test that fails cannot hang the run.
        if not self.released.wait(30):
            self.released.set()

    async def close(self) -> None:
        self.call = asyncio.ensure_future(self.store.run(self._hold))
        assert await asyncio.to_thread(self.entered.wait, 30), "the writer never ran the gate"

    async def queue(self, calls: list[Callable[[sqlite3.Connection], Any]]) -> list[Any]:
        """Queue `calls` behind the gate, open it, and return each one's result or error."""
        tasks = [asyncio.ensure_future(self.store.run(fn)) for fn in calls]
        await until_queued(self.store, len(calls))
        self.open()
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    def open(self) -> None:
        self.released.set()


async def until_queued(store: Store, count: int) -> None:
    """Until `count` calls wait for the (held) writer; their tasks or requests are under way."""
    for _ in range(30_000):
        if store.queued >= count:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"only {store.queued} of {count} calls reached the store")


@contextlib.asynccontextmanager
async def opened(path: Path | str) -> AsyncIterator[Store]:
    store = Store(str(path))
    await store.open()
    try:
        yield store
    finally:
        await store.close()


# --- the store ------------------------------------------------------------------------------------


async def test_calls_queued_together_share_one_transaction(tmp_path: Path) -> None:
    database = tmp_path / "sandbox.db"
    async with opened(database) as store:
        gate = Gate(store)
        await gate.close()
        before = store.batches
        ids = await gate.queue([insert(f"m{i}") for i in range(50)])
        assert store.batches == before + 2  # the gate's batch, then all fifty in one
    assert ids == list(range(ids[0], ids[0] + 50))
    assert briefs(database) == [(ids[i], f"m{i}") for i in range(50)]


async def test_a_failed_call_in_a_batch_neither_undoes_nor_poisons_its_neighbours(
    tmp_path: Path,
) -> None:
    database = tmp_path / "sandbox.db"

    def duplicate_key(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO kv (key, value) VALUES ('k', 'second')")

    async with opened(database) as store:
        await store.run(lambda db: db.execute("INSERT INTO kv (key, value) VALUES ('k', 'first')"))
        gate = Gate(store)
        await gate.close()
        before = store.batches
        results = await gate.queue(
            [
                insert("one"),
                insert_then_fail("failed after writing"),
                insert("two"),
                insert("unbindable", 2**70),  # OverflowError when bound: BadRequest
                duplicate_key,  # sqlite3.IntegrityError inside the call
                insert("\ud800"),  # a lone surrogate: UnicodeEncodeError, BadRequest
                insert("three"),
            ]
        )
        assert store.batches == before + 2
        # "failed after writing" had changed a row outside a savepoint: the batch ran again,
        # each call in a savepoint of its own. The others failed before changing anything.
        assert store.replays == 1
        after = await store.run(insert("four"))
        kv = await store.read(lambda db: db.execute("SELECT key, value FROM kv").fetchall())
    one, failed, two, unbindable, duplicate, surrogate, three = results
    assert isinstance(failed, ActionFailed)
    assert isinstance(unbindable, BadRequest)
    assert isinstance(duplicate, sqlite3.IntegrityError)
    assert isinstance(surrogate, BadRequest)
    # The failed calls consumed no id: the AUTOINCREMENT counter went back with them.
    assert [two, three, after] == [one + 1, one + 2, one + 3]
    assert briefs(database) == [(one, "one"), (two, "two"), (three, "three"), (after, "four")]
    assert [tuple(row) for row in kv] == [("k", "first")]


async def test_a_batch_of_plain_writes_runs_one_statement_per_call(tmp_path: Path) -> None:
    """A call costs its own statements and nothing more: no savepoint per call unless one
    raises after writing (then its batch runs again, with them). Refusals before any write,
    the usual failure of an action, do not make a batch run again."""
    database = tmp_path / "sandbox.db"
    traced: list[str] = []

    def refuse(db: sqlite3.Connection) -> None:
        db.execute("SELECT 1").fetchone()
        raise ActionFailed("refused before writing")

    async with opened(database) as store:
        await store.run(lambda db: db.set_trace_callback(traced.append))
        gate = Gate(store)
        await gate.close()
        traced.clear()
        results = await gate.queue([insert("a"), refuse, insert("b"), insert("c")])
        await store.run(lambda db: db.set_trace_callback(None))
    assert isinstance(results[1], ActionFailed)
    assert store.replays == 0
    # The gate's own batch ends with its COMMIT; then BEGIN, the calls' statements, COMMIT
    # (then the BEGIN of the call that stops the tracing).
    assert [s.split()[0] for s in traced][:7] == [
        "COMMIT",
        "BEGIN",
        "INSERT",
        "SELECT",
        "INSERT",
        "INSERT",
        "COMMIT",
    ]
    a, _, b, c = results
    assert briefs(database) == [(a, "a"), (b, "b"), (c, "c")]


async def test_calls_whose_transaction_sqlite_ended_fail_and_say_so(tmp_path: Path) -> None:
    """A full disk or an I/O error makes SQLite roll back the whole transaction; stood in for here
    by a call that ends it itself. The calls before it in the batch are not acknowledged (they
    were not stored), and the calls after it go on in a new transaction."""
    database = tmp_path / "sandbox.db"

    def ends_the_transaction(db: sqlite3.Connection) -> None:
        db.execute(INSERT, ("rolled back", 0))
        db.execute("ROLLBACK")

    async with opened(database) as store:
        gate = Gate(store)
        await gate.close()
        lost, ended, kept = await gate.queue([insert("lost"), ends_the_transaction, insert("kept")])
    assert isinstance(lost, ActionFailed)
    assert "nothing was kept" in str(lost)
    assert isinstance(ended, sqlite3.OperationalError)
    assert briefs(database) == [(kept, "kept")]


async def test_a_commit_that_fails_fails_every_call_of_its_batch(tmp_path: Path) -> None:
    """A deferred foreign key checked at COMMIT stands in for a commit that fails (disk full):
    nobody is told "stored" and nothing is."""
    database = tmp_path / "sandbox.db"

    def breaks_the_commit(db: sqlite3.Connection) -> None:
        db.execute("PRAGMA defer_foreign_keys = ON")
        db.execute("INSERT INTO members (group_id, user_id, join_time) VALUES (?, ?, 0)", (404, 1))

    async with opened(database) as store:
        gate = Gate(store)
        await gate.close()
        results = await gate.queue([insert("a"), breaks_the_commit, insert("b")])
        later = await store.run(insert("later"))
    assert all(isinstance(r, ActionFailed) for r in results), results
    assert briefs(database) == [(later, "later")]


async def test_an_answer_means_committed(tmp_path: Path) -> None:
    """Whoever got an answer can see the write from any other connection at once."""
    database = tmp_path / "sandbox.db"
    async with opened(database) as store:
        for i in range(20):
            rows = await asyncio.gather(*(store.run(insert(f"{i}.{j}")) for j in range(5)))
            assert {row for row, _ in briefs(database)} >= set(rows)


async def test_reads_do_not_wait_for_a_batch_and_see_only_committed_writes(
    tmp_path: Path,
) -> None:
    database = tmp_path / "sandbox.db"
    entered, release = threading.Event(), threading.Event()

    def write_and_hold(db: sqlite3.Connection) -> int:
        row = insert("pending")(db)
        entered.set()
        if not release.wait(30):
            release.set()
        return row

    def count(db: sqlite3.Connection) -> int:
        return int(db.execute("SELECT COUNT(*) FROM collections").fetchone()[0])

    async with opened(database) as store:
        assert store.concurrent_reads
        await store.run(insert("committed"))
        held = asyncio.ensure_future(store.run(write_and_hold))
        assert await asyncio.to_thread(entered.wait, 30)
        try:
            # The writer is inside a transaction that has written: a read neither waits for it
            # (the held call lets go by itself only after 30 s) nor sees its row.
            assert await store.read(count) == 1
            assert not release.is_set()
        finally:
            release.set()
        await held
        assert await store.read(count) == 2


async def test_a_read_cannot_write(tmp_path: Path) -> None:
    for path in (tmp_path / "sandbox.db", ":memory:"):
        async with opened(path) as store:
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                await store.read(insert("sneaky"))
            # The refused read left nothing behind, and writing still works.
            assert await store.run(insert("fine")) == 1
            rows = await store.read(
                lambda db: db.execute("SELECT brief FROM collections").fetchall()
            )
            assert [row[0] for row in rows] == ["fine"]


async def test_close_finishes_accepted_calls_and_refuses_later_ones(tmp_path: Path) -> None:
    database = tmp_path / "sandbox.db"
    store = Store(str(database))
    await store.open()
    gate = Gate(store)
    await gate.close()
    pending = [asyncio.ensure_future(store.run(insert(f"p{i}"))) for i in range(10)]
    await until_queued(store, 10)
    closing = asyncio.ensure_future(store.close())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="not open"):
        await store.run(insert("too late"))
    gate.open()
    await closing
    ids = await asyncio.gather(*pending)
    assert briefs(database) == [(row, f"p{i}") for i, row in enumerate(ids)]


# --- the gateway ----------------------------------------------------------------------------------


async def test_concurrent_sends_get_distinct_persistent_ids_in_order_per_chat(
    tmp_path: Path,
) -> None:
    """Eight WebSocket connections send 40 messages each, one after the other per connection,
    all at once, to one friend and one group. Every id is distinct and grows per connection;
    each chat's message_sent events arrive in id order; after a restart on the same file every
    message reads back under its id and the history lists them in that order."""
    database = str(tmp_path / "sandbox.db")
    document = sandbox_document(database)
    chats = [("private", {"user_id": 20001}), ("group", {"group_id": 30001})]
    sent: dict[str, list[tuple[int, str]]] = {"private": [], "group": []}
    events: dict[str, list[int]] = {"private": [], "group": []}

    async def sender(http: aiohttp.ClientSession, url: str, index: int) -> list[int]:
        kind, target = chats[index % 2]
        action = "send_private_msg" if kind == "private" else "send_group_msg"
        ids = []
        async with http.ws_connect(url) as ws:
            for n in range(40):
                text = f"c{index} n{n}"
                await ws.send_json({"action": action, "params": {**target, "message": text}})
                reply = await ws.receive_json(timeout=30)
                assert reply["retcode"] == 0, reply
                ids.append(reply["data"]["message_id"])
                sent[kind].append((ids[-1], text))
        return ids

    async with run_gateway(document) as gw, aiohttp.ClientSession() as http:
        ws_url = gw.url("ws", "/").replace("http://", "ws://")
        async with http.ws_connect(ws_url) as listener:
            assert (await listener.receive_json(timeout=5))["meta_event_type"] == "lifecycle"
            per_connection = await asyncio.gather(
                *(sender(http, ws_url + "api", i) for i in range(8))
            )
            while sum(len(v) for v in events.values()) < 320:
                event = await listener.receive_json(timeout=30)
                if event.get("post_type") == "message_sent":
                    events[event["message_type"]].append(event["message_id"])
    all_ids = [i for ids in per_connection for i in ids]
    assert len(set(all_ids)) == 320
    assert all(ids == sorted(ids) for ids in per_connection)
    for kind in ("private", "group"):
        assert events[kind] == sorted(events[kind])
        assert sorted(events[kind]) == sorted(i for i, _ in sent[kind])

    async with run_gateway(document) as gw, aiohttp.ClientSession() as http:

        async def call(action: str, **params: Any) -> Any:
            async with http.post(gw.url("api", f"/{action}"), json=params) as response:
                body = await response.json()
            assert body["retcode"] == 0, body
            return body["data"]

        for message_id, text in sent["private"] + sent["group"]:
            assert (await call("get_msg", message_id=message_id))["raw_message"] == text
        friend = await call("get_friend_msg_history", user_id=20001, count=200)
        group = await call("get_group_msg_history", group_id=30001, count=200)
    assert [m["message_id"] for m in friend["messages"]] == sorted(i for i, _ in sent["private"])
    assert [m["message_id"] for m in group["messages"]] == sorted(i for i, _ in sent["group"])
    assert [m["raw_message"] for m in friend["messages"]] == [t for _, t in sorted(sent["private"])]


async def test_reads_are_answered_while_the_writer_is_held(tmp_path: Path) -> None:
    """A bot's lookups (member info, friend list, history) do not queue behind writes: each is
    answered while the writer is still held (the gate lets go by itself only after 30 s)."""
    async with run_gateway(sandbox_document(str(tmp_path / "sandbox.db"))) as gw:
        store = gw.supervisor.backend.store
        assert isinstance(store, Store)
        gate = Gate(store)
        await gate.close()
        try:
            async with aiohttp.ClientSession() as http:
                for action, params in [
                    ("get_group_member_info", {"group_id": 30001, "user_id": 10001}),
                    ("get_friend_list", {}),
                    ("get_friend_msg_history", {"user_id": 20001}),
                    ("get_login_info", {}),
                ]:
                    async with http.post(gw.url("api", f"/{action}"), json=params) as response:
                        body = await response.json()
                    assert body["retcode"] == 0, (action, body)
                    assert not gate.released.is_set(), f"{action} waited for the writer"
        finally:
            gate.open()


async def test_failed_sends_in_a_batch_leave_the_others_stored(tmp_path: Path) -> None:
    database = str(tmp_path / "sandbox.db")
    async with run_gateway(sandbox_document(database)) as gw, aiohttp.ClientSession() as http:
        store = gw.supervisor.backend.store
        assert isinstance(store, Store)

        async def send(params: dict[str, Any]) -> dict[str, Any]:
            async with http.post(gw.url("api", "/send_private_msg"), json=params) as response:
                body: dict[str, Any] = await response.json()
                return body

        gate = Gate(store)
        await gate.close()
        calls = [
            {"user_id": 20001, "message": "first"},
            {"user_id": 99999, "message": "to a stranger"},  # 1200: not a friend
            {"user_id": 20001, "message": [{"type": "reply", "data": {"id": "424242"}}]},  # 1400
            {"user_id": 20001, "message": "second"},
        ]
        tasks = [asyncio.ensure_future(send(params)) for params in calls]
        await until_queued(store, len(calls))
        before = store.batches
        gate.open()
        first, stranger, bad_reply, second = await asyncio.gather(*tasks)
        assert store.batches == before + 2
    assert [first["retcode"], stranger["retcode"], bad_reply["retcode"], second["retcode"]] == [
        0,
        1200,
        1400,
        0,
    ]
    assert second["data"]["message_id"] == first["data"]["message_id"] + 1
    async with (
        run_gateway(sandbox_document(database)) as gw,
        aiohttp.ClientSession() as http,
        http.post(gw.url("api", "/get_friend_msg_history"), json={"user_id": 20001}) as response,
    ):
        history = (await response.json())["data"]["messages"]
    assert [m["raw_message"] for m in history] == ["first", "second"]


def test_every_acknowledged_send_survives_kill_9(tmp_path: Path, gateway_process: Any) -> None:
    """A burst of sends on 16 connections; the gateway is killed with SIGKILL in the middle of
    it; restarted on the same file, every id that was answered reads back with its text."""
    document = {
        "network": {
            "httpServers": [{"name": "api", "enable": True, "host": "127.0.0.1", "port": 0}],
        },
        "backend": {"type": "sandbox", "database": str(tmp_path / "sandbox.db")},
    }
    first: GatewayProcess = gateway_process(document)
    first.wait_for("gateway_ready")
    url = f"http://127.0.0.1:{first.port_of('api')}"
    acknowledged = asyncio.run(_burst_then_kill(url, first))
    assert len(acknowledged) >= 200
    assert len({message_id for message_id, _ in acknowledged}) == len(acknowledged)

    second: GatewayProcess = gateway_process(document)
    second.wait_for("gateway_ready")
    url = f"http://127.0.0.1:{second.port_of('api')}"
    missing = asyncio.run(_missing(url, acknowledged))
    assert missing == []


async def _burst_then_kill(url: str, process: GatewayProcess) -> list[tuple[int, str]]:
    acknowledged: list[tuple[int, str]] = []
    killed = asyncio.Event()

    async def sender(http: aiohttp.ClientSession, index: int) -> None:
        n = 0
        while True:
            text = f"s{index} n{n}"
            n += 1
            try:
                async with http.post(
                    f"{url}/send_private_msg", json={"user_id": 20001, "message": text}
                ) as response:
                    body = await response.json()
            except (TimeoutError, aiohttp.ClientError):
                return  # the gateway is gone: this call was never answered
            assert body["retcode"] == 0, body
            acknowledged.append((body["data"]["message_id"], text))
            if len(acknowledged) >= 300 and not killed.is_set():
                killed.set()
                os.kill(process.proc.pid, signal.SIGKILL)  # our own child, by its pid

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        await asyncio.gather(*(sender(http, i) for i in range(16)))
    process.proc.wait(30)
    assert killed.is_set()
    return acknowledged


async def _missing(url: str, acknowledged: list[tuple[int, str]]) -> list[tuple[int, str]]:
    missing = []
    async with aiohttp.ClientSession() as http:
        for message_id, text in acknowledged:
            async with http.post(f"{url}/get_msg", json={"message_id": message_id}) as response:
                body = await response.json()
            if body["retcode"] != 0 or body["data"]["raw_message"] != text:
                missing.append((message_id, text))
    return missing
