"""The supervisor owns the accounts (a backend and a dispatcher each) and one adapter per enabled
config entry.

Start order: every account's backend and dispatcher (in file order) → adapters (in file order).
Stop order is the reverse, so no adapter ever calls into a stopped dispatcher or backend; the
adapters stop together, within one shutdown grace.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from gateway.accounts import Account, AccountDispatcher, Accounts, AccountScope
from gateway.actions import default_catalog
from gateway.actions.catalog import Catalog
from gateway.backends.base import Backend
from gateway.backends.relay import RelayBackend
from gateway.backends.relay_listener import RelayListeners
from gateway.backends.sandbox.backend import SandboxBackend
from gateway.backends.sandbox.exchange import SandboxExchange
from gateway.bus import EventBus
from gateway.config import (
    AccountConfig,
    AdapterConfig,
    AdminConfig,
    BackendConfig,
    ConfigError,
    GatewayConfig,
    RelayBackendConfig,
)
from gateway.dispatcher import Dispatcher
from gateway.front import EntryFront, describe_rules
from gateway.logging import redactor
from gateway.metrics import Metrics
from gateway.network.adapter import Adapter
from gateway.network.admin import AdminServer
from gateway.network.body_parser import BodyParser
from gateway.network.http_client import HttpClient
from gateway.network.http_server import HttpServer
from gateway.network.listener import Services
from gateway.network.sse_server import SseServer
from gateway.network.ws_client import WsClient
from gateway.network.ws_server import WsServer
from gateway.policy import ActionPolicy

if TYPE_CHECKING:
    from gateway.cluster.node import ClusterNode

log = structlog.get_logger("gateway.supervisor")


class StartupError(Exception):
    """The gateway could not start; the message is one readable line naming the entry."""


AdapterFactory = Callable[[Any, Services], Adapter]
ACCOUNTS_STARTING_AT_ONCE = 16
"""Accounts whose backends start at the same time (see `Supervisor._start_accounts`)."""

# Implementations chosen by kind from a table; kinds not listed yet are reported at start.
ADAPTER_FACTORIES: dict[str, AdapterFactory] = {
    "httpServers": HttpServer,
    "httpSseServers": SseServer,
    "httpClients": HttpClient,
    "websocketServers": WsServer,
    "websocketClients": WsClient,
}


def config_secrets(config: GatewayConfig) -> list[str]:
    """Every token `config` holds (adapters, admin, relay upstream), for the log redactor."""
    tokens = [entry.token for _, _, entry in config.network.entries()]
    if config.admin is not None:
        tokens.append(config.admin.token)
    for _, backend in config.backends():
        if isinstance(backend, RelayBackendConfig):
            tokens.append(backend.token)
    if config.cluster is not None:
        tokens.append(config.cluster.nats.token)
    return [token for token in tokens if token]


def entry_policy(entry: AdapterConfig) -> ActionPolicy:
    """The action policy an entry's `actions` section describes."""
    return ActionPolicy(entry.actions.allow, entry.actions.deny)


def only_policy_changed(old: AdapterConfig, new: AdapterConfig) -> bool:
    """True when two versions of an entry differ in `actions`/`sendRate` only: its front takes
    the new rules and the adapter keeps running, connections and all."""
    unset = {"actions": old.actions, "send_rate": old.send_rate}
    return type(old) is type(new) and new.model_copy(update=unset) == old


@dataclass(frozen=True, slots=True)
class SharedByBackends:
    """What the accounts' backends of one gateway share: the sandbox accounts one world (what
    one's bot sends reaches the others), the relay accounts their reverse-mode listeners."""

    sandboxes: SandboxExchange = field(default_factory=SandboxExchange)
    relay_listeners: RelayListeners = field(default_factory=RelayListeners)


def create_backend(config: BackendConfig, bus: EventBus, shared: SharedByBackends) -> Backend:
    """The backend named by `config.type`; it publishes its events on `bus`."""
    if isinstance(config, RelayBackendConfig):
        return RelayBackend(config, bus, shared.relay_listeners)
    return SandboxBackend(config, bus, shared.sandboxes)


