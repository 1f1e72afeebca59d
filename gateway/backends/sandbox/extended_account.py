"""Sandbox actions: extended_account."""

from __future__ import annotations
