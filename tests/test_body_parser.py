"""The body parser: small input on the loop, large input in a worker process that dies with the
gateway, refuses oversized documents, and is replaced when it dies."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.network import body_parser
from gateway.network.body_parser import BodyParser
from gateway.protocol import jsonio

LARGE = body_parser.INLINE_LIMIT + 1
SLOW = b"{pad: '" + b"x" * 40_000_000 + b"'}"
"""Input the worker needs a good fraction of a second for (JSON5 runs at tens of MB/s)."""


@pytest.fixture
async def parser() -> AsyncIterator[BodyParser]:
    parser = BodyParser()
    yield parser
    await parser.stop()


def workers(parser: BodyParser) -> list[Any]:
    executor: Any = parser._executor
    return [] if executor is None else list(executor._processes.values())


async def test_small_input_never_starts_a_worker(parser: BodyParser) -> None:
    assert await parser.loads(b"{a: 1,}") == {"a": 1}
    assert workers(parser) == []


async def test_large_input_is_parsed_in_a_worker(parser: BodyParser) -> None:
    body = b"{pad: '" + b"x" * LARGE + b"', n: [1, 2,],}"
    value = await parser.loads(body)
    assert value["n"] == [1, 2] and len(value["pad"]) == LARGE
    assert [process.pid != os.getpid() for process in workers(parser)] == [True]


async def test_the_worker_yields_the_cpu_to_the_gateway(parser: BodyParser) -> None:
    await parser.loads(b"{pad: '" + b"x" * LARGE + b"'}")
    (worker,) = workers(parser)
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, worker.pid) >= min(own + 10, 19)


async def test_large_invalid_input_names_the_position(parser: BodyParser) -> None:
    with pytest.raises(jsonio.JsonError, match="line 1 column"):
        await parser.loads(b'{"pad": "' + b"x" * LARGE + b'" ]')


async def test_large_input_of_too_many_values_is_refused(parser: BodyParser) -> None:
    body = b"[" + b"1," * (body_parser.MAX_VALUES + 1) + b"1]"
    with pytest.raises(jsonio.JsonError, match="more than"):
        await parser.loads(body)


async def test_a_dead_worker_fails_one_parse_and_is_replaced(parser: BodyParser) -> None:
    body = b"{pad: '" + b"x" * LARGE + b"'}"
    await parser.loads(body)
    (worker,) = workers(parser)
    # Fault injection: the worker is killed while it parses.
    parse = asyncio.create_task(parser.loads(SLOW))
    await asyncio.sleep(0.05)
    os.kill(worker.pid, signal.SIGKILL)
    with pytest.raises(jsonio.JsonError, match="parser process failed"):
        await parse
    assert (await parser.loads(body))["pad"].startswith("x")
    assert [process.pid != worker.pid for process in workers(parser)] == [True]


async def test_stop_ends_a_parse_in_progress(parser: BodyParser) -> None:
    await parser.loads(b"{pad: '" + b"x" * LARGE + b"'}")
    (worker,) = workers(parser)
    parse = asyncio.create_task(parser.loads(SLOW))
    await asyncio.sleep(0.05)
    await parser.stop()
    worker.join(10)
    assert worker.exitcode is not None
    parse.cancel()
    with pytest.raises((asyncio.CancelledError, jsonio.JsonError)):
        await parse
