"""Catalog: bench actions."""

from __future__ import annotations

from pydantic import Field

from gateway.actions.catalog import Action, Params

MAX_BENCH_EVENTS = 10_000_000
"""Upper bound of one `sandbox_emit_bench` run, so a typo cannot flood the bus forever."""


class SandboxEmitBench(Params):
    """Parameters of `sandbox_emit_bench`: publish numbered private messages for benchmarks."""

    count: int = Field(gt=0, le=MAX_BENCH_EVENTS)
    """How many events to publish."""
    rate: float = Field(default=0, ge=0)
    """Events per second; 0 publishes as fast as the event loop allows."""
    run: str = ""
    """Run label, copied into every event as `bench_run`."""


ACTIONS: tuple[Action, ...] = (
    Action(
        "sandbox_emit_bench",
        SandboxEmitBench,
        "Sandbox: answer at once, then publish `count` private messages from a friend (not "
        "stored), paced at `rate` events/s, each with bench_run, bench_seq and bench_emitted_ns.",
        unavailable_hint="it is the sandbox's benchmark hook, off unless the config sets "
        "`backend.benchHook: true`",
    ),
)
