"""The daemon as users run it: a subprocess, its exit codes, signals and start-up errors."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import REPO, free_port, wait_until_closed

DATA = Path(__file__).parent / "data"


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        timeout=60,
        check=False,
    )


def test_check_config_accepts_the_example() -> None:
    result = cli("check-config", "examples/config/onebot11.json5")
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_check_config_reports_the_field_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"network": {"httpServers": [{"name": "a", "port": "x"}]}}))
    result = cli("check-config", str(bad))
    assert result.returncode == 2
    assert "network.httpServers[0].port" in result.stderr


def test_run_with_invalid_config_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"network": {"httpServers": [{"name": "a", "enable": True, "host": "0.0.0.0"}]}})
    )
    result = cli("--config", str(bad), "--log-format", "json")
    assert result.returncode == 2
    assert "network.httpServers[0].token" in result.stderr


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = cli("run", "--config", str(tmp_path / "nope.json"))
    assert result.returncode == 2
    assert "cannot read config file" in result.stderr


def test_schema_prints_json_schema() -> None:
    result = cli("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert "network" in schema["properties"]
    assert schema["$defs"]["WebsocketServerConfig"]["properties"]["heartInterval"]["description"]


def config_with(**entry: Any) -> dict[str, Any]:
    return {
        "network": {"httpServers": [{"name": "api", "enable": True, "port": 0, **entry}]},
        "backend": {"database": "state.db"},
    }


async def test_napcat_template_starts_unmodified(gateway_process: Any, tmp_path: Path) -> None:
    process = gateway_process((DATA / "napcat-onebot11.json").read_text())
    process.wait_for("gateway_ready")
    async with (
        aiohttp.ClientSession() as http,
        http.post("http://127.0.0.1:3000/get_login_info") as response,
    ):
        body = await response.json()
    assert body["data"]["user_id"] == 10001
    assert any(line.get("event") == "adapter_started" for line in process.lines)
    assert process.terminate() == 0
    assert (tmp_path / "sandbox.db").exists()


async def test_sigterm_lets_an_in_flight_request_finish(gateway_process: Any) -> None:
    process = gateway_process(config_with())
    process.wait_for("gateway_ready")
    port = process.port_of("api")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = b'{"echo": "in-flight"}'
    writer.write(
        b"POST /get_login_info HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body[:5]
    )
    await writer.drain()
    await asyncio.sleep(0.3)  # the handler is now waiting for the rest of the body
    process.proc.send_signal(15)
    process.wait_for("shutdown_requested")
    writer.write(body[5:])
    await writer.drain()
    response = await reader.read()
    writer.close()
    assert response.startswith(b"HTTP/1.1 200")
    assert b'"echo":"in-flight"' in response and b'"retcode":0' in response
    assert process.proc.wait(20) == 0
    assert await wait_until_closed(port)


async def test_port_in_use_names_the_entry_and_exits_1(gateway_process: Any) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    busy = blocker.getsockname()[1]
    first_port = free_port()
    try:
        document = {
            "network": {
                "httpServers": [
                    {"name": "first", "enable": True, "port": first_port},
                    {"name": "second", "enable": True, "port": busy},
                ]
            },
            "backend": {"database": ":memory:"},
        }
        process = gateway_process(document)
        assert process.proc.wait(30) == 1
        error = process.wait_for("startup_failed")["error"]
        assert error.startswith("network.httpServers[1] ('second'): cannot listen on 127.0.0.1:")
        assert await wait_until_closed(first_port)  # the entry that did start was released
    finally:
        blocker.close()


def test_make_run_target_uses_the_example_config() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert "examples/config/onebot11.json5" in makefile
    assert shutil.which("make") is not None


async def test_sandbox_say_sends_as_a_simulated_user(gateway_process: Any) -> None:
    process = gateway_process(config_with(token="t"))
    process.wait_for("gateway_ready")
    url = f"http://127.0.0.1:{process.port_of('api')}"
    said = await asyncio.to_thread(
        cli,
        "sandbox",
        "say",
        "--url",
        url,
        "--token",
        "t",
        "--user",
        "20002",
        "--group",
        "30001",
        "hello [CQ:face,id=1]",
    )
    assert said.returncode == 0, said.stderr
    message_id = int(said.stdout.split()[-1])
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{url}/get_msg", json={"message_id": message_id}, headers={"Authorization": "Bearer t"}
        ) as response,
    ):
        body = await response.json()
    assert body["data"]["raw_message"] == "hello [CQ:face,id=1]"
    assert (body["data"]["group_id"], body["data"]["user_id"]) == (30001, 20002)
    refused = await asyncio.to_thread(cli, "sandbox", "say", "--url", url, "--user", "1", "x")
    assert refused.returncode == 1 and "1403" in refused.stderr


def test_output_read_by_a_program_that_stops_early_ends_quietly() -> None:
    """`onebot-gateway openapi | head -1`: the reader leaves early; no traceback, exit 1."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "openapi"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    assert proc.stdout is not None and proc.stderr is not None
    # Gone before the document is written (imports take a while): its first write fails.
    proc.stdout.close()
    with proc.stderr:
        stderr = proc.stderr.read().decode()
    assert proc.wait(60) == 1
    assert "Traceback" not in stderr, stderr
    assert "BrokenPipeError" not in stderr, stderr
