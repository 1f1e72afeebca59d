"""The sandbox's handler table: composed explicitly from its modules, covering the catalog."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.actions import default_catalog, napcat
from gateway.backends.sandbox import backend, system
from gateway.backends.sandbox.context import compose


def test_every_catalog_action_but_the_napcat_only_ones_has_a_handler() -> None:
    unavailable = {action.name for action in napcat.ACTIONS}
    served = {action.name for action in default_catalog() if action.name not in unavailable}
    missing = served - backend.HANDLERS.keys()
    assert missing == set(), "no sandbox handler (compose its table in backend.HANDLERS)"


def test_every_handler_serves_a_catalog_action_the_sandbox_simulates() -> None:
    catalog = {action.name for action in default_catalog()}
    unavailable = {action.name for action in napcat.ACTIONS}
    assert backend.HANDLERS.keys() - catalog == set()
    assert backend.HANDLERS.keys() & unavailable == set()


def test_the_composed_table_holds_each_module_table_as_given() -> None:
    for name, fn in system.HANDLERS.items():
        assert backend.HANDLERS[name] is fn


def test_compose_refuses_an_action_served_twice() -> None:
    async def one(_sandbox: Any, _params: Any) -> None:
        return None

    async def other(_sandbox: Any, _params: Any) -> None:
        return None

    assert compose({"a": one}, {"b": other}) == {"a": one, "b": other}
    with pytest.raises(ValueError, match="'get_status' is served by two handler tables"):
        compose(system.HANDLERS, {"get_status": other})
