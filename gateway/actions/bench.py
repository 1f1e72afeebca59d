"""Catalog: bench actions."""

from __future__ import annotations

from gateway.actions.catalog import Action

ACTIONS: tuple[Action, ...] = ()
