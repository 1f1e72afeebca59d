"""The event bus refuses events it cannot encode without ever raising to the publisher.

These tests publish Python dicts directly, so they do not depend on what a parser lets through:
the bus is the last line of defence for every producer (relay, sandbox_emit, cluster).
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.bus import EventBus, SubscriberOptions, Subscription
from tests.conftest import capture_logs, run_gateway

GOOD = {"time": 1, "self_id": 1, "post_type": "notice", "notice_type": "good"}


def weird_message(segment: dict[str, Any]) -> dict[str, Any]:
    """A message event in array form whose one segment has no CQ spelling, no raw_message."""
    return {
        "time": 1,
        "self_id": 1,
        "post_type": "message",
        "message_type": "private",
        "user_id": 5,
        "message_id": 1,
        "message": [segment],
    }


def drain(subscription: Subscription) -> list[Any]:
    frames = []
    while len(subscription):
        frames.append(orjson.loads(subscription._queue.popleft()[1]))
    return frames


@pytest.mark.parametrize(
    "bad",
    [
        {"post_type": "notice", "notice_type": "poison", "text": "\ud800", "time": 2},
        {"post_type": "notice", "notice_type": "poison", "\udfff": 1},
        {"post_type": "notice", "notice_type": "poison", "user_id": 2**70},
        {"post_type": "notice", "notice_type": "poison", "value": object()},
    ],
    ids=["lone-surrogate-value", "lone-surrogate-key", "int-beyond-64-bits", "not-json"],
)
def test_an_unencodable_event_is_rejected_counted_and_the_next_one_delivered(
    bad: dict[str, Any],
) -> None:
    bus = EventBus()
    array = bus.subscribe("ws", SubscriberOptions())
    debug = bus.subscribe("dbg", SubscriberOptions(debug=True, message_format="string"))
    with capture_logs() as logs:
        bus.publish(bad)
        bus.publish(GOOD)
    assert drain(array) == [GOOD] and drain(debug) == [GOOD]
    assert bus.rejected == {"unencodable": 1}
    rejected = [line for line in logs if line["event"] == "event_rejected"]
    assert len(rejected) == 1 and rejected[0]["reason"] == "unencodable"
    # The log line itself must be encodable (the JSON log renderer uses orjson too).
    orjson.dumps({k: v for k, v in rejected[0].items() if k != "log_level"})


@pytest.mark.parametrize(
    "segment",
    [
        {"type": "te xt", "data": {}},
        {"type": 5, "data": {}},
        {"type": "face", "data": ["not", "an", "object"]},
        {"type": "face", "data": {"bad key": 1}},
    ],
    ids=["space-in-type", "numeric-type", "data-not-object", "bad-data-key"],
)
def test_a_message_without_cq_form_is_withheld_from_string_subscribers_only(
    segment: dict[str, Any],
) -> None:
    bus = EventBus()
    array = bus.subscribe("array", SubscriberOptions())
    string = bus.subscribe("string", SubscriberOptions(message_format="string"))
    event = weird_message(segment)
    with capture_logs() as logs:
        bus.publish(event)
        bus.publish(weird_message({"type": "text", "data": {"text": "fine"}}))
    # Array subscribers get the event as published; string subscribers never get a half-converted
    # copy of it, only the next good one.
    assert [e["message"] for e in drain(array)] == [
        [segment],
        [{"type": "text", "data": {"text": "fine"}}],
    ]
    assert [e["message"] for e in drain(string)] == ["fine"]
    assert bus.rejected == {"no_cq_form": 1}
    assert [line["reason"] for line in logs if line["event"] == "event_rejected"] == ["no_cq_form"]


def test_an_event_nobody_is_subscribed_to_is_not_encoded_nor_rejected() -> None:
    bus = EventBus()
    bus.publish({"post_type": "notice", "text": "\ud800"})
    assert bus.rejected == {} and bus.published == 1


def test_rejection_logs_are_rate_limited_but_every_rejection_is_counted() -> None:
    bus = EventBus()
    subscription = bus.subscribe("ws", SubscriberOptions())
    with capture_logs() as logs:
        for _ in range(200):
            bus.publish({"post_type": "notice", "text": "\ud800"})
    assert bus.rejected == {"unencodable": 200}
    lines = [line for line in logs if line["event"] == "event_rejected"]
    assert 1 <= len(lines) < 200
    assert lines[0]["rejected_total"] == 1
    assert len(subscription) == 0


def test_reject_counts_reasons_from_other_producers() -> None:
    bus = EventBus()
    with capture_logs() as logs:
        bus.reject("upstream_not_object", detail="got array")
        bus.reject("upstream_not_object", detail="got number")
        bus.reject("upstream_undecodable", detail="\ud800 in the text")
    assert bus.rejected == {"upstream_not_object": 2, "upstream_undecodable": 1}
    for line in logs:
        orjson.dumps({k: v for k, v in line.items() if k != "log_level"})


async def test_sandbox_emit_of_an_event_without_cq_form_is_counted_in_metrics() -> None:
    ws_entry = {"enable": True, "port": 0, "heartInterval": 0}
    document = {
        "network": {
            "websocketServers": [
                {"name": "array", **ws_entry},
                {"name": "string", "messagePostFormat": "string", **ws_entry},
            ]
        },
        "backend": {"database": ":memory:"},
        "admin": {"port": 0},
    }
    bad = weird_message({"type": "te xt", "data": {}})
    good = weird_message({"type": "text", "data": {"text": "fine"}})
    async with run_gateway(document) as gw, aiohttp.ClientSession() as http:
        adapters: Any = gw.supervisor.adapters
        array = await http.ws_connect(f"ws://127.0.0.1:{adapters['array'].port}/event")
        string = await http.ws_connect(f"ws://127.0.0.1:{adapters['string'].port}/event")
        for ws in (array, string):
            assert (await ws.receive_json(timeout=5))["meta_event_type"] == "lifecycle"
        for event in (bad, good):
            answer = await gw.supervisor.dispatcher.call("sandbox_emit", {"event": event})
            assert answer["retcode"] == 0
        assert (await array.receive_json(timeout=5))["message"] == bad["message"]
        assert (await array.receive_json(timeout=5))["message"] == good["message"]
        assert (await string.receive_json(timeout=5))["message"] == "fine"
        assert gw.supervisor.admin is not None
        url = f"http://127.0.0.1:{gw.supervisor.admin.port}/metrics"
        async with http.get(url) as response:
            text = await response.text()
        await array.close()
        await string.close()
    assert metric(text, "onebot_events_rejected_total", reason="no_cq_form") == 1


def metric(text: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus text exposition."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    raise AssertionError(f"no {name}{labels} in:\n{text}")
