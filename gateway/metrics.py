"""Prometheus metrics: counters the dispatcher and listeners feed, and live state read at scrape.

Each Supervisor owns its own registry, so several gateways in one process (tests) never clash.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

if TYPE_CHECKING:
    from gateway.accounts import Account
    from gateway.dispatcher import Answered
    from gateway.supervisor import Supervisor


class Metrics:
    """The gateway's metrics registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.actions = ActionStats()
        self.registry.register(self.actions)
        self.auth_failures = Counter(
            "onebot_auth_failures",
            "Requests refused for their token.",
            ["server"],
            registry=self.registry,
        )
        self.policy_refusals = Counter(
            "onebot_policy_refusals",
            "Calls refused by their entry's action policy (1403).",
            ["entry"],
            registry=self.registry,
        )
        self.send_rate_waits = Counter(
            "onebot_send_rate_waits",
            "Sends that waited for a token of their entry's send rate.",
            ["entry"],
            registry=self.registry,
        )
        self.send_rate_refusals = Counter(
            "onebot_send_rate_refusals",
            "Sends refused because their entry's send queue was full (1200).",
            ["entry"],
            registry=self.registry,
        )

    @property
    def answered(self) -> dict[int, int]:
        """Actions answered per retcode since start (for the console's live counters)."""
        totals: dict[int, int] = {}
        for (_action, retcode), count in self.actions.requests().items():
            totals[retcode] = totals.get(retcode, 0) + count
        return totals

    def answered_per_account(self) -> dict[str, dict[str, int]]:
        """Actions answered per retcode since start, per account (by its `self_id` label), for
        the console's per-account counters."""
        self.actions.flush()
        return {
            self_id: _per_retcode((key, int(sum(row[:-1]))) for key, row in rows.items())
            for self_id, rows in self.actions.rows.items()
        }

    def watch(self, supervisor: Supervisor) -> None:
        """Count the supervisor's answered actions; report its live state (subscribers, queues,
        clients) at every scrape."""
        self.actions.flush = lambda: _flush_accounts(supervisor)
        self.registry.register(_LiveState(supervisor))
        self.registry.register(_ClusterState(supervisor, self.actions))


