"""Scenario files: a bot's conversation tests as data, for bots written in any language.

A scenario file (JSON5, or YAML when it ends in `.yaml`/`.yml` and PyYAML is installed) holds
`tests`, each a `name` and a list of `steps`. A step is an object with one verb key; the other
keys are its options:

    say: "ping"                       user, group (null: private), nickname, card
    expect: "pong" | {regex: "..."} | {segment: {type: "at", qq: 20001}} | {any: true}
                                      group, user, within (seconds)
    expect_none: 0.5 | true           the bot sends nothing for that long
    expect_event: {notice_type: "friend_add"}   fields the next such event has; within
    join: 20009 | leave: 20009        group
    poke: 20001                       group (null: private), target (default: the bot)
    request: "friend" | "group" | "invite"      user, group, comment
    recall: "last" | <message_id>     the sender recalls it
    wait: 0.2                         seconds
    call: "get_friend_list"           params, result (fields `data` must have)

`defaults` gives `user` and `group` for steps without them; `bot` the connection (`command`,
`transport`, `url`, `cwd` relative to the file, `env`), which the command line overrides;
`fixedTime` a Unix time stamped on every event; `world` a world file (relative to the file)
seeding the sandbox instead of the built-in world. One fresh in-memory world and one bot process
serve a whole file; its tests run in order. `load_scenario` raises ScenarioError naming the
file and the step (`tests[0].steps[2]`) of any malformed input.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.protocol import jsonio
from gateway.testing.chat import DEFAULT_USER, Chat, Match, segment

DEFAULT_GROUP = 30001
VERBS = (
    "say",
    "expect",
    "expect_none",
    "expect_event",
    "join",
    "leave",
    "poke",
    "request",
    "recall",
    "wait",
    "call",
)
OPTIONS: dict[str, frozenset[str]] = {
    "say": frozenset({"user", "group", "nickname", "card"}),
    "expect": frozenset({"group", "user", "within"}),
    "expect_none": frozenset(),
    "expect_event": frozenset({"within"}),
    "join": frozenset({"group", "nickname"}),
    "leave": frozenset({"group"}),
    "poke": frozenset({"group", "target"}),
    "request": frozenset({"user", "group", "comment"}),
    "recall": frozenset(),
    "wait": frozenset(),
    "call": frozenset({"params", "result"}),
}
MAX_WAIT = 600.0
"""Longest `wait`, `within` or `expect_none` a step may ask for, in seconds."""


class ScenarioError(Exception):
    """A malformed scenario file; the message names the file and the place in it."""


@dataclass(frozen=True)
class Step:
    """One validated step: its verb, its argument and its options (defaults applied)."""

    where: str
    """`tests[0].steps[2] (say)`, for messages."""
    verb: str
    argument: Any
    options: Mapping[str, Any]


@dataclass(frozen=True)
class ScenarioTest:
    name: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Scenario:
    path: Path
    name: str
    tests: tuple[ScenarioTest, ...]
    bot: Mapping[str, Any] = field(default_factory=dict)
    fixed_time: int | None = None
    world: Path | None = None
    """A JSON5 world file (relative paths are taken from the scenario's directory)."""


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file (see the module docstring)."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as error:
        raise ScenarioError(f"{file}: cannot read: {error.strerror}") from None
    return scenario_from(_parse(file, data), file)


def scenario_from(document: Any, file: Path) -> Scenario:
    """Validate an already-parsed scenario document read from `file`."""
    try:
        return _scenario(file, document)
    except ScenarioError as error:
        raise ScenarioError(f"{file}: {error}") from None


def _parse(file: Path, data: bytes) -> Any:
    if file.suffix in (".yaml", ".yml"):
        try:
            import yaml  # type: ignore[import-untyped]  # optional, no stubs installed
        except ImportError:
            raise ScenarioError(f"{file}: YAML scenarios need PyYAML installed") from None
        try:
            return yaml.safe_load(data)
        except yaml.YAMLError as error:
            raise ScenarioError(f"{file}: not valid YAML: {error}") from None
    try:
        return jsonio.loads(data)
    except jsonio.JsonError as error:
        raise ScenarioError(f"{file}: not valid JSON5: {error}") from None


def _scenario(file: Path, document: Any) -> Scenario:
    if not isinstance(document, dict):
        raise ScenarioError(f"the top level must be an object, got {_kind(document)}")
    unknown = set(document) - {"name", "bot", "defaults", "fixedTime", "world", "tests"}
    if unknown:
        raise ScenarioError(f"unknown top-level key {sorted(unknown)[0]!r}")
    defaults = document.get("defaults", {})
    if not isinstance(defaults, dict) or set(defaults) - {"user", "group"}:
        raise ScenarioError("'defaults' must be an object with 'user' and/or 'group'")
    user = _id(defaults.get("user", DEFAULT_USER), "defaults.user")
    group = defaults.get("group", DEFAULT_GROUP)
    group = None if group is None else _id(group, "defaults.group")
    bot = document.get("bot", {})
    if not isinstance(bot, dict) or set(bot) - {"command", "transport", "url", "cwd", "env"}:
        raise ScenarioError(
            "'bot' must be an object with 'command', 'transport', 'url', 'cwd' and/or 'env'"
        )
    fixed_time = document.get("fixedTime")
    if fixed_time is not None and (type(fixed_time) is not int or fixed_time < 0):
        raise ScenarioError(f"'fixedTime' must be a Unix time (an integer), got {fixed_time!r}")
    world = document.get("world")
    if world is not None and not isinstance(world, str):
        raise ScenarioError(f"'world' must be the path of a world file, got {world!r}")
    tests = document.get("tests")
    if not isinstance(tests, list) or not tests:
        raise ScenarioError("'tests' must be a non-empty list")
    parsed = tuple(_test(test, f"tests[{index}]", user, group) for index, test in enumerate(tests))
    name = document.get("name", file.stem)
    return Scenario(
        file, str(name), parsed, bot, fixed_time, None if world is None else file.parent / world
    )


def _test(test: Any, where: str, user: int, group: int | None) -> ScenarioTest:
    if not isinstance(test, dict) or not isinstance(test.get("steps"), list):
        raise ScenarioError(f"{where} must be an object with a 'steps' list")
    if set(test) - {"name", "steps"}:
        raise ScenarioError(f"{where}: unknown key {sorted(set(test) - {'name', 'steps'})[0]!r}")
    steps = tuple(
        _step(step, f"{where}.steps[{index}]", user, group)
        for index, step in enumerate(test["steps"])
    )
    return ScenarioTest(str(test.get("name", where)), steps)


def _step(step: Any, where: str, user: int, group: int | None) -> Step:
    if not isinstance(step, dict):
        raise ScenarioError(f"{where} must be an object, got {_kind(step)}")
    verbs = [key for key in step if key in VERBS]
    if len(verbs) != 1:
        found = f"{len(verbs)} ({', '.join(verbs)})" if verbs else "none"
        raise ScenarioError(f"{where} must have exactly one of {', '.join(VERBS)}; found {found}")
    verb = verbs[0]
    where = f"{where} ({verb})"
    options = {key: value for key, value in step.items() if key != verb}
    unknown = set(options) - OPTIONS[verb]
    if unknown:
        raise ScenarioError(f"{where}: unknown option {sorted(unknown)[0]!r}")
    argument = _CHECKS[verb](step[verb], options, where)
    if verb in ("say", "request") and "user" not in options:
        options["user"] = user
    if verb in ("say", "poke", "join", "leave", "request") and "group" not in options:
        options["group"] = group
    for key in ("user", "target"):
        if options.get(key) is not None:
            options[key] = _id(options[key], f"{where}: {key!r}")
    if options.get("group") is not None:
        options["group"] = _id(options["group"], f"{where}: 'group'")
    if verb in ("join", "leave") and options["group"] is None:
        raise ScenarioError(f"{where} needs a 'group' (or defaults.group)")
    if "within" in options:
        options["within"] = _seconds(options["within"], f"{where}: 'within'")
    return Step(where, verb, argument, options)


def _check_say(value: Any, _options: dict[str, Any], where: str) -> Any:
    if isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(s, dict) for s in value)
    ):
        return value
    raise ScenarioError(f"{where}: the message must be text or a list of segments")


