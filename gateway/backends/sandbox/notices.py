"""Sandbox actions: notices."""

from __future__ import annotations
