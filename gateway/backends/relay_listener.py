"""Reverse-mode relay listeners: one listening socket per `host:port`, shared by every reverse
relay account configured on it; an upstream that connects is handed to its account.

A listener serving one account keeps the single-account contract: the account's token is
checked, then an `X-Self-ID` is required, and the account takes it as its QQ number. A listener
serving several accounts tells their upstreams apart by the request's path and `X-Self-ID`: the
account whose `path` is the path and whose configured `selfId` is the header's value gets the
connection, once its own token matches (constant-time). Every refusal comes before the upgrade,
with a failed envelope saying what was wrong (never which tokens other accounts have): 400/1400
for a missing or malformed `X-Self-ID` or a request that is not a WebSocket upgrade, 403/1403
for an `X-Self-ID` no account on the path has or a wrong token, 404/1404 for a path no account
uses (paths match exactly).

A listener opens with the first account that attaches to it and closes when the last one
detaches; accounts come and go one at a time (reload) without touching the others' upstreams.
Once a listener has served several accounts it keeps telling upstreams apart until it closes:
the upstream of an account that was removed, still redialling, is refused instead of being
taken for the remaining account's.
An account on port 0 gets a listener of its own (the system picks its port).
"""

from __future__ import annotations

import asyncio
from typing import Final, Protocol

import structlog
from aiohttp import web

from gateway.accounts import qq_number
from gateway.config import ConfigError, RelayBackendConfig
from gateway.network.auth import request_token, token_matches
from gateway.network.listener import json_response
from gateway.protocol.envelope import Retcode, failed

log = structlog.get_logger("gateway.relay")

CLOSE_TIMEOUT: Final = 2.0
"""Seconds closing a listener waits for its request handlers."""
SHOWN_HEADER: Final = 24
"""Characters of a refused header value repeated in the refusal (the rest is elided)."""


class ReverseAccount(Protocol):
    """What a listener needs from a reverse-mode relay account."""

    @property
    def config(self) -> RelayBackendConfig:
        """Its backend section: `host`, `port`, `path`, `token` and `selfId` are read here."""
        ...

    async def accept(
        self, request: web.Request, self_id: int, *, shared: bool
    ) -> web.StreamResponse:
        """Upgrade an admitted upstream and serve it until it closes. `self_id` is its
        X-Self-ID; `shared` says the listener serves other accounts too (the account then keeps
        its configured QQ number instead of learning one)."""
        ...

    async def close_upstream(self) -> None:
        """Close its connected upstream, if any (its `accept` then returns)."""


def refusal(status: int, retcode: Retcode, message: str) -> web.Response:
    return json_response(failed(retcode, message), status)


def shown(value: str) -> str:
    """A header value as it may appear in a message: ASCII only, and short."""
    if len(value) > SHOWN_HEADER:
        return ascii(value[:SHOWN_HEADER])[:-1] + "...'"
    return ascii(value)


