"""A bot of no framework, driven by `echo_bot.scenario.json5`: a plain aiohttp server that
takes the gateway's reverse WebSocket connection, or its HTTP POST events (any language could do
the same).

It answers `ping` with `pong` and `echo <text>` with the text, welcomes new group members and
accepts friend requests. How it is connected comes from the environment `onebot-gateway test`
sets: ONEBOT_TRANSPORT (`ws-reverse` or `http-post`), ONEBOT_LISTEN_HOST, ONEBOT_LISTEN_PORT,
ONEBOT_LISTEN_PATH, ONEBOT_HTTP_URL (the API an HTTP POST bot calls) and ONEBOT_ACCESS_TOKEN.
BOT_BROKEN=1 starts a deliberately broken bot (it answers `ping` with `pang`).
"""

import asyncio
import hashlib
import hmac
import itertools
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import ClientSession, WSMsgType, web

BROKEN = os.environ.get("BOT_BROKEN") == "1"
TOKEN = os.environ.get("ONEBOT_ACCESS_TOKEN", "")
SESSION = web.AppKey("session", ClientSession)
echoes = itertools.count(1)


Call = Callable[..., Awaitable[None]]


def over_websocket(ws: web.WebSocketResponse) -> Call:
    async def call(action: str, **params: Any) -> None:
        """Call an action over the same connection (its answer is read and ignored)."""
        await ws.send_json({"action": action, "params": params, "echo": next(echoes)})

    return call


def over_http(session: ClientSession) -> Call:
    async def call(action: str, **params: Any) -> None:
        """Call an action on the gateway's HTTP API."""
        url = f"{os.environ['ONEBOT_HTTP_URL']}/{action}"
        headers = {"Authorization": f"Bearer {TOKEN}"} if TOKEN else {}
        async with session.post(url, json=params, headers=headers) as response:
            await response.read()

    return call


def reply_to(event: dict[str, Any]) -> dict[str, Any]:
    if event.get("message_type") == "group":
        return {"message_type": "group", "group_id": event["group_id"]}
    return {"message_type": "private", "user_id": event["user_id"]}


async def on_event(call: Call, event: dict[str, Any]) -> None:
    if event.get("post_type") == "message":
        text = event.get("raw_message", "")
        if text == "ping":
            await call("send_msg", **reply_to(event), message="pang" if BROKEN else "pong")
        elif text.startswith("echo "):
            await call("send_msg", **reply_to(event), message=text[5:])
    elif event.get("notice_type") == "group_increase":
        welcome = f"[CQ:at,qq={event['user_id']}] welcome!"
        await call("send_group_msg", group_id=event["group_id"], message=welcome)
    elif event.get("request_type") == "friend":
        await call("set_friend_add_request", flag=event["flag"], approve=True)


def signed(body: bytes, signature: str) -> bool:
    """HTTP POST events carry `X-Signature: sha1=<HMAC of the body keyed by the token>`."""
    digest = hmac.new(TOKEN.encode(), body, hashlib.sha1).hexdigest()
    return hmac.compare_digest(signature, f"sha1={digest}")


async def onebot(request: web.Request) -> web.StreamResponse:
    if request.method == "POST":  # HTTP POST: one event per request, answered with 204
        body = await request.read()
        if TOKEN and not signed(body, request.headers.get("X-Signature", "")):
            raise web.HTTPUnauthorized()
        await on_event(over_http(request.app[SESSION]), json.loads(body))
        return web.Response(status=204)
    if TOKEN and request.headers.get("Authorization") != f"Bearer {TOKEN}":
        raise web.HTTPUnauthorized()
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for frame in ws:
        if frame.type == WSMsgType.TEXT:
            data = json.loads(frame.data)
            if "post_type" in data:  # an event (answers to our calls carry `echo` instead)
                await on_event(over_websocket(ws), data)
    return ws


async def main() -> None:
    app = web.Application()
    app[SESSION] = ClientSession()
    path = os.environ.get("ONEBOT_LISTEN_PATH", "/")
    app.router.add_get(path, onebot)
    app.router.add_post(path, onebot)
    runner = web.AppRunner(app)
    await runner.setup()
    host = os.environ.get("ONEBOT_LISTEN_HOST", "127.0.0.1")
    await web.TCPSite(runner, host, int(os.environ["ONEBOT_LISTEN_PORT"])).start()
    print(f"echo bot listening on {host}:{os.environ['ONEBOT_LISTEN_PORT']}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
