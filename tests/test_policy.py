"""Per-entry action policy (`actions: {allow, deny}`): refusals are 1403 naming the action and the
entry, on every transport that takes calls; the other entries are untouched."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.config import parse_config
from gateway.policy import ActionPolicy, quick_operation_actions
from tests.conftest import capture_logs, run_gateway, sandbox_config
from tests.entry_bots import TRANSPORTS, bot_and_other, bot_entry, until
from tests.test_outbound import Receiver, http_client, receiver_app, serve

GROUP, MEMBER = 30001, 20003


def refused(answer: dict[str, Any], *words: str) -> bool:
    message = answer["message"]
    return answer["retcode"] == 1403 and all(word in message for word in words)


# --- the rules ---------------------------------------------------------------------------------


def test_a_process_action_needs_its_name_not_a_glob() -> None:
    assert ActionPolicy().refusal(["bot_exit"], "bot_exit") is not None
    assert ActionPolicy(allow=("*", "bot_*")).refusal(["bot_exit"], "bot_exit") is not None
    assert ActionPolicy(allow=("bot_exit",)).refusal(["bot_exit"], "bot_exit") is None
    assert ActionPolicy(allow=("bot_exit",)).refusal(["set_restart"], "set_restart") is not None


def test_deny_wins_over_allow_and_empty_allow_allows_nothing() -> None:
    both = ActionPolicy(allow=("bot_exit", "get_*"), deny=("bot_exit", "get_status"))
    assert both.refusal(["bot_exit"], "bot_exit") == "denied by actions.deny 'bot_exit'"
    assert both.refusal(["get_status"], "get_status") is not None
    assert both.refusal(["get_login_info"], "get_login_info") is None
    assert ActionPolicy(allow=()).refusal(["get_status"], "get_status") == "actions.allow is empty"


def test_quick_operation_implies_the_actions_it_runs() -> None:
    group = {"post_type": "message", "message_type": "group"}
    operation = {"reply": "hi", "delete": True, "kick": True, "ban": True}
    assert quick_operation_actions({"context": group, "operation": operation}) == (
        "send_group_msg",
        "delete_msg",
        "set_group_kick",
        "set_group_ban",
    )
    request = {"post_type": "request", "request_type": "friend"}
    implied = quick_operation_actions({"context": request, "operation": {"approve": True}})
    assert implied == ("set_friend_add_request",)
    assert quick_operation_actions({"context": "x", "operation": {}}) == ()


# --- on every transport ------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_entry_without_an_explicit_allow_cannot_stop_the_gateway(transport: str) -> None:
    async with bot_and_other(transport, {"actions": {"allow": ["*"]}}) as bots:
        for action in ("bot_exit", "bot_exit_async", "bot_exit_rate_limited", "set_restart"):
            answer = await bots.bot(action)
            assert refused(answer, action.split("_async")[0].split("_rate")[0], "'bot'"), answer
        # Still serving, both entries.
        assert (await bots.bot("get_status"))["retcode"] == 0
        assert (await bots.other("get_login_info"))["retcode"] == 0
        assert "bot" in bots.supervisor.adapters
        refusals = bots.supervisor.metrics.registry.get_sample_value(
            "onebot_policy_refusals_total", {"entry": "bot"}
        )
        assert refusals == 4


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_denied_action_is_refused_by_any_alias_or_suffix(transport: str) -> None:
    async with bot_and_other(transport, {"actions": {"deny": ["send_poke"]}}) as bots:
        poke = {"group_id": GROUP, "user_id": MEMBER}
        for action in ("send_poke", "group_poke", "friend_poke_async"):
            answer = await bots.bot(action, poke)
            assert refused(answer, "send_poke", "entry 'bot'", "actions.deny"), answer
        assert (await bots.other("group_poke", poke))["retcode"] == 0
        assert (await bots.bot("get_login_info"))["retcode"] == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_quick_operation_called_directly_is_checked_per_effect(transport: str) -> None:
    async with bot_and_other(transport, {"actions": {"deny": ["set_group_kick"]}}) as bots:
        context = {"post_type": "message", "message_type": "group", "group_id": GROUP}
        params = {"context": {**context, "user_id": MEMBER}, "operation": {"kick": True}}
        answer = await bots.bot(".handle_quick_operation", params)
        assert refused(answer, "set_group_kick", "entry 'bot'"), answer
        members = await bots.other("get_group_member_list", {"group_id": GROUP})
        assert MEMBER in [m["user_id"] for m in members["data"]]


async def test_an_allow_list_refuses_everything_else() -> None:
    async with bot_and_other("http", {"actions": {"allow": ["get_*"]}}) as bots:
        assert (await bots.bot("get_login_info"))["retcode"] == 0
        message = {"user_id": 20001, "message": "hi"}
        answer = await bots.bot("send_private_msg", message)
        assert refused(answer, "send_private_msg", "not matched by actions.allow"), answer
        assert (await bots.other("send_private_msg", message))["retcode"] == 0


async def test_a_process_action_listed_by_name_is_allowed_for_that_entry_only() -> None:
    async with bot_and_other("http", {"actions": {"allow": ["clean_cache", "get_*"]}}) as bots:
        assert (await bots.bot("clean_cache"))["retcode"] == 0
        assert refused(await bots.other("clean_cache"), "clean_cache", "'other'")


async def test_unknown_actions_are_still_1404() -> None:
    async with bot_and_other("http", {"actions": {"allow": ["get_*"]}}) as bots:
        assert (await bots.bot("no_such_action"))["retcode"] == 1404


async def test_http_post_quick_operation_with_a_denied_effect_runs_nothing() -> None:
    receiver = Receiver()
    receiver.answer = lambda body: (
        web.json_response({"reply": "bye", "kick": True})
        if json.loads(body).get("post_type") == "message"
        else web.Response(status=204)
    )
    async with serve(receiver_app(receiver)) as port:
        post = http_client(f"http://127.0.0.1:{port}/", actions={"deny": ["set_group_kick"]})
        with capture_logs() as logs:
            async with run_gateway(sandbox_config(httpClients=[post])) as gw:
                call = gw.supervisor.dispatcher.call
                message = {"message_type": "group", "group_id": GROUP, "user_id": MEMBER}
                await call("sandbox_receive_message", {**message, "message": "spam"})
                await until(lambda: any(e["event"] == "quick_operation_failed" for e in logs))
                members = await call("get_group_member_list", {"group_id": GROUP})
                history = await call("get_group_msg_history", {"group_id": GROUP})
    failure = next(e for e in logs if e["event"] == "quick_operation_failed")
    assert failure["retcode"] == 1403 and "set_group_kick" in failure["error"]
    assert MEMBER in [m["user_id"] for m in members["data"]]
    assert "bye" not in [m["raw_message"] for m in history["data"]["messages"]]


async def test_refusals_are_counted_as_answers_and_logged_without_flooding() -> None:
    """A bot retrying a refused call in a loop: every answer is in onebot_requests_total, the
    log gets a line now and then (with how many refusals it stands for), not one per call."""
    async with bot_and_other("http", {"actions": {"deny": ["send_like"]}}) as bots:
        with capture_logs() as logs:
            for _ in range(50):
                answer = await bots.bot("send_like", {"user_id": 20001, "times": 1})
                assert answer["retcode"] == 1403
        bots.supervisor.dispatcher.flush_answered()
        counted = bots.supervisor.metrics.registry.get_sample_value(
            "onebot_requests_total",
            {
                "action": "send_like",
                "retcode": "1403",
                "self_id": str(bots.supervisor.backend.self_id),
            },
        )
    assert counted == 50
    lines = [e for e in logs if e["event"] == "action_refused"]
    assert lines and lines[0]["action"] == "send_like"
    assert len(lines) < 50
    assert sum(line["refused_since_last_line"] for line in lines) <= 50


# --- reload, console, metrics ------------------------------------------------------------------


async def test_reload_applies_a_new_policy_on_open_connections() -> None:
    async with bot_and_other("ws", {}) as bots:
        supervisor = bots.supervisor
        adapter = supervisor.adapters["bot"]
        assert (await bots.bot("get_login_info"))["retcode"] == 0
        deny = {"deny": ["get_login_info"]}
        # The document the gateway runs, with a rule added to `bot` (ports stay 0, as started).
        entries = {
            "websocketServers": [{**bot_entry("ws", {})["websocketServers"][0], "actions": deny}],
            "httpServers": [{"name": "other", "enable": True, "host": "127.0.0.1", "port": 0}],
        }
        document = sandbox_config(**entries)
        with capture_logs() as logs:
            await supervisor.reload(parse_config(document, env={}))
        assert supervisor.adapters["bot"] is adapter  # not restarted
        assert [e["name"] for e in logs if e["event"] == "entry_policy_reloaded"] == ["bot"]
        # The same socket: the new rule applies to it.
        assert refused(await bots.bot("get_login_info"), "get_login_info", "'bot'")


async def test_console_overview_shows_each_entrys_policy_and_rate(
    http: aiohttp.ClientSession,
) -> None:
    rules = {"actions": {"deny": ["set_group_kick"]}, "sendRate": {"perMinute": 20, "burst": 3}}
    document = {
        **sandbox_config(httpServers=[{"name": "bot", "enable": True, "port": 0, **rules}]),
        "admin": {"port": 0},
    }
    async with run_gateway(document) as gw:
        assert gw.supervisor.admin is not None
        url = f"http://127.0.0.1:{gw.supervisor.admin.port}/api/overview"
        async with http.get(url) as response:
            overview = await response.json()
    (entry,) = overview["adapters"]
    assert entry["policy"] == {"allow": None, "deny": ["set_group_kick"]}
    assert entry["send_rate"] == {"per_minute": 20, "burst": 3, "max_waiting": 100, "waiting": 0}


async def test_a_rule_that_matches_no_action_is_logged() -> None:
    with capture_logs() as logs:
        async with bot_and_other("http", {"actions": {"deny": ["set_grup_kick"]}}):
            pass
    warnings = [e for e in logs if e["event"] == "action_rule_matches_nothing"]
    assert [(e["entry"], e["pattern"]) for e in warnings] == [("bot", "set_grup_kick")]


async def test_refusals_do_not_block_the_event_loop_for_other_calls() -> None:
    """Many refused calls at once: every one is answered, and the other entry meanwhile too."""
    async with bot_and_other("ws", {"actions": {"deny": ["*"]}}) as bots:
        answers = await asyncio.gather(
            *(bots.bot("get_status") for _ in range(50)), bots.other("get_status")
        )
    assert [a["retcode"] for a in answers] == [1403] * 50 + [0]


async def test_a_relays_pass_through_actions_are_ruled_and_rated_too() -> None:
    from tests.test_relay import FakeUpstream, login_or, relay_document

    upstream = FakeUpstream(login_or(lambda _frame: {"status": "ok", "retcode": 0, "data": None}))
    app = web.Application()
    app.router.add_get("/", upstream.handle)
    async with serve(app) as port:
        document = relay_document({"url": f"ws://127.0.0.1:{port}/"})
        rules = {
            "actions": {"allow": ["get_*", "send_*"]},
            "sendRate": {"perMinute": 0.001, "burst": 1, "maxWaiting": 0},
        }
        document["network"]["httpServers"][0] |= rules
        async with run_gateway(document) as gw:
            front = gw.supervisor.fronts["api"]
            refusal = await front.call("only_upstream_knows", {"a": 1})
            first = await front.call("send_upstream_only", {})
            second = await front.call("send_upstream_only", {})
            accounts = list(front.buckets)
            self_ids = [account.self_id for account in front.accounts()]
        for ws in upstream.sockets:
            await ws.close()
    assert refused(refusal, "only_upstream_knows", "'api'"), refusal
    assert "only_upstream_knows" not in [f["action"] for f in upstream.frames]
    assert first["retcode"] == 0 and second["retcode"] == 1200, second
    assert accounts == ["default"]  # buckets are per account
    assert self_ids == [424242]  # the account upstream reported
