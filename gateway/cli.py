"""Command line: argv → config → logging → event loop → Supervisor. Exit codes live here.

Exit codes: 0 clean shutdown, 1 runtime or start-up failure (such as a port in use), 2 invalid
config or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import PurePath
from typing import Any

import orjson
import structlog
import watchfiles

from gateway import __version__, sandbox_cli
from gateway import logging as gateway_logging
from gateway.actions import default_catalog
from gateway.config import (
    ConfigError,
    GatewayConfig,
    RuntimeSettings,
    json_schema,
    parse_config,
    read_document,
    unknown_keys,
)
from gateway.notify import Notifier, cancel_quietly
from gateway.openapi import openapi_document
from gateway.supervisor import StartupError, Supervisor

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2

log = structlog.get_logger("gateway.cli")


def build_parser(settings: RuntimeSettings) -> argparse.ArgumentParser:
    """`onebot-gateway [run] --config FILE`, `check-config FILE`, `schema`."""
    parser = argparse.ArgumentParser(prog="onebot-gateway", description="OneBot 11 gateway daemon")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_run_options(parser, settings)
    commands = parser.add_subparsers(dest="command")
    _add_run_options(commands.add_parser("run", help="start the daemon (the default)"), settings)
    check = commands.add_parser("check-config", help="validate a config file without starting")
    check.add_argument("file", help="config file (JSON or JSON5)")
    commands.add_parser("schema", help="print the JSON Schema of the config file")
    commands.add_parser("openapi", help="print the OpenAPI 3.1 document of every action")
    sandbox_cli.add_commands(commands)
    _add_test_command(commands)
    return parser


def _add_test_command(commands: Any) -> None:
    """`test SCENARIO... --bot CMD | --bot-url URL` (gateway/testing/runner.py)."""
    test = commands.add_parser(
        "test",
        help="run scenario files against a bot on a fresh sandbox (exit 0 pass, 1 fail)",
        description="Start a sandbox, start the bot with ONEBOT_* connection settings in its "
        "environment (or connect to a running one), run the scenario files' steps.",
    )
    test.add_argument("scenarios", nargs="+", metavar="SCENARIO", help="JSON5 or YAML file")
    test.add_argument("--bot", metavar="CMD", help="command starting the bot (shell-like words)")
    test.add_argument(
        "--bot-url",
        metavar="URL",
        help="where the bot listens (ws:// reverse WebSocket, http:// HTTP POST); without "
        "--bot, a bot already running there",
    )
    test.add_argument("--transport", help="ws, ws-reverse or http-post (default: from the URL)")
    test.add_argument("--token", default="", help="access token both sides use")
    test.add_argument("--junit", metavar="FILE", help="write a JUnit XML report")
    test.add_argument("--connect-timeout", type=float, default=30.0, help="seconds to connect")
    test.add_argument("--reply-timeout", type=float, default=5.0, help="seconds `expect` waits")


def _add_run_options(parser: argparse.ArgumentParser, settings: RuntimeSettings) -> None:
    parser.add_argument(
        "--config",
        "-c",
        default=settings.config,
        help="config file, NapCat's onebot11.json shape (default: %(default)s)",
    )
    parser.add_argument(
        "--log-level", default=settings.log_level, choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument(
        "--log-format", default=settings.log_format, choices=["auto", "console", "json"]
    )
    parser.add_argument(
        "--watch", action="store_true", help="reload when the config file changes (as on SIGHUP)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `onebot-gateway` script and `python -m gateway`."""
    try:
        settings = RuntimeSettings()
    except ValueError as error:
        print(f"onebot-gateway: invalid ONEBOT_GATEWAY_* environment: {error}", file=sys.stderr)
        return EXIT_CONFIG
    args = build_parser(settings).parse_args(argv)
    if args.command == "schema":
        return _to_stdout(lambda: _print_json(json_schema()))
    if args.command == "openapi":
        return _to_stdout(lambda: _print_json(openapi_document(default_catalog())))
    if args.command == "check-config":
        return check_config(args.file)
    if args.command == "sandbox":
        return sandbox_cli.run(args)
    if args.command == "test":
        return _to_stdout(lambda: run_tests(args))
    gateway_logging.configure(args.log_level, args.log_format)
    try:
        config = _load(args.config)
    except ConfigError as error:
        log.error("config_invalid", error=str(error))
        print(f"onebot-gateway: config error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    return run_loop(lambda: serve(config, args.config, watch=args.watch))


def _print_json(document: Any) -> int:
    sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
    return EXIT_OK


def _to_stdout(command: Callable[[], int]) -> int:
    """Run a command whose output is read by another program; when that reader goes away
    (`| head`), end quietly with 1, as a filter killed by SIGPIPE would, not with a traceback."""
    try:
        code = command()
        sys.stdout.flush()
    except BrokenPipeError:
        # The interpreter flushes stdout once more at exit: let that flush go nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return code


def run_tests(args: argparse.Namespace) -> int:
    """The `test` command; only the gateway's errors are logged, the results go to stdout."""
    from gateway.testing import runner  # the test tools load only for this command

    gateway_logging.configure("error", "console", stream=sys.stderr)
    return run_loop(lambda: runner.run(args))


def check_config(path: str) -> int:
    """Validate without starting: print `ok` or the error, exit 0 or 2."""
    try:
        _load(path)
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"{path}: ok")
    return EXIT_OK


