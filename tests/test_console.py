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

playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)"
)
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
TOKEN = "console-token"
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


@pytest.fixture
async def console() -> AsyncIterator[tuple[RunningGateway, Any]]:
    async with run_gateway(document()) as gw:
        ready = asyncio.Event()
        ws_port = gw.supervisor.adapters["bot-ws"].port
        bot = asyncio.create_task(pong_bot(f"ws://127.0.0.1:{ws_port}/", ready))
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
