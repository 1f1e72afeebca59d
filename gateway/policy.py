"""Which actions an entry's bots may call (`actions: {allow, deny}`), and which calls are sends.

Several bots share one account, each behind its own entry; the policy keeps one bot from doing
what only the operator should. Rules apply to every name of the called action (its canonical
catalog name and its aliases, so a rule on one binds them all), without the
`_async`/`_rate_limited` suffix, so neither an alias nor a suffix gets around them:

1. a `deny` glob matching either name refuses the call;
2. a process-level action (`PROCESS_ACTIONS`: it stops or restarts the gateway or its backend,
   or deletes files every bot shares) is refused unless `allow` writes its name out literally: a
   glob such as `*` or `bot_*` never grants one;
3. when `allow` is given, one of its globs must match either name (`allow: []` allows nothing).

Globs are `fnmatch` patterns matched case-sensitively, as action names are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

PROCESS_ACTIONS = frozenset({"bot_exit", "set_restart", "clean_cache", "clean_stream_temp_file"})
"""Actions that act on the process for every bot: `bot_exit` stops the gateway, `set_restart`
restarts the backend (every bot's calls fail meanwhile), `clean_cache` deletes the media cache
and `clean_stream_temp_file` every bot's uploads in progress."""

SEND_PREFIX = "send_"
SENDS_WITHOUT_PREFIX = frozenset(
    {
        "forward_friend_single_msg",
        "forward_group_single_msg",
        "upload_group_file",
        "upload_private_file",
    }
)
"""Actions outside the `send_*` family that also post into a chat as the account."""

QUICK_OPERATION = ".handle_quick_operation"

PATTERN = re.compile(r"[A-Za-z0-9_.*?!\[\]-]+")
GLOB_CHARS = frozenset("*?[")
CALL_SUFFIXES = ("_async", "_rate_limited")
"""Suffixes the dispatcher strips before resolving a name (see `gateway.dispatcher`)."""


def check_pattern(pattern: str) -> None:
    """Raise ValueError saying what is wrong with an `allow`/`deny` glob."""
    if not pattern:
        raise ValueError("an empty pattern matches no action")
    if not PATTERN.fullmatch(pattern):
        raise ValueError(
            f"{pattern!r} is not an action name or glob (letters, digits, `_ . -`, and the "
            "glob characters `* ? [ ] !`)"
        )
    if pattern.count("[") != pattern.count("]"):
        raise ValueError(f"{pattern!r}: unbalanced `[` `]`")
    for suffix in CALL_SUFFIXES:
        if pattern.endswith(suffix) and pattern != suffix:
            raise ValueError(
                f"{pattern!r}: rules match the action without its {suffix} suffix (a suffixed "
                f"call is checked as the action itself); write {pattern.removesuffix(suffix)!r}"
            )


def is_literal(pattern: str) -> bool:
    """True for a pattern without glob characters: it names one action."""
    return GLOB_CHARS.isdisjoint(pattern)


def counts_as_send(action: str) -> bool:
    """True for an action (canonical name) that posts into a chat as the account: the `send_*`
    family (messages, forwards, likes, pokes, ark shares, files, packets) and
    `SENDS_WITHOUT_PREFIX`. These take a token from the entry's send rate."""
    return action.startswith(SEND_PREFIX) or action in SENDS_WITHOUT_PREFIX


def quick_operation_actions(params: Any) -> tuple[str, ...]:
    """The actions a `.handle_quick_operation` call would run, by its `operation` fields
    (OneBot 11's quick operation set): `reply` sends, `delete` recalls, `kick`/`ban` act on the
    sender, `approve` answers a request. A policy checks each, as if called directly."""
    if not isinstance(params, Mapping):
        return ()
    context, operation = params.get("context"), params.get("operation")
    if not isinstance(context, Mapping) or not isinstance(operation, Mapping):
        return ()
    implied: list[str] = []
    if context.get("post_type") == "request":
        if "approve" in operation:
            friend = context.get("request_type") == "friend"
            implied.append("set_friend_add_request" if friend else "set_group_add_request")
        return tuple(implied)
    if operation.get("reply") not in (None, "", []):
        group = context.get("message_type") == "group"
        implied.append("send_group_msg" if group else "send_private_msg")
    for field, action in (
        ("delete", "delete_msg"),
        ("kick", "set_group_kick"),
        ("ban", "set_group_ban"),
    ):
        if operation.get(field):
            implied.append(action)
    return tuple(implied)


@dataclass(frozen=True, slots=True)
class ActionPolicy:
    """One entry's `actions` rules (see the module docstring for their order)."""

    allow: tuple[str, ...] | None = None
    """Globs of allowed actions; None allows every action that is not process-level."""
    deny: tuple[str, ...] = ()
    """Globs of refused actions; they win over `allow`."""

    def refusal(self, names: Iterable[str], canonical: str) -> str | None:
        """Why a call may not run (None when it may). `names` are every name of the action
        (canonical and aliases), without suffix; `canonical` is the catalog's name."""
        names = tuple(names)
        for pattern in self.deny:
            if any(fnmatchcase(name, pattern) for name in names):
                return f"denied by actions.deny {pattern!r}"
        allow = self.allow
        if canonical in PROCESS_ACTIONS:
            if allow is None or not any(name in allow for name in names):
                return (
                    "it acts on the whole gateway, so it needs its name written in "
                    "actions.allow (a glob does not grant it)"
                )
            return None
        if allow is not None and not any(
            fnmatchcase(name, pattern) for pattern in allow for name in names
        ):
            return "not matched by actions.allow" if allow else "actions.allow is empty"
        return None

    def patterns(self) -> tuple[str, ...]:
        """Every glob of both lists."""
        return (*(self.allow or ()), *self.deny)

    def describe(self) -> dict[str, Any]:
        """The rules as plain data (the console shows them)."""
        return {"allow": None if self.allow is None else list(self.allow), "deny": list(self.deny)}
