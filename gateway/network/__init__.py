"""Network adapters: one module per adapter kind, translating wire to dispatcher and bus."""
