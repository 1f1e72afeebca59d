"""Parsing what clients send (HTTP bodies, WebSocket frames) without stalling other clients.

Every parser of this process holds the interpreter lock while it runs, so a thread does not
help: a 64 MiB body costs orjson about half a second and JSON5 several seconds, during which no
other client is served. Small input (up to `INLINE_LIMIT`, the common case: a few ms at worst,
JSON5 included) is parsed on the event loop. Larger input is parsed in a worker process, which
also refuses documents of more than `MAX_VALUES` values, so the only work left for the event
loop is rebuilding a bounded result. Invalid input, however large, costs the loop nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import structlog

from gateway.protocol import jsonio

log = structlog.get_logger("gateway.body_parser")

INLINE_LIMIT = 128 * 1024
"""Bytes parsed on the event loop; larger input goes to the worker process."""
MAX_VALUES = 200_000
"""JSON values a large document may hold (a forward message of 1000 nodes holds ~40k)."""
COPY_SLICE = 1024 * 1024
"""Bytes copied into shared memory between two turns of the event loop (~0.1 ms each)."""
WORKER_NICENESS = 10
PR_SET_PDEATHSIG = 1  # <sys/prctl.h>
MAX_PENDING = 4
"""Large documents parsed or waiting at once; further ones wait their turn (backpressure)."""


class BodyParser:
    """Parses untrusted JSON/JSON5 input; owned by the supervisor, shared by every listener."""

    def __init__(self, workers: int = 1) -> None:
        self._workers = workers
        self._executor: ProcessPoolExecutor | None = None
        self._slots = asyncio.Semaphore(MAX_PENDING)
        self._lowered: set[int] = set()
        """Workers whose priority `_lower_priority` has lowered."""

    async def loads(self, data: bytes | bytearray | str) -> Any:
        """Parse like `jsonio.loads` (raises JsonError), off the loop when `data` is large."""
        if len(data) <= INLINE_LIMIT:
            return jsonio.loads(data)
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        async with self._slots:
            executor = self._executor or self._start()
            # Handed over in shared memory, copied a slice at a time between other clients'
            # work: pickling it whole for the pool's pipe would hold the loop for as long.
            shared = SharedMemory(create=True, size=len(raw))
            try:
                await _copy_into(shared, raw)
                parse = functools.partial(_parse_shared, shared.name, len(raw), MAX_VALUES)
                parsed = asyncio.get_running_loop().run_in_executor(executor, parse)
                self._lower_priority(executor)
                return await parsed
            except BrokenProcessPool:
                # The worker died (killed, or out of memory); the next large input gets a new one.
                log.error("body_parser_worker_died", size=len(raw))
                self._discard(executor)
                raise jsonio.JsonError("the parser process failed on this input") from None
            finally:
                shared.close()
                shared.unlink()

    def _start(self) -> ProcessPoolExecutor:
        # Spawned, not forked: this process runs threads (the sandbox's database thread), and a
        # forked child would inherit their locks mid-use.
        self._executor = ProcessPoolExecutor(
            self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(os.getpid(), worker_niceness()),
        )
        return self._executor

    def _lower_priority(self, executor: ProcessPoolExecutor) -> None:
        """Lower a worker's priority as soon as it exists: its start-up (a fresh interpreter
        importing the parser, a good fraction of a second of CPU) would otherwise compete with
        the event loop before its initializer lowers it."""
        # The pool spawns workers when work is submitted; `_processes` is where it keeps them.
        for pid in getattr(executor, "_processes", None) or {}:
            if pid not in self._lowered:
                self._lowered.add(pid)
                with contextlib.suppress(OSError):  # already gone, or not ours to change
                    os.setpriority(os.PRIO_PROCESS, pid, worker_niceness())

    def _discard(self, executor: ProcessPoolExecutor) -> None:
        if self._executor is executor:
            self._executor = None
        executor.shutdown(wait=False, cancel_futures=True)

    async def stop(self) -> None:
        """End the worker at once: a parse in progress has no one left to answer."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        # `shutdown` alone would wait for a parse in progress (seconds for a large JSON5 body).
        processes = getattr(executor, "_processes", None) or {}
        for process in list(processes.values()):
            with contextlib.suppress(Exception):
                process.terminate()
        executor.shutdown(wait=False, cancel_futures=True)


async def _copy_into(shared: SharedMemory, data: bytes | bytearray) -> None:
    view, source = shared.buf, memoryview(data)
    assert view is not None  # None only once closed
    for start in range(0, len(data), COPY_SLICE):
        view[start : start + COPY_SLICE] = source[start : start + COPY_SLICE]
        await asyncio.sleep(0)


def _parse_shared(name: str, size: int, max_values: int) -> Any:
    """In the worker: parse `size` bytes of the shared memory block `name`."""
    shared = SharedMemory(name=name)
    assert shared.buf is not None  # None only once closed
    try:
        data = bytes(shared.buf[:size])
    finally:
        shared.close()
    return jsonio.loads_bounded(data, max_values)


def worker_niceness() -> int:
    """The worker's niceness: WORKER_NICENESS more than the gateway's own (19 at most)."""
    return min(os.getpriority(os.PRIO_PROCESS, 0) + WORKER_NICENESS, 19)


def _worker_init(parent: int, niceness: int) -> None:
    """In the worker: yield the CPU to the gateway, die with it, leave Ctrl-C to it.

    A pool worker holds both ends of its own call queue, so it never sees the gateway go away
    and would outlive a `kill -9` of it, holding its stderr open.
    """
    # Parsing one client's huge body is background work: the event loop serving everyone else
    # wins whenever both want the same CPU.
    if os.getpriority(os.PRIO_PROCESS, 0) < niceness:  # not lowered by the gateway yet
        os.nice(niceness - os.getpriority(os.PRIO_PROCESS, 0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the gateway died before prctl took effect
        os._exit(1)
    if sys.platform != "linux":
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)
