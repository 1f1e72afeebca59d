"""Sandbox actions: groups."""

from __future__ import annotations
