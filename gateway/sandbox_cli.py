"""`onebot-gateway sandbox ...`: act as a simulated user of a running sandbox from a shell."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import aiohttp


def add_commands(commands: Any) -> None:
    """Register `sandbox say` on the CLI's subparsers."""
    sandbox = commands.add_parser("sandbox", help="act as a simulated user of a running sandbox")
    actions = sandbox.add_subparsers(dest="sandbox_command", required=True)
    say = actions.add_parser("say", help="a simulated user sends the bot a message")
    say.add_argument("--user", type=int, required=True, help="QQ number of the sender")
    say.add_argument("--group", type=int, help="send in this group (private when absent)")
    say.add_argument("--nickname", help="sender nickname for a new user")
    say.add_argument(
        "--url",
        default="http://127.0.0.1:3000",
        help="the gateway's HTTP API (default: %(default)s)",
    )
    say.add_argument("--token", default="", help="access token of that HTTP server")
    say.add_argument("text", help="the message (CQ codes allowed)")


def run(args: argparse.Namespace) -> int:
    """Run the chosen sandbox command; prints the result, exit 0, or the error, exit 1."""
    params: dict[str, Any] = {
        "message_type": "group" if args.group else "private",
        "user_id": args.user,
        "message": args.text,
    }
    if args.group:
        params["group_id"] = args.group
    if args.nickname:
        params["sender"] = {"nickname": args.nickname}
    try:
        body = asyncio.run(_call(args.url, args.token, "sandbox_receive_message", params))
    except (aiohttp.ClientError, OSError) as error:
        print(f"onebot-gateway: cannot reach {args.url}: {error}", file=sys.stderr)
        return 1
    if body.get("retcode") != 0:
        print(f"onebot-gateway: {body.get('retcode')}: {body.get('message')}", file=sys.stderr)
        return 1
    print(f"message_id {body['data']['message_id']}")
    return 0


async def _call(url: str, token: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url.rstrip('/')}/{action}", json=params, headers=headers) as response,
    ):
        body: dict[str, Any] = await response.json(content_type=None)
        return body