def _load(path: str) -> GatewayConfig:
    document = read_document(path)
    try:
        config = parse_config(document)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    for key in unknown_keys(document):
        log.warning("config_key_ignored", key=key, file=path)
    return config


def run_loop(main_coro: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run on uvloop where available."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is absent on Windows
        return asyncio.run(main_coro())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main_coro())


async def serve(config: GatewayConfig, path: str | None = None, *, watch: bool = False) -> int:
    """startup → main loop (reload on SIGHUP) → shutdown on SIGTERM/SIGINT."""
    stop, reload = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    # Handlers only set flags; the work happens below, in order.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload.set)
    notifier = Notifier()
    # Watching starts before the adapters, so an edit made right after READY is not missed.
    watcher = asyncio.create_task(_watch(path, reload), name="watch") if watch and path else None
    supervisor = Supervisor(config)
    try:
        await supervisor.start()
    except (StartupError, ConfigError) as error:
        log.error("startup_failed", error=str(error))
        print(f"onebot-gateway: {error}", file=sys.stderr)
        await cancel_quietly(watcher)
        return EXIT_FAILURE if isinstance(error, StartupError) else EXIT_CONFIG
    # Everything built so far (modules, models, catalog, config) lives as long as the process:
    # moved out of the collector's reach, a full collection no longer walks it, which took
    # ~35 ms pauses (visible as fan-out latency spikes) down to the size of live connections.
    gc.collect()
    gc.freeze()
    notifier.ready(supervisor.summary())
    watchdog = asyncio.create_task(notifier.watchdog(), name="watchdog")
    while not stop.is_set():
        await _first_of(stop, reload)
        if reload.is_set() and not stop.is_set():
            reload.clear()
            await _reload(supervisor, notifier, path)
    log.info("shutdown_requested")
    notifier.stopping()
    await cancel_quietly(watchdog)
    await cancel_quietly(watcher)
    await supervisor.stop()
    log.info("shutdown_complete")
    return EXIT_OK


async def _watch(path: str, reload: asyncio.Event) -> None:
    """Set the reload flag whenever the config file changes (editors often replace the file,
    so its directory is watched and changes are filtered by name)."""
    target = PurePath(os.path.abspath(path))  # noqa: ASYNC240 - pure string work, no I/O
    async for changes in watchfiles.awatch(str(target.parent)):
        if any(PurePath(changed) == target for _, changed in changes):
            reload.set()


async def _first_of(*flags: asyncio.Event) -> None:
    waiters = [asyncio.create_task(flag.wait()) for flag in flags]
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)


async def _reload(supervisor: Supervisor, notifier: Notifier, path: str | None) -> None:
    """Re-read the config file; an invalid one is logged and the running config stays."""
    log.info("reload_requested", file=path)
    if path is None:
        return
    notifier.reloading()
    try:
        config = _load(path)
    except ConfigError as error:
        log.error("reload_rejected", error=str(error))
    else:
        await supervisor.reload(config)
    notifier.ready(supervisor.summary())
