"""Sandbox actions: messages."""

from __future__ import annotations
