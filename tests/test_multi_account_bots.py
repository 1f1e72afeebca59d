"""Issue 17's must-show: real bot frameworks on one gateway with three sandbox accounts.

Accounts a (10001), b (10002) and c (10003) share the default world (groups 30001 and 30002,
users 20001..20005). One NoneBot2 process hosts the bots of a and b over reverse WebSocket (the
`websocketClients` entry serving both opens one connection per account, each with its own
X-Self-ID); Koishi is the bot of c over a forward WebSocket bound to c by its path
(`/10003/`). Simulated users speak through the sandbox action on one account at a time (the
HTTP entry, bound per call by `/<self_id>/<action>`), and each account's history shows who
answered. Each bot answers `ping` with `pong from <its self_id>` (tests/nonebot_app/multi_bot.py,
tests/koishi/app.js).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.app_process import AppProcess
from tests.conftest import RunningGateway, free_port, run_gateway
from tests.koishi_harness import run_koishi
from tests.nonebot_harness import run_nonebot

MULTI_BOT_APP = Path(__file__).parent / "nonebot_app" / "multi_bot.py"
ACCOUNTS = {"a": 10001, "b": 10002, "c": 10003}
NONEBOT_IDS = ("10001", "10002")
KOISHI_ID = "10003"
SHARED_GROUP = 30001


def three_accounts_document(nonebot_port: int) -> dict[str, Any]:
    """Three in-memory sandbox accounts on the default world; an operator's HTTP API serving
    all of them, a reverse WebSocket to NoneBot serving a and b, a WebSocket server serving b
    and c (Koishi binds its connection to c by path)."""
    return {
        "accounts": [
            {"name": name, "backend": {"database": ":memory:", "selfId": self_id}}
            for name, self_id in ACCOUNTS.items()
        ],
        "network": {
            "httpServers": [{"name": "api", "enable": True, "host": "127.0.0.1", "port": 0}],
            "websocketClients": [
                {
                    "name": "to-nonebot",
                    "enable": True,
                    "url": f"ws://127.0.0.1:{nonebot_port}/onebot/v11/ws",
                    "token": "nb-token",
                    "reconnectInterval": 100,
                    "reconnectMaxInterval": 500,
                    "accounts": ["a", "b"],
                }
            ],
            "websocketServers": [
                {
                    "name": "for-koishi",
                    "enable": True,
                    "host": "127.0.0.1",
                    "port": 0,
                    "token": "koishi-token",
                    "heartInterval": 0,
                    # Two accounts: Koishi's connection gets c's events only by its path.
                    "accounts": ["b", "c"],
                }
            ],
        },
    }


@dataclass
class AccountApi:
    """Actions on one account through the HTTP entry (`/<self_id>/<action>`)."""

    gw: RunningGateway
    http: aiohttp.ClientSession
    self_id: int

    async def call(self, action: str, **params: Any) -> dict[str, Any]:
        """The whole envelope."""
        url = self.gw.url("api", f"/{self.self_id}/{action}")
        async with self.http.post(url, json=params) as response:
            body: dict[str, Any] = await response.json()
            return body

    async def ok(self, action: str, **params: Any) -> Any:
        """`data` of a call that must succeed."""
        body = await self.call(action, **params)
        assert body["retcode"] == 0, f"{action} on {self.self_id} failed: {body}"
        return body["data"]

    async def texts(self, action: str, **params: Any) -> list[tuple[int, str, str]]:
        """(sender, post_type, text) of each message of a history, oldest first."""
        history = await self.ok(action, **params)
        return [
            (m["sender"]["user_id"], m["post_type"], m["raw_message"]) for m in history["messages"]
        ]


@dataclass
class Bots:
    """The running gateway, an API per account, and the two bot processes."""

    gw: RunningGateway
    accounts: dict[int, AccountApi]
    nonebot: AppProcess
    koishi: AppProcess

    async def wait_for_every_bot_but(
        self, sender: int, text: str, user_id: int, message_type: str, group_id: int
    ) -> None:
        """Until each bot but `sender`'s has received this text from `user_id` in the group."""
        for self_id in NONEBOT_IDS:
            if int(self_id) != sender:
                await self.nonebot.wait_for(
                    "NB_RECEIVED",
                    self_id=self_id,
                    text=text,
                    user_id=user_id,
                    message_type=message_type,
                    group_id=group_id,
                )
        if int(KOISHI_ID) != sender:
            await self.koishi.wait_for(
                "KOISHI_RECEIVED", content=text, userId=str(user_id), channelId=str(group_id)
            )


