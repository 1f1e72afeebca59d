"""Fuzz and fault tests: every bad input gets an envelope or a clean close, never a 5xx."""
