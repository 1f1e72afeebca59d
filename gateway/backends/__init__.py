"""Backends: the account that actions act on and events come from."""
