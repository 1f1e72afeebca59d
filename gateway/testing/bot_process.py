"""The bot under test as a child process: started with the connection settings in its
environment, its output kept (the last lines go into failure messages), ended on exit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path

OUTPUT_LINES = 40
"""Lines of the bot's output kept for failure messages."""
STOP_GRACE = 5.0
"""Seconds the bot gets to exit after SIGTERM before SIGKILL."""


class BotProcess:
    """`await BotProcess.start(command, env)`, then `await stop()`.

    The bot runs in a session of its own, so stopping it also ends whatever it started (a
    `nb run` that runs the bot as its child): the signals go to that process group only."""

    def __init__(self, process: asyncio.subprocess.Process, command: str) -> None:
        self.process = process
        self.command = command
        self.output: deque[str] = deque(maxlen=OUTPUT_LINES)
        self._reader = asyncio.create_task(self._read(), name="bot-output")

    @classmethod
    async def start(
        cls,
        command: str | Sequence[str],
        env: Mapping[str, str],
        cwd: str | Path | None = None,
    ) -> BotProcess:
        """Start `command` (a shell-like string or an argv list) with `env` added to this
        process's environment."""
        argv = shlex.split(command) if isinstance(command, str) else list(command)
        if not argv:
            raise ValueError("the bot command is empty")
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        return cls(process, shlex.join(argv))

    def exited(self) -> str | None:
        """Why the bot is gone (`exited with code N`), or None while it runs."""
        code = self.process.returncode
        return None if code is None else f"`{self.command}` exited with code {code}"

    def diagnostics(self) -> str:
        """The last lines of the bot's output, for a failure message."""
        state = self.exited() or f"`{self.command}` is running"
        lines = "".join(f"    {line}" for line in self.output) or "    (no output)\n"
        return f"bot ({state}), last output:\n{lines}".rstrip()

    async def stop(self) -> int | None:
        """SIGTERM to the bot's process group, SIGKILL after STOP_GRACE; its exit code."""
        if self.process.returncode is None:
            self._signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), STOP_GRACE)
            except TimeoutError:
                self._signal(signal.SIGKILL)
                await self.process.wait()
        else:
            self._signal(signal.SIGKILL)  # children it left behind in its group
        await asyncio.wait([self._reader], timeout=STOP_GRACE)
        return self.process.returncode

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    async def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while raw := await stream.readline():
            self.output.append(raw.decode(errors="replace"))
