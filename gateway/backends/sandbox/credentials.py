"""Sandbox actions: credentials."""

from __future__ import annotations
