"""Start the NoneBot2 test app in a subprocess and read what it prints."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

APP = Path(__file__).parent / "nonebot_app" / "bot.py"


class NoneBotProcess:
    """A running NoneBot app; `wait_for_line` reads its output until a line contains a text."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.output: list[str] = []

    async def wait_for_line(self, text: str, seconds: float = 30.0) -> str:
        assert self.process.stdout is not None
        async with asyncio.timeout(seconds):
            while True:
                raw = await self.process.stdout.readline()
                if not raw:
                    raise AssertionError(
                        f"NoneBot exited before {text!r}:\n" + "".join(self.output)
                    )
                line = raw.decode(errors="replace")
                self.output.append(line)
                if text in line:
                    return line


def nonebot_forward_ws(
    urls: list[str], token: str = "", workdir: Path | None = None, app: Path = APP
) -> contextlib.AbstractAsyncContextManager[NoneBotProcess]:
    """Run the app (bot.py unless told) connecting to `urls` over forward WebSocket."""
    return run_nonebot(
        {"NB_MODE": "forward", "ONEBOT_WS_URLS": json.dumps(urls), "ONEBOT_ACCESS_TOKEN": token},
        workdir,
        app,
    )


@contextlib.asynccontextmanager
async def run_nonebot(
    settings: dict[str, str], workdir: Path | None = None, app: Path = APP
) -> AsyncIterator[NoneBotProcess]:
    """Run the app with these environment settings; end it (by PID) on exit."""
    env = {**os.environ, **settings}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(app),
        cwd=workdir or app.parent,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        yield NoneBotProcess(process)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