def _check_expect(value: Any, _options: dict[str, Any], where: str) -> Match | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((kind, spec),) = value.items()
        if kind == "text" and isinstance(spec, str):
            return spec
        if kind == "regex" and isinstance(spec, str):
            try:
                return re.compile(spec)
            except re.error as error:
                raise ScenarioError(f"{where}: invalid regex {spec!r}: {error}") from None
        if kind == "segment" and isinstance(spec, dict) and isinstance(spec.get("type"), str):
            data = {key: value for key, value in spec.items() if key != "type"}
            return segment(spec["type"], **data)
        if kind == "any" and spec is True:
            return None
    raise ScenarioError(
        f"{where}: expected text, {{regex: ...}}, {{segment: {{type: ...}}}} or {{any: true}}, "
        f"got {value!r}"
    )


def _check_none(value: Any, _options: dict[str, Any], where: str) -> float | None:
    return None if value is True else _seconds(value, where)


def _check_event(value: Any, _options: dict[str, Any], where: str) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        return value
    raise ScenarioError(f"{where}: expected an object of event fields to match")


def _check_user(value: Any, _options: dict[str, Any], where: str) -> int:
    return _id(value, where)


def _check_request(value: Any, options: dict[str, Any], where: str) -> str:
    if value not in ("friend", "group", "invite"):
        raise ScenarioError(f"{where}: expected 'friend', 'group' or 'invite', got {value!r}")
    return str(value)


