"""A bot app run by a test as a child process, whose facts arrive as `WORD {json}` lines on stdout.

The Koishi app (tests/koishi/app.js) and the multi-bot NoneBot app
(tests/nonebot_app/multi_bot.py) print one such line per fact a test waits on (connected,
received, replied); other lines (the frameworks' own logs) are kept for failure messages.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any


class AppProcess:
    """Reads a child's output; `wait_for` returns the first report of a kind with given fields."""

    def __init__(self, process: asyncio.subprocess.Process, name: str) -> None:
        self.process = process
        self.name = name
        self.output: list[str] = []
        self.reports: list[tuple[str, dict[str, Any]]] = []
        """Every report read so far, in order."""

    def seen(self, word: str, **fields: Any) -> list[dict[str, Any]]:
        """The reports of this kind read so far whose fields include these values."""
        return [report for kind, report in self.reports if kind == word and _has(report, fields)]

    async def wait_for(self, word: str, seconds: float = 30.0, **fields: Any) -> dict[str, Any]:
        """The first report of this kind with these field values, reading output if need be.

        A report read before the wait started counts, so a reply that came early is found.
        """
        if found := self.seen(word, **fields):
            return found[0]
        try:
            async with asyncio.timeout(seconds):
                return await self._read_until(word, fields)
        except TimeoutError:
            raise AssertionError(
                f"{self.name}: no {word} {fields} within {seconds}s; read so far:\n"
                + "".join(self.output)
            ) from None

    async def _read_until(self, word: str, fields: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdout is not None
        while True:
            raw = await self.process.stdout.readline()
            if not raw:
                raise AssertionError(
                    f"{self.name} exited before {word} {fields}:\n" + "".join(self.output)
                )
            line = raw.decode(errors="replace")
            self.output.append(line)
            kind, _, rest = line.partition(" ")
            if not (kind.isupper() and rest.startswith("{")):
                continue
            report = json.loads(rest)
            self.reports.append((kind, report))
            if kind == word and _has(report, fields):
                return report


def _has(report: dict[str, Any], fields: dict[str, Any]) -> bool:
    return all(report.get(key) == value for key, value in fields.items())
