"""The web console's endpoints on the admin listener (the page itself is static, in
`gateway/console/`; every data endpoint needs the admin token, as a header or `?access_token=`).

- `GET /api/overview`: accounts, adapters, backend and action counters; on a cluster node,
  `cluster`: the link (`connected`, `servers`, `node`, `error`, held and dropped events, the
  entries' consumers) and `nodes`, the directory: each node's accounts (`self_id`, `name`,
  `kind`, `online`), this node's included.
- `GET /api/catalog?account=`: every action the account's backend supports, with its parameter
  schema (the Actions panel builds forms).
- `POST /api/call {action, params, account}`: run an action through the account's dispatcher;
  the envelope.
- `GET /api/stream`: server-sent events: `event: overview` every second and `event: event` for
  each published event of every account (a bus subscriber like any other, with a bounded
  queue; the page filters by the event's `self_id`).

`account` names an account by its name or its QQ number (`self_id`); it may be left out when
the gateway has one account. A missing one on a multi-account gateway is a 400, an unknown one
a 404, each with a message naming the accounts.
"""

from __future__ import annotations

import asyncio
import contextlib
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.accounts import Account, Accounts
from gateway.bus import SubscriberOptions, SubscriptionClosed
from gateway.network.listener import json_response
from gateway.protocol import jsonio

if TYPE_CHECKING:
    from gateway.supervisor import Supervisor

CONSOLE_SUBSCRIBER = "(console)"
OVERVIEW_INTERVAL = 1.0
STATIC = Path(str(resources.files("gateway.console")))


def add_console_routes(app: web.Application, supervisor: Supervisor) -> None:
    """Register the console page and its API on the admin app."""
    console = Console(supervisor)
    app.router.add_get("/", console.index)
    app.router.add_get("/favicon.ico", _no_content)
    app.router.add_static("/static/", STATIC)
    app.router.add_get("/api/overview", console.overview)
    app.router.add_get("/api/catalog", console.catalog)
    app.router.add_post("/api/call", console.call)
    app.router.add_get("/api/stream", console.stream)


async def _no_content(_request: web.Request) -> web.Response:
    return web.Response(status=204)


class Console:
    """Handlers bound to one supervisor."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    async def index(self, _request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def overview(self, _request: web.Request) -> web.Response:
        return json_response(console_overview(self.supervisor))

    async def catalog(self, request: web.Request) -> web.Response:
        account = find_account(self.supervisor.accounts, request.query.get("account"))
        if isinstance(account, web.Response):
            return account
        actions = [
            {
                "name": action.name,
                "aliases": list(action.aliases),
                "summary": action.summary,
                "schema": action.params.model_json_schema(),
            }
            for action in account.dispatcher.catalog
            if account.backend.supports(action.name)
        ]
        return json_response(
            {
                "account": account.name,
                "backend": account.backend.kind,
                "actions": sorted(actions, key=lambda a: a["name"]),
            }
        )

    async def call(self, request: web.Request) -> web.Response:
        try:
            body = jsonio.loads(await request.read())
        except jsonio.JsonError as error:
            return json_response({"message": f"invalid JSON: {error}"}, 400)
        if not isinstance(body, dict) or not isinstance(body.get("action"), str):
            message = 'send {"action": "...", "params": {...}, "account": "<name|self_id>"}'
            return json_response({"message": message}, 400)
        account = find_account(self.supervisor.accounts, body.get("account"))
        if isinstance(account, web.Response):
            return account
        answer = await account.dispatcher.call(body["action"], body.get("params"))
        return json_response(answer)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        bus = self.supervisor.bus
        subscription = bus.subscribe(
            CONSOLE_SUBSCRIBER, SubscriberOptions(report_self_message=True, queue_size=2048)
        )
        try:
            await self._send_overview(response)
            while True:
                try:
                    frame = await asyncio.wait_for(subscription.get(), OVERVIEW_INTERVAL)
                except TimeoutError:
                    await self._send_overview(response)
                    continue
                await response.write(b"event: event\ndata: %s\n\n" % frame)
        except (ConnectionError, SubscriptionClosed, asyncio.CancelledError):
            pass
        finally:
            bus.unsubscribe(subscription)
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    async def _send_overview(self, response: web.StreamResponse) -> None:
        data = jsonio.dumps(console_overview(self.supervisor))
        await response.write(b"event: overview\ndata: %s\n\n" % data)


def console_overview(supervisor: Supervisor) -> dict[str, Any]:
    """The supervisor's overview, with the directory's nodes in `cluster` on a cluster node."""
    overview = supervisor.overview()
    node = supervisor.cluster
    if node is not None:
        overview["cluster"] = {**overview["cluster"], "nodes": node.directory.nodes()}
    return overview


def find_account(accounts: Accounts, ref: object) -> Account | web.Response:
    """The account `ref` names (its name, or its QQ number as a number or digits; None: the
    only account), or the 400/404 answer saying what was wrong and which accounts there are."""
    known = ", ".join(account.describe() for account in accounts) or "none"
    if ref is None or ref == "":
        if len(accounts) == 1:
            return accounts.first()
        message = f'name the account in "account" (a name or self_id): {known}'
        return json_response({"message": message}, 400)
    account = accounts.named(ref) if isinstance(ref, str) else None
    if isinstance(ref, str) and ref.isascii() and ref.isdigit():
        ref = int(ref)
    if account is None and isinstance(ref, int) and not isinstance(ref, bool) and ref > 0:
        # 0 is no QQ number: it is what a relay that has not learned its own yet reports.
        account = accounts.with_self_id(ref)
    if account is None:
        message = f"no account is named or numbered {ref!r}; the accounts are {known}"
        return json_response({"message": message}, 404)
    return account