def _check_recall(value: Any, _options: dict[str, Any], where: str) -> int | str:
    if value == "last":
        return "last"
    return _id(value, where)


def _check_wait(value: Any, _options: dict[str, Any], where: str) -> float:
    return _seconds(value, where)


def _check_call(value: Any, options: dict[str, Any], where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ScenarioError(f"{where}: expected an action name")
    if not isinstance(options.get("params", {}), dict):
        raise ScenarioError(f"{where}: 'params' must be an object")
    return value


_CHECKS: dict[str, Callable[[Any, dict[str, Any], str], Any]] = {
    "say": _check_say,
    "expect": _check_expect,
    "expect_none": _check_none,
    "expect_event": _check_event,
    "join": _check_user,
    "leave": _check_user,
    "poke": _check_user,
    "request": _check_request,
    "recall": _check_recall,
    "wait": _check_wait,
    "call": _check_call,
}


def _id(value: Any, where: str) -> int:
    if type(value) is int and 0 < value < 2**63:
        return value
    raise ScenarioError(f"{where}: expected a positive integer id, got {value!r}")


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= MAX_WAIT:
        return float(value)
    raise ScenarioError(f"{where}: expected seconds between 0 and {MAX_WAIT:g}, got {value!r}")


def _kind(value: Any) -> str:
    return type(value).__name__


# --- running ------------------------------------------------------------------------------------


@dataclass
class Conversation:
    """What steps remember between them: the last message a simulated user sent."""

    chat: Chat
    last_message_id: int | None = None


async def run_step(conversation: Conversation, step: Step) -> None:
    """Run one step; a failed expectation raises ChatAssertionError (prefixed by the step)."""
    chat, o, arg = conversation.chat, step.options, step.argument
    if step.verb == "say":
        conversation.last_message_id = await chat.say(
            o["user"], arg, group=o["group"], nickname=o.get("nickname"), card=o.get("card")
        )
    elif step.verb == "expect":
        await chat.expect_reply(
            arg, group=o.get("group"), user=o.get("user"), within=o.get("within")
        )
    elif step.verb == "expect_none":
        await chat.expect_no_reply(arg)
    elif step.verb == "expect_event":
        fields: dict[str, Any] = arg

        def has_fields(event: dict[str, Any]) -> bool:
            return all(event.get(key) == value for key, value in fields.items())

        has_fields.__name__ = jsonio.dumps(fields).decode()
        await chat.expect_event(has_fields, o.get("within"))
    elif step.verb == "join":
        await chat.join(arg, o["group"], o.get("nickname"))
    elif step.verb == "leave":
        await chat.leave(arg, o["group"])
    elif step.verb == "poke":
        await chat.poke(arg, o["group"], o.get("target"))
    elif step.verb == "request":
        await _request(chat, arg, o)
    elif step.verb == "recall":
        message_id = conversation.last_message_id if arg == "last" else arg
        if message_id is None:
            chat.fail(f"{step.where}: nothing said yet to recall")
        await chat.recall(message_id)
    elif step.verb == "wait":
        await asyncio.sleep(arg)
    else:
        data = await chat.call(arg, **o.get("params", {}))
        if "result" in o and not _contains(data, o["result"]):
            chat.fail(f"{arg} answered {data!r}; expected it to contain {o['result']!r}")


async def _request(chat: Chat, kind: str, o: Mapping[str, Any]) -> None:
    comment = o.get("comment", "")
    if kind == "friend":
        await chat.friend_request(o["user"], comment=comment)
        return
    if o["group"] is None:
        chat.fail(f"a {kind} request needs a group")
    await chat.group_request(
        o["user"], o["group"], comment=comment, sub_type="add" if kind == "group" else "invite"
    )


def _contains(actual: Any, expected: Any) -> bool:
    """Whether `actual` has everything `expected` has: objects by their listed keys, lists
    item by item (every expected item contained in some actual item), the rest by equality."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and _contains(actual[key], value) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return isinstance(actual, list) and all(
            any(_contains(item, wanted) for item in actual) for wanted in expected
        )
    return bool(actual == expected)
