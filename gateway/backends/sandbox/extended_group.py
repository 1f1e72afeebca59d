"""Sandbox actions: extended_group."""

from __future__ import annotations
