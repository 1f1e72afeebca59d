"""Start the Koishi test app (tests/koishi/app.js) in a subprocess and read what it prints.

The app's dependencies are installed by `make koishi` (a prerequisite of `make test`) from
tests/koishi/package-lock.json. Each fact the app reports is a line `WORD {json}`:
KOISHI_CONNECTED, KOISHI_RECEIVED, KOISHI_REPLIED (see app.js), read by tests/app_process.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from tests.app_process import AppProcess

APP_DIR = Path(__file__).parent / "koishi"
APP = APP_DIR / "app.js"


def koishi_unavailable() -> str | None:
    """Why the app cannot run here (no node, dependencies not installed), or None."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (APP_DIR / "node_modules" / "koishi").is_dir():
        return f"Koishi is not installed in {APP_DIR}: run `make koishi`"
    return None


@contextlib.asynccontextmanager
async def run_koishi(
    endpoint: str, self_id: int | str, token: str = ""
) -> AsyncIterator[AppProcess]:
    """Run the app as bot `self_id` on the forward WebSocket `endpoint`; end it (by PID) on exit."""
    if (reason := koishi_unavailable()) is not None:
        raise AssertionError(reason)
    env = {
        **os.environ,
        "KOISHI_ENDPOINT": endpoint,
        "KOISHI_SELF_ID": str(self_id),
        "KOISHI_TOKEN": token,
    }
    process = await asyncio.create_subprocess_exec(
        "node",
        str(APP),
        cwd=APP_DIR,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        yield AppProcess(process, "Koishi")
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
