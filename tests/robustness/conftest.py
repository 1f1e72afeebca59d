"""The robustness suite's harness: hypothesis profiles, the fuzzed gateway process, the figures.

`make test` runs the `ci` profile: few examples, derandomized (the same inputs on every run),
moderate sizes. `make fuzz` sets `ROBUSTNESS_PROFILE=fuzz`: many random examples and larger
bursts. Profiles are applied per test (`@FUZZ`), never loaded globally, so the rest of the
suite keeps hypothesis's defaults.

The gateway under fuzz is a real `python -m gateway` subprocess on an in-memory sandbox with a
token: a crash shows as a dead process, not as a broken test. Every call a fuzz test makes is
counted in FIGURES, printed at the end of the run and asserted by each module's last test.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests.conftest import GatewayProcess

PROFILE = os.environ.get("ROBUSTNESS_PROFILE", "ci")
if PROFILE not in ("ci", "fuzz"):
    raise pytest.UsageError(f"ROBUSTNESS_PROFILE must be ci or fuzz, not {PROFILE!r}")

_COMMON: dict[str, Any] = {
    "deadline": None,  # real sockets: time per example is not the property under test
    # function_scoped_fixture: the WebSocket bystander deliberately spans all examples of a test.
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
    "print_blob": True,
}
settings.register_profile(
    "robustness-ci", max_examples=6, derandomize=True, database=None, **_COMMON
)
settings.register_profile("robustness-fuzz", max_examples=300, **_COMMON)
FUZZ = settings.get_profile(f"robustness-{PROFILE}")
"""Decorate every @given test of this suite with it."""
FEW = settings(FUZZ, max_examples=max(2, FUZZ.max_examples // 3))
"""For the catalog tests: hundreds of (action, parameter) pairs, each with its own examples."""


@dataclass(frozen=True)
class Scale:
    burst: int
    """Frames in one WebSocket burst."""
    pings: int
    """Pings in a ping flood."""
    depth: int
    """`[` in the deep-nesting body."""
    body: int
    """Bytes of the largest generated garbage body."""


SCALE = (
    Scale(burst=10_000, pings=10_000, depth=60_000, body=64 * 1024)
    if PROFILE == "ci"
    else Scale(burst=50_000, pings=50_000, depth=100_000, body=256 * 1024)
)

TOKEN = "fuzz-token"
HTTP_MAX_BODY = 512 * 1024
"""maxBodySize of the fuzzed HTTP entry: room for the deep-nesting body, and a limit to cross."""
WS_MAX_FRAME = 4096
"""maxBodySize of the fuzzed WebSocket entry: small, so frames over it are cheap to send."""


@dataclass
class Figures:
    """What the fuzz of one transport did to the gateway."""

    calls: int = 0
    """Inputs sent that must be answered (or, on a WebSocket, closed with the right code)."""
    server_errors: int = 0
    """HTTP 5xx answers (must be 0)."""
    unanswered: int = 0
    """Inputs that got neither an answer nor a close (must be 0)."""
    problems: list[str] = field(default_factory=list)
    """Contract breaches, with the input that caused them (one per label and kind of answer:
    hypothesis's shrinking repeats a breach with many inputs)."""
    bystander_calls: int = 0
    bystander_answered: int = 0
    """Calls of the well-behaved connection that runs beside the WebSocket fuzz."""
    _seen: set[str] = field(default_factory=set)

    def breach(self, label: str, what: str) -> None:
        key = label + what.rsplit("]: ", 1)[-1][:48]
        if key not in self._seen:
            self._seen.add(key)
            self.problems.append(f"{label} {what}")

    def line(self) -> str:
        line = (
            f"calls {self.calls}, 5xx {self.server_errors}, unanswered {self.unanswered}, "
            f"distinct contract breaches {len(self.problems)}"
        )
        if self.bystander_calls:
            line += f"; bystander calls {self.bystander_calls}, answered {self.bystander_answered}"
        return line


FIGURES = {"http": Figures(), "ws": Figures()}
RUNNING: list[FuzzedGateway] = []
"""The fuzzed gateway of this session, once started (for the summary)."""


@dataclass
class FuzzedGateway:
    process: GatewayProcess
    http_port: int
    ws_port: int
    alive_at_end: bool | None = None
    errors_at_end: list[dict[str, Any]] = field(default_factory=list)
    """Error-level log lines the gateway wrote during the whole run."""
    last_lines: list[dict[str, Any]] = field(default_factory=list)
    """The last log lines of a process that exited (its post-mortem)."""

    @property
    def alive(self) -> bool:
        return self.process.proc.poll() is None

    def errors_logged(self) -> list[dict[str, Any]]:
        """Error-level log lines so far (unhandled exceptions end up here), read without waiting."""
        while True:
            try:
                line = self.process._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                break
            with contextlib.suppress(ValueError):
                self.process.lines.append(json.loads(line))
        return [line for line in self.process.lines if line.get("level") in ("error", "critical")]


def fuzz_config() -> dict[str, Any]:
    entry = {"enable": True, "host": "127.0.0.1", "port": 0, "token": TOKEN}
    return {
        "network": {
            "httpServers": [
                {
                    **entry,
                    "name": "http",
                    "maxBodySize": HTTP_MAX_BODY,
                    # Process-level actions are fuzzed too, except bot_exit (it would stop this
                    # gateway; see SPARED).
                    "actions": {
                        "allow": ["*", "set_restart", "clean_cache", "clean_stream_temp_file"]
                    },
                }
            ],
            "websocketServers": [
                {**entry, "name": "ws", "maxBodySize": WS_MAX_FRAME, "heartInterval": 0}
            ],
        },
        "backend": {"type": "sandbox", "database": ":memory:"},
        "api": {"rateLimitInterval": 1},
    }


@pytest.fixture(scope="session")
def fuzzed_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzedGateway]:
    """One gateway process for the whole robustness suite (HTTP and WebSocket fuzz)."""
    directory: Path = tmp_path_factory.mktemp("fuzzed-gateway")
    config = directory / "onebot11.json"
    config.write_text(json.dumps(fuzz_config()))
    process = GatewayProcess(config, directory)
    try:
        process.wait_for("gateway_ready")
        gateway = FuzzedGateway(process, process.port_of("http"), process.port_of("ws"))
        RUNNING.append(gateway)
        yield gateway
        gateway.alive_at_end = gateway.alive
        gateway.errors_at_end = gateway.errors_logged()
        if not gateway.alive_at_end:
            gateway.last_lines = process.lines[-20:]
    finally:
        process.kill()


