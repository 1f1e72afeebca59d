"""The accounts behind one gateway, and which of them an entry (or a connection) serves.

An `Account` is one QQ account: its name from the config, its backend and the dispatcher that
runs actions on it. `Accounts` holds them in config order and finds one by name or by QQ number
(`self_id`: known after its backend starts; a relay learns it from its upstream). An
`AccountScope` is what one entry's `accounts` names (all of them when absent) and answers, for
the event bus, whether an event of a given `self_id` belongs to it.

These are the two seams of a multi-account gateway: which account an event belongs to (its
`self_id`), and which account a call goes to (`gateway.front` routes it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.actions.catalog import Catalog
from gateway.backends.base import Backend
from gateway.config import AccountRef, BackendConfig
from gateway.dispatcher import Answered
from gateway.protocol.envelope import Envelope
from gateway.protocol.stream import Send

SCOPE_CACHE_SIZE = 4096
MAX_QQ_NUMBER = 2**63 - 1
"""`self_id`s whose membership a scope remembers (bounded: ids come from events)."""


def qq_number(value: Any) -> int | None:
    """`value` as a QQ number (a positive int64, or its decimal ASCII digits), else None: how
    a client, an upstream or a header names an account."""
    if type(value) is str and 0 < len(value) <= 19 and value.isascii() and value.isdigit():
        value = int(value)
    if type(value) is int and 0 < value <= MAX_QQ_NUMBER:
        return value
    return None


class AccountDispatcher(Protocol):
    """What runs an account's actions: a `Dispatcher` on its backend, or, for an account
    another cluster node hosts, a `gateway.cluster.calls.RemoteDispatcher`."""

    observer: Callable[[list[Answered]], None] | None

    @property
    def catalog(self) -> Catalog: ...

    def call(
        self, action: str, params: Any = None, echo: Any = None, send: Send | None = None
    ) -> Awaitable[Envelope]: ...

    def record(self, action: str, retcode: int, seconds: float = 0.0) -> None: ...

    def flush_answered(self) -> None: ...

    async def start(self) -> None: ...

    async def stop(self, grace: float = 10.0) -> None: ...


@dataclass(eq=False, slots=True)
class Account:
    """One account: `name` from the config, its backend and its dispatcher."""

    name: str
    config: BackendConfig | None
    """Its backend's config section; None for an account another cluster node hosts."""
    backend: Backend
    dispatcher: AccountDispatcher

    @property
    def remote(self) -> bool:
        """Whether another cluster node hosts it (`gateway.cluster.node`)."""
        return self.config is None

    @property
    def self_id(self) -> int:
        """Its QQ number (0 while a relay has not learned it yet)."""
        return self.backend.self_id

    def online(self) -> bool:
        """Whether its backend says it is online (no I/O)."""
        return bool(self.backend.status().get("online"))

    def describe(self) -> str:
        """`'name' (self_id)` for messages."""
        return f"{self.name!r} ({self.self_id})"


class Accounts:
    """The gateway's accounts in config order; `version` changes whenever one is added or
    removed, so what is derived from the set (scopes, fronts) knows to look again."""

    def __init__(self) -> None:
        self._accounts: dict[str, Account] = {}
        self._by_self_id: dict[int, Account] = {}
        """Accounts found by `with_self_id`, checked again on each use (a number can change)."""
        self.version = 0

    def add(self, account: Account) -> None:
        """Add an account (its name must be new)."""
        assert account.name not in self._accounts, account.name
        self._accounts[account.name] = account
        self._by_self_id.clear()  # the first match in config order may be another now
        self.version += 1

    def remove(self, name: str) -> Account:
        """Remove and return the account named `name`."""
        account = self._accounts.pop(name)
        self._by_self_id.clear()
        self.version += 1
        return account

    def __iter__(self) -> Iterator[Account]:
        return iter(list(self._accounts.values()))

    def __len__(self) -> int:
        return len(self._accounts)

    def named(self, name: str) -> Account | None:
        """The account called `name`, if any."""
        return self._accounts.get(name)

    def with_self_id(self, self_id: int) -> Account | None:
        """The account whose QQ number is `self_id`, if any (the supervisor keeps them unique).

        Every call naming an account comes here, so a found account is remembered: one lookup
        instead of a pass over all of them. It is checked again on each use (its backend may
        have restarted as another number, or a relay learned its number since), and the memory
        is dropped whenever an account is added or removed; an unknown number (a 1403) still
        costs a pass."""
        known = self._by_self_id.get(self_id)
        if known is not None and known.self_id == self_id:
            return known
        for account in self._accounts.values():
            if account.self_id == self_id:
                if len(self._by_self_id) >= len(self._accounts):
                    self._by_self_id.clear()  # stale numbers: bounded by the accounts
                self._by_self_id[self_id] = account
                return account
        return None

    def first(self) -> Account:
        """The first account of the config (the only one of a one-account config)."""
        return next(iter(self._accounts.values()))


