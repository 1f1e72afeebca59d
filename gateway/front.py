"""An entry's front of the shared dispatcher: its action policy and send rate, then the call.

The supervisor builds one `EntryFront` per running entry and hands it to that entry's adapter as
its `Caller`, so every transport of the entry (HTTP, WebSocket on either port, reverse
WebSocket, HTTP POST quick operations) goes through the same checks, and no entry's limits
touch another's. A refused call is 1403 naming the action and the entry; a send over the rate
waits in order (`gateway.rate_limit`), and beyond the queue fails with 1200 saying so.

Send buckets are kept per account (`self_id`), so one entry serving several accounts limits each
account separately; today that is the one backend's account.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Protocol

import structlog

from gateway.actions.catalog import Catalog
from gateway.actions.stream import STREAM_ACTIONS
from gateway.backends.base import Backend
from gateway.config import SendRateConfig
from gateway.dispatcher import Dispatcher, split_suffix
from gateway.metrics import Metrics
from gateway.policy import (
    QUICK_OPERATION,
    ActionPolicy,
    counts_as_send,
    quick_operation_actions,
)
from gateway.protocol import envelope
from gateway.protocol.envelope import BadRequest, Envelope
from gateway.protocol.stream import Send, mark_failed
from gateway.rate_limit import BucketClosed, SendQueueFull, TokenBucket

log = structlog.get_logger("gateway.front")

REFUSAL_LOG_INTERVAL = 1.0
"""Seconds between two `action_refused` log lines of one entry."""
DECISION_CACHE_SIZE = 4096
"""Action names whose decision is remembered (bounded: names come from clients)."""


class Caller(Protocol):
    """What an adapter calls actions through: the dispatcher itself, or an entry's front."""

    @property
    def backend(self) -> Backend: ...

    @property
    def catalog(self) -> Catalog: ...

    def call(
        self, action: str, params: Any = None, echo: Any = None, send: Send | None = None
    ) -> Awaitable[Envelope]: ...


@dataclass(frozen=True, slots=True)
class Decision:
    """What the front does with one action name (without its parameters)."""

    sent: str
    """The name as sent, without its suffix."""
    label: str
    """How answers name the call: the name as sent, and the canonical one if different."""
    canonical: str
    refusal: str | None
    send: bool
    """Takes a token from the send rate."""
    quick: bool
    """A quick operation: the actions it implies are checked per call."""


def describe_rules(
    policy: ActionPolicy, send_rate: SendRateConfig | None, waiting: int = 0
) -> dict[str, Any]:
    """An entry's rules as plain data: `policy` and `send_rate` (None: unlimited)."""
    rate = None
    if send_rate is not None:
        rate = {
            "per_minute": send_rate.per_minute,
            "burst": send_rate.burst,
            "max_waiting": send_rate.max_waiting,
            "waiting": waiting,
        }
    return {"policy": policy.describe(), "send_rate": rate}


