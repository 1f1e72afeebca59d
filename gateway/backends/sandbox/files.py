"""Sandbox actions: files."""

from __future__ import annotations
