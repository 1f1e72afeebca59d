"""Catalog: extended_message actions."""

from __future__ import annotations

from gateway.actions.catalog import Action

ACTIONS: tuple[Action, ...] = ()
