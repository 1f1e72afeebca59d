"""Sandbox actions: extended_message."""

from __future__ import annotations