class EntryFront:
    """One entry's view of the dispatcher: `call` checks the policy and the send rate first."""

    def __init__(
        self,
        entry: str,
        dispatcher: Dispatcher,
        policy: ActionPolicy,
        send_rate: SendRateConfig | None,
        metrics: Metrics,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.entry = entry
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.clock = clock
        """The monotonic clock of new send buckets (None: `time.monotonic`)."""
        self.policy = policy
        self.send_rate = send_rate
        self.buckets: dict[int, TokenBucket] = {}
        """Send buckets by account (`self_id`)."""
        self._decisions: dict[str, Decision | None] = {}
        self._last_refusal_log: float | None = None
        self._refused_since_log = 0
        self._warn_unmatched()

    @property
    def backend(self) -> Backend:
        return self.dispatcher.backend

    @property
    def catalog(self) -> Catalog:
        return self.dispatcher.catalog

    def configure(self, policy: ActionPolicy, send_rate: SendRateConfig | None) -> None:
        """Apply a reloaded entry's rules; connections and waiting sends stay (a waiting send
        keeps its place under a new rate, and goes at once when the limit is removed)."""
        self.policy = policy
        self.send_rate = send_rate
        self._decisions.clear()
        for bucket in self.buckets.values():
            if send_rate is None:
                bucket.release_all()
            else:
                bucket.reconfigure(send_rate.per_minute, send_rate.burst, send_rate.max_waiting)
        if send_rate is None:
            self.buckets.clear()
        self._warn_unmatched()

    def close(self) -> None:
        """Fail the sends still waiting (their entry is stopping) with 1200."""
        for bucket in self.buckets.values():
            bucket.close()

    def describe(self) -> dict[str, Any]:
        """Policy and send rate as plain data, with the sends waiting now (for the console)."""
        return describe_rules(self.policy, self.send_rate, self.waiting())

    def waiting(self) -> int:
        """Sends waiting for a token now, over every account."""
        return sum(bucket.waiting for bucket in self.buckets.values())

    def call(
        self, action: str, params: Any = None, echo: Any = None, send: Send | None = None
    ) -> Awaitable[Envelope]:
        """The dispatcher's `call`, behind this entry's checks. A name that needs none is handed
        over directly (no extra coroutine on the hot path)."""
        try:
            decision = self._decisions[action]
        except KeyError:
            decision = self._decide(action)
        if decision is None:  # nothing to check for this name
            return self.dispatcher.call(action, params, echo, send)
        return self._checked(decision, action, params, echo, send)

    def _decide(self, action: str) -> Decision | None:
        """The checks a name needs; None when it needs none (it goes straight through)."""
        name, _mode = split_suffix(action)
        entry = self.catalog.resolve(name)
        if entry is None and not getattr(self.backend, "passes_through", False):
            decision = None  # the dispatcher answers 1404
        else:
            canonical = entry.name if entry is not None else name
            refusal = self.policy.refusal(self._names(canonical), canonical)
            sends = self.send_rate is not None and counts_as_send(canonical)
            quick = canonical == QUICK_OPERATION
            if refusal is None and not sends and not quick:
                decision = None
            else:
                label = repr(name) if name == canonical else f"{name!r} ({canonical})"
                decision = Decision(name, label, canonical, refusal, sends, quick)
        if len(self._decisions) < DECISION_CACHE_SIZE:
            self._decisions[action] = decision
        return decision

    async def _checked(
        self, decision: Decision, action: str, params: Any, echo: Any, send: Send | None
    ) -> Envelope:
        if decision.refusal is not None:
            return self._refuse(decision, decision.refusal, decision.canonical, echo)
        sends = decision.send
        if decision.quick:
            for implied in quick_operation_actions(params):
                refusal = self.policy.refusal(self._names(implied), implied)
                if refusal is not None:
                    return self._refuse(decision, refusal, implied, echo)
                sends = sends or (self.send_rate is not None and counts_as_send(implied))
        if sends and not self._valid(decision.canonical, params):
            sends = False  # the dispatcher answers 1400 at once: a bad call never waits
        if sends:
            failure = await self._take_send_token(decision, echo)
            if failure is not None:
                return failure
        return await self.dispatcher.call(action, params, echo, send)

    def _names(self, canonical: str) -> tuple[str, ...]:
        """Every name of an action (a rule on an alias binds the canonical name too); a name
        the catalog does not know (a relay's pass-through action) is its only name."""
        entry = self.catalog.resolve(canonical)
        return (canonical, *entry.aliases) if entry is not None else (canonical,)

    def _valid(self, canonical: str, params: Any) -> bool:
        """Whether the dispatcher would accept these parameters (checked before a send
        waits; a send that gets its token at once is validated by the dispatcher only)."""
        bucket = self._bucket()
        entry = self.catalog.resolve(canonical)
        if bucket is None or entry is None or (bucket.waiting == 0 and bucket.tokens >= 1):
            return True
        try:
            entry.validate({} if params is None else params)
        except (BadRequest, TypeError):
            return False
        return True

    def _refuse(self, decision: Decision, reason: str, refused: str, echo: Any) -> Envelope:
        """The 1403 answer; `refused` is the action refused (a quick operation's own action,
        or one it would run)."""
        self.metrics.policy_refusals.labels(self.entry).inc()
        self.dispatcher.record(decision.sent, envelope.Retcode.FORBIDDEN)
        label = decision.label
        if refused != decision.canonical:
            label += f" (its operation runs {refused})"
        # At most one line a second per entry: a bot retrying a refused call in a loop must not
        # flood the log (the metric counts every refusal).
        self._refused_since_log += 1
        now = time.monotonic()
        last = self._last_refusal_log
        if last is None or now - last >= REFUSAL_LOG_INTERVAL:
            log.warning(
                "action_refused",
                entry=self.entry,
                action=decision.sent,
                refused=refused,
                reason=reason,
                refused_since_last_line=self._refused_since_log,
            )
            self._last_refusal_log = now
            self._refused_since_log = 0
        message = f"action {label} is not allowed on entry {self.entry!r}: {reason}"
        answer = envelope.failed(envelope.Retcode.FORBIDDEN, message, echo)
        return mark_failed(answer) if refused in STREAM_ACTIONS else answer

    async def _take_send_token(self, decision: Decision, echo: Any) -> Envelope | None:
        """Wait for a send token; None once taken, else the 1200 answer."""
        label = decision.label
        bucket = self._bucket()
        if bucket is None or bucket.try_take():
            return None
        try:
            if bucket.waiting < bucket.max_waiting:  # acquire() will queue, not refuse
                self.metrics.send_rate_waits.labels(self.entry).inc()
            await bucket.acquire()
        except SendQueueFull:
            self.metrics.send_rate_refusals.labels(self.entry).inc()
            self.dispatcher.record(decision.sent, envelope.Retcode.FAILED)
            rate = self.send_rate
            assert rate is not None
            return envelope.failed(
                envelope.Retcode.FAILED,
                f"action {label}: entry {self.entry!r} is over its send rate "
                f"({rate.per_minute:g}/min, burst {rate.burst}) and {bucket.waiting} sends "
                f"already wait (sendRate.maxWaiting); this one was not sent",
                echo,
            )
        except BucketClosed:
            self.dispatcher.record(decision.sent, envelope.Retcode.FAILED)
            return envelope.failed(
                envelope.Retcode.FAILED,
                f"action {label}: entry {self.entry!r} stopped while this send waited for its "
                "send rate; it was not sent",
                echo,
            )
        return None

    def _bucket(self) -> TokenBucket | None:
        rate = self.send_rate
        if rate is None:
            return None
        account = self.backend.self_id
        bucket = self.buckets.get(account)
        if bucket is None:
            extra = {} if self.clock is None else {"clock": self.clock}
            bucket = TokenBucket(rate.per_minute, rate.burst, rate.max_waiting, **extra)
            self.buckets[account] = bucket
        return bucket

    def _warn_unmatched(self) -> None:
        """Log each rule that matches no action the catalog knows (a typo allows or denies
        nothing; a relay's pass-through actions are not in the catalog, so it is no error)."""
        names = [name for action in self.catalog for name in (action.name, *action.aliases)]
        for pattern in self.policy.patterns():
            if not any(fnmatchcase(name, pattern) for name in names):
                log.warning("action_rule_matches_nothing", entry=self.entry, pattern=pattern)