def _per_retcode(counts: Iterable[tuple[tuple[str, int], int]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for (_action, retcode), count in counts:
        totals[str(retcode)] = totals.get(str(retcode), 0) + count
    return totals


def _flush_accounts(supervisor: Supervisor) -> None:
    for account in supervisor.accounts:
        account.dispatcher.flush_answered()


class ActionStats:
    """`onebot_requests_total{action, retcode, self_id}` and the
    `onebot_action_seconds{action, self_id}` histogram.

    Kept as plain counters, fed in batches by the dispatchers and rendered at scrape time:
    prometheus_client's own Counter and Histogram take a lock per increment (four per answered
    action), a measured share of a WebSocket call. Everything here runs on the event loop
    thread, so no lock is needed. Each account's dispatcher reports through its own observer
    (`observer(account)`), which labels a whole batch with the account's QQ number: the
    per-answer work stays one lookup.
    """

    def __init__(self, buckets: tuple[float, ...] = Histogram.DEFAULT_BUCKETS) -> None:
        self.bounds = tuple(b for b in buckets if b != float("inf"))
        self._labels = (*(repr(float(b)) for b in self.bounds), "+Inf")
        self.rows: dict[str, dict[tuple[str, int], list[float]]] = {}
        """Per `self_id` label, per (action, retcode): answers per latency bucket (the last is
        +Inf), then the sum of their seconds. One row per answer kind keeps the per-answer work
        to one lookup."""
        self.flush: Callable[[], None] = lambda: None
        """Makes the dispatchers hand over answers they have not reported yet (set by
        `watch`)."""

    def observer(self, account: Account) -> Callable[[list[Answered]], None]:
        """The observer of `account`'s dispatcher: its batches are labelled with the account's
        QQ number as it is when the batch arrives (a relay learns it from its upstream; "0"
        until then)."""

        def observe(answered: list[Answered]) -> None:
            self.observe(answered, str(account.self_id))

        return observe

    def observe(self, answered: Iterable[Answered], self_id: str = "0") -> None:
        """Count answered actions `(action, retcode, seconds)` of the account `self_id`;
        unknown names (1404) share one label, to bound cardinality."""
        rows = self.rows.get(self_id)
        if rows is None:
            rows = self.rows[self_id] = {}
        bounds = self.bounds
        for action, retcode, seconds in answered:
            key = ("(unknown)", 1404) if retcode == 1404 else (action, retcode)
            row = rows.get(key)
            if row is None:
                row = rows[key] = [0.0] * (len(bounds) + 2)
            row[bisect_left(bounds, seconds)] += 1
            row[-1] += seconds

    def latency(self, self_id: int) -> tuple[list[float], float] | None:
        """The account `self_id`'s answers per latency bucket (cumulative, the last is +Inf)
        and the sum of their seconds, every action merged; None before its first answer."""
        rows = self.rows.get(str(self_id))
        if not rows:
            return None
        merged = [0.0] * (len(self.bounds) + 2)
        for row in rows.values():
            for index, value in enumerate(row):
                merged[index] += value
        return list(accumulate(merged[:-1])), merged[-1]

    def requests(self, self_id: int | None = None) -> dict[tuple[str, int], int]:
        """Answers so far per (action, retcode): of every account, or of the account
        `self_id`."""
        self.flush()
        totals: dict[tuple[str, int], int] = {}
        for label, rows in self.rows.items():
            if self_id is not None and label != str(self_id):
                continue
            for key, row in rows.items():
                totals[key] = totals.get(key, 0) + int(sum(row[:-1]))
        return totals

    def collect(self) -> Iterator[Metric]:
        self.flush()
        requests = CounterMetricFamily(
            "onebot_requests",
            "Actions answered, by action, retcode and account (self_id).",
            labels=["action", "retcode", "self_id"],
        )
        latency = HistogramMetricFamily(
            "onebot_action_seconds",
            "Time to answer an action, by action and account (self_id).",
            labels=["action", "self_id"],
        )
        for self_id, rows in sorted(self.rows.items()):
            for (action, retcode), row in sorted(rows.items()):
                requests.add_metric([action, str(retcode), self_id], int(sum(row[:-1])))
            per_action: dict[str, list[float]] = {}
            for (action, _retcode), row in rows.items():
                merged = per_action.setdefault(action, [0.0] * len(row))
                for index, value in enumerate(row):
                    merged[index] += value
            for action, row in sorted(per_action.items()):
                cumulative = list(accumulate(row[:-1]))
                buckets = list(zip(self._labels, cumulative, strict=True))
                latency.add_metric([action, self_id], buckets, row[-1])
        yield requests
        yield latency


class _LiveState:
    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def collect(self) -> Iterator[Metric]:
        bus = self.supervisor.bus
        subscribers = GaugeMetricFamily(
            "onebot_subscribers", "Event subscribers per entry.", labels=["entry"]
        )
        depth = GaugeMetricFamily(
            "onebot_queue_depth", "Events waiting per entry.", labels=["entry"]
        )
        dropped = CounterMetricFamily(
            "onebot_dropped_events", "Events dropped per entry.", labels=["entry"]
        )
        for name, (count, waiting, drops) in sorted(bus.entry_stats().items()):
            subscribers.add_metric([name], count)
            depth.add_metric([name], waiting)
            dropped.add_metric([name], drops)
        yield from (subscribers, depth, dropped)
        online = GaugeMetricFamily(
            "onebot_account_online",
            "1 when the account's backend is online (a relay: connected to its upstream).",
            labels=["account", "self_id"],
        )
        for account in self.supervisor.accounts:
            online.add_metric([account.name, str(account.self_id)], int(account.online()))
        yield online
        yield CounterMetricFamily(
            "onebot_events_published", "Events published on the bus.", value=bus.published
        )
        rejected = CounterMetricFamily(
            "onebot_events_rejected",
            "Events and upstream frames refused instead of delivered (unencodable, no CQ form, "
            "undecodable upstream frames, ...), by reason.",
            labels=["reason"],
        )
        for reason, count in sorted(bus.rejected.items()):
            rejected.add_metric([reason], count)
        yield rejected
        yield from self._clients()

    def _clients(self) -> Iterator[Metric]:
        reconnects = CounterMetricFamily(
            "onebot_reconnects", "Reverse WebSocket reconnects.", labels=["client"]
        )
        posts = CounterMetricFamily(
            "onebot_http_post", "HTTP POST outcomes.", labels=["client", "outcome"]
        )
        for name, adapter in self.supervisor.adapters.items():
            attempts: Any = getattr(adapter, "reconnects", None)
            if attempts is not None:
                reconnects.add_metric([name], attempts)
            for outcome, count in getattr(adapter, "outcomes", {}).items():
                posts.add_metric([name, outcome], count)
        yield from (reconnects, posts)
        waiting = GaugeMetricFamily(
            "onebot_send_rate_waiting",
            "Sends waiting now for a token of their entry's send rate.",
            labels=["entry"],
        )
        for name, front in sorted(self.supervisor.fronts.items()):
            if front.send_rate is not None:
                waiting.add_metric([name], front.waiting())
        yield waiting


class _ClusterState:
    """`onebot_cluster_*`: a cluster node's link, publisher, consumers, remote calls and the
    directory, read from their own counters at scrape time (nothing added to the hot paths).
    Yields nothing on a gateway without `cluster`."""

    def __init__(self, supervisor: Supervisor, actions: ActionStats) -> None:
        self.supervisor = supervisor
        self.actions = actions

    def collect(self) -> Iterator[Metric]:
        node = self.supervisor.cluster
        if node is None:
            return
        link, publisher = node.link, node.publisher
        yield GaugeMetricFamily(
            "onebot_cluster_connected",
            "1 while the link to NATS is up.",
            value=int(link.connected),
        )
        yield CounterMetricFamily(
            "onebot_cluster_reconnects",
            "Times the link to NATS came back after a loss (the first connection is not one).",
            value=link.reconnects,
        )
        yield GaugeMetricFamily(
            "onebot_cluster_publish_held",
            "Events of this node's accounts waiting to be stored in the stream (the publish lag: "
            "grows while NATS is away, bounded by cluster.bufferSize).",
            value=publisher.held,
        )
        yield CounterMetricFamily(
            "onebot_cluster_published",
            "Events the stream acknowledged (duplicates included).",
            value=publisher.published,
        )
        yield CounterMetricFamily(
            "onebot_cluster_publish_duplicates",
            "Acknowledgements saying the stream already had the event (a resent one, dropped).",
            value=publisher.duplicates,
        )
        yield CounterMetricFamily(
            "onebot_cluster_publish_retried",
            "Events sent again after their batch was not acknowledged.",
            value=publisher.retried,
        )
        yield CounterMetricFamily(
            "onebot_cluster_publish_dropped",
            "Events dropped because more than cluster.bufferSize waited (NATS away too long).",
            value=publisher.dropped,
        )
        yield from self._consumers(node.consumers)
        yield from self._remote_calls()
        yield from self._directory(node.directory.nodes())

    def _consumers(self, consumers: dict[str, Any]) -> Iterator[Metric]:
        in_flight = GaugeMetricFamily(
            "onebot_cluster_consume_in_flight",
            "Events delivered to an entry and not yet written to its bots (the consume lag; "
            "what can arrive twice after a crash), per remote account (self_id).",
            labels=["entry", "self_id"],
        )
        behind = GaugeMetricFamily(
            "onebot_cluster_consume_behind",
            "Events of the account in the stream not yet delivered to the entry, as of the last "
            "one delivered (the consume lag in events).",
            labels=["entry", "self_id"],
        )
        families = {
            "received": CounterMetricFamily(
                "onebot_cluster_consumed",
                "Events delivered by the entry's durable consumer (redeliveries included).",
                labels=["entry", "self_id"],
            ),
            "acked": CounterMetricFamily(
                "onebot_cluster_consume_acked",
                "Events acknowledged to the stream (written to the bots, or offered).",
                labels=["entry", "self_id"],
            ),
            "redelivered": CounterMetricFamily(
                "onebot_cluster_consume_redelivered",
                "Deliveries the stream marked as a repeat (not acknowledged in time).",
                labels=["entry", "self_id"],
            ),
        }
        for _name, consumer in sorted(consumers.items()):
            # A node runs one consumer per entry and remote account (gateway.cluster.node).
            labels = [consumer.entry, ",".join(map(str, sorted(consumer.accounts)))]
            in_flight.add_metric(labels, consumer.in_flight)
            behind.add_metric(labels, consumer.behind)
            for attribute, family in families.items():
                family.add_metric(labels, getattr(consumer, attribute))
        yield in_flight
        yield behind
        yield from families.values()

    def _remote_calls(self) -> Iterator[Metric]:
        latency = HistogramMetricFamily(
            "onebot_cluster_request_seconds",
            "Time a call for an account hosted on another node took, as its caller saw it "
            "(request, the host's answer, reply), by account (self_id).",
            labels=["self_id"],
        )
        self.actions.flush()
        labels = (*(repr(float(b)) for b in self.actions.bounds), "+Inf")
        for account in self.supervisor.accounts:
            if not account.remote:
                continue
            seen = self.actions.latency(account.self_id)
            if seen is not None:
                buckets, total = seen
                latency.add_metric(
                    [str(account.self_id)], list(zip(labels, buckets, strict=True)), total
                )
        yield latency

    def _directory(self, nodes: dict[str, list[dict[str, Any]]]) -> Iterator[Metric]:
        accounts = GaugeMetricFamily(
            "onebot_cluster_directory_accounts",
            "Accounts in the cluster's directory, by hosting node and state (online: its node "
            "says so and refreshed it within cluster.directoryTtl).",
            labels=["node", "state"],
        )
        for node, entries in sorted(nodes.items()):
            online = sum(1 for entry in entries if entry["online"])
            accounts.add_metric([node, "online"], online)
            accounts.add_metric([node, "offline"], len(entries) - online)
        yield accounts
