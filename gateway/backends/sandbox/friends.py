"""Sandbox actions: friends."""

from __future__ import annotations
