"""`Chat`: simulated users talk to the bot, and the test asserts on what the bot did.

The bot's messages are read in order: `expect_reply` takes the next message the bot sent since
the last one taken, waiting for it up to a bounded time, and fails if it does not match. Every
failure is a `ChatAssertionError` whose text is the conversation so far, as a chat log, with the
line the failure is about marked `-->`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from gateway.testing import transcript
from gateway.testing.harness import SandboxHarness

Segments = list[dict[str, Any]]
Match = str | re.Pattern[str] | Callable[[Segments], bool]
"""What a reply must be: its exact text, a regex searched in its text, or a predicate on its
segments (`[{"type": "text", "data": {"text": "pong"}}, ...]`)."""

DEFAULT_USER = 20001
"""Alice, a friend of the bot and the owner of group 30001 in the built-in world."""


class ChatAssertionError(AssertionError):
    """An expectation failed; the text ends with the chat log."""


@dataclass(frozen=True)
class Reply:
    """A message the bot sent."""

    event: dict[str, Any]

    @property
    def segments(self) -> Segments:
        message = self.event.get("message")
        return message if isinstance(message, list) else []

    @property
    def text(self) -> str:
        """The text segments joined (what a string match compares)."""
        return "".join(
            str(segment.get("data", {}).get("text", ""))
            for segment in self.segments
            if segment.get("type") == "text"
        )

    @property
    def message_id(self) -> int:
        return int(self.event.get("message_id", 0))


def describe(match: Match) -> str:
    if isinstance(match, str):
        return repr(match)
    if isinstance(match, re.Pattern):
        return f"matching /{match.pattern}/"
    return f"satisfying {getattr(match, '__name__', 'the predicate')}"


def matches(match: Match, reply: Reply) -> bool:
    if isinstance(match, str):
        return reply.text == match
    if isinstance(match, re.Pattern):
        return match.search(reply.text) is not None
    return bool(match(reply.segments))


def segment(kind: str, **data: Any) -> Callable[[Segments], bool]:
    """A predicate: the reply has a segment of this type whose data has these values, such as
    `segment("image")` or `segment("at", qq="20001")` (values compared as text)."""

    def has(segments: Segments) -> bool:
        return any(
            s.get("type") == kind
            and all(str(s.get("data", {}).get(k)) == str(v) for k, v in data.items())
            for s in segments
        )

    has.__name__ = f"segment({kind!r}{''.join(f', {k}={v!r}' for k, v in data.items())})"
    return has


class Chat:
    """Simulated users on a running `SandboxHarness`, and expectations on the bot."""

    def __init__(
        self,
        harness: SandboxHarness,
        *,
        reply_timeout: float = 5.0,
        quiet_period: float = 0.5,
        diagnostics: Callable[[], str] = lambda: "",
    ) -> None:
        self.harness = harness
        self.reply_timeout = reply_timeout
        """Seconds `expect_reply` waits by default."""
        self.quiet_period = quiet_period
        """Seconds `expect_no_reply` watches by default."""
        self._diagnostics = diagnostics
        self._cursor = 0
        self._log_start = 0
        """Index of the first event a failure's chat log shows."""
        self._event_cursor = 0
        """Index of the first event `expect_event` looks at."""
        """Index into the recorded events: the bot's messages before it are taken."""
        self._place: tuple[int | None, int | None] = (None, None)
        """(group, user) of the last `say`: where a reply is expected by default."""

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event published so far (the bot's own messages as `message_sent`)."""
        return self.harness.recorded.events

    # --- simulated users ---------------------------------------------------------------------

    async def say(
        self,
        user: int = DEFAULT_USER,
        message: str | Segments = "",
        *,
        group: int | None = None,
        nickname: str | None = None,
        card: str | None = None,
    ) -> int:
        """`user` sends `message` (CQ text or segments) to the bot, in `group` or privately;
        returns its message_id once the event is published."""
        sender = {k: v for k, v in (("nickname", nickname), ("card", card)) if v is not None}
        params: dict[str, Any] = {
            "message_type": "group" if group is not None else "private",
            "user_id": user,
            "message": message,
            "sender": sender,
        }
        if group is not None:
            params["group_id"] = group
        data = await self.call("sandbox_receive_message", **params)
        self._place = (group, None if group is not None else user)
        return int(data["message_id"])

    async def join(self, user: int, group: int, nickname: str | None = None) -> None:
        """`user` joins `group` (a `group_increase` notice)."""
        await self.call("sandbox_join_group", user_id=user, group_id=group, nickname=nickname)

    async def leave(self, user: int, group: int) -> None:
        """`user` leaves `group` (a `group_decrease` notice)."""
        await self.call("sandbox_leave_group", user_id=user, group_id=group)

    async def poke(self, user: int, group: int | None = None, target: int | None = None) -> None:
        """`user` pokes `target` (the bot when None), in `group` or privately."""
        await self.call("sandbox_poke", user_id=user, group_id=group, target_id=target)

    async def recall(self, message_id: int) -> None:
        """The sender recalls their message (a `friend_recall`/`group_recall` notice)."""
        await self.call("sandbox_recall_message", message_id=message_id)

    async def friend_request(
        self, user: int, comment: str = "", nickname: str | None = None
    ) -> dict[str, Any]:
        """`user` asks to be the bot's friend; returns the `request` event (with its `flag`)."""
        count = len(self.events)
        await self.call("sandbox_friend_request", user_id=user, comment=comment, nickname=nickname)
        return self._published_since(count, "request")

    async def group_request(
        self, user: int, group: int, comment: str = "", sub_type: str = "add"
    ) -> dict[str, Any]:
        """`user` asks to join `group` (`add`) or invites the bot (`invite`); returns the
        `request` event."""
        count = len(self.events)
        await self.call(
            "sandbox_group_request",
            user_id=user,
            group_id=group,
            comment=comment,
            sub_type=sub_type,
        )
        return self._published_since(count, "request")

    async def call(self, action: str, **params: Any) -> Any:
        """Run any action on the sandbox; its `data`. A failed call is a ChatAssertionError."""
        __tracebackhide__ = True
        params = {k: v for k, v in params.items() if v is not None}
        self._event_cursor = len(self.events)
        answer = await self.harness.call(action, **params)
        await self.harness.settle()
        if answer["retcode"] != 0:
            self.fail(f"{action} failed: retcode {answer['retcode']}: {answer.get('message')}")
        return answer.get("data")

    # --- expectations ------------------------------------------------------------------------

    async def expect_reply(
        self,
        match: Match | None = None,
        *,
        group: int | None = None,
        user: int | None = None,
        within: float | None = None,
    ) -> Reply:
        """The next message the bot sends, which must match `match` (any when None) and go
        to `group` or privately to `user` (by default where the last `say` happened). Waits up
        to `within` seconds (`reply_timeout` by default)."""
        __tracebackhide__ = True
        seconds = self.reply_timeout if within is None else within
        expected = f"a reply {describe(match)}" if match is not None else "a reply"
        wanted = (group, user) if group is not None or user is not None else self._place
        index = await self._next_bot_message(seconds)
        if index is None:
            self.fail(f"expected {expected} within {seconds:g}s; the bot sent nothing")
        self._cursor = index + 1
        reply = Reply(self.events[index])
        place = (reply.event.get("group_id"), None)
        if reply.event.get("message_type") == "private":
            place = (None, reply.event.get("target_id") or reply.event.get("user_id"))
        if wanted != (None, None) and place != wanted:
            self.fail(
                f"expected {expected} in {_place(wanted)}; the bot replied in "
                f"{_place(place)}: {reply.event.get('raw_message')!r}",
                marker=index,
            )
        if match is not None and not matches(match, reply):
            self.fail(f"expected {expected}; the bot replied {reply.text!r}", marker=index)
        return reply

    async def expect_no_reply(self, within: float | None = None) -> None:
        """The bot sends nothing during `within` seconds (`quiet_period` by default)."""
        __tracebackhide__ = True
        seconds = self.quiet_period if within is None else within
        index = await self._next_bot_message(seconds)
        if index is not None:
            self._cursor = index + 1
            self.fail(
                f"expected no reply within {seconds:g}s; the bot replied "
                f"{Reply(self.events[index]).text!r}",
                marker=index,
            )

    async def expect_event(
        self, predicate: Callable[[dict[str, Any]], bool], within: float | None = None
    ) -> dict[str, Any]:
        """The first event for which `predicate` is true (any post type), such as the
        `friend_add` notice after the bot accepted a request: from the test's last action on
        (a `say`, `join`, ... or `call`), or after the event the last `expect_event` took,
        so an event the bot caused before this call is seen too."""
        __tracebackhide__ = True
        seconds = self.reply_timeout if within is None else within
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        scanned = self._event_cursor
        while True:
            for index in range(scanned, len(self.events)):
                if predicate(self.events[index]):
                    self._event_cursor = index + 1
                    return self.events[index]
            scanned = len(self.events)
            if not await self.harness.recorded.wait_beyond(scanned, deadline):
                self.fail(
                    f"expected an event {getattr(predicate, '__name__', '')} within "
                    f"{seconds:g}s; none came".replace("  ", " ")
                )

    def history(self, group: int | None = None, user: int | None = None) -> list[str]:
        """The chat log so far as lines, only those of `group` or of the private chat with
        `user` when given."""
        lines = []
        for event in self.events:
            # A temporary session's private messages carry the group too: they are the user's.
            in_group = event.get("group_id") if event.get("message_type") != "private" else None
            if group is not None and in_group != group:
                continue
            if user is not None and (
                in_group or user not in (event.get("user_id"), event.get("target_id"))
            ):
                continue
            text = transcript.line(event)
            if text is not None:
                lines.append(text)
        return lines

    def log(self, marker: int | None = None) -> str:
        """The chat log since the start (or since `new_test`); `marker` indexes `events`."""
        start = self._log_start
        return transcript.render(self.events[start:], None if marker is None else marker - start)

    def new_test(self) -> None:
        """Go on with a new test on the same sandbox and bot: the bot's messages so far count
        as taken (a failed test may leave some), and failures show the chat log from here."""
        self._cursor = self._log_start = self._event_cursor = len(self.events)
        self._place = (None, None)

    def fail(self, message: str, marker: int | None = None) -> NoReturn:
        """Raise a ChatAssertionError: `message`, then the chat log (and the diagnostics)."""
        __tracebackhide__ = True  # pytest shows the test line, not this helper
        text = f"{message}\n\nconversation so far:\n{self.log(marker)}"
        extra = self._diagnostics()
        if extra:
            text += f"\n\n{extra}"
        raise ChatAssertionError(text)

    async def _next_bot_message(self, seconds: float) -> int | None:
        """Index of the first `message_sent` at or after the cursor, waiting up to `seconds`."""
        deadline = asyncio.get_running_loop().time() + seconds
        scanned = self._cursor
        while True:
            events = self.events
            for index in range(scanned, len(events)):
                if events[index].get("post_type") == "message_sent":
                    return index
            scanned = len(events)
            if not await self.harness.recorded.wait_beyond(scanned, deadline):
                return None

    def _published_since(self, count: int, post_type: str) -> dict[str, Any]:
        for event in self.events[count:]:
            if event.get("post_type") == post_type:
                return event
        return {}


def _place(place: Sequence[int | None]) -> str:
    group, user = place
    return f"group {group}" if group is not None else f"the private chat with {user}"
