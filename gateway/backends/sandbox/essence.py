"""Sandbox actions: essence."""

from __future__ import annotations
