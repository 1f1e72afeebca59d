"""Ports for child processes: distinct per call, a block per xdist worker, busy ones skipped."""

from __future__ import annotations

import socket

import pytest

from gateway.testing.ports import FIRST_PORT, PORT_BLOCK, free_port


def block_of(port: int) -> int:
    return (port - FIRST_PORT) // PORT_BLOCK


def test_each_worker_draws_from_its_own_block_below_the_ephemeral_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, set[int]] = {}
    for worker in ("gw0", "gw3", "gw7"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        seen[worker] = {free_port() for _ in range(20)}
        assert {block_of(port) for port in seen[worker]} == {int(worker[2:])}
        assert len(seen[worker]) == 20  # distinct: handed out in turn, not the same free one
    assert max(max(ports) for ports in seen.values()) < 32768


def test_a_port_someone_listens_on_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    first = free_port()
    with socket.socket() as held:
        # The next port in turn is taken by a listener: it must not be handed out.
        held.bind(("127.0.0.1", first + 1 if block_of(first + 1) == 1 else first - 1))
        held.listen()
        taken = held.getsockname()[1]
        handed = {free_port() for _ in range(5)}
    assert taken not in handed
