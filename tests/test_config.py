"""Config loading: NapCat shape and defaults, lax coercion, env expansion, each error case."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.config import (
    ConfigError,
    GatewayConfig,
    RelayBackendConfig,
    SandboxBackendConfig,
    json_schema,
    load_config,
    parse_config,
    unknown_keys,
)

DATA = Path(__file__).parent / "data"
EXAMPLE = Path(__file__).parent.parent / "examples" / "config" / "onebot11.json5"


def error_of(document: Any, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(document, env or {})
    return str(caught.value)


def test_napcat_template_loads_with_sandbox_default() -> None:
    config = load_config(DATA / "napcat-onebot11.json", env={})
    assert [e.name for e in config.network.http_servers] == ["HTTP"]
    assert config.network.websocket_servers[0].heart_interval == 30000
    assert isinstance(config.backend, SandboxBackendConfig)
    assert config.backend.database == "sandbox.db"


def test_example_config_is_valid() -> None:
    config = load_config(EXAMPLE, env={})
    assert config.network.http_servers[0].enable_websocket is True


def test_empty_document_gets_napcat_defaults() -> None:
    config = parse_config({}, {})
    assert config.network.http_servers == ()
    assert config.timeout.max_timeout == 1800000
    assert config.api.rate_limit_interval == 500


def test_entry_defaults_match_napcat() -> None:
    config = parse_config(
        {
            "network": {
                "httpServers": [{}],
                "httpSseServers": [{}],
                "httpClients": [{}],
                "websocketServers": [{}],
                "websocketClients": [{}],
            }
        },
        {},
    )
    (http,) = config.network.http_servers
    assert (http.name, http.port, http.host, http.enable, http.enable_cors) == (
        "http-server",
        3000,
        "127.0.0.1",
        False,
        True,
    )
    assert config.network.http_sse_servers[0].name == "http-sse-server"
    assert config.network.http_clients[0].url == "http://localhost:8080"
    ws = config.network.websocket_servers[0]
    assert (ws.name, ws.port, ws.heart_interval) == ("websocket-server", 3001, 30000)
    client = config.network.websocket_clients[0]
    assert (client.url, client.reconnect_interval, client.verify_certificate) == (
        "ws://localhost:8082",
        5000,
        True,
    )


def test_json5_file_with_comments_loads(tmp_path: Path) -> None:
    path = tmp_path / "c.json5"
    path.write_text("{network: {httpServers: [{name: 'x', port: 3005,},],}, // done\n}")
    assert load_config(path, env={}).network.http_servers[0].port == 3005


def test_values_are_coerced_laxly() -> None:
    config = parse_config(
        {
            "network": {
                "httpServers": [
                    {"name": "a", "enable": "true", "port": "3000", "token": 12345, "debug": 0}
                ]
            }
        },
        {},
    )
    entry = config.network.http_servers[0]
    assert (entry.enable, entry.port, entry.token, entry.debug) == (True, 3000, "12345", False)


def test_env_references_are_expanded() -> None:
    config = parse_config(
        {
            "network": {
                "httpServers": [
                    {"name": "${NAME}", "token": "${TOKEN:-fallback}", "host": "${HOST:-127.0.0.1}"}
                ]
            }
        },
        {"NAME": "from-env", "HOST": "::1"},
    )
    entry = config.network.http_servers[0]
    assert (entry.name, entry.token, entry.host) == ("from-env", "fallback", "::1")


def test_double_dollar_is_a_literal_dollar() -> None:
    config = parse_config({"network": {"httpServers": [{"token": "a$${B}c"}]}}, {})
    assert config.network.http_servers[0].token == "a${B}c"


def test_unset_env_reference_names_the_field() -> None:
    message = error_of({"network": {"httpServers": [{"token": "${BOT_TOKEN}"}]}})
    assert message.startswith("network.httpServers[0].token:")
    assert "BOT_TOKEN" in message


def test_bad_value_names_the_field_path() -> None:
    message = error_of({"network": {"websocketServers": [{"name": "w", "port": "abc"}]}})
    assert message.startswith("network.websocketServers[0].port:")
    assert "'abc'" in message


def test_port_out_of_range_is_refused() -> None:
    assert "network.httpServers[0].port" in error_of(
        {"network": {"httpServers": [{"port": 70000}]}}
    )


def test_unknown_message_format_is_refused() -> None:
    message = error_of({"network": {"httpServers": [{"messagePostFormat": "xml"}]}})
    assert "network.httpServers[0].messagePostFormat" in message


def test_unknown_backend_type_is_refused() -> None:
    assert error_of({"backend": {"type": "mirai"}}).startswith("backend.type: unknown type 'mirai'")


def test_unknown_adapter_list_is_refused() -> None:
    message = error_of({"network": {"httpServer": [{}]}})
    assert message.startswith("network.httpServer: unknown adapter list")
    assert "httpServers" in message


def test_duplicate_names_across_kinds_are_refused() -> None:
    message = error_of(
        {"network": {"httpServers": [{"name": "bot"}], "websocketClients": [{"name": "bot"}]}}
    )
    assert message == (
        "network.websocketClients[0].name: duplicate name 'bot' (also network.httpServers[0])"
    )


def test_two_enabled_entries_on_one_address_are_refused() -> None:
    message = error_of(
        {
            "network": {
                "httpServers": [{"name": "a", "enable": True, "port": 4000}],
                "websocketServers": [{"name": "b", "enable": True, "port": 4000}],
            }
        }
    )
    assert message.startswith(
        "network.websocketServers[0]: 127.0.0.1:4000 is already used by network.httpServers[0]"
    )


def test_wildcard_bind_clashes_with_a_loopback_bind() -> None:
    message = error_of(
        {
            "network": {
                "httpServers": [
                    {"name": "a", "enable": True, "port": 4000},
                    {"name": "b", "enable": True, "port": 4000, "host": "0.0.0.0", "token": "t"},
                ]
            }
        }
    )
    assert "network.httpServers[1]" in message


def test_disabled_entries_may_share_an_address() -> None:
    parse_config(
        {
            "network": {
                "httpServers": [
                    {"name": "a", "enable": True, "port": 4000},
                    {"name": "b", "port": 4000},
                ]
            }
        },
        {},
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com", ""])
def test_non_loopback_bind_without_token_is_refused(host: str) -> None:
    message = error_of({"network": {"httpServers": [{"name": "a", "enable": True, "host": host}]}})
    assert message.startswith("network.httpServers[0].token:")
    assert "allowInsecure" in message


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_bind_without_token_is_allowed(host: str) -> None:
    parse_config({"network": {"httpServers": [{"name": "a", "enable": True, "host": host}]}}, {})


def test_allow_insecure_permits_a_public_bind_without_token() -> None:
    parse_config(
        {
            "network": {
                "websocketServers": [
                    {"name": "a", "enable": True, "host": "0.0.0.0", "allowInsecure": True}
                ]
            }
        },
        {},
    )


def test_non_object_top_level_is_refused() -> None:
    assert "top level must be an object" in error_of([1, 2])


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.json")


def test_invalid_json5_names_the_position(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"network": {"httpServers": [}')
    with pytest.raises(ConfigError, match="line 1 column"):
        load_config(path)


def test_unknown_keys_are_listed_for_warnings() -> None:
    document = {
        "network": {"httpServers": [{"name": "a", "prot": 1}]},
        "extra": True,
        "backend": {"type": "sandbox", "databse": "x"},
    }
    assert unknown_keys(document) == ["network.httpServers[0].prot", "extra", "backend.databse"]


def test_config_is_frozen() -> None:
    config = parse_config({}, {})
    with pytest.raises(ValueError, match="frozen"):
        config.music_sign_url = "x"  # type: ignore[misc]  # the point is that it refuses


def test_json_schema_describes_fields_from_docstrings() -> None:
    schema = json_schema()
    http = schema["$defs"]["HttpServerConfig"]["properties"]
    assert "enableCors" in http and "CORS" in http["enableCors"]["description"]
    assert json.loads(json.dumps(schema))["title"] == "OneBot Gateway config"
    assert GatewayConfig.model_json_schema(by_alias=True)["properties"]["network"]


def test_backend_section_without_type_is_the_sandbox() -> None:
    config = parse_config({"backend": {"database": "x.db"}}, {})
    assert isinstance(config.backend, SandboxBackendConfig)
    assert config.backend.database == "x.db"


@pytest.mark.parametrize(
    ("model", "tag"), [(SandboxBackendConfig, "sandbox"), (RelayBackendConfig, "relay")]
)
def test_every_key_of_a_backend_is_known_to_the_unknown_key_warning(
    model: type[SandboxBackendConfig | RelayBackendConfig], tag: str
) -> None:
    # Every field, in its camelCase and its snake_case spelling, with the type that selects it.
    for spelling in ("alias", "name"):
        backend = {
            (field.alias if spelling == "alias" else name) or name: None
            for name, field in model.model_fields.items()
        }
        assert unknown_keys({"backend": {**backend, "type": tag}}) == []


def test_unknown_keys_of_the_relay_backend_are_listed() -> None:
    document = {"backend": {"type": "relay", "url": "ws://x/", "calltimeout": 1, "database": "x"}}
    # `database` is the sandbox's: a relay ignores it, so it is reported as well.
    assert unknown_keys(document) == ["backend.calltimeout", "backend.database"]


def test_backend_keys_of_the_other_type_are_listed() -> None:
    assert unknown_keys({"backend": {"url": "ws://x/", "database": "x.db"}}) == ["backend.url"]
    assert unknown_keys({"backend": {"type": "sandbox", "callTimeout": 5}}) == [
        "backend.callTimeout"
    ]
