"""A test session: a fresh sandbox, the bot started and connected, and a `Chat` on them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gateway.testing.bot_process import BotProcess
from gateway.testing.chat import Chat
from gateway.testing.harness import HarnessError, HarnessOptions, SandboxHarness, Transport
from gateway.testing.ports import free_port

PORT_PLACEHOLDER = "{port}"


@dataclass(frozen=True)
class BotSpec:
    """The bot under test and how it is connected.

    `command` starts it (a shell-like string or an argv list) with the connection settings in
    its environment (see `SandboxHarness.bot_environment`); None when the bot is already
    running or the test connects it itself. `url` is where a `ws-reverse` or `http-post` bot
    listens; `{port}` in it is replaced by a free loopback port.
    """

    command: str | Sequence[str] | None = None
    transport: Transport = "ws"
    url: str | None = None
    cwd: str | Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    token: str = ""
    world: str | None = None
    fixed_time: int | None = None
    connect_timeout: float = 30.0
    """Seconds the bot has to connect after it is started."""
    reply_timeout: float = 5.0
    quiet_period: float = 0.5


def resolve_url(url: str | None) -> str | None:
    if url is None or PORT_PLACEHOLDER not in url:
        return url
    return url.replace(PORT_PLACEHOLDER, str(free_port()))


@contextlib.asynccontextmanager
async def bot_session(spec: BotSpec) -> AsyncIterator[Chat]:
    """Start the sandbox, then the bot; yield once the bot is connected. Stops both on exit."""
    options = HarnessOptions(
        transport=spec.transport,
        bot_url=resolve_url(spec.url),
        token=spec.token,
        world=spec.world,
        fixed_time=spec.fixed_time,
    )
    async with SandboxHarness(options) as harness:
        bot: BotProcess | None = None
        try:
            if spec.command is not None:
                env = {**spec.env, **harness.bot_environment()}
                try:
                    bot = await BotProcess.start(spec.command, env, spec.cwd)
                except (OSError, ValueError) as error:
                    raise HarnessError(f"cannot start the bot {spec.command!r}: {error}") from None
            if bot is not None or spec.transport != "ws":
                try:
                    await harness.wait_for_bot(
                        spec.connect_timeout, bot.exited if bot is not None else lambda: None
                    )
                except HarnessError as error:
                    if bot is None:
                        raise
                    raise HarnessError(f"{error}\n\n{bot.diagnostics()}") from None
            yield Chat(
                harness,
                reply_timeout=spec.reply_timeout,
                quiet_period=spec.quiet_period,
                diagnostics=bot.diagnostics if bot is not None else lambda: "",
            )
        finally:
            if bot is not None:
                await bot.stop()
