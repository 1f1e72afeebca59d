"""The action catalog: names, aliases, parameter models and summaries."""

from __future__ import annotations

from gateway.actions import friend, system
from gateway.actions.catalog import Action, Catalog, NoParams, Params


def default_catalog() -> Catalog:
    """Every action the gateway knows, built once at start-up."""
    return Catalog([*system.ACTIONS, *friend.ACTIONS])


__all__ = ["Action", "Catalog", "NoParams", "Params", "default_catalog"]
