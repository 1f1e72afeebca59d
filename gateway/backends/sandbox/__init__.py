"""The embedded sandbox: a simulated QQ account on SQLite."""
