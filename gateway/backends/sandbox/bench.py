"""Sandbox actions: bench.

`sandbox_emit_bench` answers at once, then a task the backend owns publishes `count` private
messages from the first friend, paced at `rate` events/s (0: as fast as the loop allows, yielding
after every event so subscribers drain). The messages are not stored: the benchmark measures the
bus and the transports, not SQLite. Each event carries `bench_run`, `bench_seq` (0, 1, …) and
`bench_emitted_ns` (`time.time_ns()` just before publishing), so a receiver can measure delivery
latency and count lost events. `stop()` of the backend cancels runs still going.

Off unless the config sets `backend.benchHook: true` (see `SandboxBackend.supports`): any
client could otherwise make the gateway publish millions of events.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from gateway.actions.bench import SandboxEmitBench
from gateway.protocol.envelope import ActionFailed

if TYPE_CHECKING:
    from gateway.backends.sandbox.context import HandlerTable, Sandbox

TASKS_ATTRIBUTE = "_bench_tasks"
"""The backend attribute holding the running emitter tasks (set by this module only)."""
MESSAGE_ID_BASE = 2_000_000_000
"""Benchmark events get int32 message ids from here on, apart from the stored messages' ids."""
MESSAGE_ID_SPAN = 100_000_000


def _tasks(sandbox: Sandbox) -> set[asyncio.Task[None]]:
    tasks: set[asyncio.Task[None]] = vars(sandbox).setdefault(TASKS_ATTRIBUTE, set())
    return tasks


async def stop_emitters(sandbox: Sandbox) -> None:
    """Cancel every benchmark run still publishing (called by `SandboxBackend.stop`)."""
    tasks = list(_tasks(sandbox))
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def sandbox_emit_bench(sandbox: Sandbox, p: SandboxEmitBench) -> dict[str, Any]:
    def first_friend(db: sqlite3.Connection) -> tuple[int, str]:
        row = db.execute(
            "SELECT user_id, nickname FROM users WHERE is_friend = 1 ORDER BY user_id LIMIT 1"
        ).fetchone()
        if row is None:
            raise ActionFailed("the sandbox has no friend to send benchmark messages from")
        return int(row["user_id"]), str(row["nickname"])

    user_id, nickname = await sandbox.store.read(first_friend)
    template = {
        "self_id": sandbox.self_id,
        "post_type": "message",
        "message_type": "private",
        "sub_type": "friend",
        "user_id": user_id,
        "message_format": "array",
        "font": 14,
        "sender": {"user_id": user_id, "nickname": nickname, "card": ""},
        "bench_run": p.run,
    }
    task = asyncio.create_task(
        _emit(sandbox, template, p.count, p.rate), name=f"bench-emit:{p.run}"
    )
    tasks = _tasks(sandbox)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return {"run": p.run, "count": p.count, "rate": p.rate, "user_id": user_id}


async def _emit(sandbox: Sandbox, template: dict[str, Any], count: int, rate: float) -> None:
    started = time.monotonic()
    for seq in range(count):
        text = f"bench {seq}"
        message_id = MESSAGE_ID_BASE + seq % MESSAGE_ID_SPAN
        sandbox.publish(
            {
                **template,
                "time": int(time.time()),
                "message_id": message_id,
                "real_id": message_id,
                "message_seq": message_id,
                "message": [{"type": "text", "data": {"text": text}}],
                "raw_message": text,
                "bench_seq": seq,
                "bench_emitted_ns": time.time_ns(),
            }
        )
        # Yield after every event (subscribers drain between events); paced runs wait for the
        # next event's due time, computed from the start so a late wake-up catches up.
        delay = started + (seq + 1) / rate - time.monotonic() if rate else 0.0
        await asyncio.sleep(max(delay, 0.0))


HANDLERS: HandlerTable = {
    "sandbox_emit_bench": sandbox_emit_bench,
}
