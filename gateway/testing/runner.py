"""`onebot-gateway test SCENARIO... --bot CMD | --bot-url URL`: run scenario files against a bot.

For each file: a fresh sandbox, the bot started with the connection settings in its environment
(or a running bot at `--bot-url`), then every test's steps in order. Each test passes, fails (a
step's expectation, printed as a chat log) or errs (the bot never connected). Exit codes: 0 all
passed, 1 a test failed or erred, 2 a scenario file or an option is invalid (nothing ran).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import TextIO

from gateway.testing.chat import ChatAssertionError
from gateway.testing.harness import TRANSPORTS, HarnessError, HarnessOptions, Transport
from gateway.testing.junit import CaseResult, Outcome, SuiteResult, write_junit
from gateway.testing.scenario import Conversation, Scenario, ScenarioError, load_scenario, run_step
from gateway.testing.session import BotSpec, bot_session

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
PYTHON_PLACEHOLDER = "{python}"
"""In a command, the Python interpreter running the gateway (a bot sharing its environment)."""
DEFAULT_REVERSE_URL = "ws://127.0.0.1:{port}/onebot/v11/ws"
DEFAULT_POST_URL = "http://127.0.0.1:{port}/onebot/v11/http"


def spec_for(scenario: Scenario, args: argparse.Namespace) -> BotSpec:
    """The bot of a scenario file, command-line options first, then the file's `bot`."""
    bot = scenario.bot
    command = args.bot or bot.get("command")
    url = args.bot_url or bot.get("url")
    transport: Transport
    if args.transport or bot.get("transport"):
        transport = args.transport or bot["transport"]
    elif url:
        transport = "http-post" if str(url).startswith("http") else "ws-reverse"
    else:
        transport = "ws"
    if transport not in TRANSPORTS:
        raise ScenarioError(
            f"{scenario.path}: unknown transport {transport!r}; expected one of "
            f"{', '.join(TRANSPORTS)}"
        )
    if transport != "ws" and not url:
        if not command:
            raise ScenarioError(f"transport {transport} without --bot needs --bot-url")
        url = DEFAULT_REVERSE_URL if transport == "ws-reverse" else DEFAULT_POST_URL
    if command is None and transport == "ws":
        raise ScenarioError(
            f"{scenario.path}: no bot: give --bot CMD (or --bot-url for a running bot, or "
            "`bot.command` in the file)"
        )
    if command is not None and not isinstance(command, str | list):
        raise ScenarioError(f"{scenario.path}: 'bot.command' must be text or a list of words")
    if isinstance(command, str):
        command = command.replace(PYTHON_PLACEHOLDER, shlex.quote(sys.executable))
    env = bot.get("env", {})
    if not isinstance(env, dict):
        raise ScenarioError(f"{scenario.path}: 'bot.env' must be an object")
    # A command from the file runs where the file is (or in its `cwd`, relative to the file).
    cwd = None if args.bot else scenario.path.parent / str(bot.get("cwd", "."))
    try:  # a bad URL is a usage error, found before anything runs
        HarnessOptions(transport=transport, bot_url=url)
    except HarnessError as error:
        raise ScenarioError(f"{scenario.path}: {error}") from None
    return BotSpec(
        command=command,
        transport=transport,
        url=url,
        cwd=cwd,
        env={str(k): str(v) for k, v in env.items()},
        token=args.token,
        fixed_time=scenario.fixed_time,
        world=None if scenario.world is None else str(scenario.world),
        connect_timeout=args.connect_timeout,
        reply_timeout=args.reply_timeout,
    )


async def run_scenario(scenario: Scenario, spec: BotSpec, out: TextIO) -> SuiteResult:
    """Run every test of one file on one sandbox and bot; print and return the results."""
    suite = SuiteResult(scenario.name, str(scenario.path))
    print(f"{scenario.path}: {scenario.name}", file=out)
    started = time.monotonic()
    try:
        async with bot_session(spec) as chat:
            conversation = Conversation(chat)
            for test in scenario.tests:
                await chat.harness.settle()
                chat.new_test()
                began = time.monotonic()
                failure = ""
                for step in test.steps:
                    try:
                        await run_step(conversation, step)
                    except ChatAssertionError as error:
                        failure = f"{step.where}: {error}"
                        break
                outcome: Outcome = "failed" if failure else "passed"
                suite.cases.append(
                    CaseResult(test.name, outcome, time.monotonic() - began, failure)
                )
                _report(out, test.name, outcome, failure)
    except HarnessError as error:
        message = str(error)
        for test in scenario.tests[len(suite.cases) :]:
            suite.cases.append(CaseResult(test.name, "error", 0.0, message))
            _report(out, test.name, "error", message)
            message = "not run: the bot did not connect"
    print(
        f"  {suite.count('passed')} passed, {suite.count('failed')} failed, "
        f"{suite.count('error')} errors in {time.monotonic() - started:.1f}s",
        file=out,
    )
    return suite


def _report(out: TextIO, name: str, outcome: str, message: str) -> None:
    print(f"  {outcome.upper():6} {name}", file=out)
    if message:
        print("\n".join(f"      {line}" for line in message.splitlines()), file=out)


async def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """The `test` command: every file is loaded (and checked) before anything runs."""
    try:
        scenarios = [load_scenario(path) for path in args.scenarios]
        specs = [spec_for(scenario, args) for scenario in scenarios]
    except ScenarioError as error:
        print(f"onebot-gateway test: {error}", file=sys.stderr)
        return EXIT_USAGE
    suites = [
        await run_scenario(scenario, spec, out)
        for scenario, spec in zip(scenarios, specs, strict=True)
    ]
    if args.junit:
        write_junit(suites, Path(args.junit))
    bad = sum(suite.count("failed") + suite.count("error") for suite in suites)
    total = sum(len(suite.cases) for suite in suites)
    print(f"{total - bad} of {total} tests passed", file=out)
    return EXIT_FAILED if bad else EXIT_OK
