"""The admin listener: `/healthz`, `/readyz`, `/metrics` (Prometheus), `/openapi.json` and the
web console (`/`, see network/console.py).

Every endpoint but `/healthz` and the console's static page needs the admin token (liveness
reveals nothing, and container health checks cannot easily send headers).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.config import AdminConfig
from gateway.network.auth import request_token, token_matches
from gateway.network.console import add_console_routes
from gateway.network.listener import json_response
from gateway.openapi import openapi_document
from gateway.protocol import envelope

if TYPE_CHECKING:
    from gateway.supervisor import Supervisor

log = structlog.get_logger("gateway.admin")
# The console page and its static files hold no data; it asks for the token and sends it on
# every API call.
PUBLIC_PATHS = frozenset({"/healthz", "/", "/favicon.ico"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AdminServer:
    """Serves operational endpoints for one supervisor."""

    name = "admin"

    def __init__(self, config: AdminConfig, supervisor: Supervisor) -> None:
        self.config = config
        self.supervisor = supervisor
        self.app = web.Application(middlewares=[self._auth])
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/readyz", self._readyz)
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_get("/openapi.json", self._openapi)
        add_console_routes(self.app, supervisor)
        self._runner = web.AppRunner(self.app, access_log=None)

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host or None, self.config.port)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise

    async def stop(self) -> None:
        await self._runner.cleanup()

    def describe(self) -> str:
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._runner.addresses[0][1])

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if (
            request.path not in PUBLIC_PATHS
            and not request.path.startswith("/static/")
            and not token_matches(self.config.token, request_token(request))
        ):
            self.supervisor.metrics.auth_failures.labels(self.name).inc()
            log.warning("auth_failed", server=self.name, path=request.path)
            return json_response(envelope.failed(1403, "admin token is missing or wrong"), 403)
        return await handler(request)

    async def _healthz(self, _request: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        """The gateway's readiness (503 when anything of its own is not ready: a local account,
        an entry), with every account's; `?account=<name|self_id>` answers for that account
        alone (its backend runs and is online; an account another cluster node hosts: it is
        live in the directory and the link is up), 404 for an account the gateway does not
        have.

        A cluster node adds `cluster`: the link to NATS, what waits to be published, the
        entries' consumers and the remote accounts. Neither a down link nor an offline remote
        account makes the node 503: its local accounts and entries keep working, and a remote
        account's readiness is its own node's (one account node restarting must not take every
        edge node out of a load balancer)."""
        accounts = account_readiness(self.supervisor)
        cluster = cluster_readiness(self.supervisor)
        ref = request.query.get("account")
        if ref is not None:
            remote = [] if cluster is None else cluster["accounts"]
            return _one_account_readiness([*accounts, *remote], ref)
        reasons = self.supervisor.not_ready()
        body: dict[str, Any] = {"status": "not ready" if reasons else "ready"}
        if reasons:
            body["reasons"] = reasons
        body["accounts"] = accounts
        if cluster is not None:
            body["cluster"] = cluster
        return json_response(body, 503 if reasons else 200)

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(self.supervisor.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _openapi(self, _request: web.Request) -> web.Response:
        return json_response(openapi_document(self.supervisor.dispatcher.catalog))


def account_readiness(supervisor: Supervisor) -> list[dict[str, Any]]:
    """Every configured account's readiness, in config order: `{name, self_id, kind, ready}`
    and, when not ready, `reason` (an account that failed to start is not running)."""
    running = {account.name: account for account in supervisor.accounts}
    readiness: list[dict[str, Any]] = []
    for config in supervisor.config.account_configs():
        account = running.get(config.name)
        if account is None:
            item: dict[str, Any] = {
                "name": config.name,
                "self_id": config.backend.self_id or 0,
                "kind": config.backend.type,
                "ready": False,
                "reason": "not running (its backend failed to start: see the log)",
            }
        else:
            item = {
                "name": account.name,
                "self_id": account.self_id,
                "kind": account.backend.kind,
                "ready": account.online(),
            }
            if not item["ready"]:
                item["reason"] = f"{account.backend.kind} backend is not online"
        readiness.append(item)
    return readiness


def cluster_readiness(supervisor: Supervisor) -> dict[str, Any] | None:
    """A cluster node's link and remote accounts, None without `cluster`: `{connected,
    servers, node, error, held_events, dropped_events, consumers, accounts}`, each remote
    account as `{name, self_id, kind: "remote", node, ready}` (`node`: its host in the
    directory, None when no node has it) and, when not ready, `reason`."""
    node = supervisor.cluster
    if node is None:
        return None
    remote: list[dict[str, Any]] = []
    for account in supervisor.accounts:
        if not account.remote:
            continue
        entry = node.directory.lookup(account.self_id)
        ready = bool(account.backend.status().get("good"))
        item: dict[str, Any] = {
            "name": account.name,
            "self_id": account.self_id,
            "kind": account.backend.kind,
            "node": None if entry is None else entry.node,
            "ready": ready,
        }
        if not ready:
            reason = getattr(account.backend, "down_reason", "")
            item["reason"] = reason or "its node has not refreshed it in the directory yet"
        remote.append(item)
    return {**node.status(), "accounts": remote}


def _one_account_readiness(accounts: list[dict[str, Any]], ref: str) -> web.Response:
    for item in accounts:
        if item["name"] == ref or (item["self_id"] and str(item["self_id"]) == ref):
            ready = item["ready"]
            body: dict[str, Any] = {"status": "ready" if ready else "not ready", "account": item}
            if not ready:
                body["reasons"] = [f"account {item['name']!r}: {item['reason']}"]
            return json_response(body, 200 if ready else 503)
    known = ", ".join(f"{item['name']!r} ({item['self_id']})" for item in accounts) or "none"
    message = f"no account is named or numbered {ref!r}; the accounts are {known}"
    return json_response({"status": "unknown account", "message": message}, 404)