def account_overview(account: Account) -> dict[str, Any]:
    """One account's live state for the console and `/readyz`."""
    status = account.backend.status()
    online = bool(status.get("online"))
    return {
        "name": account.name,
        "kind": account.backend.kind,
        "self_id": account.self_id,
        "online": online,
        "state": "online" if online else "offline",
    }


class Supervisor:
    """Runs one config: `start()`, then `stop()` on shutdown."""

    def __init__(
        self,
        config: GatewayConfig,
        bus: EventBus | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """`bus`: the event bus to publish on (a new one when None; the test harness passes
        one that stamps a fixed time on events). `clock`: the monotonic clock of send rates
        (`time.monotonic` when None; tests move a clock of their own)."""
        self.config = config
        self.bus = EventBus() if bus is None else bus
        self.catalog: Catalog = default_catalog()
        self.shared = SharedByBackends()
        self.accounts = Accounts()
        """The running accounts (in config order once started; then the remote ones)."""
        self._pending = [self._new_account(account) for account in config.account_configs()]
        self.cluster: ClusterNode | None = None
        if config.cluster is not None:
            # Imported here: NATS's client and the cluster modules cost a gateway that is no
            # cluster node ~0.1 s of start-up.
            from gateway.cluster.node import ClusterNode

            self.cluster = ClusterNode(config.cluster, self.bus, self.accounts, self.catalog)
        """This gateway's part of a cluster (`cluster:` in the config), or None."""
        self.metrics = Metrics()
        self.metrics.watch(self)
        self.parser = BodyParser()
        self.adapters: dict[str, Adapter] = {}
        self.fronts: dict[str, EntryFront] = {}
        """Each running entry's front of the dispatcher (its action policy and send rate)."""
        self.clock = clock
        self._entries: dict[str, tuple[str, AdapterConfig]] = {}
        self.admin: AdminServer | None = None

    @property
    def backend(self) -> Backend:
        """The first account's backend (the only one of a one-account config)."""
        return self._first().backend

    @property
    def dispatcher(self) -> AccountDispatcher:
        """The first account's dispatcher (the only one of a one-account config)."""
        return self._first().dispatcher

    def _first(self) -> Account:
        if len(self.accounts):
            return self.accounts.first()
        if not self._pending:
            raise LookupError("this gateway has no account (a cluster node hosting none)")
        return self._pending[0]

    def _new_account(self, config: AccountConfig) -> Account:
        backend = create_backend(config.backend, self.bus, self.shared)
        dispatcher = Dispatcher(
            self.catalog,
            backend,
            rate_limit_interval=self.config.api.rate_limit_interval / 1000,
            max_async_calls=self.config.api.max_async_calls,
        )
        return Account(config.name, config.backend, backend, dispatcher)

    def _services(self, front: EntryFront) -> Services:
        return Services(front, self.bus, self.config.api.shutdown_grace, self.metrics, self.parser)

    async def start(self) -> None:
        """Start everything; on failure stop what started and raise StartupError."""
        redactor.set_tokens(config_secrets(self.config))
        if self.config.network.plugins:
            log.warning(
                "plugins_ignored",
                count=len(self.config.network.plugins),
                reason="NapCat JS plugins cannot run in this gateway",
            )
        pending, self._pending = self._pending, []
        try:
            if self.cluster is not None:
                # First: the publisher takes the accounts' events from their first one on.
                await self.cluster.start()
            await self._start_accounts(pending)
            if self.cluster is not None:
                await self._join_cluster(self.cluster)
            await self._start_adapters()
            await self._start_admin(self.config.admin)
        except BaseException:
            self._pending = [a for a in pending if self.accounts.named(a.name) is not a]
            await self.stop()
            raise
        log.info(
            "gateway_ready",
            accounts=[f"{a.name}:{a.backend.kind}:{a.self_id}" for a in self.accounts],
            adapters=len(self.adapters),
        )

    @staticmethod
    def _account_path(name: str, config: GatewayConfig) -> str:
        """Where an account's backend is in the config file, for messages."""
        if config.accounts is None:
            return "backend"
        index = [a.name for a in config.accounts].index(name)
        return f"accounts[{index}] ({name!r}): backend"

    async def _join_cluster(self, cluster: ClusterNode) -> None:
        """Host the local accounts in the cluster, add the remote ones the entries name."""
        for account in self.accounts:
            await cluster.host(account)
        await self._update_remote_accounts(self.config)

    async def _update_remote_accounts(self, config: GatewayConfig) -> None:
        """A remote account for each QQ number an entry names that no local account has; the
        remote accounts no entry names any more are dropped."""
        cluster = self.cluster
        if cluster is None:
            return
        wanted: set[int] = set()
        for _, _, entry in config.network.entries():
            wanted.update(ref for ref in entry.accounts or () if isinstance(ref, int))
        local = {account.self_id for account in self.accounts if not account.remote}
        wanted -= local
        for account in self.accounts:
            if account.remote and account.self_id not in wanted:
                self.accounts.remove(account.name)
                await account.dispatcher.stop(0)
                log.info("remote_account_dropped", self_id=account.self_id)
        present = {account.self_id for account in self.accounts if account.remote}
        for self_id in sorted(wanted - present):
            account = cluster.remote_account(self_id)
            await account.dispatcher.start()
            account.dispatcher.observer = self.metrics.actions.observer(account)
            self.accounts.add(account)
            log.info("remote_account_added", self_id=self_id)

    async def _start_accounts(self, accounts: list[Account]) -> None:
        """Start the accounts' backends, `ACCOUNTS_STARTING_AT_ONCE` at a time (each mostly
        waits for its store's thread or its upstream: measured, 100 sandbox accounts start in
        about half the time), then add them in config order. On a failure the ones started
        are stopped and the first failure (in config order) is raised."""
        gate = asyncio.Semaphore(ACCOUNTS_STARTING_AT_ONCE)

        async def boot(account: Account) -> None:
            async with gate:
                await self._boot(account, self.config)

        outcomes = await asyncio.gather(*map(boot, accounts), return_exceptions=True)
        failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
        try:
            if failure is None:
                for account in accounts:
                    await self._register(account, self.config)
                return
        except BaseException as error:
            failure = error
        started = [
            account
            for account, outcome in zip(accounts, outcomes, strict=True)
            if outcome is None and self.accounts.named(account.name) is not account
        ]
        for account in started:
            await self._stop_account(account)
        raise failure

    async def _start_account(self, account: Account, config: GatewayConfig | None = None) -> None:
        """Start an account's backend and dispatcher and add it to `accounts`."""
        await self._boot(account, config or self.config)
        await self._register(account, config or self.config)

    async def _boot(self, account: Account, config: GatewayConfig) -> None:
        """Start an account's backend and dispatcher (not yet added to `accounts`)."""
        where = self._account_path(account.name, config)
        try:
            await account.backend.start()
        except OSError as error:
            raise StartupError(f"{where}: cannot start: {error.strerror or error}") from None
        except ConfigError as error:
            if config.accounts is None:
                raise
            raise ConfigError(f"{where.removesuffix(': backend')}: {error}") from None
        await account.dispatcher.start()
        account.dispatcher.observer = self.metrics.actions.observer(account)

    async def _register(self, account: Account, config: GatewayConfig) -> None:
        """Add a started account to `accounts`; stop it and raise StartupError when another
        account has its QQ number."""
        where = self._account_path(account.name, config)
        other = account.self_id and self.accounts.with_self_id(account.self_id)
        if other:
            await self._stop_account(account)
            raise StartupError(
                f"{where}: QQ number {account.self_id} is already account {other.name!r}'s; "
                "each account needs its own (set `selfId`)"
            )
        self.accounts.add(account)
        log.info(
            "account_started",
            account=account.name,
            backend=account.backend.kind,
            self_id=account.self_id,
        )

    async def _stop_account(self, account: Account, grace: float | None = None) -> None:
        """Stop an account's dispatcher (its `_async` calls get `grace`) and backend."""
        if grace is None:
            grace = self.config.api.shutdown_grace
        account.dispatcher.flush_answered()
        await account.dispatcher.stop(grace)
        await account.backend.stop()

    async def _start_adapters(self) -> None:
        for kind, index, entry in self.config.network.entries():
            if entry.enable:
                await self._start_adapter(kind, index, entry)

    async def _start_adapter(self, kind: str, index: int, entry: AdapterConfig) -> None:
        front = EntryFront(
            entry.name,
            AccountScope(self.accounts, entry.accounts),
            self.catalog,
            entry_policy(entry),
            entry.send_rate,
            self.metrics,
            self.clock,
        )
        # The adapter calls actions through its entry's front only: explicit, per entry.
        adapter = ADAPTER_FACTORIES[kind](entry, self._services(front))
        try:
            await adapter.start()
        except OSError as error:
            where = f"{getattr(entry, 'host', '')}:{getattr(entry, 'port', '')}"
            raise StartupError(
                f"network.{kind}[{index}] ({entry.name!r}): cannot listen on {where}: "
                f"{error.strerror or error}"
            ) from None
        self.adapters[entry.name] = adapter
        self.fronts[entry.name] = front
        self._entries[entry.name] = (kind, entry)
        if self.cluster is not None:
            pushes = getattr(adapter, "pushes_events", lambda: True)()
            await self.cluster.entry_started(entry.name, kind, front.accounts(), pushes)
        log.info("adapter_started", kind=kind, name=entry.name, address=adapter.describe())

    async def _start_admin(self, admin: AdminConfig | None) -> None:
        if admin is None:
            return
        server = AdminServer(admin, self)
        try:
            await server.start()
        except OSError as error:
            raise StartupError(
                f"admin: cannot listen on {admin.host}:{admin.port}: {error.strerror or error}"
            ) from None
        self.admin = server
        log.info("admin_started", address=server.describe())

    def not_ready(self) -> list[str]:
        """Why the gateway is not ready (empty when it is): every local account (its backend
        runs and is online) and every enabled entry. Accounts other cluster nodes host do not
        count: their readiness is their node's (`/readyz` reports them and the link)."""
        reasons = []
        running = {account.name for account in self.accounts}
        for config in self.config.account_configs():
            if config.name not in running:
                reasons.append(f"account {config.name!r} is not running")
        for account in self.accounts:
            if not account.remote and not account.online():
                name = "" if self.config.accounts is None else f"account {account.name!r}: "
                reasons.append(f"{name}{account.backend.kind} backend is not online")
        for _, _, entry in self.config.network.entries():
            if entry.enable and entry.name not in self.adapters:
                reasons.append(f"adapter {entry.name!r} is not running")
        return reasons

    async def _stop_adapter(self, name: str) -> None:
        front = self.fronts.pop(name, None)
        if front is not None:
            front.close()  # sends waiting for the rate fail now, not at the end of the grace
        if self.cluster is not None:
            await self.cluster.entry_stopped(name)
        await self.adapters.pop(name).stop()
        self._entries.pop(name, None)
        log.info("adapter_stopped", name=name)

    async def reload(self, config: GatewayConfig) -> None:
        """Apply a new config: entries are diffed by (kind, name); unchanged ones keep running.

        Removed and changed entries stop first (freeing their ports), then changed and added
        ones start. An entry whose `actions`/`sendRate` alone changed keeps running: its front
        takes the new rules. Accounts are diffed by name first (see `_reload_accounts`). A start
        failure is logged and the rest still applies. `api` changes need a restart; they are
        logged and ignored.
        """
        await self._reload_accounts(config)
        wanted = {
            (kind, entry.name): (index, entry)
            for kind, index, entry in config.network.entries()
            if entry.enable
        }
        running = {(kind, name): entry for name, (kind, entry) in self._entries.items()}
        for key, entry in running.items():
            new = wanted.get(key, (0, None))[1]
            if new is not None and new != entry and only_policy_changed(entry, new):
                self._reload_policy(key, new)
            elif new != entry:
                await self._stop_adapter(key[1])
        for (kind, name), (index, entry) in wanted.items():
            if name not in self.adapters:
                try:
                    await self._start_adapter(kind, index, entry)
                except StartupError as error:
                    log.error("adapter_start_failed", error=str(error))
        await self._reload_admin(config)
        if config.api != self.config.api:
            log.warning(
                "reload_needs_restart",
                sections="api",
                reason="the running dispatchers keep their settings",
            )
        self.config = config
        redactor.set_tokens(config_secrets(config))
        log.info("gateway_reloaded", adapters=len(self.adapters))

    async def _reload_accounts(self, config: GatewayConfig) -> None:
        """Apply the new config's accounts, diffed by name: a removed account stops (the
        connections bound to it close), a changed one restarts its backend in place (the
        connections bound to it stay, and reach the new backend), an added one starts; the
        other accounts and their connections are not touched. A failure is logged."""
        wanted = {account.name: account for account in config.account_configs()}
        changed = False
        for account in self.accounts:
            new = wanted.get(account.name)
            if account.remote or (new is not None and new.backend == account.config):
                continue
            changed = True
            self.accounts.remove(account.name)
            if self.cluster is not None:
                await self.cluster.unhost(account)
            await self._stop_account(account)
            log.info("account_stopped", account=account.name)
            if new is None:
                continue
            replacement = self._new_account(new)
            # The same Account object: fronts and connections bound to it follow the change.
            account.config = replacement.config
            account.backend = replacement.backend
            account.dispatcher = replacement.dispatcher
            wanted[account.name] = new
            await self._try_start_account(account, config)
        for name, new in wanted.items():
            if self.accounts.named(name) is None and new is not None:
                changed = True
                await self._try_start_account(self._new_account(new), config)
        if changed:
            # Config order, whatever order they (re)started in; remote accounts after them.
            order = list(wanted)
            local = [account for account in self.accounts if not account.remote]
            for account in sorted(local, key=lambda a: order.index(a.name)):
                self.accounts.remove(account.name)
                self.accounts.add(account)
        if self.cluster is not None:
            before = [account.self_id for account in self.accounts if account.remote]
            await self._update_remote_accounts(config)
            changed = changed or before != [a.self_id for a in self.accounts if a.remote]
        if changed:
            for adapter in self.adapters.values():
                notify = getattr(adapter, "accounts_changed", None)
                if notify is not None:
                    await notify()

    async def _try_start_account(self, account: Account, config: GatewayConfig) -> None:
        """Start an account on reload (and host it in the cluster); a failure is logged."""
        try:
            await self._start_account(account, config)
        except (StartupError, ConfigError) as error:
            log.error("account_start_failed", error=str(error))
            return
        if self.cluster is not None:
            await self.cluster.host(account)

    def _reload_policy(self, key: tuple[str, str], entry: AdapterConfig) -> None:
        kind, name = key
        self.fronts[name].configure(entry_policy(entry), entry.send_rate)
        self._entries[name] = (kind, entry)
        log.info("entry_policy_reloaded", name=name)

    async def _reload_admin(self, config: GatewayConfig) -> None:
        """Apply a changed `admin` section: on the same address the running listener takes the
        new settings at once (its console connections stay); otherwise it is restarted."""
        old, new = self.config.admin, config.admin
        if old == new:
            return
        running = self.admin
        moved = old is None or new is None or (old.host, old.port) != (new.host, new.port)
        if running is not None and new is not None and not moved:
            running.config = new
            log.info("admin_reloaded", token_changed=old is not None and old.token != new.token)
            return
        if running is not None:
            await running.stop()
            self.admin = None
            log.info("admin_stopped")
        try:
            await self._start_admin(new)
        except StartupError as error:
            log.error("admin_start_failed", error=str(error))

    def overview(self) -> dict[str, Any]:
        """Live state for the console: backend, every configured entry, action counters."""
        first = self.accounts.first() if len(self.accounts) else None
        per_entry = self.bus.entry_stats()
        answered = self.metrics.answered_per_account()
        adapters = []
        for kind, _, entry in self.config.network.entries():
            adapter = self.adapters.get(entry.name)
            subscribers, depth, dropped = per_entry.get(entry.name, (0, 0, 0))
            state = getattr(adapter, "state", lambda: "listening")() if adapter else "disabled"
            if adapter is None and entry.enable:
                state = "not running"
            front = self.fronts.get(entry.name)
            rules = (
                front.describe()
                if front is not None
                else describe_rules(entry_policy(entry), entry.send_rate)
            )
            adapters.append(
                {
                    "name": entry.name,
                    "kind": kind,
                    "state": state,
                    "address": adapter.describe() if adapter else "",
                    "subscribers": subscribers,
                    "queue_depth": depth,
                    "dropped": dropped,
                    **rules,
                }
            )
        return {
            "backend": None
            if first is None
            else {
                key: value
                for key, value in account_overview(first).items()
                if key in ("kind", "self_id", "online", "state")
            },
            "cluster": None if self.cluster is None else self.cluster.status(),
            "accounts": [
                {**account_overview(account), "actions": answered.get(str(account.self_id), {})}
                for account in self.accounts
            ],
            "adapters": adapters,
            "actions": {str(code): count for code, count in self.metrics.answered.items()},
            "events_published": self.bus.published,
        }

    def summary(self) -> str:
        """One line for `STATUS=`: backend and account (or the accounts), and adapters."""
        adapters = f"{len(self.adapters)} adapters: {', '.join(self.adapters) or 'none'}"
        if len(self.accounts) == 1 and self.cluster is None:
            return f"{self.backend.kind} backend, self_id {self.backend.self_id}, {adapters}"
        accounts = ", ".join(f"{a.name} ({a.self_id})" for a in self.accounts)
        return f"{len(self.accounts)} accounts: {accounts}; {adapters}"

    async def stop(self) -> None:
        """Stop within `api.shutdownGrace` seconds from now: one deadline for everything.

        Every adapter and the admin listener stop at once, each letting its in-flight requests
        and calls finish until the deadline; `_async` calls get what is left of it; then the
        dispatcher and the backend stop.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.api.shutdown_grace
        stopping = [self._stop_adapter(name) for name in reversed(list(self.adapters))]
        if self.admin is not None:
            stopping.append(self.admin.stop())
            self.admin = None
        for failure in await asyncio.gather(*stopping, return_exceptions=True):
            if isinstance(failure, Exception):
                log.error("adapter_stop_failed", exc_info=failure)
        if self.cluster is not None:
            # Before the accounts: other nodes' calls to them are answered until here.
            try:
                # Events still held get what is left of the grace to reach the stream.
                await self.cluster.stop(max(deadline - loop.time(), 0))
            except Exception:
                log.exception("cluster_stop_failed")
        accounts = list(self.accounts)
        for account in accounts:
            self.accounts.remove(account.name)
        self._pending = [*accounts, *self._pending]  # `backend`/`dispatcher` still answer
        # `_async` calls of every account share what is left of the grace.
        grace = max(deadline - loop.time(), 0)
        await asyncio.gather(*(account.dispatcher.stop(grace) for account in accounts))
        await self.parser.stop()
        for account in reversed(accounts):
            account.dispatcher.flush_answered()
            try:
                await account.backend.stop()
            except Exception:
                log.exception("account_stop_failed", account=account.name)