def log_summary(line: dict[str, Any]) -> str:
    """One log line in a line: its event, and the last line of its traceback if it has one."""
    event = str(line.get("event", "")).split("\n", 1)[0]
    trace = str(line.get("exception", "")).strip().splitlines()
    # The exception's own line: the last one not indented (a message may add indented lines).
    exception = next((t for t in reversed(trace) if t and not t[0].isspace()), "")
    rest = {k: v for k, v in line.items() if k not in ("event", "exception", "timestamp")}
    return f"{event} {json.dumps(rest)[:200]}" + (f" -> {exception}" if exception else "")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not any(figures.calls for figures in FIGURES.values()):
        return
    terminalreporter.section(f"robustness figures (profile {PROFILE})")
    for gateway in RUNNING:
        exited = "" if gateway.alive_at_end else f" (exit code {gateway.process.proc.returncode})"
        terminalreporter.write_line(
            f"gateway process alive at the end: {gateway.alive_at_end}{exited}; "
            f"error-level log lines: {len(gateway.errors_at_end)}"
        )
        for line in [*gateway.errors_at_end[:20], *gateway.last_lines]:
            terminalreporter.write_line(f"  | {log_summary(line)}")
    for transport, figures in FIGURES.items():
        if figures.calls:
            terminalreporter.write_line(f"{transport}: {figures.line()}")
            for problem in figures.problems[:50]:
                terminalreporter.write_line(f"  - {problem}")
            if len(figures.problems) > 50:
                terminalreporter.write_line(f"  ... and {len(figures.problems) - 50} more")
