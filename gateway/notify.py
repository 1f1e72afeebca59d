"""The systemd notify protocol, spoken directly on `$NOTIFY_SOCKET` (no libsystemd needed).

Without `NOTIFY_SOCKET` (not started by systemd with `Type=notify`) every call is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time

import structlog

log = structlog.get_logger("gateway.notify")


class Notifier:
    """Sends `KEY=value` datagrams to the service manager."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # An address starting with "@" is in the abstract namespace.
        self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        self.watchdog_interval = int(usec) / 2_000_000 if usec.isdigit() and int(usec) else None

    @property
    def enabled(self) -> bool:
        """Whether a service manager listens."""
        return bool(self._address)

    def send(self, *fields: str) -> None:
        """Send one datagram; failures are logged, never raised (the daemon keeps running)."""
        if not self._address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto("\n".join(fields).encode(), self._address)
        except OSError as error:
            log.warning("notify_failed", error=str(error))

    def ready(self, status: str) -> None:
        """Every adapter listens."""
        self.send("READY=1", f"STATUS={status}")

    def reloading(self) -> None:
        """A reload starts; READY=1 must follow."""
        monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}")

    def stopping(self) -> None:
        """Shutdown has begun."""
        self.send("STOPPING=1", "STATUS=stopping")

    async def watchdog(self) -> None:
        """Ping the watchdog at half its interval for as long as the event loop runs it."""
        if self.watchdog_interval is None:
            return
        while True:
            # Reaching this line on time is the health check: a blocked loop misses the ping.
            self.send("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_interval)


async def cancel_quietly(task: asyncio.Task[None] | None) -> None:
    """Cancel a helper task and wait for it."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
