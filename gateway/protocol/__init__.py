"""OneBot 11 wire format: pure functions, no I/O."""
