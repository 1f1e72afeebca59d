"""`sandbox_emit_bench` over a real WebSocket: answered at once, then numbered, unstored events.

The hook is off unless the config turns it on (`backend.benchHook: true`), so no client of an
ordinary gateway can make it publish millions of events.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.backends.sandbox import bench
from tests.sandbox_client import SandboxClient, sandbox_client, sandbox_document

ALICE = 20001


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxClient]:
    """A sandbox with the benchmark hook turned on."""
    async with sandbox_client(sandbox_document(benchHook=True)) as client:
        yield client


def is_bench(event: dict[str, Any]) -> bool:
    return "bench_seq" in event


async def call_over_ws(sandbox: SandboxClient, echo: str, **params: Any) -> dict[str, Any]:
    """Send the action on the universal WebSocket; return its reply (events are left queued)."""
    await sandbox.ws.send_json({"action": "sandbox_emit_bench", "params": params, "echo": echo})
    reply = await sandbox.event(lambda frame: frame.get("echo") == echo)
    return reply


async def test_events_arrive_in_order_with_every_message_field(sandbox: SandboxClient) -> None:
    before = time.time_ns()
    await sandbox.ws.send_json(
        {"action": "sandbox_emit_bench", "params": {"count": 50, "run": "r1"}, "echo": "e1"}
    )
    reply: dict[str, Any] | None = None
    events: list[dict[str, Any]] = []
    while reply is None or len(events) < 50:
        frame = await sandbox.event()
        if frame.get("echo") == "e1":
            reply = frame
        elif is_bench(frame):
            events.append(frame)
    assert reply["retcode"] == 0
    assert reply["data"] == {"run": "r1", "count": 50, "rate": 0, "user_id": ALICE}
    assert [e["bench_seq"] for e in events] == list(range(50))
    emitted = [e["bench_emitted_ns"] for e in events]
    assert emitted == sorted(emitted) and before <= emitted[0] and emitted[-1] <= time.time_ns()
    for event in events:
        assert event["bench_run"] == "r1"
        assert (event["post_type"], event["message_type"], event["sub_type"]) == (
            "message",
            "private",
            "friend",
        )
        assert (event["self_id"], event["user_id"]) == (10001, ALICE)
        assert event["sender"] == {"user_id": ALICE, "nickname": "Alice", "card": ""}
        text = f"bench {event['bench_seq']}"
        assert event["message"] == [{"type": "text", "data": {"text": text}}]
        assert event["raw_message"] == text
        assert event["message_id"] == event["real_id"] == event["message_seq"]
        assert isinstance(event["message_id"], int) and 0 < event["message_id"] < 2**31
        assert event["message_format"] == "array" and event["font"] == 14
        assert isinstance(event["time"], int)


async def test_events_are_not_stored(sandbox: SandboxClient) -> None:
    await call_over_ws(sandbox, "e1", count=3, run="r2")
    events = [await sandbox.event(is_bench) for _ in range(3)]
    history = await sandbox.ok("get_friend_msg_history", user_id=ALICE)
    assert history["messages"] == []
    assert (await sandbox.call("get_msg", message_id=events[0]["message_id"]))["retcode"] == 1200


async def test_rate_paces_the_events(sandbox: SandboxClient) -> None:
    reply = await call_over_ws(sandbox, "e1", count=5, rate=100, run="paced")
    assert reply["retcode"] == 0
    events = [await sandbox.event(is_bench) for _ in range(5)]
    assert [e["bench_seq"] for e in events] == list(range(5))
    # 100 events/s: five events span at least 40 ms (half of it allowed for clock granularity).
    assert events[-1]["bench_emitted_ns"] - events[0]["bench_emitted_ns"] >= 20_000_000


async def test_bad_parameters_are_refused(sandbox: SandboxClient) -> None:
    for params in ({}, {"count": 0}, {"count": 1, "rate": -1}):
        reply = await call_over_ws(sandbox, "bad", **params)
        assert reply["retcode"] == 1400, reply


async def test_the_hook_is_off_unless_the_config_turns_it_on() -> None:
    async with sandbox_client() as client:
        over_http = await client.call("sandbox_emit_bench", count=1)
        over_ws = await call_over_ws(client, "e", count=1)
        for reply in (over_http, over_ws):
            assert (reply["status"], reply["retcode"]) == ("failed", 1404)
            assert "benchHook" in reply["message"]
        assert not bench._tasks(client.gw.supervisor.backend)  # type: ignore[arg-type]


async def test_stopping_the_backend_cancels_a_run() -> None:
    async with sandbox_client(sandbox_document(benchHook=True)) as client:
        reply = await call_over_ws(client, "long", count=1_000_000, rate=10, run="long")
        assert reply["retcode"] == 0
        backend = client.gw.supervisor.backend
        running = set(bench._tasks(backend))  # type: ignore[arg-type]
        assert len(running) == 1
    assert all(task.cancelled() for task in running)
    assert not bench._tasks(backend)  # type: ignore[arg-type]
