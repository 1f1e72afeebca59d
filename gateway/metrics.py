"""Prometheus metrics: counters the dispatcher and listeners feed, and live state read at scrape.

Each Supervisor owns its own registry, so several gateways in one process (tests) never clash.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from gateway.supervisor import Supervisor


class Metrics:
    """The gateway's metrics registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "onebot_requests",
            "Actions answered, by action and retcode.",
            ["action", "retcode"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "onebot_action_seconds", "Time to answer an action.", ["action"], registry=self.registry
        )
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}
        self.answered: dict[int, int] = {}
        """Actions answered per retcode since start (for the console's live counters)."""
        self.auth_failures = Counter(
            "onebot_auth_failures",
            "Requests refused for their token.",
            ["server"],
            registry=self.registry,
        )

    def observe_action(self, action: str, retcode: int, seconds: float) -> None:
        """Count one answered action (unknown names are one label, to bound cardinality)."""
        label = "(unknown)" if retcode == 1404 else action
        # labels() takes a lock and builds a key on every call; the children are cached.
        children = self._children.get((label, retcode))
        if children is None:
            children = (self.requests.labels(label, str(retcode)), self.latency.labels(label))
            self._children[(label, retcode)] = children
        children[0].inc()
        children[1].observe(seconds)
        self.answered[retcode] = self.answered.get(retcode, 0) + 1

    def watch(self, supervisor: Supervisor) -> None:
        """Report the supervisor's live state (subscribers, queues, clients) at every scrape."""
        self.registry.register(_LiveState(supervisor))


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
        yield CounterMetricFamily(
            "onebot_events_published", "Events published on the bus.", value=bus.published
        )
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
