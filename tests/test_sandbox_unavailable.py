"""NapCat actions the sandbox cannot simulate answer 1404 naming the sandbox, over HTTP."""

from __future__ import annotations

import pytest

from gateway.actions import napcat
from tests.sandbox_client import SandboxClient

UNAVAILABLE = sorted(name for action in napcat.ACTIONS for name in (action.name, *action.aliases))


def not_available(body: dict[str, object], name: str) -> bool:
    return body["retcode"] == 1404 and body["message"] == (
        f"action {name!r} is not available on the sandbox backend; {napcat.HINT}"
    )


@pytest.mark.parametrize(
    "name", ["send_packet", "get_ai_characters", "get_ai_record", "send_group_ai_record"]
)
async def test_sample_of_napcat_actions_is_1404(sandbox: SandboxClient, name: str) -> None:
    body = await sandbox.call(name, user_id=20001)
    assert body["status"] == "failed" and not_available(body, name), body
    assert body["wording"] == body["message"]


async def test_every_unavailable_action_is_1404_over_http(sandbox: SandboxClient) -> None:
    wrong = {}
    for name in UNAVAILABLE:
        body = await sandbox.call(name)
        if not not_available(body, name):
            wrong[name] = body
    assert wrong == {}


async def test_async_suffix_of_an_unavailable_action_is_1404_too(sandbox: SandboxClient) -> None:
    body = await sandbox.call("send_packet_async")
    assert not_available(body, "send_packet")


async def test_an_unknown_action_still_says_unknown(sandbox: SandboxClient) -> None:
    body = await sandbox.call("no_such_napcat_action")
    assert body["retcode"] == 1404 and "unknown action" in body["message"]


def test_every_unavailable_action_has_the_relay_summary() -> None:
    assert all(action.summary == napcat.SUMMARY for action in napcat.ACTIONS)
