"""Loopback ports for processes a test starts (a bot listening for reverse WebSocket or HTTP
POST, a gateway child), handed out so that parallel test runs do not trip over each other."""

from __future__ import annotations

import itertools
import os
import socket

FIRST_PORT = 20000
PORT_BLOCK = 1500
"""Ports per pytest-xdist worker, from FIRST_PORT up: eight blocks end below the kernel's usual
ephemeral range (32768 and up), which outgoing connections and `bind(0)` draw from."""
_next = itertools.count()


def free_port() -> int:
    """A loopback port nothing listens on right now, for another process to listen on.

    A port from `bind(0)` is free only until someone else takes it, and between this call and
    the child's own bind an outgoing connection or a parallel worker's `bind(0)` sometimes did.
    So each xdist worker (`PYTEST_XDIST_WORKER`) hands out ports from a block of its own, below
    the ephemeral range, in turn: a port comes back only after PORT_BLOCK others."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    base = FIRST_PORT + (int(worker) % 8 if worker.isdigit() else 0) * PORT_BLOCK
    for _ in range(PORT_BLOCK):
        port = base + next(_next) % PORT_BLOCK
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use, or still held by a closed connection
            return port
    with socket.socket() as sock:  # the whole block is taken: the kernel's pick, then
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
