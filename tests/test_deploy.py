"""Deployment files checked without a Docker engine or systemd: what can be parsed is parsed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from gateway.config import load_config

REPO = Path(__file__).resolve().parent.parent


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_is_multi_stage_slim_and_non_root() -> None:
    instructions = dockerfile_instructions()
    bases = [arg for op, arg in instructions if op == "FROM"]
    assert len(bases) >= 2 and all("slim" in base for base in bases)
    users = [arg for op, arg in instructions if op == "USER"]
    assert users and users[-1] not in ("root", "0")


def test_dockerfile_entrypoint_is_exec_form_with_healthcheck_and_volume() -> None:
    instructions = dict(reversed(dockerfile_instructions()))  # first occurrence wins
    entrypoint = json.loads(instructions["ENTRYPOINT"])
    assert entrypoint[0] == "onebot-gateway"
    assert "/healthz" in instructions["HEALTHCHECK"]
    assert "/data" in instructions["VOLUME"]
    assert "ONEBOT_GATEWAY_CONFIG=/config/onebot11.json5" in instructions["ENV"]


def test_compose_runs_two_bots_on_separate_ports_with_tokens_from_the_environment() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"gateway", "bot-a", "bot-b"} <= set(services)
    urls = {services[b]["environment"]["ONEBOT_WS_URLS"] for b in ("bot-a", "bot-b")}
    assert len(urls) == 2
    tokens = [services[b]["environment"]["ONEBOT_ACCESS_TOKEN"] for b in ("bot-a", "bot-b")]
    assert all(re.fullmatch(r"\$\{[A-Z_]+\}", token) for token in tokens)
    mounted = services["gateway"]["volumes"][0].split(":")[0]
    assert (REPO / mounted).exists()


def test_compose_config_is_valid_with_its_environment() -> None:
    env = {"BOT_A_TOKEN": "a" * 16, "BOT_B_TOKEN": "b" * 16, "ADMIN_TOKEN": "c" * 16}
    config = load_config(REPO / "examples" / "compose" / "onebot11.json5", env=env)
    ports = sorted(entry.port for entry in config.network.websocket_servers)
    assert ports == [3001, 3002]
    assert config.admin is not None and config.admin.port == 9090


def unit() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in (REPO / "systemd" / "onebot-gateway.service").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def test_systemd_unit_is_notify_with_reload_watchdog_state_and_hardening() -> None:
    values = unit()
    assert values["Type"] == ["notify"]
    assert values["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert values["WatchdogSec"] and values["StateDirectory"] == ["onebot-gateway"]
    for key in ("DynamicUser", "NoNewPrivileges", "PrivateTmp", "ProtectHome"):
        assert values[key] == ["yes"], key
    assert values["ProtectSystem"] == ["strict"]
    assert values["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed on this machine",
)
def test_systemd_analyze_verify_accepts_the_unit() -> None:
    result = subprocess.run(
        ["systemd-analyze", "verify", str(REPO / "systemd" / "onebot-gateway.service")],
        capture_output=True,
        text=True,
        check=False,
    )
    # The ExecStart binary only exists once installed; anything else is a real complaint.
    complaints = [
        line
        for line in result.stderr.splitlines()
        if line.strip() and "/opt/onebot-gateway" not in line
    ]
    assert not complaints, result.stderr
