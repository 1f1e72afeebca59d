"""Sandbox accounts sharing one world: what one account's bot sends, the others receive.

A gateway has one `SandboxExchange`, given to each of its sandbox backends; a backend registers
on start and unregisters on stop. While two or more are registered, each one's
`shared_world` is the exchange, and the sending module hands it every message the bot sent
and stored (`sent`); with one account it stays None and a send does nothing more.

Who receives a message from account A:
- a group message in group G: every other account that is a member of G in its own store;
- a private message: the account whose QQ number it was sent to.

The receiver stores it in its history with its own message id and publishes it as a `message`
event with its own `self_id`, exactly as a simulated user's message (simulated.py): from user
A.self_id, named as A is named now, with the card and role the receiver's store gives A, A
joining the receiver's view of G first when it is not a member there. A private message is a
friend's when A is the receiver's friend, a stranger's (or a temporary session's) otherwise.
What a receiver stores is never sent on: receiving is not sending.

Delivery runs off the sender's call path: `sent` only queues, after the sender's write has
committed and its own event is published; each receiver has a queue (an inbox, at most
INBOX_SIZE messages) and one task working through it, so messages from A reach B in the order
A's store committed them (the order of A's own events). A message the receiver cannot take (its
store refuses it, say for a mute it knows of; it is stopped; its inbox is full) is counted in
`failed` and logged (at most once a second), never raised to the sender. An account that is not
registered (stopped, or restarting) gets nothing sent meanwhile, later either: there is no
offline queue. Use an exchange from one event loop.

A recall (`delete_msg`) reaches every account holding the message: the copies of a message the
bot sent, and the original of a copy an admin's bot recalled; each publishes its own recall
notice, with the recalling account's bot as the operator.

What a segment points at in the sender's store is carried over: media content (stored again in
the receiver's store, under the same content-derived id), a forward bundle (stored under the
same id, read back in the receiver's chat), and a reply, which quotes the receiver's copy of
the message (a reply to a message the receiver never got is left out). The message ids of the
copies are remembered while both accounts are registered, MAX_REMEMBERED at most.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import structlog

from gateway.backends.sandbox.forwards import forward_id_of, load_bundle
from gateway.backends.sandbox.history import publish_recall
from gateway.backends.sandbox.media import Blob, Source, media_row
from gateway.backends.sandbox.membership import speaker
from gateway.backends.sandbox.message_store import (
    NO_SOURCES,
    has_media,
    media_uris,
    message_event,
    row_dict,
)
from gateway.backends.sandbox.simulated import (
    GroupReceipt,
    Incoming,
    publish_group_receipt,
    write_group_receipt,
    write_private_receipt,
)
from gateway.backends.sandbox.store import encode_json
from gateway.config import ConfigError
from gateway.protocol.message import Message

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import Sandbox

log = structlog.get_logger("gateway.sandbox.exchange")

INBOX_SIZE = 10_000
"""Messages waiting for one receiver at most; more are dropped (counted in `failed`)."""
MAX_REMEMBERED = 100_000
"""Message ids of copies remembered at most (for replies), the oldest forgotten first."""
MAX_PIPELINED = 256
"""Writes one receiver queues before it waits for them (they commit in the store's batches)."""
FAILURE_LOG_INTERVAL = 1.0
"""Seconds between two `sandbox_exchange_failed` log lines at least."""

_TEMP = "group:"  # the stored sub_type of a temporary session (message_store.temp_sub_type)


class _Sent(NamedTuple):
    """A message one account's bot sent, as it was stored, and who sent it."""

    account: Sandbox
    self_id: int
    generation: int
    """The sender's registration (see `_Inbox.generation`) when it sent the message."""
    nickname: str
    message: dict[str, Any]

    @property
    def message_id(self) -> int:
        """The message's id in the sender's store."""
        return int(self.message["message_id"])


class _Recall(NamedTuple):
    """A message one account's bot recalled, and the receiver's id of its copy (or original)."""

    self_id: int
    message_id: int
    """The recalled message's id in the recalling account's store."""
    copy_id: int
    generation: int
    """The receiver's registration `copy_id` belongs to (a restart of it makes it stale)."""


class _Inbox:
    """One receiver's queue of messages and the task delivering them in order."""

    def __init__(self, exchange: SandboxExchange, account: Sandbox, size: int) -> None:
        self.account = account
        self.self_id = account.self_id
        self.generation = 0
        """Which registration of the account this is (unique in the exchange): message ids are
        remembered per registration, as a restarted `:memory:` store numbers them anew."""
        self.size = size
        self.items: deque[_Sent | _Recall] = deque()
        self.open = True
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self.task = asyncio.get_running_loop().create_task(
            exchange._work(self), name=f"sandbox-exchange-{self.self_id}"
        )


class SandboxExchange:
    """The sandbox accounts of one gateway, and the messages their bots send each other."""

    def __init__(self, inbox_size: int = INBOX_SIZE) -> None:
        self.inbox_size = inbox_size
        self.delivered = 0
        """Messages stored and published by a receiving account."""
        self.failed = 0
        """Messages and recalls a receiving account could not take (refused, stopped, inbox
        full)."""
        self._inboxes: dict[int, _Inbox] = {}
        self._closing: dict[int, _Inbox] = {}
        # Accounts by registration (_Inbox.generation): (receiver, the copy's id) → (sender,
        # the original's id), and (sender, original's id, receiver) → the copy's id.
        self._origin: OrderedDict[tuple[int, int], tuple[int, int]] = OrderedDict()
        self._copies: OrderedDict[tuple[int, int, int], int] = OrderedDict()
        self._generations = itertools.count(1)
        self._failed_since_log = 0
        self._last_failure_log = 0.0

    @property
    def accounts(self) -> tuple[int, ...]:
        """The QQ numbers of the registered accounts."""
        return tuple(self._inboxes)

    def register(self, account: Sandbox) -> None:
        """Take part from now on (the account's `self_id` is known: call it after seeding).

        ConfigError when another registered account has the same QQ number: two accounts of one
        world must be different users (`selfId`)."""
        self_id = account.self_id
        other = self._inboxes.get(self_id)
        if other is not None:
            if other.account is account:
                return
            raise ConfigError(
                f"backend.selfId: two sandbox accounts are both QQ {self_id}; give each its own "
                "selfId (accounts sharing a world are different users of it)"
            )
        inbox = self._closing.pop(self_id, None)
        if inbox is not None and inbox.account is account and not inbox.task.done():
            inbox.open = True  # restarted before its inbox was done: keep its order
        else:
            inbox = _Inbox(self, account, self.inbox_size)
        inbox.generation = next(self._generations)
        self._inboxes[self_id] = inbox
        self._share()

    def unregister(self, account: Sandbox) -> None:
        """Take part no more: nothing new is delivered to the account, and its sends are not
        shared. What its inbox holds is still delivered, without waiting for it here (on a
        restart, to the store it reopens; once stopped, it fails and is counted). The message
        ids remembered for it are not used again (a restarted `:memory:` store numbers anew)."""
        self_id = account.self_id
        inbox = self._inboxes.get(self_id)
        if inbox is None or inbox.account is not account:
            return
        del self._inboxes[self_id]
        account.shared_world = None
        self._share()
        inbox.open = False
        inbox.wake.set()
        self._closing[self_id] = inbox

    async def settled(self) -> None:
        """Return once every message sent so far has been delivered or has failed."""
        for inbox in (*self._inboxes.values(), *self._closing.values()):
            await inbox.idle.wait()

    def sent(self, account: Sandbox, message: dict[str, Any]) -> None:
        """Share a message `account`'s bot sent (its stored row, after the commit and its own
        event): queue it for each account that receives it. Never raises, never waits."""
        own = self._inboxes.get(account.self_id)
        if own is None or own.account is not account:
            return
        sent = _Sent(account, account.self_id, own.generation, account.nickname, message)
        if message["message_type"] == "group":
            for self_id, inbox in self._inboxes.items():
                if self_id != sent.self_id:
                    self._offer(inbox, sent)
            return
        receiver = self._inboxes.get(message["peer_id"])
        if receiver is not None and receiver.account is not account:
            self._offer(receiver, sent)

    def recalled(self, account: Sandbox, message: dict[str, Any]) -> None:
        """Share a recall `account`'s bot made (`delete_msg`, after its own notice): each
        account holding the message (a copy, or the original another account sent) recalls it
        too, after what it was delivered before, and publishes its own recall notice."""
        own = self._inboxes.get(account.self_id)
        if own is None or own.account is not account:
            return
        message_id = message["message_id"]
        for inbox in self._inboxes.values():
            if inbox is not own:
                copy_id = self._local(own.generation, message_id, inbox.generation)
                if copy_id is not None:
                    recall = _Recall(own.self_id, message_id, copy_id, inbox.generation)
                    self._offer(inbox, recall)

    # --- delivery -------------------------------------------------------------------------

    def _share(self) -> None:
        shared = self if len(self._inboxes) > 1 else None
        for inbox in self._inboxes.values():
            inbox.account.shared_world = shared

    def _offer(self, inbox: _Inbox, item: _Sent | _Recall) -> None:
        if len(inbox.items) >= inbox.size:
            self._fail(item, inbox.self_id, f"its inbox is full ({inbox.size} messages)")
            return
        inbox.items.append(item)
        inbox.idle.clear()
        inbox.wake.set()

    async def _work(self, inbox: _Inbox) -> None:
        """Deliver the inbox's messages in order until it is closed and empty.

        The receiver's writes are queued one after the other without waiting for each (so the
        store commits them in batches, in order), then published in order as they commit. A
        message quoting another waits for those before it: the quote needs their ids."""
        receiver = inbox.account
        while True:
            pending: list[tuple[_Sent, asyncio.Future[Any]]] = []
            while inbox.items:
                sent = inbox.items.popleft()
                if pending and (
                    len(pending) >= MAX_PIPELINED or isinstance(sent, _Recall) or _quotes(sent)
                ):
                    await self._finish(pending, inbox)
                    pending = []
                if isinstance(sent, _Recall):
                    if sent.generation != inbox.generation:
                        continue  # the receiver restarted since: its ids are not the same
                    try:
                        await self._recall(sent, receiver)
                    except Exception as error:
                        self._fail(sent, inbox.self_id, error)
                    continue
                try:
                    write = await self._start(sent, inbox)
                except Exception as error:  # the receiver's failure is never the sender's
                    self._fail(sent, inbox.self_id, error)
                    continue
                if write is not None:
                    pending.append((sent, write))
            if pending:
                await self._finish(pending, inbox)
                continue  # more may have come meanwhile
            inbox.idle.set()
            if not inbox.open:
                if self._closing.get(inbox.self_id) is inbox:
                    del self._closing[inbox.self_id]
                return
            inbox.wake.clear()
            await inbox.wake.wait()

    async def _start(self, sent: _Sent, inbox: _Inbox) -> asyncio.Future[Any] | None:
        """Queue the receiver's write of a message (None: nothing to write); its result is a
        GroupReceipt, None (not a member of the group) or a stored private message."""
        message = sent.message
        receiver = inbox.account
        to = receiver.self_id
        segments = self._quoting(sent.generation, inbox.generation, message["segments"])
        if not segments:  # only a reply to a message the receiver never got
            return None
        sources = NO_SOURCES
        if has_media(segments):
            sources = await _sources(sent.account, segments, receiver.media_max_size)
        forward_id = forward_id_of(segments)
        bundle = None
        if forward_id is not None:
            bundle = await sent.account.store.read(lambda db: load_bundle(db, forward_id))
        who = Incoming(sent.self_id, sent.nickname, renames=True)

        def keep_bundle(db: sqlite3.Connection, message_id: int) -> None:
            if forward_id is not None and bundle is not None:
                kept = {"message_id": message_id, "nodes": bundle[0]}
                db.execute(
                    "INSERT INTO forwards (forward_id, nodes) VALUES (?, ?)",
                    (forward_id, encode_json(kept, "messages")),
                )

        if message["message_type"] == "group":
            group_id = message["peer_id"]

            def write_group(db: sqlite3.Connection) -> GroupReceipt | None:
                if speaker(db, group_id, to) is None:
                    return None  # not a member: not for this account
                receipt = write_group_receipt(db, to, group_id, who, segments, sources)
                keep_bundle(db, receipt.message["message_id"])
                return receipt

            return receiver.store.run(write_group)
        sub_type = message["sub_type"]
        via = int(sub_type[len(_TEMP) :]) if sub_type.startswith(_TEMP) else None

        def write_private(db: sqlite3.Connection) -> dict[str, Any]:
            stored = write_private_receipt(db, to, who, segments, sources, via)
            keep_bundle(db, stored["message_id"])
            return stored

        return receiver.store.run(write_private)

    async def _finish(
        self, pending: list[tuple[_Sent, asyncio.Future[Any]]], inbox: _Inbox
    ) -> None:
        """Wait for each queued write in order; publish what it stored, or count its failure."""
        receiver = inbox.account
        to = receiver.self_id
        for sent, write in pending:
            try:
                result = await write
            except Exception as error:
                self._fail(sent, to, error)
                continue
            if result is None:
                continue
            stored = result.message if isinstance(result, GroupReceipt) else result
            self._remember(sent.generation, sent.message_id, inbox.generation, stored["message_id"])
            self.delivered += 1
            if isinstance(result, GroupReceipt):
                publish_group_receipt(receiver, result)
            else:
                receiver.publish(message_event(stored, to))

    async def _recall(self, recall: _Recall, receiver: Sandbox) -> None:
        def write(db: sqlite3.Connection) -> dict[str, Any] | None:
            row = db.execute(
                "SELECT * FROM messages WHERE message_id = ?", (recall.copy_id,)
            ).fetchone()
            if row is None or row["recalled"]:
                return None
            db.execute("UPDATE messages SET recalled = 1 WHERE message_id = ?", (recall.copy_id,))
            return row_dict(row)

        message = await receiver.store.run(write)
        if message is not None:
            publish_recall(receiver, message, operator_id=recall.self_id)

    def _fail(self, sent: _Sent | _Recall, to: int, error: Exception | str) -> None:
        self.failed += 1
        self._failed_since_log += 1
        now = time.monotonic()
        if now - self._last_failure_log >= FAILURE_LOG_INTERVAL:
            log.warning(
                "sandbox_exchange_failed",
                from_self_id=sent.self_id,
                to_self_id=to,
                message_id=sent.message_id,
                error=str(error) or type(error).__name__,
                failed=self._failed_since_log,
                failed_total=self.failed,
            )
            self._last_failure_log = now
            self._failed_since_log = 0

    # --- message ids across accounts ------------------------------------------------------
    # Accounts are named by registration (_Inbox.generation) here, not by QQ number: a message
    # id means a message of one store as it was while that registration lasted.

    def _quoting(self, sender: int, receiver: int, segments: Message) -> Message:
        """The segments for the receiver: a reply quotes the receiver's copy of the message,
        or is left out; the others are shared (nothing changes a stored message's segments)."""
        copied: Message = []
        for segment in segments:
            if segment["type"] == "reply":
                data = segment["data"]
                target = str(data.get("id", data.get("seq", "")))
                local = None
                if target.isascii() and target.isdigit() and len(target) <= 10:
                    local = self._local(sender, int(target), receiver)
                if local is None:
                    continue
                segment = {"type": "reply", "data": {"id": str(local)}}
            copied.append(segment)
        return copied

    def _local(self, account: int, message_id: int, receiver: int) -> int | None:
        """The receiver's id of what `account` knows as `message_id`, or None."""
        origin = self._origin.get((account, message_id), (account, message_id))
        if origin[0] == receiver:
            return origin[1]
        return self._copies.get((*origin, receiver))

    def _remember(self, sender: int, message_id: int, receiver: int, copy_id: int) -> None:
        origin = self._origin.get((sender, message_id), (sender, message_id))
        self._origin[(receiver, copy_id)] = origin
        self._copies[(*origin, receiver)] = copy_id
        if len(self._origin) > MAX_REMEMBERED:
            self._origin.popitem(last=False)
        if len(self._copies) > MAX_REMEMBERED:
            self._copies.popitem(last=False)


async def _sources(account: Sandbox, segments: Message, limit: int) -> Mapping[str, Source]:
    """The media of the segments, read from the sender's store, as Sources for the receiver,
    whose limit is `limit` (the content is there already: the receiver's transaction stores it
    under the same id)."""
    uris = media_uris(segments)

    def read(db: sqlite3.Connection) -> dict[str, Source]:
        sources = {}
        for uri in uris:
            row = media_row(db, uri)
            blob = None if row is None else Blob(bytes(row["content"]), str(row["file_name"]))
            sources[uri] = Source(uri, limit, blob)
        return sources

    return await account.store.read(read)


def _quotes(sent: _Sent) -> bool:
    """Whether a message has a reply segment (most have none)."""
    for segment in sent.message["segments"]:  # noqa: SIM110 - no generator for one or two
        if segment["type"] == "reply":
            return True
    return False
