"""The yardstick: a bare aiohttp server with the gateway's routes and envelope, nothing else.

No dispatcher, no validation models, no middlewares, no logging: uvloop + orjson + aiohttp, the
least a Python OneBot server can do. `bench/run.py` runs it in turn with the gateway and reports
the gateway's figures as ratios to this one's.

- HTTP port: `/<action>` by GET or POST (JSON body): `get_login_info`, `send_private_msg`,
  `sandbox_receive_message`, `sandbox_emit_bench`; `/` answers a health envelope.
- Messages are kept **in memory**, as a well-written server that does not persist them would:
  `send_private_msg` (to a friend) and `sandbox_receive_message` (a private message from a
  user) give the next message id, keep the message (its segments, raw text and sender, the
  latest MESSAGES_KEPT of them, by id) and build its event like the sandbox's;
  `sandbox_receive_message` events go to every `/` connection, the bot's own (`message_sent`)
  to none, as the gateway's entries without `reportSelfMessage`. No SQLite, no disk: the gateway
  stores every message durably (group commit, see the sandbox store) and is measured against
  what it would cost not to.
- WebSocket port: `/api` answers actions; `/` answers actions and gets `lifecycle` plus events.
  Calls on one socket run concurrently, one task each, as the wire contract requires (DESIGN.md);
  answering them inline, one after the other, would be faster but is not a OneBot server.
- Fan-out: `sandbox_emit_bench {count, rate, run}` answers at once, then publishes `count`
  private message events built like the sandbox's (same fields, same key order), each encoded
  once and put on every `/` connection's own queue, which a writer task per connection drains:
  the bus's non-blocking semantics in their plainest form (an `asyncio.Queue` per subscriber).

Usage: python bench/baseline.py --http-port 18080 --ws-port 18081
(`BENCH_BASELINE_SERVER=low-level` runs the same handlers on aiohttp's low-level server, the one
the gateway's listeners use: a reference figure, not the yardstick.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from typing import Any

import orjson
import uvloop
from aiohttp import WSMsgType, web

SELF_ID, NICKNAME = 10001, "Sandbox Bot"
FRIEND_ID, FRIEND_NICKNAME = 20001, "Alice"
MESSAGE_ID_BASE, MESSAGE_ID_SPAN = 2_000_000_000, 100_000_000
MESSAGES_KEPT = 100_000
"""Messages kept in memory, the oldest forgotten first (NapCat keeps 5,000)."""


class Refused(Exception):
    """The action failed (1200), as the sandbox refuses a message to a stranger."""


def ok(data: Any, echo: Any = None) -> dict[str, Any]:
    return {
        "status": "ok",
        "retcode": 0,
        "data": data,
        "message": "",
        "wording": "",
        "echo": echo,
        "stream": "normal-action",
    }


def failed(retcode: int, message: str, echo: Any = None) -> dict[str, Any]:
    return {
        "status": "failed",
        "retcode": retcode,
        "data": None,
        "message": message,
        "wording": message,
        "echo": echo,
        "stream": "normal-action",
    }


class Baseline:
    def __init__(self) -> None:
        self.subscribers: set[asyncio.Queue[bytes]] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.friends = {FRIEND_ID: FRIEND_NICKNAME}
        self.messages: dict[int, tuple[Any, ...]] = {}
        self.last_message_id = 0
        self.actions = {
            "get_login_info": self.get_login_info,
            "send_private_msg": self.send_private_msg,
            "sandbox_receive_message": self.sandbox_receive_message,
            "sandbox_emit_bench": self.sandbox_emit_bench,
        }

    # --- actions -----------------------------------------------------------------------------

    def get_login_info(self, _: dict[str, Any]) -> Any:
        return {"user_id": SELF_ID, "nickname": NICKNAME}

    def send_private_msg(self, params: dict[str, Any]) -> Any:
        user_id = int(params["user_id"])
        if user_id not in self.friends:
            raise Refused(f"user {user_id} is not a friend of the bot")
        sender = {"user_id": SELF_ID, "nickname": NICKNAME, "card": ""}
        event = self.keep("friend", user_id, SELF_ID, params.get("message"), sender)
        event["message_sent_type"] = "self"
        event["target_id"] = user_id
        # The bot's own messages go to no subscriber (no reportSelfMessage), as in the gateway.
        return {"message_id": event["message_id"]}

    def sandbox_receive_message(self, params: dict[str, Any]) -> Any:
        if params.get("message_type") != "private":
            raise ValueError("message_type: only private messages here")
        user_id = int(params["user_id"])
        nickname = self.friends.get(user_id, f"User {user_id}")
        sub_type = "friend" if user_id in self.friends else "other"
        sender = {"user_id": user_id, "nickname": nickname, "card": ""}
        event = self.keep(sub_type, user_id, user_id, params.get("message"), sender)
        self.publish(orjson.dumps(event))
        return {"message_id": event["message_id"]}

    def keep(
        self, sub_type: str, peer_id: int, sender_id: int, message: Any, sender: dict[str, Any]
    ) -> dict[str, Any]:
        """Keep a private message in memory; its event (`message` or `message_sent`)."""
        if isinstance(message, str):
            segments: Any = [{"type": "text", "data": {"text": message}}]
            raw = message
        elif isinstance(message, list) and message:
            segments = message
            raw = "".join(str(s.get("data", {}).get("text", "")) for s in message)
        else:
            raise ValueError("message: a string or a list of segments is required")
        self.last_message_id += 1
        message_id = self.last_message_id
        now = int(time.time())
        # Kept encoded: a tuple of strings, ints and bytes is no work for the garbage collector,
        # where 100,000 kept lists and dicts made every full collection walk them (tens of ms).
        self.messages[message_id] = (
            sub_type,
            peer_id,
            sender_id,
            now,
            orjson.dumps(segments),
            raw,
            orjson.dumps(sender),
        )
        self.messages.pop(message_id - MESSAGES_KEPT, None)
        return {
            "time": now,
            "self_id": SELF_ID,
            "post_type": "message_sent" if sender_id == SELF_ID else "message",
            "message_type": "private",
            "sub_type": sub_type,
            "message_id": message_id,
            "real_id": message_id,
            "message_seq": message_id,
            "user_id": sender_id,
            "message": segments,
            "raw_message": raw,
            "message_format": "array",
            "font": 14,
            "sender": sender,
        }

    def publish(self, frame: bytes) -> None:
        for queue in self.subscribers:
            queue.put_nowait(frame)

    def sandbox_emit_bench(self, params: dict[str, Any]) -> Any:
        count, rate, run = int(params["count"]), float(params.get("rate", 0)), params.get("run", "")
        task = asyncio.create_task(self._emit(count, rate, str(run)))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return {"run": run, "count": count, "rate": rate, "user_id": FRIEND_ID}

    async def _emit(self, count: int, rate: float, run: str) -> None:
        template = {
            "self_id": SELF_ID,
            "post_type": "message",
            "message_type": "private",
            "sub_type": "friend",
            "user_id": FRIEND_ID,
            "message_format": "array",
            "font": 14,
            "sender": {"user_id": FRIEND_ID, "nickname": FRIEND_NICKNAME, "card": ""},
            "bench_run": run,
        }
        started = time.monotonic()
        for seq in range(count):
            text = f"bench {seq}"
            message_id = MESSAGE_ID_BASE + seq % MESSAGE_ID_SPAN
            frame = orjson.dumps(
                {
                    **template,
                    "time": int(time.time()),
                    "message_id": message_id,
                    "real_id": message_id,
                    "message_seq": message_id,
                    "message": [{"type": "text", "data": {"text": text}}],
                    "raw_message": text,
                    "bench_seq": seq,
                    "bench_emitted_ns": time.time_ns(),
                }
            )
            self.publish(frame)
            delay = started + (seq + 1) / rate - time.monotonic() if rate else 0.0
            await asyncio.sleep(max(delay, 0.0))

    def call(self, action: str, params: Any, echo: Any = None) -> dict[str, Any]:
        handler = self.actions.get(action)
        if handler is None:
            return failed(1404, f"unknown action {action!r}", echo)
        try:
            return ok(handler(params if isinstance(params, dict) else {}), echo)
        except Refused as error:
            return failed(1200, str(error), echo)
        except (KeyError, TypeError, ValueError) as error:
            return failed(1400, str(error), echo)

    # --- HTTP --------------------------------------------------------------------------------

    async def http(self, request: web.Request) -> web.Response:
        return await self._http(request, request.match_info["action"])

    async def http_low_level(self, request: web.BaseRequest) -> web.Response:
        return await self._http(request, request.path[1:])

    async def _http(self, request: web.BaseRequest, action: str) -> web.Response:
        if not action:
            return self.respond(ok({"app_name": "baseline"}))
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST":
            body = await request.read()
            if body.strip():
                try:
                    params = {**orjson.loads(body), **params}
                except orjson.JSONDecodeError as error:
                    return self.respond(failed(1400, f"invalid JSON body: {error}"))
        return self.respond(self.call(action, params, params.pop("echo", None)))

    @staticmethod
    def respond(body: dict[str, Any]) -> web.Response:
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    # --- WebSocket ---------------------------------------------------------------------------

    async def websocket(self, request: web.BaseRequest) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        universal = request.path.rstrip("/") != "/api"
        writer = None
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        if universal:
            lifecycle = {
                "time": int(time.time()),
                "self_id": SELF_ID,
                "post_type": "meta_event",
                "meta_event_type": "lifecycle",
                "sub_type": "connect",
            }
            await ws.send_frame(orjson.dumps(lifecycle), WSMsgType.TEXT)
            self.subscribers.add(queue)
            writer = asyncio.create_task(self._write(ws, queue))
        calls: set[asyncio.Task[None]] = set()
        try:
            async for message in ws:
                if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    # Calls on one socket run concurrently (the wire contract), one task each.
                    task = asyncio.create_task(self._answer(ws, message.data))
                    calls.add(task)
                    task.add_done_callback(calls.discard)
        finally:
            self.subscribers.discard(queue)
            for task in [*calls, *([writer] if writer else [])]:
                task.cancel()
        return ws

    async def _answer(self, ws: web.WebSocketResponse, data: str | bytes) -> None:
        frame = orjson.loads(data)
        reply = self.call(frame.get("action", ""), frame.get("params"), frame.get("echo"))
        if not ws.closed:
            await ws.send_frame(orjson.dumps(reply), WSMsgType.TEXT)

    @staticmethod
    async def _write(ws: web.WebSocketResponse, queue: asyncio.Queue[bytes]) -> None:
        try:
            while True:
                await ws.send_frame(await queue.get(), WSMsgType.TEXT)
        except ConnectionError:
            pass


MAX_BODY = 64 * 1024 * 1024
"""The gateway's default maxBodySize, so both accept the same bodies."""


async def serve(args: argparse.Namespace) -> None:
    baseline = Baseline()
    runners: list[web.BaseRunner]
    if os.environ.get("BENCH_BASELINE_SERVER") == "low-level":
        # For comparison only: aiohttp's low-level server (no router, no app), as the gateway's
        # listeners use. Not the yardstick the targets are measured against.
        runners = [
            web.ServerRunner(web.Server(baseline.http_low_level, access_log=None)),
            web.ServerRunner(web.Server(baseline.websocket, access_log=None)),
        ]
    else:
        http_app = web.Application(client_max_size=MAX_BODY)
        http_app.router.add_route("*", "/{action:.*}", baseline.http)
        ws_app = web.Application()
        ws_app.router.add_get("/{tail:.*}", baseline.websocket)
        runners = [
            web.AppRunner(http_app, access_log=None),
            web.AppRunner(ws_app, access_log=None),
        ]
    for runner, port in zip(runners, (args.http_port, args.ws_port), strict=True):
        await runner.setup()
        await web.TCPSite(runner, args.host, port).start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    for task in baseline.tasks:
        task.cancel()
    for runner in runners:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--ws-port", type=int, required=True)
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(args))


if __name__ == "__main__":
    main()
