"""Scenario files are input: any bytes or document is a Scenario or a ScenarioError, and a step
the sandbox refuses at run time is a failed test with the reason, never a crash of the runner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.testing import BotSpec, ChatAssertionError, bot_session
from gateway.testing.scenario import (
    VERBS,
    Conversation,
    Scenario,
    ScenarioError,
    load_scenario,
    run_step,
    scenario_from,
)
from tests.robustness.conftest import FUZZ

# Parsing is pure and takes microseconds: many more examples than the socket fuzz gets.
PARSING = settings(FUZZ, max_examples=FUZZ.max_examples * 10)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from([*VERBS, "user", "group", "type", "x"]), inner, max_size=3
        )
    ),
    max_leaves=12,
)
option_names = st.sampled_from(
    ["user", "group", "nickname", "card", "within", "target", "comment", "params", "result", "x"]
)
steps = st.builds(
    lambda verb, argument, options: {verb: argument, **options},
    st.sampled_from(VERBS),
    values,
    st.dictionaries(option_names, values, max_size=3),
)
documents = st.fixed_dictionaries(
    {"tests": st.lists(st.fixed_dictionaries({"steps": st.lists(steps, max_size=4)}), max_size=2)},
    optional={"defaults": values, "bot": values, "fixedTime": values, "name": scalars},
)


def _refused_or_loaded(load: Callable[[], Scenario], path: Path) -> Scenario | None:
    """What `load` returns, or None when it raised a ScenarioError naming `path`."""
    message = ""
    try:
        return load()
    except ScenarioError as refused:
        message = str(refused)
    finally:
        assert message == "" or message.startswith(f"{path}: ")
    return None


@PARSING
@given(data=st.binary(max_size=64))
def test_any_bytes_load_or_are_refused(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("bytes") / "fuzzed.json5"
    path.write_bytes(data)
    _refused_or_loaded(lambda: load_scenario(path), path)


@PARSING
@given(document=documents | values)
def test_any_document_loads_or_is_refused(document: Any) -> None:
    path = Path("fuzzed.json5")
    scenario = _refused_or_loaded(lambda: scenario_from(document, path), path)
    if scenario is not None:
        assert all(step.verb in VERBS for test in scenario.tests for step in test.steps)


@pytest.mark.parametrize(
    ("step", "reason"),
    [
        ({"say": "hi", "group": 99999}, "sandbox_receive_message failed: retcode"),
        ({"call": "no_such_action"}, "no_such_action failed: retcode 1404"),
        (
            {"call": "get_group_info", "params": {"group_id": "x"}},
            "get_group_info failed: retcode 1400",
        ),
        ({"recall": "last"}, "nothing said yet to recall"),
        ({"poke": 20001, "group": 99999}, "sandbox_poke failed: retcode"),
        ({"expect_event": {"notice_type": "never"}, "within": 0}, "none came"),
        ({"call": "get_login_info", "result": {"user_id": 1}}, "expected it to contain"),
    ],
)
async def test_a_step_the_sandbox_refuses_fails_with_the_reason(
    tmp_path: Path, step: dict[str, Any], reason: str
) -> None:
    (parsed,) = scenario_from({"tests": [{"steps": [step]}]}, tmp_path).tests[0].steps
    async with bot_session(BotSpec()) as chat:
        with pytest.raises(ChatAssertionError) as failure:
            await run_step(Conversation(chat), parsed)
    assert reason in str(failure.value).splitlines()[0]
