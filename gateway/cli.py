"""Command line: argv → config → logging → event loop → Supervisor. Exit codes live here.

Exit codes: 0 clean shutdown, 1 runtime or start-up failure (such as a port in use), 2 invalid
config or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import orjson
import structlog

from gateway import __version__, sandbox_cli
from gateway import logging as gateway_logging
from gateway.config import (
    ConfigError,
    GatewayConfig,
    RuntimeSettings,
    json_schema,
    parse_config,
    read_document,
    unknown_keys,
)
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
    sandbox_cli.add_commands(commands)
    return parser


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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `onebot-gateway` script and `python -m gateway`."""
    try:
        settings = RuntimeSettings()
    except ValueError as error:
        print(f"onebot-gateway: invalid ONEBOT_GATEWAY_* environment: {error}", file=sys.stderr)
        return EXIT_CONFIG
    args = build_parser(settings).parse_args(argv)
    if args.command == "schema":
        sys.stdout.write(orjson.dumps(json_schema(), option=orjson.OPT_INDENT_2).decode() + "\n")
        return EXIT_OK
    if args.command == "check-config":
        return check_config(args.file)
    if args.command == "sandbox":
        return sandbox_cli.run(args)
    gateway_logging.configure(args.log_level, args.log_format)
    try:
        config = _load(args.config)
    except ConfigError as error:
        log.error("config_invalid", error=str(error))
        print(f"onebot-gateway: config error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    return run_loop(lambda: serve(config))


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


async def serve(config: GatewayConfig) -> int:
    """startup → wait for SIGTERM/SIGINT → shutdown."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Handlers only set a flag; shutdown runs here, in order.
        loop.add_signal_handler(sig, stop.set)
    supervisor = Supervisor(config)
    try:
        await supervisor.start()
    except (StartupError, ConfigError) as error:
        log.error("startup_failed", error=str(error))
        print(f"onebot-gateway: {error}", file=sys.stderr)
        return EXIT_FAILURE if isinstance(error, StartupError) else EXIT_CONFIG
    await stop.wait()
    log.info("shutdown_requested")
    await supervisor.stop()
    log.info("shutdown_complete")
    return EXIT_OK
