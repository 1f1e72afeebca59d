"""Start the Koishi test app (tests/koishi/app.js) in a subprocess and read what it prints.

The app's dependencies are installed by `make koishi` (a prerequisite of `make test`) from
tests/koishi/package-lock.json. Each fact the app reports is a line `WORD {json}`:
KOISHI_CONNECTED, KOISHI_RECEIVED, KOISHI_REPLIED (see app.js).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

APP_DIR = Path(__file__).parent / "koishi"
APP = APP_DIR / "app.js"


class KoishiProcess:
    """A running Koishi app; `wait_for` reads its output until a report of a kind matches."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.output: list[str] = []
        self.reports: list[tuple[str, dict[str, Any]]] = []
        """Every `WORD {json}` line read so far, in order."""

    def seen(self, word: str, **fields: Any) -> list[dict[str, Any]]:
        """The reports of this kind read so far whose fields include these values."""
        return [
            report
            for kind, report in self.reports
            if kind == word and all(report.get(k) == v for k, v in fields.items())
        ]

    async def wait_for(self, word: str, seconds: float = 30.0, **fields: Any) -> dict[str, Any]:
        """The first report of this kind with these field values, read from output if need be.

        A report already read is returned at once, so waiting for a reply that came before the
        wait started does not hang.
        """
        if found := self.seen(word, **fields):
            return found[0]
        assert self.process.stdout is not None
        async with asyncio.timeout(seconds):
            while True:
                raw = await self.process.stdout.readline()
                if not raw:
                    raise AssertionError(
                        f"Koishi exited before {word} {fields}:\n" + "".join(self.output)
                    )
                line = raw.decode(errors="replace")
                self.output.append(line)
                kind, _, rest = line.partition(" ")
                if not kind.startswith("KOISHI_"):
                    continue
                report = json.loads(rest)
                self.reports.append((kind, report))
                if kind == word and all(report.get(k) == v for k, v in fields.items()):
                    return report


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
) -> AsyncIterator[KoishiProcess]:
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
        yield KoishiProcess(process)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
