"""One link per account for the client entries (reverse WebSocket, HTTP POST): each account an
entry serves gets its own connection or delivery queue, opened and closed as accounts come and
go, without touching the others'."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from gateway.accounts import Account


class AccountLink(Protocol):
    """A client entry's connection or queue for one account."""

    @property
    def account(self) -> Account: ...

    def start(self) -> None: ...

    async def stop(self) -> None: ...


Link = TypeVar("Link", bound=AccountLink)


async def sync_links(
    links: dict[str, Link], served: Iterable[Account], make: Callable[[Account], Link]
) -> None:
    """Make `links` (by account name) match the accounts `served` now: stop the links of
    accounts no longer served (or replaced by another of the same name), start one for each
    account without one; the others are not touched."""
    wanted = {account.name: account for account in served}
    for name in [name for name, link in links.items() if wanted.get(name) is not link.account]:
        await links.pop(name).stop()
    for name, account in wanted.items():
        if name not in links:
            link = links[name] = make(account)
            link.start()


async def stop_links(links: dict[str, Link]) -> None:
    """Stop every link at once and forget them."""
    stopping = list(links.values())
    links.clear()
    await asyncio.gather(*(link.stop() for link in stopping))
