"""Sandbox accounts sharing one world (gateway/backends/sandbox/exchange.py, seed.py).

Real backends on `:memory:` or files, one real EventBus subscription that sees every account's
events (told apart by `self_id`), and the exchange's `settled()` to know that every delivery has
been made or has failed before asserting what did not happen.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from gateway.backends.sandbox.backend import SandboxBackend
from gateway.backends.sandbox.exchange import SandboxExchange
from gateway.bus import EventBus, SubscriberOptions
from gateway.config import ConfigError, SandboxBackendConfig
from gateway.protocol.envelope import ActionFailed
from tests.conftest import capture_logs, http_entry, run_gateway

BOT = 10001  # the built-in world's own account
LAB = 30001  # the bot is an admin there; Alice (20001) owns it; Bob (20002) is an admin
PLAYGROUND = 30002  # the bot owns it; Bob and Eve are members
ALICE, BOB = 20001, 20002
PNG = b"\x89PNG\r\n\x1a\n" + b"shared world"


class SharedWorld:
    """Sandbox accounts on one exchange and one bus, and everything they published."""

    def __init__(self) -> None:
        self.bus = EventBus()
        self.events = self.bus.subscribe(
            "test", SubscriberOptions(report_self_message=True, queue_size=100_000)
        )
        self.exchange = SandboxExchange()
        self.accounts: list[SandboxBackend] = []

    async def add(self, database: str = ":memory:", **backend: Any) -> SandboxBackend:
        config = SandboxBackendConfig(database=database, **backend)
        account = SandboxBackend(config, self.bus, self.exchange)
        await account.start()
        self.accounts.append(account)
        return account

    async def published(self) -> list[dict[str, Any]]:
        """Every event published since the last call, once every delivery is done."""
        await self.exchange.settled()
        events = []
        while len(self.events):
            events.append(orjson.loads(await self.events.get()))
        return events


@contextlib.asynccontextmanager
async def shared_world() -> AsyncIterator[SharedWorld]:
    world = SharedWorld()
    try:
        yield world
    finally:
        for account in world.accounts:
            await account.stop()
        await world.exchange.settled()


def messages_of(events: list[dict[str, Any]], self_id: int) -> list[dict[str, Any]]:
    """The `message` events (not the bot's own `message_sent`) of one account (0: of all)."""
    return [e for e in events if e["post_type"] == "message" and self_id in (0, e["self_id"])]


def text(event: dict[str, Any]) -> str:
    return "".join(s["data"]["text"] for s in event["message"] if s["type"] == "text")


async def test_a_group_message_reaches_the_other_member_account_once() -> None:
    async with shared_world() as world:
        a = await world.add()
        b = await world.add(self_id=10002, nickname="Beta")
        c = await world.add(self_id=10003, nickname="Gamma")
        await world.published()
        sent = await a.invoke("send_group_msg", {"group_id": LAB, "message": "hello"})
        events = await world.published()

        assert messages_of(events, BOT) == []  # never back to the sender
        for receiver in (b, c):  # each once, and never passed on by a receiver
            [got] = messages_of(events, receiver.self_id)
            assert (got["user_id"], got["group_id"], got["message_type"]) == (BOT, LAB, "group")
            assert got["sender"] == {
                "user_id": BOT,
                "nickname": "Sandbox Bot",
                "card": "",
                "role": "admin",  # as the world lists the bot in Gateway Lab
            }
            assert text(got) == "hello" and got["group_name"] == "Gateway Lab"
            history = await receiver.invoke("get_group_msg_history", {"group_id": LAB})
            [stored] = [m for m in history["messages"] if m["user_id"] == BOT]
            assert stored["message_id"] == got["message_id"]
            assert stored["message"] == got["message"]
        [own] = [e for e in events if e["post_type"] == "message_sent"]
        assert own["self_id"] == BOT and own["message_id"] == sent["message_id"]
        assert world.exchange.delivered == 2 and world.exchange.failed == 0


async def test_a_sender_the_receiver_does_not_know_joins_its_view_of_the_group() -> None:
    async with shared_world() as world:
        a = await world.add()
        b = await world.add(self_id=10002, nickname="Beta")
        await world.published()
        await b.invoke("send_group_msg", {"group_id": PLAYGROUND, "message": "hi from beta"})
        events = await world.published()
        joined = [e for e in events if e.get("notice_type") == "group_increase"]
        assert [(e["self_id"], e["group_id"], e["user_id"]) for e in joined] == [
            (BOT, PLAYGROUND, 10002)
        ]
        [got] = messages_of(events, BOT)
        assert got["sender"]["nickname"] == "Beta" and got["sender"]["role"] == "member"
        member = await a.invoke("get_group_member_info", {"group_id": PLAYGROUND, "user_id": 10002})
        assert member["nickname"] == "Beta" and member["role"] == "member"


async def test_an_account_that_is_not_in_the_group_gets_nothing() -> None:
    async with shared_world() as world:
        a = await world.add()
        b = await world.add(self_id=10002)
        outsider = await world.add(self_id=10003)
        await outsider.invoke("set_group_leave", {"group_id": LAB})
        await world.published()
        await a.invoke("send_group_msg", {"group_id": LAB, "message": "members only"})
        events = await world.published()
        assert len(messages_of(events, b.self_id)) == 1
        assert [e for e in events if e["self_id"] == outsider.self_id] == []
        history = await outsider.invoke("get_group_msg_history", {"group_id": PLAYGROUND})
        assert history["messages"] == []
        assert world.exchange.failed == 0


async def test_a_private_message_to_another_accounts_number_reaches_it() -> None:
    async with shared_world() as world:
        a = await world.add()
        # Alice's account: a friend of the bot in the bot's store; the bot is not hers.
        alice = await world.add(self_id=ALICE, nickname="Alice Bot")
        await world.published()
        sent = await a.invoke("send_private_msg", {"user_id": ALICE, "message": "hi alice"})
        events = await world.published()
        [got] = messages_of(events, ALICE)
        assert (got["message_type"], got["user_id"], got["target_id"]) == ("private", BOT, BOT)
        assert got["sub_type"] == "friend"  # a stranger's chat, shown as NapCat shows it
        assert got["sender"]["nickname"] == "Sandbox Bot" and text(got) == "hi alice"
        stored = await alice.invoke("get_msg", {"message_id": got["message_id"]})
        assert stored["message"] == got["message"] and stored["user_id"] == BOT
        assert messages_of(events, BOT) == []

        # Back, through the group they share (the bot is not Alice's friend in her store).
        await alice.invoke(
            "send_private_msg", {"user_id": BOT, "group_id": LAB, "message": "hi bot"}
        )
        events = await world.published()
        [back] = messages_of(events, BOT)
        assert back["user_id"] == ALICE and back["sub_type"] == "friend"
        assert "group_id" not in back  # a friend's chat in the bot's store
        assert back["sender"]["nickname"] == "Alice Bot"  # her name now, not the world's
        friends = await a.invoke("get_friend_list", {})
        assert {f["user_id"]: f["nickname"] for f in friends}[ALICE] == "Alice Bot"
        history = await a.invoke("get_friend_msg_history", {"user_id": ALICE})
        assert [m["message_id"] for m in history["messages"]] == [
            sent["message_id"],
            back["message_id"],
        ]


async def test_a_burst_of_200_sends_arrives_in_the_order_they_were_sent() -> None:
    async with shared_world() as world:
        a = await world.add()
        b = await world.add(self_id=10002)
        await world.published()
        await asyncio.gather(
            *(
                a.invoke("send_group_msg", {"group_id": PLAYGROUND, "message": f"#{n}"})
                for n in range(200)
            )
        )
        events = await world.published()
        sent = [text(e) for e in events if e["post_type"] == "message_sent"]
        received = messages_of(events, b.self_id)
        assert sorted(sent, key=lambda t: int(t[1:])) == [f"#{n}" for n in range(200)]
        assert [text(e) for e in received] == sent
        ids = [e["message_id"] for e in received]
        assert ids == sorted(ids) and len(set(ids)) == 200
        history = await b.invoke("get_group_msg_history", {"group_id": PLAYGROUND, "count": 200})
        assert [text(m) for m in history["messages"]] == sent


async def test_replies_forwards_and_media_cross_with_the_message() -> None:
    async with shared_world() as world:
        a = await world.add()
        b = await world.add(self_id=10002)
        await world.published()
        first = await a.invoke("send_group_msg", {"group_id": LAB, "message": "question"})
        [copy] = messages_of(await world.published(), b.self_id)

        # B quotes its copy; A sees the quote of its own original.
        await b.invoke(
            "send_group_msg",
            {
                "group_id": LAB,
                "message": [
                    {"type": "reply", "data": {"id": str(copy["message_id"])}},
                    {"type": "text", "data": {"text": "answer"}},
                ],
            },
        )
        [answer] = messages_of(await world.published(), BOT)
        assert answer["message"][0] == {
            "type": "reply",
            "data": {"id": str(first["message_id"])},
        }

        # A's quick reply to B's answer quotes B's own message in B's store.
        await a.invoke(
            ".handle_quick_operation", {"context": answer, "operation": {"reply": "thanks"}}
        )
        [thanks] = messages_of(await world.published(), b.self_id)
        [quoted] = [s for s in thanks["message"] if s["type"] == "reply"]
        b_answer = await b.invoke("get_msg", {"message_id": int(quoted["data"]["id"])})
        assert b_answer["user_id"] == b.self_id and text(b_answer) == "answer"

        # A reply to a message B never got is left out of B's copy.
        own = await a.invoke("sandbox_receive_message", {
            "message_type": "group", "group_id": LAB, "user_id": ALICE, "message": "only in A"
        })  # fmt: skip
        await a.invoke(
            "send_group_msg",
            {
                "group_id": LAB,
                "message": [
                    {"type": "reply", "data": {"id": str(own["message_id"])}},
                    {"type": "text", "data": {"text": "re"}},
                ],
            },
        )
        [re] = messages_of(await world.published(), b.self_id)
        assert [s["type"] for s in re["message"]] == ["text"]

        # A forward bundle reads back in B's chat; an image is stored in B's store.
        nodes = [
            {"type": "node", "data": {"user_id": ALICE, "nickname": "Alice", "content": "n1"}},
            {"type": "node", "data": {"user_id": BOB, "nickname": "Bob", "content": "n2"}},
        ]
        await a.invoke("send_group_forward_msg", {"group_id": LAB, "messages": nodes})
        image = "base64://" + base64.b64encode(PNG).decode()
        await a.invoke(
            "send_group_msg",
            {"group_id": LAB, "message": [{"type": "image", "data": {"file": image}}]},
        )
        forward, picture = messages_of(await world.published(), b.self_id)
        bundle = await b.invoke("get_forward_msg", {"message_id": str(forward["message_id"])})
        assert [text(m) for m in bundle["messages"]] == ["n1", "n2"]
        assert all(m["group_id"] == LAB for m in bundle["messages"])
        [segment] = picture["message"]
        got = await b.invoke("get_image", {"file": segment["data"]["file"], "base64": True})
        assert base64.b64decode(got["base64"]) == PNG
        assert world.exchange.failed == 0


async def test_a_stopped_account_does_not_break_the_sender() -> None:
    async with shared_world() as world:
        a = await world.add()
        b = await world.add(self_id=10002)
        await world.published()
        sends = [
            a.invoke("send_group_msg", {"group_id": LAB, "message": f"{n}"}) for n in range(50)
        ]
        await asyncio.gather(*sends)
        await b.stop()  # maybe before its inbox is done: the rest fail, counted
        world.accounts.remove(b)
        events = await world.published()
        exchange = world.exchange
        assert exchange.delivered + exchange.failed == 50
        assert len(messages_of(events, b.self_id)) == exchange.delivered
        assert exchange.accounts == (BOT,) and a.shared_world is None

        after = await a.invoke("send_group_msg", {"group_id": LAB, "message": "alone"})
        history = await a.invoke("get_group_msg_history", {"group_id": LAB, "count": 100})
        assert history["messages"][-1]["message_id"] == after["message_id"]
        assert len(history["messages"]) == 51
        assert exchange.delivered + exchange.failed == 50  # nothing queued for anyone


async def test_a_failure_in_the_receiver_is_counted_and_logged_not_raised() -> None:
    async with shared_world() as world:
        a = await world.add()
        b = await world.add(self_id=10002)
        # In its own store, B sees the bot muted in the playground (A does not know it is).
        await b.store.run(
            lambda db: db.execute(
                "UPDATE members SET mute_until = ? WHERE group_id = ? AND user_id = ?",
                (2**40, PLAYGROUND, BOT),
            )
        )
        await world.published()
        with capture_logs() as logs:
            sent = await a.invoke("send_group_msg", {"group_id": PLAYGROUND, "message": "hush"})
            events = await world.published()
        assert sent["message_id"] > 0 and messages_of(events, b.self_id) == []
        assert world.exchange.failed == 1
        [failure] = [entry for entry in logs if entry["event"] == "sandbox_exchange_failed"]
        assert failure["from_self_id"] == BOT and failure["to_self_id"] == 10002
        assert "muted" in failure["error"]
        history = await b.invoke("get_group_msg_history", {"group_id": PLAYGROUND})
        assert history["messages"] == []


async def test_one_account_alone_shares_nothing() -> None:
    async with shared_world() as world:
        a = await world.add()
        assert a.shared_world is None
        await a.invoke("send_group_msg", {"group_id": LAB, "message": "solo"})
        b = await world.add(self_id=10002)
        assert a.shared_world is world.exchange and b.shared_world is world.exchange
        events = await world.published()
        assert messages_of(events, b.self_id) == []  # sent before B took part
        assert world.exchange.delivered == 0


async def test_a_recall_reaches_every_account_holding_the_message() -> None:
    async with shared_world() as world:
        a = await world.add()
        b = await world.add(self_id=10002)
        c = await world.add(self_id=10003)
        await world.published()

        # The sender recalls its own message: each copy is recalled, with its own notice.
        sent = await a.invoke("send_group_msg", {"group_id": LAB, "message": "oops"})
        copies = {e["self_id"]: e["message_id"] for e in messages_of(await world.published(), 0)}
        await a.invoke("delete_msg", {"message_id": sent["message_id"]})
        events = await world.published()
        recalls = {e["self_id"]: e for e in events if e.get("notice_type") == "group_recall"}
        assert set(recalls) == {BOT, 10002, 10003}
        for receiver in (b, c):
            notice = recalls[receiver.self_id]
            assert notice["message_id"] == copies[receiver.self_id]
            assert (notice["user_id"], notice["operator_id"], notice["group_id"]) == (
                BOT,
                BOT,
                LAB,
            )
            with pytest.raises(ActionFailed, match="was recalled"):
                await receiver.invoke("get_msg", {"message_id": copies[receiver.self_id]})

        # An admin's bot (A, in its own store) recalls B's message: B's original and C's copy go.
        said = await b.invoke("send_group_msg", {"group_id": LAB, "message": "spam"})
        [in_a] = messages_of(await world.published(), BOT)
        await a.invoke("delete_msg", {"message_id": in_a["message_id"]})
        events = await world.published()
        recalls = {e["self_id"]: e for e in events if e.get("notice_type") == "group_recall"}
        assert set(recalls) == {BOT, 10002, 10003}
        assert recalls[10002]["message_id"] == said["message_id"]
        assert (recalls[10002]["user_id"], recalls[10002]["operator_id"]) == (10002, BOT)
        history = await b.invoke("get_group_msg_history", {"group_id": LAB})
        assert [text(m) for m in history["messages"]] == []
        assert world.exchange.failed == 0

        # A private message recalled: the receiving account gets a friend_recall.
        alice = await world.add(self_id=ALICE)
        private = await a.invoke("send_private_msg", {"user_id": ALICE, "message": "psst"})
        [copy] = messages_of(await world.published(), ALICE)
        await a.invoke("delete_msg", {"message_id": private["message_id"]})
        events = await world.published()
        [notice] = [e for e in events if e["self_id"] == ALICE]
        assert notice["notice_type"] == "friend_recall"
        assert (notice["user_id"], notice["message_id"]) == (BOT, copy["message_id"])
        with pytest.raises(ActionFailed, match="was recalled"):
            await alice.invoke("get_msg", {"message_id": copy["message_id"]})


# --- seeding as another account -----------------------------------------------------------------


async def test_self_id_and_nickname_replace_the_worlds_account() -> None:
    async with shared_world() as world:
        beta = await world.add(self_id=10002, nickname="Beta")
        assert await beta.invoke("get_login_info", {}) == {"user_id": 10002, "nickname": "Beta"}
        for group_id in (LAB, PLAYGROUND):
            me = await beta.invoke(
                "get_group_member_info", {"group_id": group_id, "user_id": 10002}
            )
            assert (me["role"], me["nickname"]) == ("member", "Beta")
            bot = await beta.invoke("get_group_member_info", {"group_id": group_id, "user_id": BOT})
            assert bot["role"] in ("admin", "owner")  # the world's own account, another user now

        # An id the world lists keeps its role and card, and is no friend of itself.
        bob = await world.add(self_id=BOB)
        assert (await bob.invoke("get_login_info", {}))["nickname"] == "Sandbox Bot"
        lab = await bob.invoke("get_group_member_info", {"group_id": LAB, "user_id": BOB})
        assert (lab["role"], lab["card"]) == ("admin", "bob (admin)")
        play = await bob.invoke("get_group_member_info", {"group_id": PLAYGROUND, "user_id": BOB})
        assert play["role"] == "member"
        friends = {f["user_id"] for f in await bob.invoke("get_friend_list", {})}
        assert friends == {ALICE, 20003}


async def test_a_world_group_without_the_bot_gets_it_as_a_member(tmp_path: Path) -> None:
    world_file = tmp_path / "world.json5"
    world_file.write_text(
        '{self: {user_id: 777, nickname: "Tiny"}, groups: [{group_id: 50001, group_name: "G",'
        ' members: [{user_id: 888, nickname: "Ann", role: "owner"}]}]}'
    )
    async with shared_world() as world:
        tiny = await world.add(world=str(world_file))
        me = await tiny.invoke("get_group_member_info", {"group_id": 50001, "user_id": 777})
        assert (me["role"], me["nickname"]) == ("member", "Tiny")
        await tiny.invoke("send_group_msg", {"group_id": 50001, "message": "here"})


async def test_a_database_of_another_account_is_a_config_error(tmp_path: Path) -> None:
    database = str(tmp_path / "beta.db")
    async with shared_world() as world:
        first = await world.add(database, self_id=10002, nickname="Beta")
        await first.invoke("set_qq_profile", {"nickname": "Beta renamed"})
        await first.stop()
        world.accounts.remove(first)

        wrong = SandboxBackend(
            SandboxBackendConfig(database=database, self_id=10003), world.bus, world.exchange
        )
        with pytest.raises(ConfigError) as error:
            await wrong.start()
        assert str(error.value).startswith("backend.selfId: 10003 is not the account")
        assert database in str(error.value) and "seeded as 10002" in str(error.value)
        assert world.exchange.accounts == ()

        # The same id, or none, serves the database's account as it is now.
        again = await world.add(database, self_id=10002, nickname="Ignored")
        assert await again.invoke("get_login_info", {}) == {
            "user_id": 10002,
            "nickname": "Beta renamed",
        }
        await again.stop()
        world.accounts.remove(again)
        plain = await world.add(database)
        assert plain.self_id == 10002


async def test_two_accounts_with_one_number_are_a_config_error() -> None:
    async with shared_world() as world:
        await world.add()
        twin = SandboxBackend(SandboxBackendConfig(database=":memory:"), world.bus, world.exchange)
        with pytest.raises(ConfigError) as error:
            await twin.start()
        assert str(error.value).startswith("backend.selfId: two sandbox accounts are both QQ")
        assert world.exchange.accounts == (BOT,)


async def test_an_account_restarting_takes_part_again() -> None:
    async with shared_world() as world:
        a = await world.add()
        b = await world.add(self_id=10002)
        await world.published()
        sends = await asyncio.gather(
            *(a.invoke("send_group_msg", {"group_id": LAB, "message": f"{n}"}) for n in range(20))
        )
        await b.invoke("set_restart", {"delay": 0})  # `:memory:`: its message ids start anew
        while True:  # the restart runs in a task of its own: wait for its lifecycle event
            event = orjson.loads(await world.events.get())
            if event.get("meta_event_type") == "lifecycle" and event["sub_type"] == "enable":
                break
        assert world.exchange.accounts == (BOT, 10002) and a.shared_world is world.exchange
        await a.invoke("send_group_msg", {"group_id": LAB, "message": "after the restart"})
        events = await world.published()
        exchange = world.exchange
        assert exchange.delivered + exchange.failed == 21  # each one delivered or counted
        assert text(messages_of(events, b.self_id)[-1]) == "after the restart"
        history = await b.invoke("get_group_msg_history", {"group_id": LAB})
        assert text(history["messages"][-1]) == "after the restart"

        # A quote of a message sent before the restart never names another message in B's
        # new store: it quotes B's copy if the new store got one, or is left out.
        for n in (0, 19):
            quote = {"type": "reply", "data": {"id": str(sends[n]["message_id"])}}
            message = [quote, {"type": "text", "data": {"text": "re"}}]
            await a.invoke("send_group_msg", {"group_id": LAB, "message": message})
            [copy] = messages_of(await world.published(), b.self_id)
            for segment in copy["message"]:
                if segment["type"] == "reply":
                    quoted = await b.invoke("get_msg", {"message_id": int(segment["data"]["id"])})
                    assert text(quoted) == f"{n}"


# --- through the gateway ------------------------------------------------------------------------


async def test_two_sandbox_accounts_of_one_gateway_see_each_others_messages(
    http: aiohttp.ClientSession,
) -> None:
    document = {
        "accounts": [
            {"name": "alpha", "backend": {"database": ":memory:"}},
            {"name": "beta", "backend": {"database": ":memory:", "selfId": 10002}},
        ],
        "network": {
            "httpServers": [http_entry("api")],
            "websocketServers": [http_entry("ws", heartInterval=0)],  # unbound: both accounts
        },
    }
    async with run_gateway(document) as gw:
        api = gw.url("api")

        async def call(self_id: int, action: str, **params: Any) -> Any:
            async with http.post(f"{api}/{self_id}/{action}", json=params) as response:
                body = await response.json()
            assert body["retcode"] == 0, body
            return body["data"]

        url = gw.url("ws", "/").replace("http://", "ws://")
        async with http.ws_connect(url) as ws:

            async def next_message() -> dict[str, Any]:
                while True:
                    event: dict[str, Any] = await ws.receive_json(timeout=5)
                    if event["post_type"] == "message":
                        return event

            sent = await call(BOT, "send_group_msg", group_id=LAB, message="hello beta")
            got = await next_message()
            assert (got["self_id"], got["user_id"], got["group_id"]) == (10002, BOT, LAB)
            assert text(got) == "hello beta"

            quote = {"type": "reply", "data": {"id": str(got["message_id"])}}
            reply = [quote, {"type": "text", "data": {"text": "hi alpha"}}]
            await call(10002, "send_group_msg", group_id=LAB, message=reply)
            back = await next_message()
            assert (back["self_id"], back["user_id"]) == (BOT, 10002)
            assert back["message"][0]["data"]["id"] == str(sent["message_id"])

            history = await call(10002, "get_group_msg_history", group_id=LAB)
            assert [text(m) for m in history["messages"]] == ["hello beta", "hi alpha"]
