"""Sandbox actions: requests."""

from __future__ import annotations
