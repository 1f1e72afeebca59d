"""Bad `actions` and `sendRate` sections are one config error naming the field (exit 2), and any
action name or parameters through an entry's front get an envelope, never an exception."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import ConfigError, parse_config
from tests.conftest import run_gateway, sandbox_config
from tests.robustness.conftest import FUZZ
from tests.test_cli import cli

PARSING = settings(FUZZ, max_examples=FUZZ.max_examples * 10)
ENTRY = "network.httpServers[0]"


def document(**rules: Any) -> dict[str, Any]:
    return sandbox_config(httpServers=[{"name": "bot", "enable": True, "port": 0, **rules}])


def config_error(doc: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as refused:
        parse_config(doc, env={})
    return str(refused.value)


@pytest.mark.parametrize(
    ("rules", "field", "words"),
    [
        ({"sendRate": {"perMinute": -1}}, "sendRate.perMinute", "greater than 0"),
        ({"sendRate": {"perMinute": 0}}, "sendRate.perMinute", "greater than 0"),
        ({"sendRate": {"perMinute": "inf"}}, "sendRate.perMinute", "finite"),
        ({"sendRate": {"perMinute": "NaN"}}, "sendRate.perMinute", "finite"),
        ({"sendRate": {"perMinute": "fast"}}, "sendRate.perMinute", "number"),
        ({"sendRate": {}}, "sendRate.perMinute", "required"),
        ({"sendRate": {"perMinute": 5, "burst": 0}}, "sendRate.burst", "greater than or equal"),
        ({"sendRate": {"perMinute": 5, "burst": 1.5}}, "sendRate.burst", "integer"),
        ({"sendRate": {"perMinute": 5, "maxWaiting": -1}}, "sendRate.maxWaiting", "greater"),
        ({"sendRate": {"perMinute": 5, "burts": 2}}, "sendRate.burts", "unknown field"),
        ({"sendRate": 20}, "sendRate", "valid dictionary"),
        ({"actions": {"alow": ["get_*"]}}, "actions.alow", "expected one of allow, deny"),
        ({"actions": {"deny": [""]}}, "actions.deny", "empty pattern"),
        ({"actions": {"deny": ["send msg"]}}, "actions.deny", "not an action name or glob"),
        ({"actions": {"deny": ["发送"]}}, "actions.deny", "not an action name or glob"),
        ({"actions": {"allow": ["[send"]}}, "actions.allow", "unbalanced"),
        ({"actions": {"allow": ["bot_exit_async"]}}, "actions.allow", "write 'bot_exit'"),
        ({"actions": {"deny": "send_msg"}}, "actions.deny", "valid tuple"),
        ({"actions": {"deny": None}}, "actions.deny", "valid tuple"),
        ({"actions": ["send_msg"]}, "actions", "valid dictionary"),
    ],
)
def test_a_bad_rule_is_one_error_naming_the_field(
    rules: dict[str, Any], field: str, words: str
) -> None:
    message = config_error(document(**rules))
    assert message.startswith(f"{ENTRY}.{field}"), message
    assert words in message, message
    assert len(message.splitlines()) == 1, message


def test_check_config_exits_2_naming_the_rule(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document(sendRate={"perMinute": -5})))
    result = cli("check-config", str(bad))
    assert result.returncode == 2
    assert f"{ENTRY}.sendRate.perMinute" in result.stderr


scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["allow", "deny", "perMinute", "x"]), inner, max_size=3)
    ),
    max_leaves=8,
)


@PARSING
@given(actions=values, send_rate=values)
def test_any_rules_load_or_name_their_field(actions: Any, send_rate: Any) -> None:
    try:
        parse_config(document(actions=actions, sendRate=send_rate), env={})
    except ConfigError as error:
        for line in str(error).splitlines():
            assert line.startswith((f"{ENTRY}.actions", f"{ENTRY}.sendRate")), line


names = st.sampled_from(
    ["bot_exit", "bot_exit_async", "send_msg", "group_poke_rate_limited", ".handle_quick_operation"]
) | st.text(max_size=20)
params = st.none() | st.dictionaries(st.text(max_size=8), scalars, max_size=3) | scalars


@FUZZ
@given(calls=st.lists(st.tuples(names, params), min_size=1, max_size=20))
async def test_any_call_through_a_front_gets_an_envelope(calls: list[tuple[str, Any]]) -> None:
    rules = {
        "actions": {"deny": ["set_group_*"]},
        "sendRate": {"perMinute": 0.001, "burst": 3, "maxWaiting": 0},
    }
    async with run_gateway(document(**rules)) as gw:
        front = gw.supervisor.fronts["bot"]
        for action, call_params in calls:
            answer = await front.call(action, call_params)
            assert answer["retcode"] in (0, 1, 1200, 1400, 1403, 1404), answer
            assert isinstance(answer["message"], str)
