"""A token bucket whose callers wait in order, in a bounded queue: an entry's send rate.

`burst` tokens, refilled at `per_minute / 60` a second. A call takes a token at once when one is
there and nobody waits; otherwise it waits behind the earlier ones (first in, first out), and
when `max_waiting` calls already wait it is refused (`SendQueueFull`). So a runaway bot is slowed
to its rate and then refused, and holds no more than `max_waiting` calls, while other entries'
buckets are untouched. The clock is injectable (tests move time by hand, then call `pump`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable


class SendQueueFull(Exception):
    """`max_waiting` calls already wait for a token."""


class BucketClosed(Exception):
    """The bucket was closed (its entry stopped) while the call waited."""


class TokenBucket:
    """One bucket; every method runs on the event loop thread."""

    def __init__(
        self,
        per_minute: float,
        burst: int,
        max_waiting: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self.per_minute = per_minute
        self.burst = burst
        self.max_waiting = max_waiting
        self._tokens = float(burst)
        self._stamp = clock()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self.waited = 0
        """Calls that had to wait, since start."""
        self.refused = 0
        """Calls refused for a full queue, since start."""

    @property
    def waiting(self) -> int:
        """Calls waiting for a token now."""
        return len(self._waiters)

    @property
    def tokens(self) -> float:
        """Tokens available now (fractions accrue)."""
        self._refill()
        return self._tokens

    def try_take(self) -> bool:
        """Take a token if one is there and nobody waits ahead."""
        if self._waiters:
            return False
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    async def acquire(self) -> None:
        """Take a token, waiting in order for one; raises SendQueueFull when `max_waiting`
        calls already wait, BucketClosed when the bucket closes meanwhile."""
        if self.try_take():
            return
        if len(self._waiters) >= self.max_waiting:
            self.refused += 1
            raise SendQueueFull
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.waited += 1
        self._schedule()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Granted, then its caller went away: the token goes to the next in line.
                self._tokens += 1
            else:
                self._discard(waiter)
            self.pump()
            raise

    def pump(self) -> None:
        """Grant the tokens the clock has refilled to waiters, oldest first; schedule the next
        check while some still wait."""
        self._refill()
        while self._waiters and self._tokens >= 1:
            waiter = self._waiters.popleft()
            if waiter.done():
                continue
            self._tokens -= 1
            waiter.set_result(None)
        self._schedule()

    def reconfigure(self, per_minute: float, burst: int, max_waiting: int) -> None:
        """Apply new settings; waiting calls keep their places (a smaller `max_waiting` only
        refuses new ones)."""
        self._refill()
        self.per_minute, self.burst, self.max_waiting = per_minute, burst, max_waiting
        self._tokens = min(self._tokens, float(burst))
        self.pump()

    def release_all(self) -> None:
        """Let every waiting call go at once (the limit was removed)."""
        self._cancel_timer()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def close(self) -> None:
        """Fail every waiting call with BucketClosed and stop the timer."""
        self._cancel_timer()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(BucketClosed())

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._stamp
        self._stamp = now
        if elapsed > 0:
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.per_minute / 60)

    def _discard(self, waiter: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)

    def _schedule(self) -> None:
        self._cancel_timer()
        if self._waiters:
            missing = max(1 - self._tokens, 0.0)
            delay = missing * 60 / self.per_minute
            self._timer = asyncio.get_running_loop().call_later(delay, self.pump)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
