"""Shared test harness: a real gateway on loopback sockets, in-process or as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from structlog.testing import capture_logs as _capture_logs

from gateway.config import parse_config
from gateway.logging import merge_log_context
from gateway.supervisor import Supervisor
from gateway.testing.ports import free_port as free_port  # tests import it from here

REPO = Path(__file__).resolve().parent.parent


def capture_logs() -> contextlib.AbstractContextManager[list[dict[str, Any]]]:
    """structlog's capture_logs, with the context bound at the network boundary merged in."""
    return _capture_logs(processors=[structlog.contextvars.merge_contextvars, merge_log_context])


def http_entry(name: str, **fields: Any) -> dict[str, Any]:
    """An enabled `httpServers` entry on a free loopback port."""
    return {"name": name, "enable": True, "host": "127.0.0.1", "port": 0, **fields}


def sandbox_config(**network: Any) -> dict[str, Any]:
    """A config document on an in-memory sandbox."""
    return {"network": network, "backend": {"type": "sandbox", "database": ":memory:"}}


class RunningGateway:
    """A started Supervisor and the base URL of each adapter."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def url(self, name: str, path: str = "") -> str:
        adapter: Any = self.supervisor.adapters[name]
        return f"http://127.0.0.1:{adapter.port}{path}"


@contextlib.asynccontextmanager
async def run_gateway(document: dict[str, Any]) -> AsyncIterator[RunningGateway]:
    """Start a gateway in this event loop from a config document; stop it on exit."""
    supervisor = Supervisor(parse_config(document, env={}))
    await supervisor.start()
    try:
        yield RunningGateway(supervisor)
    finally:
        await supervisor.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class GatewayProcess:
    """`python -m gateway` in a subprocess, its JSON log lines parsed from stderr."""

    def __init__(
        self, config: Path, cwd: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway",
                "run",
                "--config",
                str(config),
                "--log-format",
                "json",
                *args,
            ],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
            text=True,
        )
        self.lines: list[dict[str, Any]] = []
        self.unparsed: list[str] = []
        """Lines of stderr that were not JSON (with `--log-format json`, there should be none)."""
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def wait_for(self, event: str, timeout: float = 20.0) -> dict[str, Any]:
        """Read log lines until one with this event arrives (or the process exits)."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"process exited before {event!r}; log: {self.lines}")
            try:
                self.lines.append(json.loads(line))
            except json.JSONDecodeError:
                self.unparsed.append(line)
                continue
            if self.lines[-1].get("event") == event:
                return self.lines[-1]
        raise AssertionError(f"no {event!r} within {timeout}s; log: {self.lines}")

    def _read(self) -> None:
        # A thread, so a silent process cannot block a test past its deadline.
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._lines.put(line)
        self._lines.put(None)

    def port_of(self, name: str) -> int:
        for line in self.lines:
            if line.get("event") == "adapter_started" and line.get("name") == name:
                return int(line["address"].rsplit(":", 1)[1])
        raise AssertionError(f"adapter {name!r} not started; log: {self.lines}")

    def terminate(self, timeout: float = 20.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        # The reader sees end of file once every process holding the pipe is gone (the body
        # parser's worker dies with the gateway); closing under a reading thread would raise.
        self._reader.join(timeout=10)
        if self.proc.stderr is not None and not self._reader.is_alive():
            self.proc.stderr.close()


@pytest.fixture
def gateway_process(tmp_path: Path) -> Iterator[Any]:
    started: list[GatewayProcess] = []

    def start(
        document: dict[str, Any] | str,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> GatewayProcess:
        config = tmp_path / f"config-{len(started)}.json5"
        config.write_text(document if isinstance(document, str) else json.dumps(document))
        process = GatewayProcess(config, tmp_path, env, args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


async def wait_until_closed(port: int, limit: float = 5.0) -> bool:
    """True once nothing accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return True
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.05)
    return False


@pytest.fixture
async def sandbox() -> AsyncIterator[Any]:
    """A SandboxClient on a fresh in-memory sandbox (see tests/sandbox_client.py)."""
    from tests.sandbox_client import sandbox_client

    async with sandbox_client() as client:
        yield client
