"""Exponential backoff with full jitter, shared by every adapter that dials out.

Full jitter (a uniform delay in [0, min(cap, base·2^n)]) spreads many clients that failed
together, so they do not reconnect in lockstep against a peer that just came back.
"""

from __future__ import annotations

import random


class Backoff:
    """Delays for consecutive failures; `reset()` after a success."""

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt; counts one more failure."""
        ceiling = min(self.cap, self.base * 2 ** min(self.failures, 32))
        self.failures += 1
        return self._rng.uniform(0, ceiling)

    def reset(self) -> None:
        """Back to the first delay."""
        self.failures = 0
