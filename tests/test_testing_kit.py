"""gateway.testing: the Chat harness, the scenario runner and what a failing bot test prints."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from aiohttp import web

from gateway.protocol import jsonio
from gateway.testing import BotSpec, ChatAssertionError, HarnessError, bot_session
from gateway.testing.runner import run
from gateway.testing.scenario import ScenarioError, load_scenario
from tests.conftest import REPO

EXAMPLES = REPO / "examples" / "bot-tests"
ECHO_SCENARIO = EXAMPLES / "echo_bot" / "echo_bot.scenario.json5"
NONEBOT_BOT = EXAMPLES / "nonebot_bot" / "bot.py"


async def test_sessions_start_from_the_same_world_and_the_clock_can_be_fixed() -> None:
    firsts = []
    for _ in range(2):
        async with bot_session(BotSpec(fixed_time=1_700_000_000)) as chat:
            firsts.append(await chat.say(20001, "hello", group=30001))
            assert chat.events[-1]["time"] == 1_700_000_000
            assert chat.history(group=30001) == ["[group 30001] Alice(20001): hello"]
    assert firsts[0] == firsts[1]


async def test_a_reply_is_matched_on_its_text_and_where_it_goes() -> None:
    async with bot_session(BotSpec()) as chat:
        # The test plays the bot here: the harness sees the bot's sends however they are made.
        await chat.say(20001, "ping", group=30001)
        await chat.call("send_group_msg", group_id=30002, message="pong")
        with pytest.raises(ChatAssertionError) as wrong_group:
            await chat.expect_reply("pong")
        await chat.say(20002, "ping")
        await chat.call("send_private_msg", user_id=20002, message="[CQ:face,id=1]pong!")
        reply = await chat.expect_reply(lambda segments: segments[0]["type"] == "face")
        assert reply.text == "pong!"
        await chat.expect_no_reply(within=0)
        with pytest.raises(ChatAssertionError) as nothing:
            await chat.expect_reply("pong", within=0)
        # A scenario's next test: the log starts afresh, and leftover bot messages are taken.
        await chat.call("send_private_msg", user_id=20002, message="late")
        chat.new_test()
        await chat.expect_no_reply(within=0)
        await chat.say(20003, "hi")
        with pytest.raises(ChatAssertionError) as afresh:
            await chat.expect_reply(within=0)
    assert str(wrong_group.value).splitlines()[0] == (
        "expected a reply 'pong' in group 30001; the bot replied in group 30002: 'pong'"
    )
    assert "--> [group 30002] BOT: pong" in str(wrong_group.value)
    assert str(nothing.value).startswith("expected a reply 'pong' within 0s; the bot sent nothing")
    assert str(afresh.value) == (
        "expected a reply within 0s; the bot sent nothing\n\n"
        "conversation so far:\n    [private 20003] Carol(20003): hi"
    )


async def test_the_nonebot_example_bot_when_broken_fails_with_the_chat_log(tmp_path: Path) -> None:
    # What its test in examples/bot-tests prints (in-process: a pytest subprocess costs ~10 s).
    spec = BotSpec([sys.executable, str(NONEBOT_BOT)], cwd=tmp_path, env={"BOT_BROKEN": "1"})
    async with bot_session(spec) as chat:
        await chat.say(20001, "ping", group=30001)
        with pytest.raises(ChatAssertionError) as failure:
            await chat.expect_reply("pong")
    text = str(failure.value)
    assert text.startswith(
        "expected a reply 'pong'; the bot replied 'pang'\n\n"
        "conversation so far:\n"
        "    [group 30001] Alice(20001): ping\n"
        "--> [group 30001] BOT: pang\n"
    )
    assert f"bot (`{sys.executable} {NONEBOT_BOT}` is running), last output:" in text


def test_the_example_scenario_passes_and_a_broken_bot_fails_with_the_chat_log(
    tmp_path: Path,
) -> None:
    # The same bot, deliberately broken and connected by HTTP POST instead of reverse WebSocket;
    # both with an access token, which the bot checks (Authorization, or X-Signature).
    broken = tmp_path / "broken.scenario.json5"
    document = jsonio.loads(ECHO_SCENARIO.read_bytes())
    document["name"] = "broken echo bot"
    document["bot"] = {
        "command": f"{{python}} {EXAMPLES / 'echo_bot' / 'echo_bot.py'}",
        "transport": "http-post",
        "env": {"BOT_BROKEN": "1"},
    }
    broken.write_text(json.dumps(document))
    report = tmp_path / "junit.xml"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "test",
            str(ECHO_SCENARIO),
            str(broken),
            "--junit",
            str(report),
            "--token",
            "s3cret-token",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "  FAILED ping answers pong in a group\n"
        "      tests[0].steps[1] (expect): expected a reply 'pong'; the bot replied 'pang'\n"
        "      \n"
        "      conversation so far:\n"
        "          [group 30001] Alice(20001): ping\n"
        "      --> [group 30001] BOT: pang\n"
    ) in result.stdout
    assert result.stdout.endswith("5 of 6 tests passed\n")
    suites = ET.parse(report).getroot().findall("testsuite")  # noqa: S314 - written above
    assert [(s.get("name"), s.get("tests"), s.get("failures")) for s in suites] == [
        ("echo bot", "3", "0"),
        ("broken echo bot", "3", "1"),
    ]
    failure = suites[1].find("testcase/failure")
    assert failure is not None
    assert failure.get("message") == (
        "tests[0].steps[1] (expect): expected a reply 'pong'; the bot replied 'pang'"
    )
    assert "--> [group 30001] BOT: pang" in (failure.text or "")


@pytest.mark.parametrize(
    ("document", "error"),
    [
        ([], "the top level must be an object, got list"),
        ({"tests": []}, "'tests' must be a non-empty list"),
        (
            {"tests": [{"steps": [{"say": "hi", "expect": "x"}]}]},
            "tests[0].steps[0] must have exactly one of say, expect, expect_none, expect_event, "
            "join, leave, poke, request, recall, wait, call; found 2 (say, expect)",
        ),
        (
            {"tests": [{"steps": [{"say": "hi"}, {"expect": {"regex": "("}}]}]},
            "tests[0].steps[1] (expect): invalid regex '('",
        ),
        (
            {"tests": [{"steps": [{"poke": "alice"}]}]},
            "tests[0].steps[0] (poke): expected a positive integer id, got 'alice'",
        ),
        (
            {"tests": [{"steps": [{"wait": 1e9}]}]},
            "tests[0].steps[0] (wait): expected seconds between 0 and 600, got 1000000000.0",
        ),
        (
            {"tests": [{"steps": [{"say": "hi", "grup": 1}]}]},
            "tests[0].steps[0] (say): unknown option 'grup'",
        ),
        (
            {"defaults": {"group": None}, "tests": [{"steps": [{"join": 20009}]}]},
            "tests[0].steps[0] (join) needs a 'group' (or defaults.group)",
        ),
    ],
)
def test_a_malformed_scenario_is_refused_naming_the_step(
    tmp_path: Path, document: object, error: str
) -> None:
    path = tmp_path / "bad.json5"
    path.write_text(json.dumps(document))
    with pytest.raises(ScenarioError) as refused:
        load_scenario(path)
    assert str(refused.value).startswith(f"{path}: {error}")


async def test_the_test_command_exits_2_on_a_bad_file_before_running_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = tmp_path / "good.json5", tmp_path / "bad.json5"
    good.write_text('{tests: [{steps: [{say: "hi"}]}]}')
    bad.write_text("{tests: [")
    args = argparse.Namespace(
        scenarios=[str(good), str(bad)],
        bot="true",
        bot_url=None,
        transport=None,
        token="",
        junit=None,
        connect_timeout=1.0,
        reply_timeout=1.0,
    )
    out = io.StringIO()
    assert await run(args, out) == 2
    assert out.getvalue() == ""
    assert capsys.readouterr().err.startswith(f"onebot-gateway test: {bad}: not valid JSON5")
    args.scenarios, args.bot_url = [str(good)], "ftp://127.0.0.1/"
    assert await run(args, out) == 2
    assert capsys.readouterr().err == (
        f"onebot-gateway test: {good}: transport 'ws-reverse' needs a ws or wss URL, got "
        "'ftp://127.0.0.1/'\n"
    )


async def test_a_yaml_scenario_runs_against_a_bot_already_running_at_bot_url(
    tmp_path: Path,
) -> None:
    # The bot: a reverse WebSocket endpoint in this test, answering `ping` with `pong`.
    async def endpoint(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for frame in ws:
            event = json.loads(frame.data)
            if event.get("raw_message") == "ping":
                params = {"group_id": event["group_id"], "message": "pong"}
                await ws.send_json({"action": "send_group_msg", "params": params})
        return ws

    app = web.Application()
    app.router.add_get("/ws", endpoint)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    scenario = tmp_path / "ping.yaml"
    scenario.write_text(
        "name: ping\n"
        "tests:\n"
        "  - name: ping in a group\n"
        "    steps:\n"
        "      - say: ping\n"
        "      - expect: pong\n"
        "      - say: ping\n"
        "      - expect: {regex: '^po'}\n"
    )
    args = argparse.Namespace(
        scenarios=[str(scenario)],
        bot=None,
        bot_url=f"ws://127.0.0.1:{port}/ws",
        transport=None,
        token="",
        junit=None,
        connect_timeout=10.0,
        reply_timeout=5.0,
    )
    out = io.StringIO()
    try:
        assert await run(args, out) == 0, out.getvalue()
    finally:
        await runner.cleanup()
    assert "  PASSED ping in a group\n" in out.getvalue()


async def test_a_bot_that_cannot_start_is_an_error_of_each_test(tmp_path: Path) -> None:
    scenario = tmp_path / "s.json5"
    scenario.write_text('{tests: [{name: "a", steps: [{say: "hi"}]}, {name: "b", steps: []}]}')
    args = argparse.Namespace(
        scenarios=[str(scenario)],
        bot="./no-such-bot --flag",
        bot_url=None,
        transport=None,
        token="",
        junit=str(tmp_path / "r.xml"),
        connect_timeout=1.0,
        reply_timeout=1.0,
    )
    out = io.StringIO()
    assert await run(args, out) == 1
    assert "  ERROR  a\n      cannot start the bot './no-such-bot --flag': " in out.getvalue()
    assert "  ERROR  b\n      not run: the bot did not connect\n" in out.getvalue()
    suite = ET.parse(tmp_path / "r.xml").getroot().find("testsuite")  # noqa: S314 - ours
    assert suite is not None and suite.get("errors") == "2"


async def test_expect_event_sees_what_the_bot_did_before_it_was_called() -> None:
    async with bot_session(BotSpec()) as chat:
        request = await chat.friend_request(20009, comment="hi")
        # The bot (here: a call past the Chat) accepts before the test gets to expect it.
        await chat.harness.call("set_friend_add_request", flag=request["flag"], approve=True)
        await chat.harness.settle()
        added = await chat.expect_event(lambda e: e.get("notice_type") == "friend_add", within=0)
        assert added["user_id"] == 20009
        with pytest.raises(ChatAssertionError):  # taken: the same event is not found twice
            await chat.expect_event(lambda e: e.get("notice_type") == "friend_add", within=0)


async def test_a_world_file_seeds_the_sandbox_and_a_bad_one_is_a_harness_error(
    tmp_path: Path,
) -> None:
    world = tmp_path / "world.json5"
    world.write_text(
        '{self: {user_id: 777, nickname: "Tiny"}, friends: [{user_id: 888, nickname: "Ann"}],'
        " groups: []}"
    )
    async with bot_session(BotSpec(world=str(world))) as chat:
        assert (await chat.call("get_login_info"))["nickname"] == "Tiny"
        await chat.say(888, "hi")
        assert chat.history() == ["[private 888] Ann(888): hi"]
    with pytest.raises(HarnessError) as missing:
        async with bot_session(BotSpec(world=str(tmp_path / "nope.json5"))):
            pass
    assert str(missing.value).startswith("the sandbox did not start: backend.world: cannot read")
    with pytest.raises(HarnessError) as bad_url:
        async with bot_session(BotSpec(transport="ws-reverse", url="ftp://127.0.0.1/")):
            pass
    assert str(bad_url.value) == (
        "transport 'ws-reverse' needs a ws or wss URL, got 'ftp://127.0.0.1/'"
    )
