"""The dispatcher's remembered routes and batched metrics, on the real sandbox backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import Field

from gateway import dispatcher as dispatcher_module
from gateway.actions.catalog import Action, Params
from gateway.config import parse_config
from gateway.dispatcher import ANSWER_BATCH, Dispatcher, _shareable_defaults
from gateway.supervisor import Supervisor
from tests.conftest import sandbox_config


@pytest.fixture
async def supervisor() -> AsyncIterator[Supervisor]:
    running = Supervisor(parse_config(sandbox_config(), env={}))
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def test_a_remembered_route_answers_like_the_first_call(supervisor: Supervisor) -> None:
    dispatcher = supervisor.dispatcher
    for _ in range(2):  # first call resolves the route, second uses the remembered one
        absent = await dispatcher.call("get_login_info", None, "a")
        empty = await dispatcher.call("get_login_info", {}, "b")
        extra = await dispatcher.call("get_login_info", {"unused": 1}, "c")
        wrong = await dispatcher.call("get_login_info", [], "d")
        falsy = await dispatcher.call("get_login_info", "", "e")
        assert [absent["retcode"], empty["retcode"], extra["retcode"]] == [0, 0, 0]
        assert absent["data"] == {"user_id": 10001, "nickname": "Sandbox Bot"}
        assert [absent["echo"], empty["echo"], extra["echo"]] == ["a", "b", "c"]
        assert (wrong["retcode"], falsy["retcode"]) == (1400, 1400)
        assert "params must be an object, got array" in wrong["message"]
        assert "got string" in falsy["message"]


async def test_suffixes_keep_their_own_routes(supervisor: Supervisor) -> None:
    dispatcher = supervisor.dispatcher
    for _ in range(2):
        assert (await dispatcher.call("get_login_info"))["status"] == "ok"
        assert (await dispatcher.call("get_login_info_async"))["status"] == "async"
        missing = await dispatcher.call("send_private_msg_async", {}, 7)
        assert (missing["retcode"], missing["echo"]) == (1400, 7)


async def test_required_parameters_are_never_shared(supervisor: Supervisor) -> None:
    dispatcher = supervisor.dispatcher
    for _ in range(2):
        answer = await dispatcher.call("get_stranger_info", None)
        assert answer["retcode"] == 1400 and "user_id" in answer["message"]


def test_defaults_are_shared_only_when_every_value_is_immutable() -> None:
    class Scalars(Params):
        flag: bool = False
        name: str = "x"

    class WithList(Params):
        items: list[int] = Field(default_factory=list)

    class Required(Params):
        user_id: int

    shared = _shareable_defaults(Action("scalars", Scalars, ""))
    assert shared is not None and shared.model_dump() == {"flag": False, "name": "x"}
    assert _shareable_defaults(Action("list", WithList, "")) is None
    assert _shareable_defaults(Action("required", Required, "")) is None


async def test_remembered_routes_are_bounded(
    supervisor: Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatcher_module, "ROUTE_CACHE_SIZE", 2)
    dispatcher = Dispatcher(
        supervisor.dispatcher.catalog, supervisor.backend, rate_limit_interval=0
    )
    names = ["get_login_info", "get_status", "get_version_info", "get_friend_list"]
    for name in names * 2:
        assert (await dispatcher.call(name))["retcode"] == 0
    assert len(dispatcher._routes) == 2


async def test_metrics_count_every_answer_across_batches(supervisor: Supervisor) -> None:
    dispatcher, metrics = supervisor.dispatcher, supervisor.metrics
    calls = 2 * ANSWER_BATCH + 3
    for _ in range(calls):
        await dispatcher.call("get_login_info")
    await dispatcher.call("no_such_action")
    await dispatcher.call("get_stranger_info", {"user_id": "x"})
    requests = metrics.actions.requests()
    assert requests[("get_login_info", 0)] == calls
    assert requests[("(unknown)", 1404)] == 1
    assert requests[("get_stranger_info", 1400)] == 1
    assert metrics.answered[0] == calls