class RelayListener:
    """One listening socket (`address`) and the accounts whose upstreams connect to it."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.accounts: list[ReverseAccount] = []
        self.shared = False
        """It has served several accounts at once: upstreams must name theirs (X-Self-ID)."""
        self._runner: web.AppRunner | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def bound_port(self) -> int:
        """The port it listens on (the system's pick for port 0); 0 while closed."""
        if self._runner is None or not self._runner.addresses:
            return 0
        return int(self._runner.addresses[0][1])

    async def open(self) -> None:
        app = web.Application()
        # One route for every path: accounts (and so paths) come and go while the app runs,
        # and an aiohttp router is frozen once the app starts.
        app.router.add_get("/{tail:.*}", self._handle)
        # Handlers are upstream connections, closed by their accounts before the listener
        # closes, and refusals: the timeout only bounds a connection accepted as it closed.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=CLOSE_TIMEOUT)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("relay_listening", address=self.address)

    async def close(self, last: ReverseAccount) -> None:
        """Stop listening, close the upstream of `last` (the account that was left), then wait
        for the handlers."""
        runner = self._runner
        if runner is None:
            return
        self._runner = None
        # Listening stops first: an upstream that redials the moment it is dropped finds no
        # port, instead of a connection the shutdown below would wait on.
        for site in list(runner.sites):
            await site.stop()
        await last.close_upstream()
        await runner.cleanup()
        log.info("relay_listener_closed", address=self.address)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        # Checked before the upgrade: a wrong peer never gets a socket.
        here = [account for account in self.accounts if account.config.path == request.path]
        if not here:
            log.warning("upstream_refused", peer=request.remote, reason="unknown path")
            return refusal(
                404,
                Retcode.NOT_FOUND,
                f"no relay account accepts upstreams on path {shown(request.path)}",
            )
        admitted = admit_among(request, here) if self.shared else admit_only(request, here[0])
        if isinstance(admitted, web.Response):
            return admitted
        account, self_id = admitted
        if not web.WebSocketResponse().can_prepare(request).ok:
            return refusal(
                400,
                Retcode.BAD_REQUEST,
                "a relay upstream connects with a WebSocket upgrade (GET, Upgrade: websocket)",
            )
        return await account.accept(request, self_id, shared=self.shared)


def admit_only(
    request: web.Request, account: ReverseAccount
) -> tuple[ReverseAccount, int] | web.Response:
    """The one account of a listener: its token, then any X-Self-ID is its QQ number."""
    if not token_matches(account.config.token, request_token(request)):
        log.warning("upstream_auth_failed", peer=request.remote)
        return refusal(403, Retcode.FORBIDDEN, "access token is missing or wrong")
    header = request.headers.get("X-Self-ID")
    self_id = qq_number(header)
    if self_id is None:
        if header is None:
            message = "X-Self-ID header is required (the account's QQ number)"
        else:
            message = f"X-Self-ID {shown(header)} is not a QQ number (a positive int64)"
        return refusal(400, Retcode.BAD_REQUEST, message)
    return account, self_id


def admit_among(
    request: web.Request, here: list[ReverseAccount]
) -> tuple[ReverseAccount, int] | web.Response:
    """Several accounts (`here`: those of the request's path): the upstream names its own
    with X-Self-ID, then shows that account's token."""
    header = request.headers.get("X-Self-ID")
    if header is None:
        log.warning("upstream_refused", peer=request.remote, reason="no X-Self-ID")
        return refusal(
            400,
            Retcode.BAD_REQUEST,
            "X-Self-ID header is required: this relay listener serves several accounts "
            "and hands each upstream to the account with its QQ number",
        )
    self_id = qq_number(header)
    if self_id is None:
        log.warning("upstream_refused", peer=request.remote, reason="malformed X-Self-ID")
        return refusal(
            400,
            Retcode.BAD_REQUEST,
            f"X-Self-ID {shown(header)} is not a QQ number (a positive int64)",
        )
    account = next((each for each in here if each.config.self_id == self_id), None)
    if account is None:
        log.warning("upstream_refused", peer=request.remote, reason="unknown X-Self-ID")
        return refusal(
            403,
            Retcode.FORBIDDEN,
            f"no relay account on path {shown(request.path)} has X-Self-ID {self_id}",
        )
    if not token_matches(account.config.token, request_token(request)):
        log.warning("upstream_auth_failed", peer=request.remote, self_id=self_id)
        return refusal(
            403, Retcode.FORBIDDEN, f"access token is missing or wrong for X-Self-ID {self_id}"
        )
    return account, self_id


class RelayListeners:
    """The reverse-mode relay listeners of one gateway, by `host:port`; every relay backend of
    the gateway is given the same instance."""

    def __init__(self) -> None:
        self._shared: dict[tuple[str, int], RelayListener] = {}
        self._of: dict[ReverseAccount, RelayListener] = {}
        self._lock = asyncio.Lock()

    async def attach(self, account: ReverseAccount) -> RelayListener:
        """Serve `account` on its `host:port`, opening the listener if it is the first there.
        Raises OSError when the address cannot be bound, ConfigError when another account on
        the listener has the same `selfId` (the two upstreams could not be told apart)."""
        config = account.config
        async with self._lock:
            assert account not in self._of, "an account attaches once"
            address = (config.host, config.port)
            listener = self._shared.get(address) if config.port else None
            if listener is None:
                listener = RelayListener(config.host, config.port)
                await listener.open()
                if config.port:
                    self._shared[address] = listener
            else:
                for other in listener.accounts:
                    if config.self_id and other.config.self_id == config.self_id:
                        raise ConfigError(
                            f"selfId: {config.self_id} is already another account's on the "
                            f"relay listener {listener.address}; each account's upstream needs "
                            "its own"
                        )
            listener.accounts.append(account)
            listener.shared = listener.shared or len(listener.accounts) > 1
            self._of[account] = listener
            return listener

    async def detach(self, account: ReverseAccount) -> None:
        """Stop handing upstreams to `account`; if it was the last there, close the listener
        (and the account's upstream with it). Does nothing for an account that is not
        attached."""
        async with self._lock:
            listener = self._of.pop(account, None)
            if listener is None:
                return
            listener.accounts.remove(account)
            if listener.accounts:
                return
            if self._shared.get((listener.host, listener.port)) is listener:
                del self._shared[(listener.host, listener.port)]
            await listener.close(account)

    def listener_of(self, account: ReverseAccount) -> RelayListener | None:
        """The listener serving `account`, if attached."""
        return self._of.get(account)