@contextlib.asynccontextmanager
async def three_bots(workdir: Path) -> AsyncIterator[Bots]:
    """NoneBot listening, then the gateway (which connects to it), then Koishi; all connected."""
    nb_port = free_port()
    nb_settings = {"NB_PORT": str(nb_port), "ONEBOT_ACCESS_TOKEN": "nb-token"}
    async with (
        run_nonebot(nb_settings, workdir, MULTI_BOT_APP) as nb,
        run_gateway(three_accounts_document(nb_port)) as gw,
        aiohttp.ClientSession() as http,
    ):
        port = gw.supervisor.adapters["for-koishi"].port
        endpoint = f"ws://127.0.0.1:{port}/{KOISHI_ID}/"
        async with run_koishi(endpoint, KOISHI_ID, "koishi-token") as koishi:
            nonebot = AppProcess(nb.process, "NoneBot")
            # Each bot's first call reached its own account (get_login_info).
            for self_id in NONEBOT_IDS:
                await nonebot.wait_for("NB_CONNECTED", self_id=self_id, login_id=self_id)
            await koishi.wait_for("KOISHI_CONNECTED", selfId=KOISHI_ID, loginId=KOISHI_ID)
            accounts = {sid: AccountApi(gw, http, sid) for sid in ACCOUNTS.values()}
            yield Bots(gw, accounts, nonebot, koishi)


async def private_pings(bots: Bots) -> None:
    """User 20001 (a friend of each account) says `ping` to each account privately; waits for
    each bot's answer."""
    for account in bots.accounts.values():
        await account.ok(
            "sandbox_receive_message", message_type="private", user_id=20001, message="ping"
        )
    for self_id in NONEBOT_IDS:
        await bots.nonebot.wait_for("NB_REPLIED", self_id=self_id, message_type="private")
    await bots.koishi.wait_for("KOISHI_REPLIED", channelId="private:20001")


async def group_pings(bots: Bots, group_id: int) -> None:
    """User 20003 says `ping` in a group all three accounts are in (each account is told on its
    own, as QQ tells every bot account in a group), then waits until each bot has received the
    other two bots' answers (which the shared world delivers as messages from them)."""
    for account in bots.accounts.values():
        await account.ok(
            "sandbox_receive_message",
            message_type="group",
            group_id=group_id,
            user_id=20003,
            message="ping",
        )
    place = {"message_type": "group", "group_id": group_id}
    for sender in ACCOUNTS.values():
        await bots.wait_for_every_bot_but(sender, f"pong from {sender}", user_id=sender, **place)


async def test_three_bots_answer_each_as_its_own_account_and_get_each_message_once(
    tmp_path: Path,
) -> None:
    async with three_bots(tmp_path) as bots:
        await private_pings(bots)
        await group_pings(bots, SHARED_GROUP)
        # A last round in the other shared group: what reaches a bot comes in order per account
        # (its connection) and per sending bot (the shared world), so once this round is in,
        # a second copy of anything before it would have been read.
        await group_pings(bots, 30002)

        # Private: each account answered its own friend, as itself, once.
        for self_id, account in bots.accounts.items():
            assert await account.texts("get_friend_msg_history", user_id=20001) == [
                (20001, "message", "ping"),
                (self_id, "message_sent", f"pong from {self_id}"),
            ]

        # The shared group, in each account's history: the user's ping, its own answer (sent
        # as itself) and the two other bots' answers (received from them). The others' answers
        # may come before or after the user's ping reached this account (each account is told
        # on its own), so the order is not compared.
        for self_id, account in bots.accounts.items():
            others = sorted(set(ACCOUNTS.values()) - {self_id})
            history = await account.texts("get_group_msg_history", group_id=SHARED_GROUP)
            assert sorted(history) == sorted(
                [(20003, "message", "ping"), (self_id, "message_sent", f"pong from {self_id}")]
                + [(other, "message", f"pong from {other}") for other in others]
            )

        # What each bot received there: the ping once, each other bot's answer once.
        group = {"message_type": "group", "group_id": SHARED_GROUP}
        for self_id in NONEBOT_IDS:
            got = [
                (r["user_id"], r["text"])
                for r in bots.nonebot.seen("NB_RECEIVED", self_id=self_id, **group)
            ]
            others = sorted(set(ACCOUNTS.values()) - {int(self_id)})
            assert sorted(got) == sorted(
                [(20003, "ping")] + [(other, f"pong from {other}") for other in others]
            )
            replies = bots.nonebot.seen("NB_REPLIED", self_id=self_id, **group)
            assert [r["text"] for r in replies] == [f"pong from {self_id}"]
        got_koishi = [
            (r["userId"], r["content"])
            for r in bots.koishi.seen("KOISHI_RECEIVED", channelId=str(SHARED_GROUP))
        ]
        assert sorted(got_koishi) == [
            ("10001", "pong from 10001"),
            ("10002", "pong from 10002"),
            ("20003", "ping"),
        ]
        assert len(bots.koishi.seen("KOISHI_REPLIED", channelId=str(SHARED_GROUP))) == 1

        # Privately, each bot got only its own account's message; and every event reached the
        # bot of its own account, on that account's connection.
        private = bots.nonebot.seen("NB_RECEIVED", message_type="private")
        assert sorted(r["self_id"] for r in private) == list(NONEBOT_IDS)
        assert len(bots.koishi.seen("KOISHI_RECEIVED", type="private")) == 1
        assert all(r["event_self_id"] == r["self_id"] for r in bots.nonebot.seen("NB_RECEIVED"))
        assert all(
            r["selfId"] == r["botSelfId"] == KOISHI_ID for r in bots.koishi.seen("KOISHI_RECEIVED")
        )