class AccountFilter(Protocol):
    """Which accounts' events a subscription takes (see `SubscriberOptions.accounts`)."""

    def serves(self, self_id: int) -> bool:
        """Whether events of the account `self_id` go to the subscription."""
        ...


class AccountScope:
    """The accounts one entry serves: those its `accounts` names (by name or QQ number), or
    every account of the gateway when it names none (`refs` None), now and after a reload."""

    def __init__(self, accounts: Accounts, refs: tuple[AccountRef, ...] | None) -> None:
        self.accounts = accounts
        self.refs = refs
        self._names = frozenset(ref for ref in refs or () if isinstance(ref, str))
        self._ids = frozenset(ref for ref in refs or () if isinstance(ref, int))
        self._version = -1
        self._served: tuple[Account, ...] = ()
        self._unresolved = False
        """Whether a QQ number in `refs` matched no account at the last refresh."""
        self._members: dict[int, bool] = {}

    @property
    def everything(self) -> bool:
        """Whether the entry serves every account (it names none)."""
        return self.refs is None

    @property
    def settled(self) -> bool:
        """Whether `served()` changes only when accounts are added or removed (the entry names
        none by QQ number, which an account may learn later)."""
        return not self._ids

    def served(self) -> tuple[Account, ...]:
        """The accounts served now, in config order."""
        if self._version != self.accounts.version:
            self._refresh()
        elif self._unresolved:
            # A QQ number named that no account had: a relay may have learned it since.
            self._refresh(keep_members=True)
        return self._served

    def includes(self, account: Account) -> bool:
        """Whether `account` is one the entry names (or it names none)."""
        return self.refs is None or account.name in self._names or account.self_id in self._ids

    def serves(self, self_id: int) -> bool:
        """Whether an event of the account `self_id` belongs to this entry (`AccountFilter`).

        Remembered per `self_id` until the accounts change: the bus asks once per event and
        entry. A QQ number the entry names serves even before an account has it (a relay that
        has not met its upstream yet, or, later, an account on another node)."""
        if self._version != self.accounts.version:
            self._refresh()
        known = self._members.get(self_id)
        if known is None:
            known = self_id in self._ids or any(a.self_id == self_id for a in self._served)
            if len(self._members) >= SCOPE_CACHE_SIZE:
                self._members.clear()
            self._members[self_id] = known
        return known

    def find(self, self_id: int) -> Account | None:
        """The served account whose QQ number is `self_id`, if any (one lookup, not a pass
        over the accounts: QQ numbers are unique among the accounts, see the supervisor)."""
        account = self.accounts.with_self_id(self_id)
        return account if account is not None and self.includes(account) else None

    def describe(self) -> str:
        """The served accounts as `'a' (10001), 'b' (10002)` for messages."""
        return ", ".join(account.describe() for account in self.served()) or "none"

    def _refresh(self, keep_members: bool = False) -> None:
        self._version = self.accounts.version
        self._served = tuple(account for account in self.accounts if self.includes(account))
        self._unresolved = bool(self._ids - {account.self_id for account in self._served})
        if not keep_members:
            self._members = {}


@dataclass(frozen=True, slots=True)
class OneAccount:
    """The events of one account only (a connection bound to it: `AccountFilter`)."""

    account: Account

    @property
    def only(self) -> int:
        """The one QQ number it takes events of (the bus files the subscription under it)."""
        return self.account.self_id

    def serves(self, self_id: int) -> bool:
        return self_id == self.account.self_id
