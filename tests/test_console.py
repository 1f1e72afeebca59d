"""The web console in headless Chromium (Debian's package) driven by Playwright, against a
running gateway with a small bot on a WebSocket server. Screenshots go to docs/screenshots/."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import RunningGateway, run_gateway
from tests.nats_server import NatsServer, nats_server  # noqa: F401 (the fixture)
from tests.test_cluster_node import account_node, cluster, running

playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)"
)
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
TOKEN = "console-token"
A, B = 10001, 10002
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def document() -> dict[str, Any]:
    return {
        "network": {
            "httpServers": [
                {
                    "name": "http-api",
                    "enable": True,
                    "port": 0,
                    "actions": {"deny": ["set_group_kick"]},
                    "sendRate": {"perMinute": 20},
                }
            ],
            "websocketServers": [{"name": "bot-ws", "enable": True, "port": 0, "heartInterval": 0}],
            "httpClients": [{"name": "webhook-off", "enable": False}],
        },
        "backend": {"database": ":memory:"},
        "admin": {"port": 0, "token": TOKEN},
    }


async def pong_bot(url: str, ready: asyncio.Event) -> None:
    """A tiny bot: answers every `ping` with `pong` in the same chat."""
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        ready.set()
        async for message in ws:
            event = message.json()
            if event.get("post_type") == "message" and event.get("raw_message") == "ping":
                params = {
                    "message_type": event["message_type"],
                    "user_id": event["user_id"],
                    "group_id": event.get("group_id"),
                    "message": "pong",
                }
                await ws.send_json({"action": "send_msg", "params": params, "echo": "1"})


def two_accounts() -> dict[str, Any]:
    """Accounts `a` and `b` on one sandbox world, the pong bot on a WebSocket bound to `b`."""
    return {
        "accounts": [
            {"name": "a", "backend": {"database": ":memory:", "selfId": A}},
            {"name": "b", "backend": {"database": ":memory:", "selfId": B}},
        ],
        "network": {
            "websocketServers": [{"name": "bot-ws", "enable": True, "port": 0, "heartInterval": 0}]
        },
        "admin": {"port": 0, "token": TOKEN},
    }


@pytest.fixture
async def console() -> AsyncIterator[tuple[RunningGateway, Any]]:
    async with open_console(document(), "/") as opened:
        yield opened


@pytest.fixture
async def two_account_console() -> AsyncIterator[tuple[RunningGateway, Any]]:
    async with open_console(two_accounts(), f"/{B}/") as opened:
        yield opened


@contextlib.asynccontextmanager
async def open_console(
    config: dict[str, Any], bot_path: str
) -> AsyncIterator[tuple[RunningGateway, Any]]:
    """A gateway from `config`, the pong bot on its `bot-ws` entry at `bot_path`, and a page of
    the console in Chromium."""
    async with run_gateway(config) as gw:
        ready = asyncio.Event()
        ws_port = gw.supervisor.adapters["bot-ws"].port
        bot = asyncio.create_task(pong_bot(f"ws://127.0.0.1:{ws_port}{bot_path}", ready))
        await asyncio.wait_for(ready.wait(), 10)
        async with playwright_api.async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            assert gw.supervisor.admin is not None
            await page.goto(f"http://127.0.0.1:{gw.supervisor.admin.port}/")
            try:
                yield gw, page
            finally:
                await browser.close()
                bot.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await bot


async def log_in(page: Any) -> None:
    await page.fill("#token", TOKEN)
    await page.click("#login-form button")
    await page.wait_for_selector("#app:not([hidden])")


async def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def test_console_refuses_without_the_token(console: Any) -> None:
    gw, page = console
    await page.wait_for_selector("#login:not([hidden])")
    assert await page.is_hidden("#app")
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{gw.supervisor.admin.port}/api/overview"
        async with http.get(url) as response:
            assert response.status == 403
    await page.fill("#token", "wrong")
    await page.click("#login-form button")
    await page.wait_for_function(
        "document.querySelector('#login-message').textContent.includes('refused')"
    )


async def test_overview_lists_every_configured_adapter(console: Any) -> None:
    _, page = console
    await log_in(page)
    await page.wait_for_selector("#adapters tr[data-name='bot-ws']")
    names = await page.eval_on_selector_all(
        "#adapters tbody tr", "rows => rows.map(r => r.dataset.name)"
    )
    assert set(names) == {"http-api", "bot-ws", "webhook-off"}
    state = await page.inner_text("#adapters tr[data-name='webhook-off'] td:nth-child(4)")
    assert state == "disabled"
    rules = await page.inner_text("#adapters tr[data-name='http-api']")
    assert "all but process-level · deny set_group_kick" in rules and "20/min, burst 5" in rules
    assert "unlimited" in await page.inner_text("#adapters tr[data-name='bot-ws']")
    await page.wait_for_selector("#connection.live")
    assert "sandbox" in await page.inner_text("#backend")
    # One account: no picker, no account table, no account filter.
    assert await page.is_hidden("#account-picker")
    assert await page.is_hidden("#accounts")
    assert await page.is_hidden("#filter-account")
    await shot(page, "overview")


async def test_chat_as_a_simulated_user_shows_the_bots_reply(console: Any) -> None:
    _, page = console
    await log_in(page)
    await page.click("nav button[data-tab='chat']")
    await page.click("#groups li[data-group='30001']")
    await page.wait_for_selector("#chat-as option[value='20003']", state="attached")
    await page.select_option("#chat-as", "20003")
    await page.fill("#chat-input", "ping")
    await page.click("#chat-form button[type='submit']")
    await page.wait_for_selector("#messages li.user .bubble:text('ping')")
    await page.wait_for_selector("#messages li.bot .bubble:text('pong')")
    await shot(page, "chat")


async def test_events_arrive_in_the_event_stream(console: Any) -> None:
    gw, page = console
    await log_in(page)
    await page.click("nav button[data-tab='events']")
    await gw.supervisor.dispatcher.call(
        "sandbox_receive_message",
        {"message_type": "private", "user_id": 20001, "message": "hello console"},
    )
    item = await page.wait_for_selector("#event-list li[data-post-type='message']")
    assert "hello console" in await item.inner_text()
    await item.click()
    await page.select_option("#filter-type", "notice")
    assert await page.query_selector("#event-list li[data-post-type='message']") is None
    await page.select_option("#filter-type", "")
    await shot(page, "events")


async def test_actions_panel_calls_get_login_info(console: Any) -> None:
    _, page = console
    await log_in(page)
    await page.click("nav button[data-tab='actions']")
    await page.wait_for_selector("#action-select option[value='get_login_info']", state="attached")
    await page.select_option("#action-select", "get_login_info")
    await page.click("#action-form button[type='submit']")
    await page.wait_for_function(
        "document.querySelector('#envelope').textContent.includes('Sandbox Bot')"
    )
    assert '"retcode": 0' in await page.inner_text("#envelope")
    await page.select_option("#action-select", "get_stranger_info")
    assert await page.query_selector("#action-fields [name='user_id']") is not None
    await shot(page, "actions")


# --- two accounts ------------------------------------------------------------------------------


async def test_two_accounts_pick_one_for_the_overview_and_the_actions_panel(
    two_account_console: Any,
) -> None:
    _, page = two_account_console
    await log_in(page)
    await page.wait_for_selector("#account-picker:not([hidden])")
    options = await page.eval_on_selector_all("#account option", "os => os.map(o => o.value)")
    assert options == ["a", "b"]
    await page.wait_for_selector("#accounts:not([hidden]) tr[data-name='b']")
    for name in ("a", "b"):
        row = f"#accounts tr[data-name='{name}'] td:nth-child(4)"
        assert await page.inner_text(row) == "online"
    assert f"sandbox · {A} · online" == await page.inner_text("#backend")
    await page.select_option("#account", "b")
    await page.wait_for_function(f"document.querySelector('#backend').textContent.includes('{B}')")
    await page.click("nav button[data-tab='actions']")
    await page.wait_for_selector("#action-select option[value='get_login_info']", state="attached")
    await page.select_option("#action-select", "get_login_info")
    await page.click("#action-form button[type='submit']")
    await page.wait_for_function(f"document.querySelector('#envelope').textContent.includes('{B}')")
    assert f'"user_id": {B}' in await page.inner_text("#envelope")
    await page.click("nav button[data-tab='overview']")
    await page.wait_for_selector("#accounts tr.picked[data-name='b']")
    await shot(page, "accounts")


async def test_two_accounts_chat_as_the_picked_one_and_filter_events_by_account(
    two_account_console: Any,
) -> None:
    _, page = two_account_console
    await log_in(page)
    await page.wait_for_selector("#account-picker:not([hidden])")
    await page.select_option("#account", "b")
    await page.click("nav button[data-tab='chat']")
    await page.click("#groups li[data-group='30001']")
    await page.wait_for_selector("#chat-as option[value='20003']", state="attached")
    await page.select_option("#chat-as", "20003")
    await page.fill("#chat-input", "ping")
    await page.click("#chat-form button[type='submit']")
    # The bot bound to `b` answers; the chat shows `b`'s copy of the group once.
    await page.wait_for_selector("#messages li.bot .bubble:text('pong')")
    assert await page.locator("#messages li.user .bubble:text('ping')").count() == 1
    await page.click("nav button[data-tab='events']")
    # Both accounts are in group 30001: each gets the member's message.
    for self_id in (A, B):
        await page.wait_for_selector(f"#event-list li[data-self-id='{self_id}']")
    assert not await page.is_hidden("#filter-account")
    await page.select_option("#filter-account", str(A))
    shown = await page.eval_on_selector_all(
        "#event-list li", "items => items.map(i => i.dataset.selfId)"
    )
    assert shown and set(shown) == {str(A)}
    assert "[a]" in await page.inner_text("#event-list li")
    await page.select_option("#filter-account", "")
    shown = await page.eval_on_selector_all(
        "#event-list li", "items => items.map(i => i.dataset.selfId)"
    )
    assert set(shown) == {str(A), str(B)}


# --- a cluster node ----------------------------------------------------------------------------

C = 10003


def edge_node(server: NatsServer) -> dict[str, Any]:
    """Node `edge`: hosts `c`; its `bot-ws` entry serves `c` and A, B of node `n1`."""
    return {
        "accounts": [{"name": "c", "backend": {"database": ":memory:", "selfId": C}}],
        "cluster": cluster(server, "edge"),
        "network": {
            "websocketServers": [
                {
                    "name": "bot-ws",
                    "enable": True,
                    "port": 0,
                    "heartInterval": 0,
                    "accounts": ["c", A, B],
                }
            ]
        },
        "admin": {"port": 0, "token": TOKEN},
    }


async def cell(page: Any, selector: str, text: str) -> None:
    """Wait until the element `selector` reads `text` (the overview refreshes every second)."""
    await page.wait_for_function(
        "([s, t]) => { const e = document.querySelector(s); return !!e && e.textContent === t; }",
        arg=[selector, text],
    )


async def test_a_cluster_node_shows_the_link_and_where_each_account_lives(
    nats_server: NatsServer,  # noqa: F811
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        host = await stack.enter_async_context(contextlib.AsyncExitStack())
        await host.enter_async_context(running(account_node(nats_server, "n1", {"a": A, "b": B})))
        _, page = await stack.enter_async_context(open_console(edge_node(nats_server), f"/{C}/"))
        await log_in(page)
        await page.wait_for_selector("#cluster:not([hidden])")
        await cell(page, "#cluster-link", "connected")
        for node, self_id in (("n1", A), ("n1", B), ("edge", C)):
            row = f"#cluster-nodes tr[data-node='{node}'][data-self-id='{self_id}']"
            await cell(page, f"{row} td:nth-child(5)", "online")
        assert await page.inner_text("#cluster-nodes tbody tr:first-child td:first-child") == (
            "edge (this node)"
        )
        detail = await page.inner_text("#cluster-detail")
        assert "node edge" in detail and nats_server.url in detail
        await cell(page, f"#accounts tr[data-name='{A}'] td:nth-child(3)", "remote on n1")
        await shot(page, "cluster")
        # The account node stops cleanly: its accounts leave the directory at once.
        await host.aclose()
        await page.wait_for_selector("#cluster-nodes tr[data-node='n1']", state="detached")
        await cell(
            page, f"#accounts tr[data-name='{A}'] td:nth-child(3)", "remote (no node has it)"
        )
        await cell(page, f"#accounts tr[data-name='{A}'] td:nth-child(4)", "offline")
